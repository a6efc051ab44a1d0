//! Per-tenant quotas as an operator and a client meet them: `tenant quota`
//! on a running server's catalog, uploads over the quota refused while they
//! are sent (paramiko and OpenSSH `sftp`, curl over FTPS) with one sentence
//! and nothing left behind, `df` in `sftp` showing the quota, `tenant show`
//! measuring what the tenant stores, and `--clear` returning to `[quotas]`.

use std::path::Path;
use std::time::Duration;

use passerelle_tests::{Fixture, Passerelle, Setup, SftpUser, entry_names, random_file, wait_for, wait_for_audit};
use serde_json::{Value, json};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// A running server re-reads quotas every 2 s; this leaves room for a busy machine.
const REREAD: Duration = Duration::from_secs(10);

/// `sftp df /inbox`: size and available space, in KiB, and with `-i` the
/// inode counts (size, available).
fn df(alice: &SftpUser, inodes: bool) -> (u64, u64) {
    let out = alice.sftp_batch(if inodes { "df -i /inbox\n" } else { "df /inbox\n" });
    assert!(out.success(), "df: {}", out.stderr);
    let line = out.stdout.lines().last().unwrap_or_default().to_owned();
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(numbers.len() >= 3, "df output: {}", out.stdout);
    (numbers[0], numbers[2])
}

/// Waits until `df` reports a size of `kib` KiB (the server re-read the quota).
fn wait_for_df_size(alice: &SftpUser, kib: u64) {
    wait_for(REREAD, || (df(alice, false).0 == kib).then_some(()))
        .unwrap_or_else(|| panic!("df never showed {kib} KiB; it shows {:?}", df(alice, false)));
}

/// What `/inbox` holds on disk, temporaries included, sorted.
fn inbox(f: &Fixture) -> Vec<String> {
    entry_names(&f.inbox("acme"))
}

fn tenant_show(p: &Passerelle) -> Value {
    let out = p.run(&["tenant", "show", "acme", "--json"]);
    assert!(out.success(), "tenant show: {}", out.stderr);
    out.json()
}

fn put(alice: &SftpUser, local: &Path, remote: &str) -> Value {
    let report = alice.paramiko(json!([{"op": "put", "local": local.display().to_string(), "remote": remote}]));
    report["results"][0].clone()
}

