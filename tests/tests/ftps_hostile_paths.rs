//! The hostile-path suite of SFTP, over FTPS: `..`, absolute host paths, NUL
//! bytes, 4 KiB names, Unicode look-alikes, another tenant's paths and
//! symlinks planted in the tree that point outside. No read, write, list,
//! stat or CWD may leave the tenant root, and no tenant sees another's files.

use std::path::{Path, PathBuf};

use passerelle_tests::{Fixture, FtpsUser, Setup, tree};
use serde_json::{Value, json};

const ALICE_PASSWORD: &str = "Quartz-Lantern-Velvet-93";
const BOB_PASSWORD: &str = "Ember-Glacier-Monsoon-58";

/// Names that exist only outside acme's tree: none may show up in alice's listings.
const FOREIGN_NAMES: &[&str] = &[
    "passwd",
    "shadow",
    "etc",
    "usr",
    "proc",
    "tmp",
    "secret.txt",
    "secret.csv.part",
    "tenants",
    "catalog.db",
    "globex",
];

struct World {
    f: Fixture,
    outside: tempfile::TempDir,
    markers: Vec<String>,
    write_marker: String,
    acme_file: String,
    globex_file: String,
}

impl World {
    fn start() -> Self {
        let tag = format!("{:016x}", rand::random::<u64>());
        // `.part` names: the import pipeline never takes them, so the tree stays as planted.
        let f = Setup::new().user("acme", "alice", ALICE_PASSWORD).user("globex", "bob", BOB_PASSWORD).ftps().serve();
        let outside = tempfile::Builder::new().prefix("passerelle-ftps-hostile-").tempdir_in("/tmp").expect("outside");
        let outside_secret = format!("OUTSIDE-SECRET-{tag}");
        std::fs::write(outside.path().join("secret.txt"), &outside_secret).expect("outside secret");
        let globex_secret = format!("GLOBEX-SECRET-{tag}");
        let globex_file = format!("globex-only-{tag}.csv.part");
        std::fs::write(f.inbox("globex").join("secret.csv.part"), &globex_secret).expect("globex secret");
        std::fs::write(f.inbox("globex").join(&globex_file), &globex_secret).expect("globex file");
        let acme_file = format!("acme-own-{tag}.csv.part");
        std::fs::write(f.inbox("acme").join(&acme_file), format!("ACME-DATA-{tag}")).expect("acme file");
        for (target, name) in [
            (Path::new("/etc"), "evil"),
            (outside.path(), "evil_out"),
            (&outside.path().join("secret.txt"), "secret"),
            (Path::new("../.."), "up"),
            (Path::new("../../globex/inbox"), "to-globex"),
        ] {
            std::os::unix::fs::symlink(target, f.inbox("acme").join(name)).expect("plant symlink");
        }
        Self {
            f,
            outside,
            markers: vec![outside_secret, globex_secret, "root:x:0:0".into()],
            write_marker: format!("HOSTILE-WRITE-{tag}"),
            acme_file,
            globex_file,
        }
    }

    fn alice(&self) -> FtpsUser {
        self.f.ftps("alice")
    }

    fn assert_no_leak(&self, what: &str, value: &Value) {
        let text = value.to_string();
        for marker in &self.markers {
            assert!(!text.contains(marker.as_str()), "{what} leaked {marker:?}: {text}");
        }
        assert!(!text.contains(&self.globex_file), "{what} leaked globex's file name: {text}");
    }

    fn outside_via_dots(&self, prefix: &str) -> String {
        format!("{prefix}{}{}", "../".repeat(24), self.outside.path().display().to_string().trim_start_matches('/'))
    }

    /// Runs `ops` as alice; every op must get an answer.
    fn run(&self, ops: &[Value]) -> Vec<Value> {
        let report = self.alice().script(json!({ "ops": ops }));
        assert_eq!(report["auth"], "ok", "{report}");
        let results = report["results"].as_array().expect("results").clone();
        assert_eq!(results.len(), ops.len(), "the session ended early: {report}");
        results
    }
}

fn raw(bytes: &[u8]) -> Value {
    json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() })
}

