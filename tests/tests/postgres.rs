//! Catalog and tenant databases on PostgreSQL: each tenant gets its own
//! database and role, no tenant's role can open another tenant's database,
//! the catalog lives in PostgreSQL, and purging a tenant drops both. Checked
//! with `psql`. PostgreSQL must be reachable (see `TEST_PG_ADMIN_URL`).

use passerelle_tests::{Passerelle, pg_admin_url, pg_url_as, psql, psql_result, ssh_keygen, ssh_keygen_lf};
use serde_json::Value;

/// `(database_name, database_role)` of a tenant, from `tenant show --json`.
fn database_of(p: &Passerelle, tenant: &str) -> (String, String) {
    let show: Value = serde_json::from_str(&p.ok(&["tenant", "show", tenant, "--json"])).unwrap();
    assert_eq!(show["database_backend"], "postgres", "{show}");
    let name = show["database_name"].as_str().expect("database_name").to_owned();
    let role = show["database_role"].as_str().expect("database_role").to_owned();
    (name, role)
}

/// Connects as `role` to `database` (trust authentication on the test server).
fn as_role(role: &str, database: &str) -> String {
    pg_url_as(&pg_admin_url(), role, database)
}

fn exists(catalog: &str, name: &str) -> bool {
    psql(
        &pg_admin_url(),
        &format!(
            "SELECT count(*) FROM {catalog} WHERE {}",
            match catalog {
                "pg_database" => format!("datname = '{name}'"),
                _ => format!("rolname = '{name}'"),
            }
        ),
    )
    .trim()
        == "1"
}

/// Tenants added at the same moment on one PostgreSQL server (two
/// administrators, two nodes) are all created: their grants take turns.
#[test]
fn tenants_added_at_the_same_moment_are_all_created() {
    let p = Passerelle::with_postgres();
    std::thread::scope(|scope| {
        let adds: Vec<_> = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
            .iter()
            .map(|name| scope.spawn(|| p.run(&["tenant", "add", name])))
            .collect();
        for add in adds {
            let out = add.join().expect("tenant add thread");
            assert!(out.success(), "{}", out.stderr);
        }
    });
    for name in ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"] {
        let (database, role) = database_of(&p, name);
        assert!(exists("pg_database", &database) && exists("pg_roles", &role), "{name}");
    }
}