#[test]
fn uploads_over_the_quota_are_refused_over_sftp_and_ftps_and_leave_nothing() {
    let f = Setup::new().user("acme", "alice", PASSWORD).ftps().serve();
    let alice = f.sftp("alice");
    let work = f.work("quota");
    let (small, big, under) = (work.join("small"), work.join("big"), work.join("under"));
    random_file(&small, 1000);
    random_file(&big, 200 * 1024);
    random_file(&under, 10 * 1024);

    // The server measures the tenant before it has a quota: the quota set
    // afterwards reaches it through the periodic re-read.
    assert_eq!(put(&alice, &small, "/inbox/small.part")["ok"], true);
    let disk = df(&alice, false).0;
    let set = f.p.ok(&["tenant", "quota", "acme", "--bytes", "64KiB"]);
    assert_eq!(set.trim(), "tenant acme: quota bytes 64 KiB (tenant override), files unlimited");
    wait_for_df_size(&alice, 64);
    let (_, available) = df(&alice, false);
    assert!((60..64).contains(&available), "df shows what is left of the quota: {available} KiB");

    // paramiko: the refusal names the tenant, its usage and the limit. (Its
    // `put` pipelines writes and ignores their errors and a failed close:
    // it finds no file afterwards.)
    let data = "x".repeat(200 * 1024);
    let report = alice.paramiko(json!([{"op": "write", "remote": "/inbox/big.csv", "data": data}]));
    let refused = &report["results"][0];
    assert_eq!(refused["ok"], false, "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("quota exceeded: tenant acme uses") && error.ends_with("of 64 KiB"), "{refused}");
    // OpenSSH sftp gives up too.
    let out = alice.sftp_batch(&format!("put {} /inbox/big2.csv\n", big.display()));
    assert!(!out.success(), "OpenSSH sftp put over the quota: {}", out.stdout);

    // Over FTPS: 552 with the same sentence; curl reads it as "exceeded
    // storage allocation".
    let ftps = f.ftps("alice");
    let out = ftps.curl(&["-T", &big.display().to_string(), "{explicit}/inbox/big3.csv"]);
    assert_eq!(out.code, 70, "curl over the quota: {}", out.stderr);
    let report = ftps.script(json!({"ops": [{"op": "put", "remote": "/inbox/big4.csv", "data": data}]}));
    let refused = &report["results"][0];
    assert_eq!(refused["code"], 552, "{report}");
    let reply = refused["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("552 quota exceeded: tenant acme uses ") && reply.ends_with(" of 64 KiB"), "{report}");

    // Nothing of them is left, nothing was imported, and the refusals are audited.
    wait_for(REREAD, || (inbox(&f) == ["small.part"]).then_some(()))
        .unwrap_or_else(|| panic!("inbox after refusals: {:?}", inbox(&f)));
    let refused = [
        ("sftp", "/inbox/big.csv"),
        ("sftp", "/inbox/big2.csv"),
        ("ftps", "/inbox/big3.csv"),
        ("ftps", "/inbox/big4.csv"),
    ];
    for (protocol, path) in refused {
        let row = wait_for_audit(&f.p, path, |r| r.action == "upload" && r.path == path && r.protocol == protocol);
        assert_eq!(row.outcome, "failed", "{row:?}");
        assert!(row.detail.starts_with("quota exceeded: tenant acme uses "), "{row:?}");
    }
    assert!(entry_names(&f.outbox("acme")).is_empty(), "no receipt: nothing was imported");
    let jobs = f.p.ok(&["import", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&jobs).unwrap(), json!([]), "no import job");

    // Under the quota, uploads still work; tenant show measures both.
    assert_eq!(put(&alice, &under, "/inbox/under.part")["ok"], true);
    let shown = tenant_show(&f.p);
    assert_eq!(shown["usage"], json!({"bytes": 1000 + 10 * 1024, "files": 2}), "{shown}");
    assert_eq!(shown["limits"]["bytes"], json!({"limit": 64 * 1024, "from": "tenant"}), "{shown}");
    assert_eq!(shown["limits"]["files"], json!({"limit": null, "from": "default"}), "{shown}");

    // --clear: the defaults (none here) apply again, the upload goes through.
    f.p.ok(&["tenant", "quota", "acme", "--clear"]);
    wait_for_df_size(&alice, disk);
    assert_eq!(put(&alice, &big, "/inbox/big.part")["ok"], true);
    wait_for_audit(&f.p, "tenant_quota", |r| r.action == "tenant_quota" && r.detail == "cleared");
}

#[test]
fn a_new_file_at_the_file_limit_is_refused_at_open_but_may_replace_one() {
    // The default of [quotas] applies until the tenant has its own.
    let f = Setup::new().envs(&[("PASSERELLE_QUOTAS_FILES", "2")]).user("acme", "alice", PASSWORD).ftps().serve();
    let alice = f.sftp("alice");
    let work = f.work("files");
    let file = work.join("file");
    random_file(&file, 100);
    for name in ["a.part", "b.part"] {
        assert_eq!(put(&alice, &file, &format!("/inbox/{name}"))["ok"], true);
    }
    assert_eq!(df(&alice, true), (2, 0), "df -i shows the file quota");

    let refused = put(&alice, &file, "/inbox/c.part");
    assert_eq!(refused["error"], "quota exceeded: tenant acme has 2 of 2 files", "{refused}");
    let out = f.ftps("alice").curl(&["-T", &file.display().to_string(), "{explicit}/inbox/d.part"]);
    assert!(!out.success() && out.stderr.contains("552"), "curl at the file limit: {}", out.stderr);
    assert_eq!(put(&alice, &file, "/inbox/a.part")["ok"], true, "replacing a file adds none");
    assert_eq!(inbox(&f), ["a.part", "b.part"]);
    wait_for_audit(&f.p, "refused open", |r| {
        r.action == "upload" && r.path == "/inbox/c.part" && r.detail == "quota exceeded: tenant acme has 2 of 2 files"
    });

    // A tenant override replaces the default; a removal frees a file at once.
    f.p.ok(&["tenant", "quota", "acme", "--files", "3"]);
    wait_for(REREAD, || (df(&alice, true).0 == 3).then_some(())).expect("df -i shows the new limit");
    assert_eq!(put(&alice, &file, "/inbox/c.part")["ok"], true);
    let removed = alice.paramiko(json!([{"op": "remove", "path": "/inbox/a.part"}, {
        "op": "put", "local": file.display().to_string(), "remote": "/inbox/d.part"
    }]));
    assert_eq!(removed["results"][1]["ok"], true, "{removed}");
}

#[test]
fn tenant_quota_sets_shows_clears_and_refuses_bad_input() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_QUOTAS_BYTES", "10 GiB");
    p.tenant_with_user("acme", "alice", PASSWORD);
    let inbox = p.layout().inbox("acme");
    std::fs::write(inbox.join("x.csv"), [0; 1536]).unwrap();
    std::fs::write(inbox.join(".passerelle-upload-0123"), [0; 512]).unwrap();

    let show = p.ok(&["tenant", "show", "acme"]);
    assert!(show.contains("bytes:       2 KiB of 10 GiB (default [quotas])\n"), "{show}");
    assert!(show.contains("files:       2, unlimited\n"), "{show}");

    let set = p.ok(&["tenant", "quota", "acme", "--files", "10000"]);
    assert_eq!(set, "tenant acme: quota bytes 10 GiB (default [quotas]), files 10000 (tenant override)\n");
    p.ok(&["tenant", "quota", "acme", "--bytes", "500 MiB"]);
    let show = p.ok(&["tenant", "show", "acme"]);
    assert!(show.contains("bytes:       2 KiB of 500 MiB (tenant override)\n"), "{show}");
    assert!(show.contains("files:       2 of 10000 (tenant override)\n"), "{show}");
    let shown = tenant_show(&p);
    assert_eq!(shown["usage"], json!({"bytes": 2048, "files": 2}));
    assert_eq!(shown["quota"], json!({"bytes": 500 << 20, "files": 10000}), "the override as stored");
    assert_eq!(shown["limits"]["bytes"], json!({"limit": 500 << 20, "from": "tenant"}));

    p.ok(&["tenant", "quota", "acme", "--clear"]);
    assert_eq!(tenant_show(&p)["limits"]["bytes"], json!({"limit": 10u64 << 30, "from": "default"}));
    let details: Vec<String> = passerelle_tests::audit_rows(&p)
        .into_iter()
        .filter(|r| r.action == "tenant_quota")
        .map(|r| format!("{} {}", r.protocol, r.detail))
        .collect();
    assert_eq!(details, ["cli files 10000", "cli bytes 500 MiB", "cli cleared"]);

    for (args, message) in [
        (&["tenant", "quota", "acme", "--bytes", "lots"][..], "--bytes: expected a size"),
        (&["tenant", "quota", "acme", "--bytes", "0"], "--bytes: must be at least 1 byte"),
        (&["tenant", "quota", "acme", "--files", "0"], "--files: must be at least 1"),
        (&["tenant", "quota", "ghost", "--files", "1"], "tenant ghost not found"),
        (&["tenant", "quota", "acme"], "required"),
        (&["tenant", "quota", "acme", "--clear", "--files", "1"], "cannot be used with"),
    ] {
        let out = p.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
    }
    assert_eq!(tenant_show(&p)["quota"], json!({"bytes": null, "files": null}), "refusals changed nothing");
}
