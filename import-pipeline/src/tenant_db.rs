//! Each tenant's own database, with its own database account.
//!
//! - SQLite (default): one file per tenant under `<data_dir>/tenant-db/`,
//!   outside every tenant tree, mode 0600. SQLite has no accounts: the file's
//!   ownership is the account, and no client path can reach it.
//! - PostgreSQL: one database and one LOGIN role per tenant, created through
//!   `tenant_db.admin_url`. The role owns its database (created from
//!   `template0`); CONNECT is revoked from PUBLIC so no other tenant's role
//!   can even open it, and from PUBLIC on the server's maintenance databases
//!   (`postgres`, `template1`) so the role opens nothing else (other
//!   databases still open to PUBLIC: [`TenantDbProvisioner::databases_open_to`]). Only the role
//!   may create in its database's `public` schema. The role's
//!   password is generated here and sent to the server only as a SCRAM-SHA-256
//!   verifier, so it cannot appear in the server's statement log either.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use passerelle_catalog::{TenantDatabase, TenantName};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use thiserror::Error;
use url::Url;

/// PostgreSQL limits identifiers to 63 bytes.
const PG_IDENTIFIER_MAX: usize = 63;

/// Why a tenant database could not be created or destroyed.
#[derive(Debug, Error)]
pub enum TenantDbError {
    /// A file-system step failed (SQLite backend).
    #[error("tenant database file {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The database server refused or could not be reached.
    #[error("tenant database: {0}")]
    Database(#[from] sqlx::Error),
    /// `tenant_db.admin_url` is not a usable PostgreSQL URL.
    #[error("tenant_db.admin_url: {0}")]
    AdminUrl(String),
    /// The database or role exists already: another tenant or a leftover.
    #[error("tenant database {0} exists already; remove it or choose another tenant_db.name_prefix")]
    AlreadyExists(String),
}

/// Creates and destroys tenant databases.
#[derive(Clone, Debug)]
pub enum TenantDbProvisioner {
    /// One SQLite file per tenant in this directory.
    Sqlite {
        /// `<data_dir>/tenant-db`.
        dir: PathBuf,
    },
    /// One database and role per tenant on this PostgreSQL server.
    Postgres {
        /// URL of an account allowed to create databases and roles.
        admin_url: Url,
        /// Prefix of every database and role name (`[a-z][a-z0-9_]*`).
        name_prefix: String,
    },
}

impl TenantDbProvisioner {
    /// A PostgreSQL provisioner; `admin_url` must be a `postgres://` URL.
    pub fn postgres(admin_url: &str, name_prefix: &str) -> Result<Self, TenantDbError> {
        let admin_url = Url::parse(admin_url).map_err(|e| TenantDbError::AdminUrl(e.to_string()))?;
        if !matches!(admin_url.scheme(), "postgres" | "postgresql") {
            return Err(TenantDbError::AdminUrl("must start with postgres://".into()));
        }
        Ok(Self::Postgres { admin_url, name_prefix: name_prefix.to_owned() })
    }

    /// Creates the tenant's database and account; returns how to reach it.
    /// On failure nothing is left behind.
    pub async fn create(&self, tenant: &TenantName) -> Result<TenantDatabase, TenantDbError> {
        match self {
            Self::Sqlite { dir } => create_sqlite(dir, tenant),
            Self::Postgres { admin_url, name_prefix } => {
                let name = pg_identifier(name_prefix, tenant);
                let mut admin = PgConnection::connect(admin_url.as_str()).await?;
                let password = hex::encode(rand::random::<[u8; 32]>());
                let created = create_postgres(&mut admin, admin_url, &name, &password).await;
                if created.is_err() {
                    // Undo whatever part was done; the first error is the one to report.
                    let _ = drop_postgres(&mut admin, &name).await;
                }
                let _ = admin.close().await;
                created
            }
        }
    }

    /// Recreates a PostgreSQL tenant database and its role as a restored catalog describes them: the
    /// role gets the password of `database.url`, so the catalog's URL reaches it again. An existing
    /// database or role of that name is refused unless `replace`, which drops them first. A SQLite
    /// tenant database needs nothing here (its file is restored as it is).
    pub async fn recreate(&self, database: &TenantDatabase, replace: bool) -> Result<(), TenantDbError> {
        let Self::Postgres { admin_url, .. } = self else {
            return Err(TenantDbError::AdminUrl("tenant_db.backend is not \"postgres\"".into()));
        };
        let name = PgIdentifier::from_catalog(&database.name)?;
        let url = Url::parse(&database.url).map_err(|e| TenantDbError::AdminUrl(format!("catalog URL: {e}")))?;
        let password = percent_encoding::percent_decode_str(url.password().unwrap_or_default()).decode_utf8_lossy();
        let mut admin = PgConnection::connect(admin_url.as_str()).await?;
        if replace {
            drop_postgres(&mut admin, &name).await?;
        }
        let created = create_postgres(&mut admin, admin_url, &name, &password).await.map(drop);
        let _ = admin.close().await;
        created
    }

