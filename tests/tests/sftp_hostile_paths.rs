//! Hostile paths over SFTP: `..`, absolute host paths, NUL bytes, 4 KiB names,
//! Unicode look-alikes, another tenant's paths and symlinks planted in the
//! tenant tree that point outside. No read, write, list or stat may leave the
//! tenant root, and no tenant sees another's files.
//!
//! Two tenants, `acme` (alice) and `globex` (bob). Secrets with random markers
//! sit outside acme's tree (in a directory under /tmp and in globex's inbox);
//! every operation alice tries is checked for leaked content or names, and
//! afterwards the data directory, the outside directory and a few host
//! locations are checked for anything written.
//!
//! The files planted in the inboxes have `.part` names: the import pipeline
//! (which takes every other completed file out of `/inbox`) never takes
//! those, so every operation aimed at them meets a file that exists. They are
//! dated an hour back, so that the pipeline's scan at start would take them at
//! once if it took such names, and every test ends by checking that they are
//! all still in place, unchanged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_tests::{Fixture, Setup, SftpUser, tree};
use serde_json::{Value, json};

const ALICE_PASSWORD: &str = "Quartz-Lantern-Velvet-93";
const BOB_PASSWORD: &str = "Ember-Glacier-Monsoon-58";

/// Names that exist only outside acme's tree: none may ever show up in a listing of alice's.
const FOREIGN_NAMES: &[&str] = &[
    "passwd",
    "shadow",
    "hostname",
    "etc",
    "usr",
    "proc",
    "tmp",
    "secret.txt",
    "secret.csv.part",
    "tenants",
    "catalog.db",
    "hostkeys",
    "tenant-db",
    "acme",
    "globex",
    "tls",
    "archive",
    "spool",
];

struct World {
    f: Fixture,
    /// A directory outside every tenant tree, with `secret.txt`.
    outside: tempfile::TempDir,
    /// Markers whose presence in anything alice reads is a leak.
    markers: Vec<String>,
    /// What alice's writes contain.
    write_marker: String,
    /// acme's own file name in its inbox.
    acme_file: String,
    /// globex's own file name in its inbox (besides secret.csv.part).
    globex_file: String,
    /// The files planted in the inboxes, with their content.
    planted: Vec<(PathBuf, String)>,
}

impl World {
    fn start() -> Self {
        let tag = format!("{:016x}", rand::random::<u64>());
        let setup = Setup::new().user("acme", "alice", ALICE_PASSWORD).user("globex", "bob", BOB_PASSWORD);
        let layout = setup.p.layout();
        let outside = tempfile::Builder::new().prefix("passerelle-hostile-").tempdir_in("/tmp").expect("outside dir");
        let outside_secret = format!("OUTSIDE-SECRET-{tag}");
        std::fs::write(outside.path().join("secret.txt"), &outside_secret).expect("outside secret");

        let globex_secret = format!("GLOBEX-SECRET-{tag}");
        // `.part` names: the import pipeline leaves them in the inboxes.
        let globex_file = format!("globex-only-{tag}.csv.part");
        let acme_file = format!("acme-own-{tag}.csv.part");
        let planted = vec![
            (layout.inbox("globex").join("secret.csv.part"), globex_secret.clone()),
            (layout.inbox("globex").join(&globex_file), globex_secret.clone()),
            (layout.inbox("acme").join(&acme_file), format!("ACME-DATA-{tag}")),
        ];
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for (path, content) in &planted {
            std::fs::write(path, content).expect("plant a file");
            let file = std::fs::File::options().write(true).open(path).expect("open a planted file");
            file.set_modified(an_hour_ago).expect("date a planted file back");
        }

        // Symlinks planted on disk (by someone with shell access, or a race) pointing outside.
        let inbox = layout.inbox("acme");
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, inbox.join(name)).expect("plant symlink");
        };
        link(Path::new("/etc"), "evil");
        link(outside.path(), "evil_out");
        link(&outside.path().join("secret.txt"), "secret");
        link(Path::new("../.."), "up");
        link(Path::new("../../globex/inbox"), "to-globex");

        Self {
            f: setup.serve(),
            outside,
            markers: vec![outside_secret, globex_secret, "root:x:0:0".into()],
            write_marker: format!("HOSTILE-WRITE-{tag}"),
            acme_file,
            globex_file,
            planted,
        }
    }

    fn alice(&self) -> SftpUser {
        self.f.sftp("alice")
    }

    fn bob(&self) -> SftpUser {
        self.f.sftp("bob")
    }

    /// `outside` as a client would spell it through enough `..` to reach `/` of the host.
    fn outside_via_dots(&self, prefix: &str) -> String {
        format!("{prefix}{}{}", "../".repeat(24), self.outside.path().display().to_string().trim_start_matches('/'))
    }

    fn assert_no_leak(&self, what: &str, value: &Value) {
        let text = value.to_string();
        for marker in &self.markers {
            assert!(!text.contains(marker.as_str()), "{what} leaked {marker:?}: {text}");
        }
        assert!(!text.contains(&self.globex_file), "{what} leaked globex's file name: {text}");
    }
}

