//! Running as a systemd service: the unit's sandbox scores "OK" in `systemd-analyze security`, the
//! server speaks the `Type=notify` protocol (READY once serving, STOPPING at shutdown) and SIGHUP
//! checks the configuration file without stopping anything; a log reader that goes away (journald
//! restarting) costs log lines, never the server.

use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use passerelle_tests::{Passerelle, free_port};
use rustix::process::Signal;

/// The highest exposure the unit may have: systemd's "OK" band ends at 2.0.
const MAX_EXPOSURE: f64 = 2.0;

#[test]
fn the_unit_scores_ok_in_systemd_analyze_security() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/passerelle.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let verdict = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    let score: f64 = verdict
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {verdict:?}"));
    // The test command's output shows the score (cargo test prints it with --nocapture or on failure;
    // scripts/test prints it in its own phase).
    println!("passerelle.service exposure: {score} ({verdict})");
    assert!(score <= MAX_EXPOSURE, "exposure {score} > {MAX_EXPOSURE}:\n{text}");
}

/// A notification socket standing in for systemd's.
fn notify_socket(p: &Passerelle) -> (UnixDatagram, std::path::PathBuf) {
    let path = p.scratch().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_once_serving_and_stopping_at_shutdown_are_sent_to_notify_socket() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
    let (socket, path) = notify_socket(&p);
    p.set_env("NOTIFY_SOCKET", &path.to_string_lossy());
    let mut server = p.serve(&[]);
    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", p.sftp_port())).is_ok(), "sftp not listening at READY");
    let status = server.stop_with(Signal::TERM);
    assert!(status.success(), "{status:?}");
    let stopping = receive(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

#[test]
fn sighup_names_changed_keys_and_keeps_serving() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
    let config = p.scratch().join("passerelle.toml");
    std::fs::write(&config, "[limits]\nmax_auth_tries = 6\n").unwrap();
    p.set_env("PASSERELLE_CONFIG", &config.to_string_lossy());
    let mut server = p.serve(&[]);

    server.signal(Signal::HUP);
    server.wait_for_line("SIGHUP: configuration unchanged", Duration::from_secs(5));

    std::fs::write(&config, "[limits]\nmax_auth_tries = 3\n").unwrap();
    server.signal(Signal::HUP);
    let line = server.wait_for_line("SIGHUP: changed keys", Duration::from_secs(5));
    assert!(line.contains("limits.max_auth_tries") && line.contains("next restart"), "{line}");

    std::fs::write(&config, "[limits]\nmax_auth_tries = \"many\"\n").unwrap();
    server.signal(Signal::HUP);
    let line = server.wait_for_line("SIGHUP: the configuration is not valid", Duration::from_secs(5));
    assert!(line.contains("limits.max_auth_tries"), "{line}");
    assert!(server.is_running(), "a bad file on SIGHUP must not stop the server");
    assert!(std::net::TcpStream::connect(("127.0.0.1", p.sftp_port())).is_ok());
}

#[test]
fn a_server_whose_log_reader_is_gone_keeps_serving_and_stops_cleanly() {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
    let mut child = p
        .command(&["serve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn passerelle serve");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    // Bounded by the server's own start; a server that never gets ready ends the stream with its exit.
    let ready = stderr.lines().map_while(Result::ok).any(|line| line.contains("passerelle ready"));
    assert!(ready, "the server did not get ready");
    // The reader is gone (as when journald restarts): the next log lines cannot be written.
    assert!(std::net::TcpStream::connect(("127.0.0.1", p.sftp_port())).is_ok());
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the server died when its log reader went away");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