    /// The databases of the server, other than its own, that the tenant's
    /// role can still connect to: PUBLIC holds CONNECT there (other
    /// applications' databases, closed by their owners, not by us). Empty on
    /// SQLite.
    pub async fn databases_open_to(&self, database: &TenantDatabase) -> Result<Vec<String>, TenantDbError> {
        match self {
            Self::Postgres { admin_url, .. } if database.backend == "postgres" => {
                let mut admin = PgConnection::connect(admin_url.as_str()).await?;
                let open = open_databases(&mut admin, &PgIdentifier::from_catalog(&database.name)?).await;
                let _ = admin.close().await;
                open
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Destroys the tenant's database and account. Missing parts are not an error.
    pub async fn destroy(&self, database: &TenantDatabase) -> Result<(), TenantDbError> {
        match self {
            Self::Sqlite { .. } if database.backend == "sqlite" => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let path = PathBuf::from(format!("{}{suffix}", database.name));
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(TenantDbError::Io { path, source }),
                    }
                }
                Ok(())
            }
            Self::Postgres { admin_url, .. } if database.backend == "postgres" => {
                let mut admin = PgConnection::connect(admin_url.as_str()).await?;
                let name = PgIdentifier::from_catalog(&database.name)?;
                drop_postgres(&mut admin, &name).await?;
                let _ = admin.close().await;
                Ok(())
            }
            _ => Err(TenantDbError::AdminUrl(format!(
                "tenant database is on {}, but tenant_db.backend is configured otherwise",
                database.backend
            ))),
        }
    }
}

fn create_sqlite(dir: &PathBuf, tenant: &TenantName) -> Result<TenantDatabase, TenantDbError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| TenantDbError::Io { path, source }
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let path = dir.join(format!("{tenant}.db"));
    // create_new: an existing file is a leftover or a name clash, never reused.
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => TenantDbError::AlreadyExists(path.display().to_string()),
        _ => io(&path)(e),
    })?;
    Ok(TenantDatabase {
        backend: "sqlite".into(),
        name: path.display().to_string(),
        role: None,
        url: format!("sqlite://{}", path.display()),
        sealed_password: None,
    })
}

/// A PostgreSQL database/role name made only of `[a-z0-9_]`: the tenant name
/// (already strict) with `-` mapped to `_`, behind a validated prefix. Safe to
/// splice into DDL, which cannot take bound parameters.
#[derive(Clone, Debug)]
struct PgIdentifier(String);

impl PgIdentifier {
    /// Re-validates a name read back from the catalog.
    fn from_catalog(name: &str) -> Result<Self, TenantDbError> {
        let valid = !name.is_empty()
            && name.len() <= PG_IDENTIFIER_MAX
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(TenantDbError::AdminUrl(format!("catalog holds an invalid database name {name:?}")))
        }
    }
}

fn pg_identifier(prefix: &str, tenant: &TenantName) -> PgIdentifier {
    let body = tenant.as_str().replace('-', "_");
    let full = format!("{prefix}{body}");
    if full.len() <= PG_IDENTIFIER_MAX {
        return PgIdentifier(full);
    }
    // Too long: keep a readable head and make it unique with a digest of the full name.
    let digest = hex::encode(&digest::digest(&digest::SHA256, tenant.as_str().as_bytes()).as_ref()[..6]);
    let keep = PG_IDENTIFIER_MAX - digest.len() - 1;
    PgIdentifier(format!("{}_{digest}", &full[..keep]))
}