/// A raw path with arbitrary bytes (NUL...), sent as is.
fn raw(bytes: &[u8]) -> Value {
    json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() })
}

/// What an operation on a hostile path may do.
#[derive(Clone, Copy, Debug)]
enum Must {
    /// Must fail.
    Fail,
    /// A stat: fail, or describe a directory inside the tenant (`..` clamped to `/`).
    FailOrDir,
    /// A stat of a planted symlink: fail, or describe the link itself, never its target.
    FailOrLink,
    /// A listing: fail, or list only names of acme's own tree.
    FailOrOwnNames,
    /// A name legal inside the tenant (e.g. Unicode slash look-alikes): may succeed, must stay inside.
    StayInside,
}

fn check(world: &World, op: &Value, result: &Value, must: Must) {
    let what = format!("{op} → {result}");
    world.assert_no_leak(&what, result);
    let ok = result["ok"] == true;
    match must {
        Must::Fail => assert!(!ok, "must be refused: {what}"),
        Must::FailOrDir => assert!(!ok || result["value"]["is_dir"] == true, "stat outside the tenant: {what}"),
        Must::FailOrLink => {
            assert!(!ok || result["value"]["is_link"] == true, "a planted symlink was followed: {what}")
        }
        Must::FailOrOwnNames => {
            if ok {
                for name in result["value"].as_array().expect("names") {
                    let name = name.as_str().unwrap_or_default();
                    assert!(!FOREIGN_NAMES.contains(&name), "listing outside the tenant ({name}): {what}");
                }
            }
        }
        Must::StayInside => {}
    }
}

/// Paths that try to read outside acme's tree; none names anything that exists inside it.
fn hostile_read_paths(world: &World) -> Vec<Value> {
    let long_name = format!("/inbox/{}", "a".repeat(4096));
    let long_dots = format!("/inbox/{}etc/passwd", "../".repeat(2000));
    vec![
        json!("../etc/passwd"),
        json!("../../../../../../etc/passwd"),
        json!("/etc/passwd"),
        json!("/../../../../etc/passwd"),
        json!("inbox/../../x"),
        json!("inbox/../../etc/passwd"),
        json!("/inbox/../../../etc/passwd"),
        json!(world.outside_via_dots("/inbox/") + "/secret.txt"),
        json!(world.outside_via_dots("") + "/secret.txt"),
        json!(format!("{}/secret.txt", world.outside.path().display())),
        json!("/../globex/inbox/secret.csv.part"),
        json!("/../../globex/inbox/secret.csv.part"),
        json!("../globex/inbox/secret.csv.part"),
        json!("/inbox/../../globex/inbox/secret.csv.part"),
        json!("/tenants/globex/inbox/secret.csv.part"),
        json!("/../../tenants/globex/inbox/secret.csv.part"),
        json!("/../../../tenants/globex/inbox/secret.csv.part"),
        json!("/inbox/evil/passwd"),
        json!("/inbox/evil/../etc/passwd"),
        json!("/inbox/evil_out/secret.txt"),
        json!("/inbox/up/globex/inbox/secret.csv.part"),
        json!("/inbox/to-globex/secret.csv.part"),
        json!("/\u{ff49}\u{ff4e}\u{ff42}\u{ff4f}\u{ff58}/x"),
        json!("/inbox/..\u{2215}..\u{2215}etc\u{2215}passwd"),
        json!("/inbox/\u{2025}/\u{2025}/etc/passwd"),
        json!("/inbox/%2e%2e/%2e%2e/etc/passwd"),
        json!("/inbox\\..\\..\\etc\\passwd"),
        json!("//etc/passwd"),
        json!("/inbox/./../.././../etc/passwd"),
        json!(long_name),
        json!(long_dots),
        raw(b"/etc/passwd\0"),
        raw(b"/inbox/\0/../../../etc/passwd"),
        raw(b"/../globex/inbox/secret.csv.part\0.txt"),
        raw(b"/inbox/\xff\xfe/../../../etc/passwd"),
    ]
}