#[test]
fn each_tenant_has_its_own_database_and_role() {
    let p = Passerelle::with_postgres();
    p.ok(&["tenant", "add", "a"]);
    p.ok(&["tenant", "add", "b"]);
    let (db_a, role_a) = database_of(&p, "a");
    let (db_b, role_b) = database_of(&p, "b");
    assert_ne!(db_a, db_b);
    assert_ne!(role_a, role_b);
    assert!(exists("pg_database", &db_a) && exists("pg_roles", &role_a));

    // A tenant's role works in its own database...
    psql(&as_role(&role_a, &db_a), "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    assert_eq!(psql(&as_role(&role_a, &db_a), "SELECT current_user, count(*) FROM t").trim(), format!("{role_a}|1"));
    let owner =
        psql(&pg_admin_url(), &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db_a}'"));
    assert_eq!(owner.trim(), role_a, "the role owns its database");

    // ...and cannot even open another tenant's.
    for (role, database) in [(&role_a, &db_b), (&role_b, &db_a)] {
        let out = psql_result(&as_role(role, database), "SELECT 1");
        assert!(!out.success(), "{role} opened {database}");
        assert!(out.stderr.contains("permission denied"), "{role} on {database}: {}", out.stderr);
    }
    // Nor can it grant itself more.
    let out = psql_result(&as_role(&role_a, &db_a), &format!("ALTER ROLE {role_a} SUPERUSER"));
    assert!(!out.success(), "role {role_a} made itself superuser");
    let out = psql_result(&as_role(&role_a, &db_a), "CREATE DATABASE sneaky");
    assert!(!out.success(), "role {role_a} created a database");
}

/// A tenant's role opens its own database and nothing else of the server
/// (another tenant's, `postgres`, `template1`, the catalog's), and cannot
/// create objects in `public` of a database it does not own, even where
/// PUBLIC may (PostgreSQL 14 and older) and an administrator let it in.
#[test]
fn a_tenant_role_reaches_no_other_database() {
    let p = Passerelle::with_postgres();
    let catalog = p.pg_catalog_url().expect("PostgreSQL installation");
    let catalog_db = catalog.rsplit_once('/').expect("a database").1.to_owned();
    // What PostgreSQL 14 and older grant, before the catalog is first opened.
    psql(&catalog, "GRANT CREATE ON SCHEMA public TO PUBLIC");
    p.ok(&["tenant", "add", "a"]);
    p.ok(&["tenant", "add", "b"]);
    let (db_a, role_a) = database_of(&p, "a");
    let (db_b, _) = database_of(&p, "b");
    for database in [db_b.as_str(), "postgres", "template1", catalog_db.as_str()] {
        let out = psql_result(&as_role(&role_a, database), "SELECT 1");
        assert!(!out.success(), "{role_a} opened {database}");
        assert!(out.stderr.contains("permission denied"), "{role_a} on {database}: {}", out.stderr);
    }
    psql(&pg_admin_url(), &format!("GRANT CONNECT ON DATABASE {catalog_db} TO {role_a}"));
    let out = psql_result(&as_role(&role_a, &catalog_db), "CREATE TABLE public.planted (x int)");
    assert!(!out.success(), "{role_a} created a table in the catalog's database");
    assert!(out.stderr.contains("permission denied for schema public"), "{}", out.stderr);
    // In its own database, the role alone may create in `public`.
    psql(&as_role(&role_a, &db_a), "CREATE TABLE public.mine (x int)");
    let public_acl = psql(&as_role(&role_a, &db_a), "SELECT nspacl FROM pg_namespace WHERE nspname = 'public'");
    assert!(!public_acl.contains("{=") && !public_acl.contains(",="), "PUBLIC has no right there: {public_acl}");
    // Another application's database, open to PUBLIC, is named: its owner closes it.
    let other = format!("{}other_app", p.pg_prefix().expect("PostgreSQL installation"));
    psql(&pg_admin_url(), &format!("CREATE DATABASE {other}"));
    let out = p.run(&["tenant", "add", "c"]);
    assert!(out.success(), "{out:?}");
    assert!(out.stderr.contains("warning") && out.stderr.contains(&other), "{}", out.stderr);
}

#[test]
fn catalog_is_in_postgresql() {
    let p = Passerelle::with_postgres();
    p.tenant_with_user("a", "alice", "Correct-Horse-Battery-42");
    p.ok(&["tenant", "add", "b"]);
    let catalog = p.pg_catalog_url().expect("PostgreSQL installation");
    assert_eq!(psql(&catalog, "SELECT name FROM tenants ORDER BY name"), "a\nb\n");
    assert_eq!(psql(&catalog, "SELECT login, tenant FROM users"), "alice|a\n");
    let hash = psql(&catalog, "SELECT password_hash FROM users WHERE login = 'alice'");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!p.layout().catalog_db().exists(), "no SQLite catalog next to it");
    assert!(!p.layout().tenant_dbs().exists(), "no SQLite tenant databases either");
}

