//! The catalog behaves the same on SQLite and on PostgreSQL.

use passerelle_catalog::{
    AuditEvent, AuditFilter, AuditKey, Ban, Catalog, CatalogError, ChainBreak, ChainVerdict, FailureCount, Heartbeat,
    ImportJob, JobFilter, JobStatus, LockPolicy, Login, NodeState, StoredDataKey, TenantDatabase, TenantName,
    TenantQuota,
};

/// The audit chain's key of the tests.
fn key() -> AuditKey {
    AuditKey::new([7; 32])
}

/// PostgreSQL server used by the tests; its absence is a failure, never a skip.
fn pg_admin_url() -> String {
    std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty catalog database on the PostgreSQL server; its URL.
async fn fresh_postgres_url() -> String {
    use sqlx::Connection;
    let name = format!("passerelle_catalog_test_{:016x}", rand::random::<u64>());
    let admin_url = pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {admin_url} for the tests: {e}"));
    // Test-only DDL on a name made of hex digits above.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

async fn fresh_postgres_catalog() -> Catalog {
    Catalog::open(&fresh_postgres_url().await).await.unwrap().with_audit_key(key())
}

/// Runs every operation once, in an order where each finds what the one
/// before left, then removes the tenant and everything that goes with it.
async fn exercise(catalog: Catalog) {
    let acme = TenantName::parse("acme").unwrap();
    let alice = Login::parse("alice").unwrap();
    tenants_users_and_keys(&catalog, &acme, &alice).await;
    audit_trail(&catalog).await;
    access_rules_and_bans(&catalog, &acme, &alice).await;
    login_failures(&catalog, &alice).await;
    import_profiles_and_jobs(&catalog, &acme).await;
    live_session_access(&catalog, &acme, &alice).await;
    retention(&catalog).await;
    quotas(&catalog, &acme).await;
    nodes_and_duties(&catalog, &acme).await;

    let before = catalog.revision().await.unwrap();
    catalog.remove_tenant(&acme).await.unwrap();
    assert!(catalog.revision().await.unwrap() > before, "a tenant's removal moves the revision");
    assert!(catalog.access(&alice).await.unwrap().is_none());
    assert!(catalog.user(&alice).await.unwrap().is_none(), "users go with their tenant");
    assert!(catalog.import_profiles(&acme).await.unwrap().is_none(), "profiles go with their tenant");
    catalog.close().await;
}

async fn tenants_users_and_keys(catalog: &Catalog, acme: &TenantName, alice: &Login) {
    let db = TenantDatabase {
        backend: "sqlite".into(),
        name: "acme.db".into(),
        role: None,
        url: "sqlite://x".into(),
        sealed_password: None,
    };
    let key = StoredDataKey { tenant: "acme".into(), key_id: "00".repeat(16), wrapped: "AAAA".into() };
    catalog.add_tenant(acme, &["10.0.0.0/8".parse().unwrap()], &db, &key).await.unwrap();
    assert!(matches!(catalog.add_tenant(acme, &[], &db, &key).await, Err(CatalogError::AlreadyExists(_))));
    let listed = catalog.tenants().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].allowed_ips, vec!["10.0.0.0/8".to_string()]);

    catalog.add_user(acme, alice, Some("$argon2id$fake")).await.unwrap();
    assert!(matches!(catalog.add_user(acme, alice, None).await, Err(CatalogError::AlreadyExists(_))));
    let ghost = TenantName::parse("ghost").unwrap();
    assert!(matches!(
        catalog.add_user(&ghost, &Login::parse("bob").unwrap(), None).await,
        Err(CatalogError::NotFound(_))
    ));
    catalog.add_key(alice, "SHA256:abc", "ssh-ed25519 AAAA alice").await.unwrap();
    let user = catalog.user(alice).await.unwrap().unwrap();
    assert!(user.has_password && !user.admin_locked && user.key_count == 1);
    catalog.set_admin_lock(alice, true).await.unwrap();
    assert!(catalog.user(alice).await.unwrap().unwrap().admin_locked);
    assert_eq!(catalog.password_hash(alice).await.unwrap().as_deref(), Some("$argon2id$fake"));
    catalog.remove_key(alice, "SHA256:abc").await.unwrap();
    assert!(catalog.keys(alice).await.unwrap().is_empty());
}

