//! `serve` confines itself with Landlock (`sandbox.landlock`): once ready, no thread of the server
//! can open a file outside its data directory and the few system paths it still reads, as the
//! debug-only probe (`TEST_PASSERELLE_SANDBOX_PROBE`) shows from a worker and a blocking thread.
//! Where the kernel has no Landlock the server says so on one line, and that line is asserted.

use std::path::Path;
use std::time::Duration;

use passerelle_tests::{Passerelle, Server, field, free_port};

/// An installation logging JSON whose server will probe `paths` once ready.
fn installation() -> Passerelle {
    let mut p = Passerelle::new();
    p.set_env("PASSERELLE_LOG_FORMAT", "json");
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", free_port()));
    p
}

/// Makes the server probe `paths` once ready.
fn probe(p: &mut Passerelle, paths: &[&Path]) {
    let joined = std::env::join_paths(paths).expect("probe paths without ':'");
    p.set_env("TEST_PASSERELLE_SANDBOX_PROBE", &joined.to_string_lossy());
}

/// `(worker, blocking)` outcomes of the probe of `path`, once logged.
fn probed(server: &mut Server, path: &Path) -> (String, String) {
    server.wait_for_line("sandbox probe", Duration::from_secs(5));
    let wanted = path.display().to_string();
    let events = passerelle_tests::wait_for(Duration::from_secs(5), || {
        server.json_events("sandbox probe").into_iter().find(|e| field(e, "path") == Some(&wanted))
    })
    .unwrap_or_else(|| panic!("no probe of {wanted}:\n{}", server.output()));
    let outcome = |name| field(&events, name).unwrap_or_default().to_owned();
    (outcome("worker"), outcome("blocking"))
}

/// A readable file outside the data directory, and one inside it.
fn files(p: &Passerelle) -> (std::path::PathBuf, std::path::PathBuf) {
    let outside = p.scratch().join("secret.txt");
    std::fs::write(&outside, "not for the server\n").unwrap();
    let inside = p.data_dir().join("readable.txt");
    std::fs::write(&inside, "the server's own\n").unwrap();
    (outside, inside)
}

#[test]
fn a_file_outside_the_data_directory_cannot_be_opened_by_the_running_server() {
    let mut p = installation();
    let (outside, inside) = files(&p);
    probe(&mut p, &[&outside, &inside, Path::new("/root")]);
    let mut server = p.serve(&[]);
    let line = server.wait_for_line("sandbox:", Duration::from_secs(5));
    if line.contains("the kernel has no Landlock") {
        println!("this kernel has no Landlock; the server said so: {line}");
        let (worker, _) = probed(&mut server, &outside);
        assert_eq!(worker, "opened", "without Landlock nothing is confined");
        return;
    }
    assert!(line.contains("landlock ruleset in force"), "{line}");
    let event = &server.json_events("sandbox: landlock ruleset in force")[0];
    println!("sandbox: {event}");
    assert_eq!(field(event, "read_write"), Some(p.data_dir().to_string_lossy().as_ref()), "{event}");
    assert_eq!(field(event, "enforced"), Some("fully"), "{event}");

    for path in [outside.as_path(), Path::new("/root")] {
        let (worker, blocking) = probed(&mut server, path);
        assert!(worker.starts_with("refused: Permission denied"), "{}: worker thread: {worker}", path.display());
        assert!(blocking.starts_with("refused: Permission denied"), "{}: blocking thread: {blocking}", path.display());
    }
    assert_eq!(probed(&mut server, &inside), ("opened".to_owned(), "opened".to_owned()));
    assert!(server.is_running());
}

#[test]
fn sandbox_landlock_false_leaves_the_server_unconfined_and_says_so() {
    let mut p = installation();
    let (outside, _) = files(&p);
    probe(&mut p, &[&outside]);
    p.set_env("PASSERELLE_SANDBOX_LANDLOCK", "false");
    let mut server = p.serve(&[]);
    let line = server.wait_for_line("sandbox:", Duration::from_secs(5));
    assert!(line.contains("landlock off (sandbox.landlock = false)"), "{line}");
    assert_eq!(probed(&mut server, &outside), ("opened".to_owned(), "opened".to_owned()));
}