async fn create_postgres(
    admin: &mut PgConnection,
    admin_url: &Url,
    name: &PgIdentifier,
    password: &str,
) -> Result<TenantDatabase, TenantDbError> {
    let n = &name.0;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) OR EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
    )
    .bind(n)
    .fetch_one(&mut *admin)
    .await?;
    if exists {
        return Err(TenantDbError::AlreadyExists(n.clone()));
    }
    let verifier = scram_sha256_verifier(password);
    // DDL takes no bound parameters: `n` is a PgIdentifier ([a-z0-9_]) and the
    // verifier is base64 and '$:' produced here, so neither can close the quotes.
    let statements = [
        format!(
            "CREATE ROLE \"{n}\" LOGIN PASSWORD '{verifier}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        ),
        // template0: nothing an administrator added to template1 (objects,
        // grants to PUBLIC) reaches a tenant's database.
        format!("CREATE DATABASE \"{n}\" OWNER \"{n}\" TEMPLATE template0"),
    ];
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *admin).await?;
    }
    close_public_schema(admin_url, name).await?;
    let statements = [
        format!("REVOKE ALL ON DATABASE \"{n}\" FROM PUBLIC"),
        format!("GRANT CONNECT, TEMPORARY ON DATABASE \"{n}\" TO \"{n}\""),
    ];
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *admin).await?;
    }
    close_maintenance_databases(admin).await?;
    let mut url = admin_url.clone();
    url.set_username(n).map_err(|()| TenantDbError::AdminUrl("cannot carry a user name".into()))?;
    url.set_password(Some(password)).map_err(|()| TenantDbError::AdminUrl("cannot carry a password".into()))?;
    url.set_path(&format!("/{n}"));
    Ok(TenantDatabase {
        backend: "postgres".into(),
        name: n.clone(),
        role: Some(n.clone()),
        url: url.into(),
        sealed_password: None,
    })
}

/// In the tenant's new database: only its role may use or create objects
/// in `public` (PostgreSQL 14 and older let PUBLIC create there). Done by
/// the administrator before CONNECT is revoked from PUBLIC.
async fn close_public_schema(admin_url: &Url, name: &PgIdentifier) -> Result<(), TenantDbError> {
    let n = &name.0;
    let mut url = admin_url.clone();
    url.set_path(&format!("/{n}"));
    let mut database = PgConnection::connect(url.as_str()).await?;
    // Same reasoning as in create_postgres: `n` is a PgIdentifier.
    let statement = format!("REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT ALL ON SCHEMA public TO \"{n}\"");
    let done = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut database).await;
    let _ = database.close().await;
    done?;
    Ok(())
}

/// The databases every server has and PUBLIC may connect to by default:
/// no tenant role may. A database that does not exist is skipped; an
/// administrator that does not own them (not a superuser) only gets a
/// warning from PostgreSQL, and [`TenantDbProvisioner::databases_open_to`] names them.
async fn close_maintenance_databases(admin: &mut PgConnection) -> Result<(), TenantDbError> {
    const MAINTENANCE: [&str; 2] = ["postgres", "template1"];
    // Two REVOKEs on the same database's row at once fail with "tuple
    // concurrently updated" (two `tenant add` at the same moment, from two
    // administrators or two nodes): they take turns on a lock of their own.
    const GRANTS_LOCK: i64 = 0x7061_7373_6772_6e74; // "passgrnt"
    let mut tx = admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(GRANTS_LOCK).execute(&mut *tx).await?;
    for database in MAINTENANCE {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            // A constant name.
            let statement = format!("REVOKE CONNECT, TEMPORARY ON DATABASE \"{database}\" FROM PUBLIC");
            sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The databases, other than `name`'s own, its role can connect to.
async fn open_databases(admin: &mut PgConnection, name: &PgIdentifier) -> Result<Vec<String>, TenantDbError> {
    Ok(sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datallowconn AND datname <> $1 \
         AND has_database_privilege(CAST($1 AS name), oid, 'CONNECT') ORDER BY datname",
    )
    .bind(&name.0)
    .fetch_all(&mut *admin)
    .await?)
}

async fn drop_postgres(admin: &mut PgConnection, name: &PgIdentifier) -> Result<(), TenantDbError> {
    let n = &name.0;
    // Same reasoning as in create_postgres: `n` is a PgIdentifier.
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))).execute(&mut *admin).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{n}\""))).execute(&mut *admin).await?;
    Ok(())
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677),
/// so that only the verifier, never the password, travels to the server.
fn scram_sha256_verifier(password: &str) -> String {
    const ITERATIONS: u32 = 4096;
    let salt: [u8; 16] = rand::random();
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).expect("non-zero"),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&salted_key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&salted_key, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key.as_ref()),
        BASE64.encode(server_key.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_stay_within_postgres_limits() {
        let short = pg_identifier("passerelle_", &TenantName::parse("acme-corp").unwrap());
        assert_eq!(short.0, "passerelle_acme_corp");
        let long = pg_identifier("passerelle_", &TenantName::parse(&"a".repeat(63)).unwrap());
        assert_eq!(long.0.len(), PG_IDENTIFIER_MAX);
        assert!(PgIdentifier::from_catalog(&long.0).is_ok());
        assert!(PgIdentifier::from_catalog("x\"; DROP").is_err());
    }

    #[test]
    fn scram_verifier_has_postgres_shape() {
        let v = scram_sha256_verifier("secret");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.contains("secret") && !v.contains('\''));
    }
}
