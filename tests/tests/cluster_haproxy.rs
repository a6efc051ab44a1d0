//! Two nodes behind HAProxy (the packaged configuration), one PostgreSQL
//! catalog, one data directory: uploads over SFTP and FTPS (explicit and
//! implicit) from four client addresses land, are imported, and are audited
//! with the client's address; a ban made through HAProxy is of the client's
//! address; and 200 uploads with one node killed (SIGKILL) midway are each
//! imported exactly once. PostgreSQL must be reachable (`TEST_PG_ADMIN_URL`),
//! HAProxy installed (`scripts/test` installs it).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use passerelle_tests::{
    Cluster, HAPROXY_ADDRESS, Passerelle, SftpUser, packaged_haproxy_config, pg_admin_url, psql, wait_for,
    with_database,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// The client addresses, one per tenant.
const SOURCES: [&str; 4] = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];

/// An append profile: a row loaded twice shows as two rows.
const PROFILE: &str = r#"
[[import]]
name = "entries"
match = "*.csv"
table = "entries"
delimiter = ";"
mode = "append"
  [[import.columns]]
  name = "entry"
  type = "integer"
  required = true
  [[import.columns]]
  name = "email"
  type = "email"
"#;

/// Rows of every uploaded file.
const ROWS: u64 = 50;

/// How long all receipts of a run may take to appear.
const RECEIPTS_WITHIN: Duration = Duration::from_secs(180);

/// Tenant `t<i>` with user `u<i>` for each source, with [`PROFILE`], on PostgreSQL.
fn installation() -> Passerelle {
    let p = Passerelle::with_postgres();
    for i in 1..=SOURCES.len() {
        p.tenant_with_user(&format!("t{i}"), &format!("u{i}"), PASSWORD);
        p.set_profile(&format!("t{i}"), PROFILE);
    }
    p
}

