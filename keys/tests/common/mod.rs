//! Helpers shared by the integration tests: running the real OpenSSH and
//! OpenSSL tools.

#![allow(dead_code, reason = "every test binary compiles this module and uses only some of its helpers")]

use std::path::Path;
use std::process::Command;

/// Runs a tool and returns its standard output; panics with its stderr on failure.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Generates a key with `ssh-keygen` and returns the `.pub` line.
pub(crate) fn ssh_keygen(dir: &Path, name: &str, args: &[&str], comment: &str) -> String {
    let path = dir.join(name);
    let path = path.to_str().unwrap();
    let mut all = vec!["-q", "-N", "", "-C", comment, "-f", path];
    all.extend_from_slice(args);
    run("ssh-keygen", &all);
    std::fs::read_to_string(format!("{path}.pub")).unwrap()
}

/// What `ssh-keygen -lf <file>` prints, without the newline.
pub(crate) fn ssh_keygen_l(file: &Path) -> String {
    run("ssh-keygen", &["-lf", file.to_str().unwrap()]).trim_end().to_owned()
}

/// The permission bits of a file.
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Sets the permission bits of a file.
pub(crate) fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
