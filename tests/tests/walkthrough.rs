//! Issue #18: the README's five-minute walkthrough works as written. The
//! walkthrough is `examples/walkthrough.sh`; this runs it, against this
//! workspace's binary, in a new empty directory, on free loopback ports,
//! and checks that it ends with an imported receipt read back over SFTP.

use std::path::Path;
use std::process::Command;

use passerelle_tests::{binary, bounded, free_port, run_command};

#[test]
fn the_readme_walkthrough_ends_with_an_imported_receipt_read_over_sftp() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough.sh");
    let mut command: Command = bounded("bash", 180);
    command.arg(&script).arg(binary());
    // The walkthrough's server, alone with its defaults but for the ports:
    // nothing of the environment the tests run in may reach it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PASSERELLE_") {
            command.env_remove(name);
        }
    }
    command
        .env("PASSERELLE_SFTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("PASSERELLE_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("PASSERELLE_FTPS_EXPLICIT_LISTEN", "")
        .env("PASSERELLE_FTPS_IMPLICIT_LISTEN", "");
    let out = run_command(&mut command, b"");
    assert!(out.success(), "walkthrough failed ({}):\n{}\n{}", out.code, out.stdout, out.stderr);
    assert!(out.stdout.contains("\"status\": \"imported\""), "{}", out.stdout);
    assert!(out.stdout.contains("walkthrough: the receipt says imported"), "{}", out.stdout);
}
