//! The Debian package, built by `scripts/package-deb` from the debug binary the tests already use
//! (no second build) and installed into this machine with `dpkg -i` as an operator would: the
//! binary, unit, completions, man pages and configuration land where Debian expects them, the
//! service user and its private data directory exist, the configuration checks, an edited
//! configuration survives a reinstall, and a purge removes the package. Needs root (the tests run
//! as root on a throwaway machine); it fails, never skips, without it.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use passerelle_tests::free_port;

const PACKAGE: &str = "passerelle";
const CONFIG: &str = "/etc/passerelle/passerelle.toml";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", PACKAGE]);
    }
}

/// Runs the installed `serve` as `passerelle` until it is ready and says which sandbox is in force,
/// then stops it with SIGTERM.
fn serve_once_as_the_service_user() {
    // setpriv execs the server in its own place (runuser would fork it, and stay between).
    let mut command = Command::new("setpriv");
    command.args(["--reuid=passerelle", "--regid=passerelle", "--init-groups", "/usr/bin/passerelle"]);
    command.args(["--config", CONFIG, "serve"]);
    for (key, port) in [("SFTP_LISTEN", free_port()), ("ADMIN_LISTEN", free_port())] {
        command.env(format!("PASSERELLE_{key}"), format!("127.0.0.1:{port}"));
    }
    command.env("PASSERELLE_FTPS_EXPLICIT_LISTEN", "").env("PASSERELLE_FTPS_IMPLICIT_LISTEN", "");
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("runuser");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    // Bounded: the server stops at SIGTERM, and its stderr ends with it.
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("passerelle ready") {
            rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM)
                .expect("SIGTERM the server");
        }
        seen.push(line);
    }
    let status = child.wait().expect("wait for the server");
    let log = seen.join("\n");
    assert!(status.success(), "the installed server did not stop cleanly ({status}):\n{log}");
    assert!(log.contains("passerelle ready"), "the installed server did not start:\n{log}");
    let sandbox = seen.iter().find(|l| l.contains("sandbox:")).unwrap_or_else(|| panic!("no sandbox line:\n{log}"));
    assert!(
        sandbox.contains("read_write=/var/lib/passerelle ") || sandbox.contains("the kernel has no Landlock"),
        "{sandbox}"
    );
}

/// Builds the .deb from target/debug/passerelle and returns its path.
fn build_package() -> PathBuf {
    passerelle_tests::binary();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    ok(&root.join("scripts/package-deb").to_string_lossy(), &["--profile", "dev", "--no-build"]);
    let debs: Vec<PathBuf> = std::fs::read_dir(root.join("target/debian"))
        .expect("target/debian")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb") && p.to_string_lossy().contains("passerelle_"))
        .collect();
    assert_eq!(debs.len(), 1, "one package expected in target/debian: {debs:?}");
    debs.into_iter().next().unwrap()
}

/// `(mode, owner name, group name)` of `path`.
fn stat(path: &str) -> (u32, String, String) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name =
        |db: &str, id: u32| ok("getent", &[db, &id.to_string()]).split(':').next().unwrap_or_default().to_owned();
    (meta.permissions().mode() & 0o7777, name("passwd", meta.uid()), name("group", meta.gid()))
}

#[test]
fn the_package_installs_checks_its_configuration_keeps_edits_and_purges() {
    assert!(rustix::process::geteuid().is_root(), "this test installs a package: run it as root");
    let deb = build_package();
    let deb = deb.to_string_lossy();
    let _ = run("dpkg", &["--purge", PACKAGE]);
    let installed = Installed;
    ok("dpkg", &["-i", &deb]);

    // Files where Debian expects them.
    for file in [
        "/usr/bin/passerelle",
        "/usr/lib/systemd/system/passerelle.service",
        "/usr/share/bash-completion/completions/passerelle",
        "/usr/share/zsh/vendor-completions/_passerelle",
        "/usr/share/fish/vendor_completions.d/passerelle.fish",
        "/usr/share/man/man1/passerelle.1.gz",
        "/usr/share/man/man1/passerelle-tenant-add.1.gz",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }
    assert_eq!(stat("/usr/bin/passerelle").0, 0o755);
    assert!(ok("dpkg-query", &["--show", "--showformat=${Conffiles}", PACKAGE]).contains(CONFIG));

    // The service user and its private data directory; the configuration readable by it only.
    let user = ok("getent", &["passwd", "passerelle"]);
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert!(fields[2].parse::<u32>().unwrap() < 1000, "not a system user: {user}");
    assert_eq!((fields[5], fields[6]), ("/var/lib/passerelle", "/usr/sbin/nologin"), "{user}");
    assert_eq!(stat("/var/lib/passerelle"), (0o700, "passerelle".into(), "passerelle".into()));
    assert_eq!(stat(CONFIG), (0o640, "root".into(), "passerelle".into()));
    assert!(std::fs::read_to_string(CONFIG).unwrap().contains("data_dir = \"/var/lib/passerelle\""));

    // The configuration checks, for root and for the service user the unit runs as.
    let check = ["--config", CONFIG, "config", "check"];
    assert!(ok("/usr/bin/passerelle", &check).contains("configuration OK"));
    let mut as_service = vec!["-u", "passerelle", "--", "/usr/bin/passerelle"];
    as_service.extend(check);
    assert!(ok("runuser", &as_service).contains("configuration OK"));

    // The completions load; the man page renders.
    ok("bash", &["-c", "source /usr/share/bash-completion/completions/passerelle && complete -p passerelle"]);
    let page = ok("sh", &["-c", "gzip -dc /usr/share/man/man1/passerelle.1.gz"]);
    assert!(page.contains(".TH passerelle") && page.contains("tenant"), "{page}");

    // An edited configuration survives a reinstall of the package.
    let edited = std::fs::read_to_string(CONFIG)
        .unwrap()
        .replace("# listen = [\"127.0.0.1:2222\"]", "listen = [\"127.0.0.1:2022\"]");
    std::fs::write(CONFIG, &edited).unwrap();
    ok("dpkg", &["-i", &deb]);
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited, "the edited configuration was overwritten");
    assert!(ok("/usr/bin/passerelle", &check).contains("configuration OK"));

    // The installed server starts as the service user (as the unit runs it), on free loopback
    // ports, confined to /var/lib/passerelle, and fills only that.
    serve_once_as_the_service_user();
    assert_eq!(stat("/var/lib/passerelle/catalog.db").1, "passerelle");

    // Purge: the package and its configuration go; a data directory holding data stays, with a
    // note; an empty one goes.
    let out = run("dpkg", &["--purge", PACKAGE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/var/lib/passerelle holds data and was kept"));
    assert!(Path::new("/var/lib/passerelle/catalog.db").exists(), "a purge must not delete tenants' data");
    std::fs::remove_dir_all("/var/lib/passerelle").unwrap();
    ok("dpkg", &["-i", &deb]);
    drop(installed);
    assert!(!Path::new("/usr/bin/passerelle").exists());
    assert!(!Path::new(CONFIG).exists());
    assert!(!Path::new("/var/lib/passerelle").exists());
    assert!(!run("dpkg", &["-s", PACKAGE]).status.success(), "still known to dpkg after purge");
}