/// Writes file number `n` for [`PROFILE`]: [`ROWS`] rows whose entries no other file has.
fn csv(dir: &Path, n: u64) -> String {
    let path = dir.join(format!("f{n}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("csv"));
    out.write_all(b"entry;email\n").expect("write");
    for row in 0..ROWS {
        let entry = n * 1_000 + row;
        writeln!(out, "{entry};user{entry}@example.com").expect("write");
    }
    out.flush().expect("flush");
    path.display().to_string()
}

/// A client of the load plan: user `u<user>` from its source over `protocol`, uploading `files`.
fn client(dir: &Path, user: usize, protocol: &str, files: impl Iterator<Item = u64>) -> Value {
    let files: Vec<Value> =
        files.map(|n| json!({"local": csv(dir, n), "remote": format!("/inbox/f{n}.csv")})).collect();
    json!({"protocol": protocol, "source": SOURCES[user - 1], "user": format!("u{user}"), "password": PASSWORD,
           "files": files})
}

/// The receipts found in the tenants' outboxes, by tenant and file name.
fn receipts(cluster: &Cluster) -> BTreeMap<(String, String), Value> {
    let mut found = BTreeMap::new();
    for i in 1..=SOURCES.len() {
        let tenant = format!("t{i}");
        let Ok(entries) = std::fs::read_dir(cluster.p.layout().outbox(&tenant)) else { continue };
        for entry in entries.map_while(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(file) = name.strip_suffix(".result.json") else { continue };
            let Ok(receipt) = serde_json::from_slice::<Value>(&std::fs::read(entry.path()).unwrap_or_default()) else {
                continue;
            };
            if receipt["status"] != "received" {
                found.insert((tenant.clone(), file.to_owned()), receipt);
            }
        }
    }
    found
}

/// Waits until every acknowledged upload of `report` has its verdict; returns the receipts.
fn wait_for_receipts(cluster: &Cluster, report: &Value) -> BTreeMap<(String, String), Value> {
    let wanted: Vec<(String, String)> = acknowledged(report)
        .map(|u| (u["user"].as_str().unwrap().replace('u', "t"), u["remote"].as_str().unwrap()[7..].to_owned()))
        .collect();
    wait_for(RECEIPTS_WITHIN, || {
        let found = receipts(cluster);
        wanted.iter().all(|key| found.contains_key(key)).then_some(found)
    })
    .unwrap_or_else(|| {
        let found = receipts(cluster);
        let missing: Vec<_> = wanted.iter().filter(|key| !found.contains_key(*key)).collect();
        panic!("no receipt for {missing:?}; jobs: {}", cluster.p.ok(&["import", "list"]))
    })
}

fn acknowledged(report: &Value) -> impl Iterator<Item = &Value> {
    report["uploads"].as_array().expect("uploads").iter().filter(|u| u["ok"] == true)
}

/// `SELECT` on tenant `tenant`'s PostgreSQL database, as one line of `|`-separated numbers.
fn tenant_numbers(cluster: &Cluster, tenant: &str, sql: &str) -> Vec<u64> {
    let database = format!("{}{tenant}", cluster.p.pg_prefix().expect("PostgreSQL"));
    let out = psql(&with_database(&pg_admin_url(), &database), sql);
    out.trim().split('|').map(|n| n.parse().unwrap_or_else(|_| panic!("{sql}: {out}"))).collect()
}

/// `(rows, distinct entries, distinct import ids, ledger rows)` of tenant `tenant`.
fn loaded(cluster: &Cluster, tenant: &str) -> [u64; 4] {
    let rows = tenant_numbers(
        cluster,
        tenant,
        "SELECT count(*), count(DISTINCT entry), count(DISTINCT _import_id), \
         (SELECT count(*) FROM _passerelle_imports) FROM entries",
    );
    [rows[0], rows[1], rows[2], rows[3]]
}

#[test]
fn the_packaged_configuration_is_valid_haproxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("haproxy.cfg");
    // Checked as packaged, but for what needs the service's root (chroot,
    // user switch, daemon): that is what operators install.
    let unprivileged: String = packaged_haproxy_config()
        .lines()
        .filter(|l| !["chroot ", "user ", "group ", "daemon"].iter().any(|k| l.trim_start().starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, unprivileged).expect("write");
    let haproxy = if passerelle_tests::on_path("haproxy") { "haproxy" } else { "/usr/sbin/haproxy" };
    let out = std::process::Command::new(haproxy).arg("-c").arg("-f").arg(&file).output().expect("haproxy");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn uploads_through_haproxy_are_imported_and_audited_with_the_clients_address() {
    let cluster = Cluster::start(installation(), &[]);
    let dir = cluster.p.scratch().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    // Each source: two files over SFTP, one over explicit FTPS, one over implicit FTPS.
    let mut clients = Vec::new();
    for user in 1..=SOURCES.len() {
        let n = user as u64 * 10;
        clients.push(client(&dir, user, "sftp", n..n + 2));
        clients.push(client(&dir, user, "ftps", n + 2..n + 3));
        clients.push(client(&dir, user, "ftps-implicit", n + 3..n + 4));
    }
    let report = cluster.load(json!({"clients": clients, "attempts": 1})).finish();
    assert_eq!(acknowledged(&report).count(), 16, "every upload acknowledged: {report}");

    for ((tenant, file), receipt) in wait_for_receipts(&cluster, &report) {
        assert_eq!(receipt["status"], "imported", "{tenant} {file}: {receipt}");
    }
    for i in 1..=SOURCES.len() {
        assert_eq!(loaded(&cluster, &format!("t{i}")), [4 * ROWS, 4 * ROWS, 4, 4], "t{i}");
    }

    // The audit trail has each client's own address, never HAProxy's.
    let catalog = cluster.p.pg_catalog_url().expect("PostgreSQL");
    let uploads = psql(
        &catalog,
        "SELECT login, ip, protocol FROM audit_events WHERE action = 'upload' AND outcome = 'ok' ORDER BY login, id",
    );
    let rows: Vec<Vec<&str>> = uploads.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 16, "{uploads}");
    for row in &rows {
        let user: usize = row[0][1..].parse().unwrap();
        assert_eq!(row[1], SOURCES[user - 1], "{uploads}");
    }
    assert!(rows.iter().any(|r| r[2] == "sftp") && rows.iter().any(|r| r[2] == "ftps"), "{uploads}");
    let logins = psql(&catalog, "SELECT DISTINCT ip FROM audit_events WHERE action = 'login' ORDER BY ip");
    assert_eq!(logins.lines().collect::<Vec<_>>(), SOURCES, "logins audited with the clients' addresses");

    // Both nodes took connections.
    let log = cluster.haproxy_log();
    assert!(log.contains("/node1 ") && log.contains("/node2 "), "HAProxy log:\n{log}");
}

#[test]
fn a_ban_made_through_haproxy_is_of_the_clients_address() {
    let cluster = Cluster::start(installation(), &[]);
    let scratch = cluster.p.scratch();
    let via_haproxy = |login: &str, password: &str, source: &str| {
        SftpUser::with_password(cluster.front.sftp, login, password, &scratch)
            .from_address(source)
            .paramiko_plan(json!({"ops": []}))
    };
    let bans = || -> Vec<String> {
        let listed = cluster.p.run(&["ban", "list", "--json"]).json();
        listed.as_array().into_iter().flatten().filter_map(|b| b["ip"].as_str().map(str::to_owned)).collect()
    };
    // An unknown login scores 2 a try (threshold 15) on whichever node
    // HAProxy picks; the nodes' scores are their own, hence up to 16 tries.
    let banned = (0..16).find_map(|_| {
        let report = via_haproxy("mallory", "wrong", SOURCES[1]);
        assert_ne!(report["auth"], "ok", "{report}");
        bans().contains(&SOURCES[1].to_owned()).then_some(())
    });
    assert!(banned.is_some(), "no ban of {}: {:?}", SOURCES[1], bans());
    assert_eq!(bans(), [SOURCES[1]], "the client's address is banned, not HAProxy's ({HAPROXY_ADDRESS})");

    // Both nodes refuse the banned client (bans are read from the catalog
    // every second), even with the right password; other clients go on.
    for _ in 0..4 {
        let refused = wait_for(Duration::from_secs(3), || {
            (via_haproxy("u2", PASSWORD, SOURCES[1])["auth"] != "ok").then_some(())
        });
        assert!(refused.is_some(), "the banned client logged in through HAProxy");
        assert_eq!(via_haproxy("u3", PASSWORD, SOURCES[2])["auth"], "ok");
    }
}

/// 200 uploads, SFTP and FTPS, from four addresses; node 1 is killed with
/// SIGKILL once some imports are done. Needs import leases (a node's jobs
/// resumed elsewhere after `cluster.lease_timeout`) and distinct `node.id`s.
#[test]
fn two_hundred_uploads_with_a_node_killed_midway_are_each_imported_once() {
    const FILES_PER_CLIENT: u64 = 25;
    let mut cluster = Cluster::start(installation(), &[("PASSERELLE_CLUSTER_LEASE_TIMEOUT", "3s")]);
    let dir = cluster.p.scratch().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    // Per source, one SFTP client and one FTPS client (explicit for odd
    // users, implicit for even ones).
    let mut clients = Vec::new();
    for user in 1..=SOURCES.len() {
        let first = user as u64 * 100;
        let ftps = if user % 2 == 1 { "ftps" } else { "ftps-implicit" };
        clients.push(client(&dir, user, "sftp", first..first + FILES_PER_CLIENT));
        clients.push(client(&dir, user, ftps, first + 50..first + 50 + FILES_PER_CLIENT));
    }
    let load = cluster.load(json!({"clients": clients, "attempts": 8, "pause": 1.0, "pace": 0.8}));

    // Killed once imports are under way (some receipts written), while the
    // clients still upload (each waits 0.8 s after each file: 20 s in all).
    let midway = wait_for(Duration::from_secs(120), || (receipts(&cluster).len() >= 10).then_some(()));
    assert!(midway.is_some(), "no imports under way; jobs: {}", cluster.p.ok(&["import", "list"]));
    cluster.kill(0);
    let report = load.finish();
    // The killed node's sessions were cut; their clients went on through
    // HAProxy, which sent them to the other node.
    assert!(acknowledged(&report).any(|u| u["attempts"] != 1), "no session was cut by the kill: {report}");
    assert_eq!(acknowledged(&report).count(), 200, "every upload acknowledged in the end: {report}");

    let found = wait_for_receipts(&cluster, &report);
    let sent_again: Vec<&str> =
        acknowledged(&report).filter(|u| u["attempts"] != 1).map(|u| &u["remote"].as_str().unwrap()[7..]).collect();
    let mut files_of = BTreeMap::<String, u64>::new();
    for ((tenant, file), receipt) in &found {
        // An upload cut after the dead node took it, but before it was
        // acknowledged, was sent again: that second copy is a duplicate of
        // the first (never of itself: a job run twice).
        let duplicate = receipt["status"] == "duplicate"
            && sent_again.contains(&file.as_str())
            && receipt["duplicate_of"] != receipt["import_id"];
        assert!(receipt["status"] == "imported" || duplicate, "{tenant} {file}: {receipt}");
        *files_of.entry(tenant.clone()).or_default() += 1;
    }
    for (tenant, files) in &files_of {
        assert_eq!(*files, 50, "{tenant}: a receipt for each file");
        assert_eq!(loaded(&cluster, tenant), [50 * ROWS, 50 * ROWS, 50, 50], "{tenant}: every file exactly once");
    }

    // No job is left under way once the dead node's leases expired.
    let settled = wait_for(Duration::from_secs(40), || {
        let jobs = cluster.p.run(&["import", "list", "--json"]).json();
        jobs.as_array()
            .expect("jobs")
            .iter()
            .all(|job| ["imported", "duplicate", "rejected"].contains(&job["status"].as_str().unwrap_or("")))
            .then_some(())
    });
    assert!(settled.is_some(), "jobs left under way: {}", cluster.p.ok(&["import", "list"]));
}