async fn audit_trail(catalog: &Catalog) {
    catalog
        .record(&AuditEvent {
            actor: "admin:test".into(),
            protocol: "cli".into(),
            action: "tenant_add".into(),
            outcome: "ok".into(),
            at: Some(999_000),
            ..Default::default()
        })
        .await
        .unwrap();
    catalog
        .record(&AuditEvent {
            actor: "alice".into(),
            tenant: Some("acme".into()),
            login: Some("alice".into()),
            protocol: "sftp".into(),
            action: "login".into(),
            outcome: "ok".into(),
            at: Some(999_001),
            ..Default::default()
        })
        .await
        .unwrap();
    let all = catalog.audit_events(&AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["tenant_add", "login"]);
    let alice_only =
        AuditFilter { login: Some("alice".into()), tenant: Some("acme".into()), since: Some(0), limit: 10 };
    assert_eq!(catalog.audit_events(&alice_only).await.unwrap().len(), 1);
    let newest = catalog.audit_events(&AuditFilter { limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(newest[0].action, "login");
    // A burst larger than one INSERT statement holds: stored whole, in
    // order, every field in its column.
    let burst: Vec<AuditEvent> = (0..600)
        .map(|i| AuditEvent {
            actor: "bob".into(),
            tenant: Some("acme".into()),
            login: Some("bob".into()),
            ip: Some("192.0.2.7".into()),
            protocol: "ftps".into(),
            action: "upload".into(),
            outcome: "ok".into(),
            path: Some(format!("/inbox/{i}.csv")),
            bytes: Some(i),
            duration_ms: Some(2 * i),
            detail: Some(format!("detail {i}")),
            at: Some(1_000_000 + i),
        })
        .collect();
    catalog.record_all(&burst).await.unwrap();
    let bob = AuditFilter { login: Some("bob".into()), limit: 1000, ..Default::default() };
    assert_eq!(format!("{:?}", catalog.audit_events(&bob).await.unwrap()), format!("{burst:?}"));
}

async fn access_rules_and_bans(catalog: &Catalog, acme: &TenantName, alice: &Login) {
    catalog.set_tenant_allowed_ips(acme, &["192.0.2.0/24".parse().unwrap()]).await.unwrap();
    catalog.set_user_allowed_ips(alice, &["2001:db8::/32".parse().unwrap()]).await.unwrap();
    assert_eq!(catalog.tenant(acme).await.unwrap().unwrap().allowed_ips, ["192.0.2.0/24"]);
    assert_eq!(catalog.user(alice).await.unwrap().unwrap().allowed_ips, ["2001:db8::/32"]);

    let ban = Ban { ip: "192.0.2.1".into(), banned_at: 1, expires_at: i64::MAX, offences: 1, reason: "test".into() };
    let before = passerelle_catalog::now_ms() - 1;
    catalog.upsert_ban(&ban).await.unwrap();
    catalog.upsert_ban(&Ban { offences: 2, ..ban.clone() }).await.unwrap();
    assert_eq!(catalog.ban_offences("192.0.2.1").await.unwrap(), 2);
    assert_eq!(catalog.active_bans(0).await.unwrap().len(), 1);
    assert!(catalog.active_bans(i64::MAX).await.unwrap().is_empty());
    let network = Ban { ip: "2001:db8:1:2::/64".into(), ..ban.clone() };
    catalog.upsert_ban(&network).await.unwrap();
    let mut changed: Vec<String> =
        catalog.bans_updated_since(before).await.unwrap().into_iter().map(|b| b.ip).collect();
    changed.sort();
    assert_eq!(changed, ["192.0.2.1", "2001:db8:1:2::/64"]);
    assert!(catalog.bans_updated_since(i64::MAX).await.unwrap().is_empty());
    catalog.remove_ban("192.0.2.1").await.unwrap();
    assert!(matches!(catalog.remove_ban("192.0.2.1").await, Err(CatalogError::NotFound(_))));
    assert_eq!(catalog.ban_offences("192.0.2.1").await.unwrap(), 0);
    let removed = catalog.bans_updated_since(before).await.unwrap();
    let tombstone = removed.iter().find(|b| b.ip == "192.0.2.1").expect("a removal is read incrementally");
    assert_eq!((tombstone.expires_at, tombstone.offences), (0, 0));
    assert_eq!(catalog.active_bans(0).await.unwrap(), [network]);
    assert_eq!(catalog.prune_bans(passerelle_catalog::now_ms() - 60_000).await.unwrap(), 0, "a fresh tombstone stays");
    catalog.remove_ban("2001:db8:1:2::/64").await.unwrap();
}

/// Failed logins are counted atomically: of many parallel failures exactly
/// one reaches the threshold and locks; the window, a lock, a success and
/// `user unlock` each start the count again.
async fn login_failures(catalog: &Catalog, alice: &Login) {
    catalog.set_admin_lock(alice, false).await.unwrap();
    let policy = LockPolicy { max_failures: 3, window_ms: 1_000, lock_ms: 5_000 };
    let count = |now| catalog.count_login_failure(alice, policy, now);
    assert_eq!(count(100).await.unwrap(), FailureCount::Counted(1));
    assert_eq!(count(200).await.unwrap(), FailureCount::Counted(2));
    assert_eq!(count(1_200).await.unwrap(), FailureCount::Counted(1), "the window opened at 100 has passed");
    assert_eq!(count(1_300).await.unwrap(), FailureCount::Counted(2));
    catalog.clear_login_failures(alice).await.unwrap();
    assert_eq!(count(1_400).await.unwrap(), FailureCount::Counted(1), "a successful login clears the count");
    assert_eq!(count(1_500).await.unwrap(), FailureCount::Counted(2));
    assert_eq!(count(1_600).await.unwrap(), FailureCount::Locked(6_600));
    assert_eq!(catalog.user(alice).await.unwrap().unwrap().locked_until, Some(6_600));
    assert_eq!(count(1_700).await.unwrap(), FailureCount::NotCounted, "failures during a lock are not counted");
    assert_eq!(count(6_600).await.unwrap(), FailureCount::Counted(1), "the lock ended: a new count starts");
    catalog.set_admin_lock(alice, true).await.unwrap();
    assert_eq!(count(6_700).await.unwrap(), FailureCount::NotCounted, "nor during an administrator's lock");
    catalog.set_admin_lock(alice, false).await.unwrap();
    assert_eq!(catalog.user(alice).await.unwrap().unwrap().locked_until, None);
    assert_eq!(count(1_800).await.unwrap(), FailureCount::Counted(1), "user unlock clears the count");
    catalog.clear_login_failures(alice).await.unwrap();

    let parallel = LockPolicy { max_failures: 10, window_ms: 60_000, lock_ms: 60_000 };
    let mut failures = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (catalog, alice) = (catalog.clone(), alice.clone());
        failures.spawn(async move { catalog.count_login_failure(&alice, parallel, 10_000).await.unwrap() });
    }
    let counts = failures.join_all().await;
    let locks = counts.iter().filter(|c| matches!(c, FailureCount::Locked(_))).count();
    let counted = counts.iter().filter(|c| matches!(c, FailureCount::Counted(_))).count();
    assert_eq!(
        (locks, counted),
        (1, 9),
        "40 parallel failures, threshold 10: the 10th locks, later ones are not counted"
    );
    let ghost = Login::parse("ghost").unwrap();
    assert_eq!(catalog.count_login_failure(&ghost, policy, 0).await.unwrap(), FailureCount::NotCounted);
    // As `tenants_users_and_keys` left it.
    catalog.set_admin_lock(alice, true).await.unwrap();
}

async fn quotas(catalog: &Catalog, acme: &TenantName) {
    let quota = |catalog: &Catalog| {
        let catalog = catalog.clone();
        let acme = acme.clone();
        async move { catalog.tenant(&acme).await.unwrap().unwrap().quota }
    };
    assert_eq!(quota(catalog).await, TenantQuota::default(), "no override at first");
    catalog.set_tenant_quota(acme, Some(10 << 30), None).await.unwrap();
    catalog.set_tenant_quota(acme, None, Some(10_000)).await.unwrap();
    let both = TenantQuota { bytes: Some(10 << 30), files: Some(10_000) };
    assert_eq!(quota(catalog).await, both, "each part is kept when the other is set");
    catalog.set_tenant_quota(acme, Some(u64::MAX), None).await.unwrap();
    assert_eq!(quota(catalog).await.bytes, Some(i64::MAX as u64), "beyond BIGINT is kept as its largest value");
    assert_eq!(catalog.tenant_quotas().await.unwrap()[0].0, "acme");
    catalog.clear_tenant_quota(acme).await.unwrap();
    assert_eq!(quota(catalog).await, TenantQuota::default());
    let ghost = TenantName::parse("ghost").unwrap();
    assert!(matches!(catalog.set_tenant_quota(&ghost, Some(1), None).await, Err(CatalogError::NotFound(_))));
    assert!(matches!(catalog.clear_tenant_quota(&ghost).await, Err(CatalogError::NotFound(_))));
}

async fn import_profiles_and_jobs(catalog: &Catalog, acme: &TenantName) {
    let before = catalog.revision().await.unwrap();
    catalog.set_import_profiles(acme, "[[import]]").await.unwrap();
    catalog.set_import_profiles(acme, "[[import]] # v2").await.unwrap();
    assert_eq!(catalog.revision().await.unwrap(), before + 2, "each profile change moves the revision");
    assert_eq!(catalog.import_profiles(acme).await.unwrap().as_deref(), Some("[[import]] # v2"));
    let mut job = ImportJob::received("job-1".into(), acme, "employees/a.csv".into());
    catalog.insert_import_job(&job).await.unwrap();
    assert!(matches!(catalog.insert_import_job(&job).await, Err(CatalogError::AlreadyExists(_))));
    let mut other = ImportJob::received("job-2".into(), acme, "b.csv".into());
    other.received_at += 1;
    catalog.insert_import_job(&other).await.unwrap();
    let mut later = ImportJob::received("job-3".into(), acme, "employees/a.csv".into());
    later.received_at += 2;
    catalog.insert_import_job(&later).await.unwrap();
    // One per tenant: the oldest.
    assert_eq!(catalog.next_import_jobs().await.unwrap(), vec![job.clone()]);
    assert!(catalog.newer_open_import_job(&job).await.unwrap(), "job-3 is a newer file of that name");
    assert!(!catalog.newer_open_import_job(&later).await.unwrap());
    job.status = JobStatus::Imported;
    job.profile = Some("employees".into());
    job.sha256 = Some("ab".repeat(32));
    job.rows_loaded = Some(3);
    catalog.update_import_job(&job).await.unwrap();
    assert_eq!(catalog.import_job("job-1").await.unwrap().as_ref(), Some(&job));
    assert_eq!(catalog.next_import_jobs().await.unwrap(), vec![other.clone()]);
    later.status = JobStatus::Rejected;
    catalog.update_import_job(&later).await.unwrap();
    assert!(!catalog.newer_open_import_job(&job).await.unwrap(), "a newer job with its verdict does not count");
    let same = catalog.imported_same_content("acme", "employees", &"ab".repeat(32)).await.unwrap();
    assert_eq!(same.as_deref(), Some("job-1"));
    assert_eq!(catalog.imported_same_content("acme", "other", &"ab".repeat(32)).await.unwrap(), None);
    let imported = JobFilter { tenant: Some("acme".into()), status: Some(JobStatus::Imported), limit: None };
    assert_eq!(catalog.import_jobs(&imported).await.unwrap().len(), 1);
    let newest = catalog.import_jobs(&JobFilter { limit: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(newest[0].id, "job-3");
    assert_eq!(catalog.import_jobs(&JobFilter::default()).await.unwrap().len(), 3);

    // Two nodes saw the same inbox file: the first claim wins, the second
    // records nothing.
    let claimed = ImportJob::received("job-4".into(), acme, "c.csv".into());
    catalog.insert_claimed_import_job(&claimed, "file-identity").await.unwrap();
    let twin = ImportJob::received("job-5".into(), acme, "c.csv".into());
    let refused = catalog.insert_claimed_import_job(&twin, "file-identity").await;
    assert!(matches!(refused, Err(CatalogError::AlreadyExists(_))), "{refused:?}");
    assert!(catalog.import_job("job-5").await.unwrap().is_none(), "the losing claim records no job");
    let open = catalog.open_import_job_ids(acme).await.unwrap();
    assert_eq!(open, ["job-2", "job-4"].into_iter().map(String::from).collect());
}

/// What live sessions rest on, and the revision that tells nodes to look again.
async fn live_session_access(catalog: &Catalog, acme: &TenantName, alice: &Login) {
    let access = catalog.access(alice).await.unwrap().expect("alice exists");
    assert_eq!(access.tenant, "acme");
    assert!(access.admin_locked && !access.tenant_removing);
    assert_eq!(access.password_hash.as_deref(), Some("$argon2id$fake"));
    assert!(access.key_fingerprints.is_empty());
    assert_eq!(access.tenant_allowed_ips, ["192.0.2.0/24"]);
    assert_eq!(access.user_allowed_ips, ["2001:db8::/32"]);
    let mut revision = catalog.revision().await.unwrap();
    let mut moved = async |what: &str| {
        let now = catalog.revision().await.unwrap();
        assert!(now > revision, "{what} moves the revision");
        revision = now;
    };
    catalog.set_admin_lock(alice, false).await.unwrap();
    moved("user unlock").await;
    catalog.set_password_hash(alice, "$argon2id$other").await.unwrap();
    moved("user passwd").await;
    catalog.add_key(alice, "SHA256:k", "ssh-ed25519 AAAA alice").await.unwrap();
    catalog.remove_key(alice, "SHA256:k").await.unwrap();
    moved("key remove").await;
    catalog.set_user_allowed_ips(alice, &[]).await.unwrap();
    moved("user allow-ip").await;
    catalog.set_tenant_allowed_ips(acme, &[]).await.unwrap();
    moved("tenant allow-ip").await;
    catalog.mark_tenant_removing(acme).await.unwrap();
    moved("tenant remove").await;
    assert!(catalog.access(alice).await.unwrap().unwrap().tenant_removing);
    let unchanged = catalog.revision().await.unwrap();
    let lock_at_once = LockPolicy { max_failures: 1, window_ms: 1_000, lock_ms: 43 };
    assert_eq!(catalog.count_login_failure(alice, lock_at_once, 0).await.unwrap(), FailureCount::Locked(43));
    assert_eq!(catalog.revision().await.unwrap(), unchanged, "a temporary lock ends no session");
}

/// Old audit events and finished jobs go, batch by batch; open jobs stay.
async fn retention(catalog: &Catalog) {
    let bob = AuditFilter { login: Some("bob".into()), limit: 1000, ..Default::default() };
    // The two events of `audit_trail` happened at 999,000 ms and after,
    // its burst at 1,000,000 + i ms.
    assert_eq!(catalog.prune_audit_events(1_000_250, 100).await.unwrap(), 100);
    assert_eq!(catalog.prune_audit_events(1_000_250, 1000).await.unwrap(), 152);
    assert_eq!(catalog.prune_audit_events(1_000_250, 1000).await.unwrap(), 0);
    let kept = catalog.audit_events(&bob).await.unwrap();
    assert_eq!((kept.len(), kept[0].at), (350, Some(1_000_250)));
    // The chain holds from its new checkpoint, and grows from there.
    let ChainVerdict::Intact(summary) = catalog.verify_audit_chain(None).await.unwrap() else { panic!("broken") };
    assert_eq!((summary.checkpoint, summary.checked), (252, 350));
    catalog.record(&AuditEvent { actor: "carol".into(), ..Default::default() }).await.unwrap();
    let ChainVerdict::Intact(after) = catalog.verify_audit_chain(Some(summary.head)).await.unwrap() else {
        panic!("broken")
    };
    assert_eq!((after.checked, after.head.row()), (1, 603));
    // job-1 is imported, job-3 rejected, job-2 only received: only the verdicts go.
    let tomorrow = passerelle_catalog::now_ms() + 24 * 3600 * 1000;
    assert_eq!(catalog.prune_import_jobs(tomorrow, 1000).await.unwrap(), 2);
    assert!(catalog.import_job("job-1").await.unwrap().is_none());
    assert!(catalog.import_job("job-2").await.unwrap().is_some(), "a job without its verdict is kept");
}

#[tokio::test]
async fn catalog_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    exercise(Catalog::open(&url).await.unwrap().with_audit_key(key())).await;
    // Reopening applies no migration twice.
    Catalog::open(&url).await.unwrap().close().await;
}

#[tokio::test]
async fn catalog_on_postgres() {
    exercise(fresh_postgres_catalog().await).await;
}

/// Someone with write access to the catalog, but not the key, edits,
/// deletes or inserts audit rows behind the writers' back: verification
/// names the row; undoing the change makes the chain whole again.
async fn tampering(url: &str) {
    let catalog = Catalog::open(url).await.unwrap();
    let event = |n: i64| AuditEvent {
        actor: format!("user{n}"),
        protocol: "sftp".into(),
        bytes: Some(n),
        ..Default::default()
    };
    assert!(matches!(catalog.record(&event(0)).await, Err(CatalogError::NoAuditKey)), "no key, no write");
    let catalog = catalog.with_audit_key(key());
    catalog.record_all(&(1..=5).map(event).collect::<Vec<_>>()).await.unwrap();
    let intact = || async { matches!(catalog.verify_audit_chain(None).await.unwrap(), ChainVerdict::Intact(_)) };
    let broken = || async {
        match catalog.verify_audit_chain(None).await.unwrap() {
            ChainVerdict::Broken(at) => at,
            ChainVerdict::Intact(summary) => panic!("tampering not seen: {summary:?}"),
        }
    };
    assert!(intact().await);
    let other = Catalog::open(url).await.unwrap().with_audit_key(AuditKey::new([8; 32]));
    assert!(matches!(other.verify_audit_chain(None).await.unwrap(), ChainVerdict::Broken(ChainBreak::Checkpoint)));

    let attacker = sqlx::AnyPool::connect(url).await.unwrap();
    let sql = |statement: &'static str| {
        let attacker = attacker.clone();
        async move { sqlx::query(statement).execute(&attacker).await.unwrap() }
    };
    sql("UPDATE audit_events SET bytes = 999 WHERE id = 3").await;
    assert_eq!(broken().await, ChainBreak::Changed { row: 3 });
    sql("UPDATE audit_events SET bytes = 3 WHERE id = 3").await;
    assert!(intact().await, "undone");

    sql("CREATE TABLE saved AS SELECT * FROM audit_events WHERE id = 4").await;
    sql("DELETE FROM audit_events WHERE id = 4").await;
    assert_eq!(broken().await, ChainBreak::Removed { first: 4, last: 4 });
    sql("INSERT INTO audit_events SELECT * FROM saved").await;
    assert!(intact().await, "undone");

    sql(
        "INSERT INTO audit_events (id, at, actor, protocol, action, outcome) VALUES (6, 0, 'x', 'sftp', 'login', 'ok')",
    )
    .await;
    assert_eq!(broken().await, ChainBreak::Inserted { row: 6 });
    sql("UPDATE audit_chain SET head_id = 6, head_mac = (SELECT mac FROM audit_events WHERE id = 5)").await;
    assert_eq!(broken().await, ChainBreak::Changed { row: 6 });
    assert!(
        matches!(catalog.prune_audit_events(i64::MAX, 100).await, Err(CatalogError::AuditChain(_))),
        "a broken chain is kept"
    );
    attacker.close().await;
    catalog.close().await;
}

#[tokio::test]
async fn tampering_is_seen_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    tampering(&format!("sqlite://{}", dir.path().join("catalog.db").display())).await;
}

