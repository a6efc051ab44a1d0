//! ssh-audit (the PyPI package, from the test venv) against the default
//! configuration: no algorithm rated as a failure. Its exit codes: 0 all good,
//! 1 connection error, 2 at least one warning, 3 at least one failure.

use std::time::Duration;

use passerelle_tests::{Setup, bounded, run_command, venv_tool};

#[test]
fn ssh_audit_reports_no_failure_on_the_default_configuration() {
    audit_with(&[]);
}

/// Operators turn `sftp.libssh2_compat` on for curl and PHP on Debian 12: its
/// CTR ciphers and encrypt-and-MAC MACs may be warnings, never failures.
#[test]
fn ssh_audit_reports_no_failure_with_libssh2_compat_on() {
    audit_with(&[("PASSERELLE_SFTP_LIBSSH2_COMPAT", "true")]);
}

fn audit_with(env: &[(&str, &str)]) {
    let mut f = Setup::new().envs(env).serve();
    let program = venv_tool("ssh-audit", "ssh-audit");
    let mut command = bounded(&program, 60);
    command.env("NO_COLOR", "1").args(["-n", "-t", "10", "-p", &f.p.sftp_port().to_string(), "127.0.0.1"]);
    let out = run_command(&mut command, b"");
    let report = format!("ssh-audit exit {}:\n{}\n{}", out.code, out.stdout, out.stderr);
    assert!(out.code != 124 && out.code != 137, "ssh-audit timed out:\n{report}");
    assert_ne!(out.code, 1, "ssh-audit could not connect (is {program:?} installed?):\n{report}");
    assert_ne!(out.code, 3, "ssh-audit rated an algorithm as a failure:\n{report}");
    assert!(out.code == 0 || out.code == 2, "unexpected ssh-audit exit code:\n{report}");
    let fails: Vec<&str> = out.stdout.lines().filter(|l| l.contains("[fail]")).collect();
    assert!(fails.is_empty(), "failures reported: {fails:#?}\n{report}");
    // Strict KEX (Terrapin) must be on.
    assert!(out.stdout.contains("kex-strict-s-v00@openssh.com"), "no strict KEX marker:\n{report}");
    assert!(!out.stdout.to_lowercase().contains("vulnerable to the terrapin"), "{report}");
    // Warnings are allowed by the issue, but shown.
    eprintln!("{report}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!f.server.output().contains("panicked"), "the server panicked:\n{}", f.server.output());
}