#[test]
fn tenant_remove_purge_drops_database_and_role() {
    let p = Passerelle::with_postgres();
    p.tenant_with_user("a", "alice", "Correct-Horse-Battery-42");
    p.ok(&["tenant", "add", "b"]);
    let (db_a, role_a) = database_of(&p, "a");
    let (db_b, role_b) = database_of(&p, "b");
    psql(&as_role(&role_a, &db_a), "CREATE TABLE t (x int)");
    // A tenant database in use does not stop the purge.
    let _session = std::process::Command::new("psql")
        .args([&as_role(&role_a, &db_a), "-X", "-c", "SELECT pg_sleep(30)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("psql");
    std::thread::sleep(std::time::Duration::from_millis(300));

    let out = p.run(&["tenant", "remove", "a", "--purge", "--yes"]);
    assert!(out.success(), "{out:?}");

    assert!(!exists("pg_database", &db_a), "database {db_a} dropped");
    assert!(!exists("pg_roles", &role_a), "role {role_a} dropped");
    assert!(!p.layout().tenant_root("a").exists());
    let catalog = p.pg_catalog_url().unwrap();
    assert_eq!(psql(&catalog, "SELECT name FROM tenants"), "b\n");
    assert_eq!(psql(&catalog, "SELECT count(*) FROM users"), "0\n");

    // The other tenant is untouched.
    assert!(exists("pg_database", &db_b) && exists("pg_roles", &role_b));
    psql(&as_role(&role_b, &db_b), "SELECT 1");
}

/// Kills a helper process when the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn duplicate_tenant_leaves_the_first_database_alone() {
    let p = Passerelle::with_postgres();
    p.ok(&["tenant", "add", "a"]);
    let (db_a, role_a) = database_of(&p, "a");
    psql(&as_role(&role_a, &db_a), "CREATE TABLE t (x int)");
    let out = p.run(&["tenant", "add", "a"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    assert_eq!(psql(&as_role(&role_a, &db_a), "SELECT count(*) FROM t"), "0\n", "the table survived");
}

#[test]
fn long_tenant_names_get_distinct_databases() {
    let p = Passerelle::with_postgres();
    let first = format!("{}-one", "x".repeat(59));
    let second = format!("{}-two", "x".repeat(59));
    assert_eq!(first.len(), 63);
    p.ok(&["tenant", "add", &first]);
    p.ok(&["tenant", "add", &second]);
    let (db_1, role_1) = database_of(&p, &first);
    let (db_2, role_2) = database_of(&p, &second);
    assert_ne!(db_1, db_2);
    assert!(db_1.len() <= 63 && db_2.len() <= 63, "{db_1} {db_2}");
    psql(&as_role(&role_1, &db_1), "SELECT 1");
    assert!(!psql_result(&as_role(&role_1, &db_2), "SELECT 1").success());
    assert!(!psql_result(&as_role(&role_2, &db_1), "SELECT 1").success());
}

#[test]
fn users_and_keys_work_on_the_postgresql_catalog() {
    let p = Passerelle::with_postgres();
    p.tenant_with_user("acme", "alice", "Correct-Horse-Battery-42");
    p.ok(&["tenant", "add", "beta"]);
    let scratch = p.scratch();
    let keys = [
        ssh_keygen(&scratch, "ed", "ed25519", None, "alice@example"),
        ssh_keygen(&scratch, "ec", "ecdsa", None, "alice@example"),
    ];
    let mut expected = String::new();
    for key in &keys {
        assert_eq!(p.ok(&["key", "add", "alice", key.to_str().unwrap()]), ssh_keygen_lf(key));
        expected.push_str(&ssh_keygen_lf(key));
    }
    assert_eq!(p.ok(&["key", "list", "alice"]), expected);

    // Logins are unique across tenants here too.
    let dup = p.run_with_stdin(&["user", "add", "beta", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n");
    assert_eq!(dup.code, 2, "{dup:?}");
    let weak = p.run_with_stdin(&["user", "add", "beta", "bob", "--password-stdin"], "password1234\n");
    assert_eq!(weak.code, 2, "{weak:?}");

    p.ok(&["user", "lock", "alice"]);
    let users: Value = serde_json::from_str(&p.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["login"], "alice");
    assert_eq!(users[0]["admin_locked"], true);
    assert_eq!(users[0]["key_count"], 2);
    p.ok(&["user", "unlock", "alice"]);

    let out = p.run_with_stdin(&["user", "passwd", "alice", "--password-stdin"], "Violet-Kettle-Summit-1987\n");
    assert!(out.success(), "{out:?}");
    let fingerprint = expected.split_whitespace().nth(1).unwrap();
    p.ok(&["key", "remove", "alice", fingerprint]);
    assert_eq!(p.ok(&["key", "list", "alice"]), ssh_keygen_lf(&keys[1]));
    p.ok(&["user", "remove", "alice"]);
    let catalog = p.pg_catalog_url().unwrap();
    assert_eq!(psql(&catalog, "SELECT count(*) FROM users"), "0\n");
    assert_eq!(psql(&catalog, "SELECT count(*) FROM ssh_keys"), "0\n");
}
