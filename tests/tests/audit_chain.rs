//! The audit trail is tamper-evident: someone with write access to the
//! catalog (`sqlite3` on its file, `psql` on its database) but not the key
//! who changes, removes or inserts an audit row makes `passerelle audit
//! verify` fail (exit 1), naming that row; an untouched trail verifies
//! (exit 0), on SQLite and on PostgreSQL. The server checks the chain at
//! start (and hourly) and reports a break in its log, its metrics and the
//! trail itself.

use std::time::Duration;

use passerelle_tests::{Passerelle, Setup, bounded, psql, run_command, sqlite3, wait_for_audit};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// SQL run on the catalog as an attacker would: straight at the database.
fn attack(p: &Passerelle, sql: &str) -> String {
    match p.pg_catalog_url() {
        Some(url) => psql(&url, sql),
        None => sqlite3(&p.layout().catalog_db(), sql),
    }
}

/// `audit verify --json` must fail naming `row` and `problem`.
fn broken_at(p: &Passerelle, row: i64, problem: &str) {
    let out = p.run(&["audit", "verify"]);
    assert_eq!(out.code, 1, "tampering not seen: {out:?}");
    assert!(out.stderr.contains(&format!("row {row} was {problem}")), "{}", out.stderr);
    let json = p.run(&["audit", "verify", "--json"]);
    assert_eq!(json.code, 1);
    let report = json.json();
    assert_eq!((report["intact"].as_bool(), report["row"].as_i64()), (Some(false), Some(row)), "{report}");
    assert_eq!(report["problem"], problem, "{report}");
}

fn intact(p: &Passerelle) {
    let out = p.run(&["audit", "verify"]);
    assert_eq!(out.code, 0, "an untouched trail verifies: {out:?}");
    assert!(out.stdout.contains("audit trail intact"), "{}", out.stdout);
}

/// Edits, deletes and inserts rows, each time checking `audit verify`
/// names the row, and undoing it.
fn tampering_is_named(p: &Passerelle) {
    p.tenant_with_user("acme", "alice", PASSWORD);
    p.ok(&["tenant", "add", "beta"]);
    p.ok(&["user", "lock", "alice"]);
    intact(p);
    let ids: Vec<i64> =
        attack(p, "SELECT id FROM audit_events ORDER BY id").lines().map(|l| l.parse().unwrap()).collect();
    assert!(ids.len() >= 4, "{ids:?}");
    let middle = ids[ids.len() / 2];
    attack(p, &format!("CREATE TABLE saved AS SELECT * FROM audit_events WHERE id = {middle}"));
    let restore = format!("DELETE FROM audit_events WHERE id = {middle}; INSERT INTO audit_events SELECT * FROM saved");

    attack(p, &format!("UPDATE audit_events SET actor = 'admin:someone-else' WHERE id = {middle}"));
    broken_at(p, middle, "changed");
    attack(p, &restore);
    intact(p);

    attack(p, &format!("DELETE FROM audit_events WHERE id = {middle}"));
    broken_at(p, middle, "removed");
    attack(p, &restore);
    intact(p);

    let last = *ids.last().unwrap();
    attack(
        p,
        &format!(
            "INSERT INTO audit_events (id, at, actor, protocol, action, outcome) \
             VALUES ({}, 0, 'admin:ghost', 'cli', 'tenant_remove', 'ok')",
            last + 1
        ),
    );
    broken_at(p, last + 1, "inserted");
    // The trail stays writable, and the inserted row stays named.
    p.ok(&["tenant", "add", "gamma"]);
    broken_at(p, last + 1, "changed");
    attack(p, &format!("DELETE FROM audit_events WHERE id = {}", last + 1));
    intact(p);
}

#[test]
fn tampering_is_named_on_sqlite() {
    tampering_is_named(&Passerelle::new());
}

#[test]
fn tampering_is_named_on_postgres() {
    tampering_is_named(&Passerelle::with_postgres());
}

/// The server checks the chain when it starts: a break is an error in its
/// log, a row of the trail and a metric.
#[test]
fn the_server_reports_a_broken_chain() {
    let setup = Setup::new().user("acme", "alice", PASSWORD);
    let catalog = setup.p.layout().catalog_db();
    let first = sqlite3(&catalog, "SELECT MIN(id) FROM audit_events").trim().to_owned();
    sqlite3(&catalog, &format!("UPDATE audit_events SET outcome = 'denied' WHERE id = {first}"));
    let mut f = setup.serve();
    let line = f.server.wait_for_line("audit chain broken", Duration::from_secs(20));
    assert!(line.contains(&format!("row {first} was changed")), "{line}");
    let row = wait_for_audit(&f.p, "the failed check", |r| r.action == "audit_verify" && r.outcome == "failed");
    assert!(row.detail.contains(&format!("row {first}")), "{row:?}");
    let mut curl = bounded("curl", 20);
    curl.arg("-s").arg(format!("http://127.0.0.1:{}/metrics", f.p.admin_port()));
    let metrics = run_command(&mut curl, b"").stdout;
    assert!(metrics.lines().any(|l| l == "passerelle_audit_chain_failures_total 1"), "{metrics}");
}

/// The chain's key derives from the master key: `keys rotate-master`
/// re-MACs the chain with it, and refuses to when the chain is broken
/// (that would hide the break).
#[test]
fn rotating_the_master_key_keeps_the_chain_verifiable() {
    let p = Passerelle::new();
    p.tenant_with_user("acme", "alice", PASSWORD);
    p.ok(&["keys", "rotate-master"]);
    intact(&p);
    p.ok(&["tenant", "add", "beta"]);
    intact(&p);

    let first = attack(&p, "SELECT MIN(id) FROM audit_events").trim().parse::<i64>().unwrap();
    attack(&p, &format!("UPDATE audit_events SET detail = 'forged' WHERE id = {first}"));
    let old_file = format!("{}.master.key.old", p.data_dir().display());
    std::fs::remove_file(&old_file).unwrap_or_else(|e| panic!("{old_file}: {e}"));
    let out = p.run(&["keys", "rotate-master"]);
    assert_ne!(out.code, 0, "a broken chain is not re-MAC'ed: {out:?}");
    assert!(out.stderr.contains(&format!("row {first} was changed")), "{}", out.stderr);
    broken_at(&p, first, "changed");
}