fn hostile_paths(world: &World) -> Vec<Value> {
    vec![
        json!("../etc/passwd"),
        json!("/../../../../../../etc/passwd"),
        json!("/etc/passwd"),
        json!("inbox/../../etc/passwd"),
        json!(world.outside_via_dots("/inbox/") + "/secret.txt"),
        json!(format!("{}/secret.txt", world.outside.path().display())),
        json!("/../globex/inbox/secret.csv.part"),
        json!("/inbox/../../globex/inbox/secret.csv.part"),
        json!("/../../tenants/globex/inbox/secret.csv.part"),
        json!("/inbox/evil/passwd"),
        json!("/inbox/evil_out/secret.txt"),
        json!("/inbox/secret"),
        json!("/inbox/up/globex/inbox/secret.csv.part"),
        json!("/inbox/to-globex/secret.csv.part"),
        json!("/inbox/..\u{2215}..\u{2215}etc\u{2215}passwd"),
        json!("/inbox/%2e%2e/%2e%2e/etc/passwd"),
        json!("/inbox\\..\\..\\etc\\passwd"),
        json!("//etc/passwd"),
        json!(format!("/inbox/{}", "a".repeat(4096))),
        json!(format!("/inbox/{}etc/passwd", "../".repeat(2000))),
        raw(b"/etc/passwd\0"),
        raw(b"/inbox/\0/../../../etc/passwd"),
        raw(b"/inbox/\xff\xfe/../../../etc/passwd"),
    ]
}

#[test]
fn reads_lists_stats_and_cwd_never_leave_the_tenant_root() {
    let world = World::start();
    let mut ops = Vec::new();
    for path in hostile_paths(&world) {
        ops.push(json!({"op": "get", "remote": path}));
        for verb in ["SIZE", "MDTM", "MLST"] {
            ops.push(json!({"op": "cmd", "verb": verb, "path": path}));
        }
        for cmd in ["NLST", "LIST", "MLSD"] {
            ops.push(json!({"op": "list", "cmd": cmd, "path": path}));
        }
        ops.push(json!({"op": "cmd", "verb": "CWD", "path": path}));
        ops.push(json!({"op": "raw", "line": "PWD"}));
        ops.push(json!({"op": "raw", "line": "CWD /"}));
    }
    for dir in ["..", "/..", "/../..", "/inbox/../..", "/tenants", "/../globex/inbox", "/etc", "/inbox/evil"] {
        ops.push(json!({"op": "list", "cmd": "NLST", "path": dir}));
        ops.push(json!({"op": "list", "cmd": "LIST", "path": dir}));
    }
    let results = world.run(&ops);
    for (op, result) in ops.iter().zip(&results) {
        let what = format!("{op} → {result}");
        world.assert_no_leak(&what, result);
        if op["op"] == "get" {
            assert_eq!(result["ok"], false, "download outside the tenant: {what}");
        }
        if op["op"] == "list" && result["ok"] == true {
            for line in result["value"].as_array().expect("lines") {
                let name = line.as_str().unwrap_or_default().rsplit([' ', '/']).next().unwrap_or_default();
                assert!(!FOREIGN_NAMES.contains(&name), "listing outside the tenant ({name}): {what}");
            }
        }
        if op["op"] == "raw" && op["line"] == "PWD" {
            let reply = result["reply"].as_str().unwrap_or_default();
            assert!(reply.starts_with("257 \"/"), "{what}");
            for foreign in ["etc", "tenants", "globex", "tmp"] {
                assert!(!reply.contains(&format!("/{foreign}")), "CWD left the tenant: {what}");
            }
        }
    }
    assert_server_healthy(world);
}

