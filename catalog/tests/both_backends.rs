//! The catalog behaves the same on SQLite and on PostgreSQL.

use passerelle_catalog::{AuditEvent, Catalog, CatalogError, Login, TenantDatabase, TenantName};

/// PostgreSQL server used by the tests; its absence is a failure, never a skip.
fn pg_admin_url() -> String {
    std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_postgres_catalog() -> Catalog {
    use sqlx::Connection;
    let name = format!("passerelle_catalog_test_{:016x}", rand::random::<u64>());
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {admin_url} for the tests: {e}"));
    // Test-only DDL on a name made of hex digits above.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    Catalog::open(&url).await.unwrap()
}

async fn exercise(catalog: Catalog) {
    let acme = TenantName::parse("acme").unwrap();
    let db = TenantDatabase { backend: "sqlite".into(), name: "acme.db".into(), role: None, url: "sqlite://x".into() };
    catalog.add_tenant(&acme, &["10.0.0.0/8".parse().unwrap()], &db).await.unwrap();
    assert!(matches!(catalog.add_tenant(&acme, &[], &db).await, Err(CatalogError::AlreadyExists(_))));
    let listed = catalog.tenants().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].allowed_ips, vec!["10.0.0.0/8".to_string()]);

    let alice = Login::parse("alice").unwrap();
    catalog.add_user(&acme, &alice, Some("$argon2id$fake")).await.unwrap();
    assert!(matches!(catalog.add_user(&acme, &alice, None).await, Err(CatalogError::AlreadyExists(_))));
    let ghost = TenantName::parse("ghost").unwrap();
    assert!(matches!(catalog.add_user(&ghost, &Login::parse("bob").unwrap(), None).await, Err(CatalogError::NotFound(_))));
    catalog.add_key(&alice, "SHA256:abc", "ssh-ed25519 AAAA alice").await.unwrap();
    let user = catalog.user(&alice).await.unwrap().unwrap();
    assert!(user.has_password && !user.admin_locked && user.key_count == 1);
    catalog.set_admin_lock(&alice, true).await.unwrap();
    assert!(catalog.user(&alice).await.unwrap().unwrap().admin_locked);
    assert_eq!(catalog.password_hash(&alice).await.unwrap().as_deref(), Some("$argon2id$fake"));
    catalog.remove_key(&alice, "SHA256:abc").await.unwrap();
    assert!(catalog.keys(&alice).await.unwrap().is_empty());
    catalog.record(&AuditEvent { actor: "admin:test".into(), protocol: "cli".into(), action: "tenant_add".into(), outcome: "ok".into(), ..Default::default() }).await.unwrap();

    catalog.remove_tenant(&acme).await.unwrap();
    assert!(catalog.user(&alice).await.unwrap().is_none(), "users go with their tenant");
    catalog.close().await;
}

#[tokio::test]
async fn catalog_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    exercise(Catalog::open(&url).await.unwrap()).await;
    // Reopening applies no migration twice.
    Catalog::open(&url).await.unwrap().close().await;
}

#[tokio::test]
async fn catalog_on_postgres() {
    exercise(fresh_postgres_catalog().await).await;
}