/// Every kind of read, list and stat on every hostile path, as alice.
#[test]
fn reads_lists_and_stats_never_leave_the_tenant_root() {
    let world = World::start();
    let download = world.f.work("downloads").join("got");
    let mut ops = Vec::new();
    for path in hostile_read_paths(&world) {
        ops.push((json!({"op": "read", "remote": path}), Must::Fail));
        ops.push((json!({"op": "get", "remote": path, "local": download.display().to_string()}), Must::Fail));
        ops.push((json!({"op": "stat", "path": path}), Must::FailOrDir));
        ops.push((json!({"op": "lstat", "path": path}), Must::FailOrDir));
        ops.push((json!({"op": "listdir", "path": path}), Must::FailOrOwnNames));
    }
    // Directories: `..` is clamped at the tenant root, never above it.
    for dir in ["..", "/..", "/../..", "../../..", "/inbox/../..", "/tenants", "/../globex", "/../globex/inbox", "/etc"]
    {
        ops.push((json!({"op": "listdir", "path": dir}), Must::FailOrOwnNames));
        ops.push((json!({"op": "stat", "path": dir}), Must::FailOrDir));
        ops.push((json!({"op": "realpath", "path": dir}), Must::StayInside));
    }
    // The planted symlinks themselves: never followed.
    for link in ["/inbox/evil", "/inbox/evil_out", "/inbox/secret", "/inbox/up", "/inbox/to-globex"] {
        ops.push((json!({"op": "stat", "path": link}), Must::FailOrLink));
        ops.push((json!({"op": "lstat", "path": link}), Must::FailOrLink));
        ops.push((json!({"op": "read", "remote": link}), Must::Fail));
        ops.push((json!({"op": "listdir", "path": link}), Must::Fail));
        ops.push((json!({"op": "listdir", "path": format!("{link}/")}), Must::Fail));
        ops.push((json!({"op": "listdir", "path": format!("{link}/.")}), Must::Fail));
    }
    let report = world.alice().paramiko(Value::Array(ops.iter().map(|(op, _)| op.clone()).collect()));
    assert_eq!(report["auth"], "ok", "{report}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), ops.len(), "the session ended early: {report}");
    for ((op, must), result) in ops.iter().zip(results) {
        check(&world, op, result, *must);
    }
    // realpath answers are client paths: absolute, normalised, never the host path.
    for ((op, _), result) in ops.iter().zip(results) {
        if op["op"] == "realpath" && result["ok"] == true {
            let path = result["value"].as_str().unwrap_or_default();
            assert!(path.starts_with('/') && !path.contains(".."), "realpath {op} → {path}");
            // Never the host path of the tree.
            let host = world.f.p.data_dir().display().to_string();
            assert!(!path.contains(&host) && !path.contains("passerelle-test"), "realpath {op} → {path}");
        }
    }
    if download.exists() {
        let content = std::fs::read_to_string(&download).unwrap_or_default();
        world.assert_no_leak("a downloaded file", &json!(content));
    }
    assert_server_healthy(world);
}

/// Writes (of the local file `local` and of the write marker), mkdirs,
/// renames, removals and links aimed outside acme's tree; `etc_probe` is a
/// host path that must never come to exist.
fn hostile_write_ops(world: &World, local: &str, etc_probe: &str) -> Vec<(Value, Must)> {
    let targets = vec![
        (json!("../w1"), Must::Fail),
        (json!("/../w2"), Must::Fail),
        (json!("/../../w3"), Must::Fail),
        (json!("inbox/../../w4"), Must::Fail),
        (json!("/inbox/../../../w5"), Must::Fail),
        (json!(world.outside_via_dots("/inbox/") + "/w6"), Must::Fail),
        (json!(format!("{}/w7", world.outside.path().display())), Must::Fail),
        (json!(etc_probe), Must::Fail),
        (json!("/../globex/inbox/w8"), Must::Fail),
        (json!("/../../tenants/globex/inbox/w9"), Must::Fail),
        (json!("/inbox/evil_out/w10"), Must::Fail),
        (json!("/inbox/up/globex/inbox/w11"), Must::Fail),
        (json!("/inbox/to-globex/w12"), Must::Fail),
        (json!("/\u{ff49}\u{ff4e}\u{ff42}\u{ff4f}\u{ff58}/w13"), Must::Fail),
        (json!("/inbox/..\u{2215}..\u{2215}w14"), Must::StayInside),
        (raw(b"/inbox/w15\0/../../../w15"), Must::Fail),
        (raw(b"/inbox/w16\0"), Must::Fail),
        (json!(format!("/inbox/{}", "w".repeat(4096))), Must::Fail),
        (json!("/inbox/evil/w17"), Must::Fail),
        // Replacing the planted link itself would stay inside; writing through it would not.
        (json!("/inbox/secret"), Must::StayInside),
    ];
    let mut ops = Vec::new();
    for (path, must) in &targets {
        ops.push((json!({"op": "put", "local": local, "remote": path}), *must));
        ops.push((json!({"op": "write", "remote": path, "data": world.write_marker}), *must));
    }
    for dir in [
        json!("/inbox/evil_out/d1"),
        json!("/../globex/inbox/d2"),
        json!("/inbox/../../d3"),
        json!(format!("{}/d4", world.outside.path().display())),
        json!("/inbox/to-globex/d5"),
        json!(world.outside_via_dots("/") + "/d6"),
    ] {
        ops.push((json!({"op": "mkdir", "path": dir}), Must::Fail));
    }
    let own = format!("/inbox/{}", world.acme_file);
    for to in [
        json!("/inbox/evil_out/moved"),
        json!("/../globex/inbox/moved"),
        json!("../../moved"),
        json!("/inbox/to-globex/moved"),
    ] {
        ops.push((json!({"op": "rename", "from": own, "to": to}), Must::Fail));
        ops.push((json!({"op": "posix_rename", "from": own, "to": to}), Must::Fail));
    }
    for victim in [
        "/inbox/evil_out/secret.txt",
        "/../globex/inbox/secret.csv.part",
        "/inbox/to-globex/secret.csv.part",
        "/inbox/up/globex/inbox/secret.csv.part",
        "/../../../tmp",
    ] {
        ops.push((json!({"op": "remove", "path": victim}), Must::Fail));
        ops.push((json!({"op": "rmdir", "path": victim}), Must::Fail));
        ops.push((json!({"op": "rename", "from": victim, "to": "/inbox/stolen"}), Must::Fail));
    }
    for (path, target) in [("/inbox/new-link", "/etc"), ("/inbox/new-rel", "../../globex/inbox")] {
        ops.push((json!({"op": "symlink", "target": target, "path": path}), Must::Fail));
        ops.push((json!({"op": "hardlink", "from": "/inbox/secret", "to": path}), Must::Fail));
    }
    ops
}

/// Writes, mkdirs, renames and removes aimed outside acme's tree.
#[test]
fn writes_never_leave_the_tenant_root() {
    let world = World::start();
    let globex_before = snapshot(&world.f.tenant_root("globex"));
    let local = world.f.work("writes").join("payload.txt");
    std::fs::write(&local, &world.write_marker).expect("payload");
    let l = local.display().to_string();
    let etc_probe = format!("/etc/passerelle-hostile-{:08x}", rand::random::<u32>());
    let ops = hostile_write_ops(&world, &l, &etc_probe);
    let report = world.alice().paramiko(Value::Array(ops.iter().map(|(op, _)| op.clone()).collect()));
    assert_eq!(report["auth"], "ok", "{report}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), ops.len(), "the session ended early: {report}");
    for ((op, must), result) in ops.iter().zip(results) {
        check(&world, op, result, *must);
    }

    // Nothing outside acme's tree was created, changed or removed.
    assert_eq!(tree(world.outside.path()), vec![PathBuf::from("secret.txt")], "the outside directory changed");
    assert_eq!(std::fs::read_to_string(world.outside.path().join("secret.txt")).expect("secret"), world.markers[0]);
    assert!(!Path::new(&etc_probe).exists(), "{etc_probe} was created on the host");
    assert_eq!(snapshot(&world.f.tenant_root("globex")), globex_before, "globex's tree changed");
    assert!(world.f.inbox("acme").join(&world.acme_file).exists(), "acme's file moved away");
    assert_nothing_written_outside_acme(&world);
    assert_server_healthy(world);
}

/// A few of the same with OpenSSH's `sftp -b` (errors ignored with `-`), whose
/// client resolves `cd ..` through the server's realpath.
#[test]
fn openssh_sftp_cannot_climb_out_either() {
    let world = World::start();
    let work = world.f.work("openssh");
    let payload = work.join("payload.txt");
    std::fs::write(&payload, &world.write_marker).expect("payload");
    let w = work.display();
    let p = payload.display();
    let outside = world.outside.path().display();
    let batch = format!(
        "-get /etc/passwd {w}/g1\n\
         -get ../../../etc/passwd {w}/g2\n\
         -get /../globex/inbox/secret.csv.part {w}/g3\n\
         -get /inbox/evil/passwd {w}/g4\n\
         -get /inbox/secret {w}/g5\n\
         -get /inbox/to-globex/secret.csv.part {w}/g6\n\
         -get {outside}/secret.txt {w}/g7\n\
         -ls /..\n\
         -ls /../globex/inbox\n\
         -ls /inbox/evil\n\
         -ls /inbox/evil_out\n\
         -ls /inbox/to-globex\n\
         -put {p} ../../sftp-w1\n\
         -put {p} /inbox/evil_out/sftp-w2\n\
         -put {p} /inbox/to-globex/sftp-w3\n\
         -mkdir ../../sftp-d1\n\
         -cd ..\n\
         -cd ..\n\
         -cd ..\n\
         -ls -la\n\
         -pwd\n\
         -get etc/passwd {w}/g8\n\
         -cd /inbox/evil\n\
         -ls\n\
         -get passwd {w}/g9\n"
    );
    let out = world.alice().sftp_batch(&batch);
    assert!(out.code != 124 && out.code != 137, "sftp was killed by the timeout:\n{}", out.stderr);
    let printed: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with("sftp>")).collect();
    for line in &printed {
        let last = line.split_whitespace().last().unwrap_or_default();
        let name = last.rsplit('/').next().unwrap_or_default();
        assert!(!FOREIGN_NAMES.contains(&name), "sftp listed a name from outside the tenant: {line}\n{}", out.stdout);
        world.assert_no_leak("sftp output", &json!(line));
    }
    for n in 1..=9 {
        let got = work.join(format!("g{n}"));
        if got.exists() {
            world
                .assert_no_leak(&format!("downloaded g{n}"), &json!(std::fs::read_to_string(&got).unwrap_or_default()));
        }
    }
    assert_nothing_written_outside_acme(&world);
    assert_eq!(tree(world.outside.path()), vec![PathBuf::from("secret.txt")]);
    assert_server_healthy(world);
}

/// Bob (globex) and alice (acme) never see each other's files.
#[test]
fn tenants_never_see_each_other() {
    let world = World::start();
    let bob_paths = [
        "/".to_owned(),
        "/inbox".into(),
        "/..".into(),
        "/../acme/inbox".into(),
        "/inbox/../../acme/inbox".into(),
        "/../../tenants/acme/inbox".into(),
        "../acme".into(),
    ];
    let mut ops = Vec::new();
    for path in &bob_paths {
        ops.push(json!({"op": "listdir", "path": path}));
    }
    for path in ["/../acme/inbox", "/inbox/../../acme/inbox", "/../../tenants/acme/inbox"] {
        ops.push(json!({"op": "read", "remote": format!("{path}/{}", world.acme_file)}));
        ops.push(json!({"op": "stat", "path": format!("{path}/{}", world.acme_file)}));
    }
    let report = world.bob().paramiko(Value::Array(ops));
    assert_eq!(report["auth"], "ok", "{report}");
    let text = report.to_string();
    assert!(!text.contains(&world.acme_file), "bob saw acme's file: {text}");
    assert!(!text.contains("ACME-DATA"), "bob read acme's file: {text}");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results[1]["ok"], true, "bob lists his own inbox: {}", results[1]);
    let own = results[1]["value"].as_array().expect("names");
    assert!(own.contains(&json!(world.globex_file)), "bob's own inbox lacks his file: {own:?}");
    for result in &results[bob_paths.len()..] {
        assert_eq!(result["ok"], false, "bob reached acme's file: {result}");
    }

    // And the other way round, with alice's listings of everything she can name.
    let report = world.alice().paramiko(json!([
        {"op": "listdir", "path": "/"},
        {"op": "listdir", "path": "/inbox"},
        {"op": "listdir", "path": "/outbox"},
        {"op": "listdir", "path": "/../globex/inbox"},
    ]));
    assert_eq!(report["auth"], "ok", "{report}");
    assert!(!report.to_string().contains(&world.globex_file), "alice saw globex's file: {report}");
    let inbox = report["results"][1]["value"].as_array().expect("alice's inbox");
    assert!(inbox.contains(&json!(world.acme_file)), "{inbox:?}");
    assert_server_healthy(world);
}