#[tokio::test]
async fn tampering_is_seen_on_postgres() {
    tampering(&fresh_postgres_url().await).await;
}

/// Several processes append at once (two catalogs, two pools, like the
/// server and the admin CLI): every append finds the head the one before it
/// left, so the chain holds every row.
async fn concurrent_writers(url: &str) {
    let first = Catalog::open(url).await.unwrap().with_audit_key(key());
    let second = Catalog::open(url).await.unwrap().with_audit_key(key());
    let write = |catalog: Catalog, actor: &'static str| {
        tokio::spawn(async move {
            for n in 0..40 {
                let event =
                    AuditEvent { actor: actor.into(), protocol: "cli".into(), bytes: Some(n), ..Default::default() };
                catalog.record_all(&[event.clone(), event.clone(), event]).await.unwrap();
            }
        })
    };
    let (a, b) = (write(first.clone(), "first"), write(second.clone(), "second"));
    a.await.unwrap();
    b.await.unwrap();
    match first.verify_audit_chain(None).await.unwrap() {
        ChainVerdict::Intact(summary) => assert_eq!(summary.checked, 240),
        ChainVerdict::Broken(at) => panic!("concurrent appends broke the chain: {at}"),
    }
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writers(&format!("sqlite://{}", dir.path().join("catalog.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_postgres() {
    concurrent_writers(&fresh_postgres_url().await).await;
}

/// Two nodes (two catalogs, two pools) claim the import leases of the same
/// tenants at the same moment: each lease goes to exactly one of them; a
/// live lease is refused to the other, an expired one is taken over, a
/// released one is free again, and its holder may claim it again.
async fn import_leases(url: &str) {
    let a = Catalog::open(url).await.unwrap().with_audit_key(key());
    let b = Catalog::open(url).await.unwrap().with_audit_key(key());
    let now = passerelle_catalog::now_ms();
    let claims = |catalog: Catalog, node: &'static str| {
        tokio::spawn(async move {
            let mut won = Vec::new();
            for n in 0..30 {
                let tenant = TenantName::parse(&format!("t{n}")).unwrap();
                if catalog.claim_import_lease(&tenant, node, "job", now + 60_000, now).await.unwrap() {
                    won.push(n);
                }
            }
            won
        })
    };
    let (won_a, won_b) = (claims(a.clone(), "node-a"), claims(b.clone(), "node-b"));
    let (won_a, won_b) = (won_a.await.unwrap(), won_b.await.unwrap());
    let mut all: Vec<i32> = won_a.iter().chain(&won_b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..30).collect::<Vec<_>>(), "every lease to exactly one node: {won_a:?} / {won_b:?}");

    let tenant = TenantName::parse("solo").unwrap();
    assert!(a.claim_import_lease(&tenant, "node-a", "j1", now + 1_000, now).await.unwrap());
    assert!(!b.claim_import_lease(&tenant, "node-b", "j1", now + 1_000, now).await.unwrap(), "alive: refused");
    assert!(a.claim_import_lease(&tenant, "node-a", "j2", now + 1_000, now).await.unwrap(), "its holder again");
    assert_eq!(a.renew_import_leases("node-a", now + 2_000).await.unwrap(), 1 + won_a.len() as u64);
    assert!(
        b.claim_import_lease(&tenant, "node-b", "j2", now + 9_000, now + 2_001).await.unwrap(),
        "expired (node-a died): taken over"
    );
    assert!(!a.claim_import_lease(&tenant, "node-a", "j3", now + 9_000, now + 2_002).await.unwrap());
    b.release_import_lease(&tenant, "node-b").await.unwrap();
    assert!(a.claim_import_lease(&tenant, "node-a", "j3", now + 9_000, now + 2_003).await.unwrap(), "released: free");
    assert_eq!(a.release_import_leases("node-a").await.unwrap(), 1 + won_a.len() as u64);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_leases_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_leases(&format!("sqlite://{}", dir.path().join("catalog.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_leases_on_postgres() {
    import_leases(&fresh_postgres_url().await).await;
}

/// Heartbeats, sessions counted across nodes, and periodic duties held by
/// one node at a time.
async fn nodes_and_duties(catalog: &Catalog, acme: &TenantName) {
    let beat = |id, at, state, sessions| Heartbeat {
        id,
        version: "1.0.0",
        started_at: 1_000,
        at,
        state,
        sessions,
        addresses: "sftp 127.0.0.1:2222",
    };
    catalog.node_heartbeat(&beat("a", 10_000, NodeState::Running, 3)).await.unwrap();
    catalog.node_heartbeat(&beat("b", 10_000, NodeState::Running, 1)).await.unwrap();
    catalog.replace_node_sessions("a", &[("alice".into(), 2), ("bob".into(), 1)]).await.unwrap();
    catalog.replace_node_sessions("b", &[("alice".into(), 1)]).await.unwrap();
    assert!(catalog.claim_import_lease(acme, "b", "job-1", 20_000, 10_000).await.unwrap());
    let nodes = catalog.nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| (n.id.as_str(), n.sessions, n.running_jobs)).collect::<Vec<_>>(),
        [("a", 3, 0), ("b", 1, 1)]
    );
    let mut elsewhere = catalog.sessions_elsewhere("b", 9_000).await.unwrap();
    elsewhere.sort();
    assert_eq!(elsewhere, [("alice".to_owned(), 2), ("bob".to_owned(), 1)]);
    assert_eq!(catalog.sessions_elsewhere("c", 9_000).await.unwrap().len(), 2, "a and b summed per login");
    assert!(catalog.sessions_elsewhere("b", 10_001).await.unwrap().is_empty(), "a silent node counts for nothing");
    catalog.node_heartbeat(&beat("a", 10_000, NodeState::Stopped, 0)).await.unwrap();
    assert!(catalog.sessions_elsewhere("b", 9_000).await.unwrap().is_empty(), "a stopped node counts for nothing");
    catalog.replace_node_sessions("a", &[]).await.unwrap();
    catalog.release_import_leases("b").await.unwrap();

    // A duty is held by one node until it expires or is given back.
    assert!(catalog.claim_duty("retention", "a", 20_000, 10_000).await.unwrap());
    assert!(!catalog.claim_duty("retention", "b", 25_000, 15_000).await.unwrap(), "a holds it");
    assert!(catalog.claim_duty("retention", "a", 30_000, 15_000).await.unwrap(), "its holder claims it again");
    catalog.renew_duties("a", 40_000).await.unwrap();
    assert!(!catalog.claim_duty("retention", "b", 45_000, 35_000).await.unwrap(), "renewed");
    assert!(catalog.claim_duty("retention", "b", 55_000, 45_000).await.unwrap(), "expired: taken over");
    catalog.release_duties("b").await.unwrap();
    assert!(catalog.claim_duty("retention", "a", 60_000, 46_000).await.unwrap(), "given back");
}