#[test]
fn writes_renames_and_removals_never_leave_the_tenant_root() {
    let world = World::start();
    let globex = world.f.tenant_root("globex");
    let globex_before = tree(&globex);
    let etc_probe = format!("/etc/passerelle-ftps-hostile-{:08x}", rand::random::<u32>());
    let targets = [
        json!("../w1"),
        json!("/../../w2"),
        json!("/inbox/../../../w3"),
        json!(world.outside_via_dots("/inbox/") + "/w4"),
        json!(format!("{}/w5", world.outside.path().display())),
        json!(etc_probe.clone()),
        json!("/../globex/inbox/w6"),
        json!("/inbox/evil_out/w7"),
        json!("/inbox/up/globex/inbox/w8"),
        json!("/inbox/to-globex/w9"),
        raw(b"/inbox/w10\0/../../../w10"),
        json!(format!("/inbox/{}", "w".repeat(4096))),
        json!("/inbox/evil/w11"),
    ];
    let mut ops = Vec::new();
    for target in &targets {
        ops.push(json!({"op": "put", "remote": target, "data": world.write_marker}));
        ops.push(json!({"op": "cmd", "verb": "MKD", "path": target}));
    }
    let own = format!("/inbox/{}", world.acme_file);
    for to in ["/inbox/evil_out/moved", "/../globex/inbox/moved", "../../moved", "/inbox/to-globex/moved"] {
        ops.push(json!({"op": "cmd", "verb": "RNFR", "path": own}));
        ops.push(json!({"op": "cmd", "verb": "RNTO", "path": to}));
    }
    for victim in [
        "/inbox/evil_out/secret.txt",
        "/../globex/inbox/secret.csv.part",
        "/inbox/to-globex/secret.csv.part",
        "/../../../tmp",
    ] {
        ops.push(json!({"op": "cmd", "verb": "DELE", "path": victim}));
        ops.push(json!({"op": "cmd", "verb": "RMD", "path": victim}));
        ops.push(json!({"op": "cmd", "verb": "RNFR", "path": victim}));
        ops.push(json!({"op": "cmd", "verb": "RNTO", "path": "/inbox/stolen"}));
    }
    let results = world.run(&ops);
    for (op, result) in ops.iter().zip(&results) {
        let what = format!("{op} → {result}");
        world.assert_no_leak(&what, result);
        // RNFR of alice's own file is fine; the RNTO after it is what must fail.
        if op["verb"] == "RNFR" && op["path"] == own {
            continue;
        }
        assert_eq!(result["ok"], false, "must be refused: {what}");
    }
    assert_eq!(tree(world.outside.path()), vec![PathBuf::from("secret.txt")], "the outside directory changed");
    assert!(!Path::new(&etc_probe).exists(), "{etc_probe} was created on the host");
    assert_eq!(tree(&globex), globex_before, "globex's tree changed");
    assert!(world.f.inbox("acme").join(&world.acme_file).exists(), "acme's file moved away");
    let data = world.f.p.data_dir();
    let acme = world.f.tenant_root("acme");
    for rel in tree(&data) {
        let full = data.join(&rel);
        if full.starts_with(&acme) {
            continue;
        }
        if std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_file() && m.len() < 1 << 20) {
            let content = String::from_utf8_lossy(&std::fs::read(&full).unwrap_or_default()).into_owned();
            assert!(!content.contains(&world.write_marker), "{} holds alice's write", full.display());
        }
    }
    assert_server_healthy(world);
}

#[test]
fn tenants_never_see_each_other() {
    let world = World::start();
    let bob = world.f.ftps("bob");
    let mut ops = Vec::new();
    for path in ["/", "/inbox", "/..", "/../acme/inbox", "/inbox/../../acme/inbox", "/../../tenants/acme/inbox"] {
        ops.push(json!({"op": "list", "cmd": "NLST", "path": path}));
    }
    for path in ["/../acme/inbox", "/inbox/../../acme/inbox", "/../../tenants/acme/inbox"] {
        ops.push(json!({"op": "get", "remote": format!("{path}/{}", world.acme_file)}));
    }
    let report = bob.script(json!({ "ops": ops }));
    assert_eq!(report["auth"], "ok", "{report}");
    let text = report.to_string();
    assert!(!text.contains(&world.acme_file) && !text.contains("ACME-DATA"), "bob saw acme's file: {text}");
    let own = report["results"][1]["value"].as_array().expect("bob's inbox");
    assert!(own.contains(&json!(world.globex_file)), "bob's own inbox lacks his file: {own:?}");
}

/// The server is still running, did not panic, and still serves a login.
fn assert_server_healthy(mut world: World) {
    assert!(world.f.server.is_running(), "the server died:\n{}", world.f.server.output());
    let report = world.alice().script(json!({"ops": [{"op": "list", "cmd": "NLST", "path": "/inbox"}]}));
    assert_eq!(report["results"][0]["ok"], true, "no listing after the hostile session: {report}");
    let output = world.f.server.output();
    assert!(!output.contains("panicked"), "the server panicked:\n{output}");
}