/// A map from path to content (or "dir"/"link -> target"), for comparing trees.
fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    tree(root)
        .into_iter()
        .map(|rel| {
            let full = root.join(&rel);
            let meta = std::fs::symlink_metadata(&full).expect("metadata");
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&full).expect("readlink").display())
            } else if meta.is_dir() {
                "dir".into()
            } else {
                String::from_utf8_lossy(&std::fs::read(&full).expect("read")).into_owned()
            };
            (rel, what)
        })
        .collect()
}

/// No file holding the write marker, and no entry with a name alice tried to
/// create, exists outside acme's tree: in the data directory, the outside
/// directory, or at the host locations a broken resolution would reach.
fn assert_nothing_written_outside_acme(world: &World) {
    let data = world.f.p.data_dir();
    let acme = world.f.tenant_root("acme");
    let probe_names: Vec<String> = (1..=17)
        .map(|n| format!("w{n}"))
        .chain((1..=6).map(|n| format!("d{n}")))
        .chain(["moved", "stolen", "sftp-w1", "sftp-w2", "sftp-w3", "sftp-d1"].map(String::from))
        .collect();
    for rel in tree(&data) {
        let full = data.join(&rel);
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if full.starts_with(&acme) {
            continue;
        }
        assert!(!probe_names.contains(&name), "{} was created outside acme's tree", full.display());
        let meta = std::fs::symlink_metadata(&full).expect("metadata");
        if meta.is_file() && meta.len() < 1 << 20 {
            let content = std::fs::read(&full).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&content).contains(&world.write_marker),
                "{} holds alice's write",
                full.display()
            );
        }
    }
    let cwd = std::env::current_dir().expect("cwd");
    for base in [Path::new("/"), Path::new("/tmp"), Path::new("/etc"), world.outside.path(), data.as_path(), &cwd] {
        for name in &probe_names {
            let candidate = base.join(name);
            assert!(
                std::fs::symlink_metadata(&candidate).is_err(),
                "{} exists: written outside the tenant root",
                candidate.display()
            );
        }
    }
    // Files alice could legitimately create inside acme's tree stay there.
    for rel in tree(&acme) {
        let full = acme.join(&rel);
        assert!(
            !std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink())
                || ["inbox/evil", "inbox/evil_out", "inbox/secret", "inbox/up", "inbox/to-globex"]
                    .contains(&rel.to_string_lossy().as_ref()),
            "a new symlink appeared in acme's tree: {}",
            rel.display()
        );
    }
}

/// The server is still running, did not panic, and still serves a login;
/// the planted files are all still in place, unchanged.
fn assert_server_healthy(mut world: World) {
    assert!(world.f.server.is_running(), "the server died:\n{}", world.f.server.output());
    for (path, content) in &world.planted {
        let now = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("planted {}: {e}", path.display()));
        assert_eq!(&now, content, "planted {} changed", path.display());
    }
    let report = world.alice().paramiko(json!([{"op": "listdir", "path": "/inbox"}]));
    assert_eq!(report["auth"], "ok", "no login after the hostile session: {report}");
    assert_eq!(report["results"][0]["ok"], true, "{report}");
    std::thread::sleep(Duration::from_millis(200));
    let output = world.f.server.output();
    assert!(!output.contains("panicked"), "the server panicked:\n{output}");
}
