//! The admin HTTP endpoint (`admin.listen`): `GET /healthz` answers while
//! the catalog does, `GET /metrics` is Prometheus text whose counters follow
//! what clients do (logins, uploads and their bytes, import jobs), and
//! nothing else is served.

use std::time::Duration;

use passerelle_tests::{Outcome, Setup, bounded, run_command, wait_for};

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// `curl` against the endpoint: status code and body.
fn get(port: u16, args: &[&str], path: &str) -> (String, String) {
    let mut command = bounded("curl", 20);
    command.args(["-s", "-w", "\n%{http_code}"]).args(args).arg(format!("http://127.0.0.1:{port}{path}"));
    let out: Outcome = run_command(&mut command, b"");
    let (body, code) = out.stdout.rsplit_once('\n').expect("curl prints the status last");
    (code.to_owned(), body.to_owned())
}

/// The value of the sample `name{labels}` in a Prometheus exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn healthz_and_metrics_follow_what_clients_do() {
    let f = Setup::new().user("acme", "alice", PASSWORD).serve();
    let port = f.p.admin_port();

    assert_eq!(get(port, &[], "/healthz"), ("200".into(), "ok\n".into()));
    let (code, _) = get(port, &[], "/metrics");
    assert_eq!(code, "200");

    let local = f.work("alice").join("hello.csv");
    std::fs::write(&local, "a;b\n1;2\n").unwrap();
    let out = f.sftp("alice").sftp_batch(&format!("put {} /inbox/hello.csv\n", local.display()));
    assert!(out.success(), "{}", out.stderr);

    // The upload is counted with its bytes; the file (no profile) becomes a
    // rejected import job.
    let metrics = wait_for(Duration::from_secs(30), || {
        let (_, metrics) = get(port, &[], "/metrics");
        sample(&metrics, r#"passerelle_import_jobs{status="rejected"}"#).is_some().then_some(metrics)
    })
    .expect("the import job shows in /metrics");
    assert_eq!(sample(&metrics, r#"passerelle_events_total{protocol="sftp",action="login",outcome="ok"}"#), Some(1.0));
    assert_eq!(sample(&metrics, r#"passerelle_events_total{protocol="sftp",action="upload",outcome="ok"}"#), Some(1.0));
    assert_eq!(sample(&metrics, r#"passerelle_transferred_bytes_total{protocol="sftp",action="upload"}"#), Some(8.0));
    assert_eq!(sample(&metrics, r#"passerelle_import_jobs{status="rejected"}"#), Some(1.0));
    assert_eq!(sample(&metrics, "passerelle_catalog_up"), Some(1.0));
    assert_eq!(sample(&metrics, "passerelle_bans"), Some(0.0));
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics text: {metrics}");
    assert!(!metrics.contains("alice") && !metrics.contains("acme"), "no names in metrics: {metrics}");

    // Nothing but the two GETs.
    assert_eq!(get(port, &[], "/").0, "404");
    assert_eq!(get(port, &["-X", "POST"], "/metrics").0, "405");
    assert_eq!(get(port, &["-X", "DELETE"], "/healthz").0, "405");
    let (code, _) = get(port, &["-H", &format!("X-Big: {}", "a".repeat(16 * 1024))], "/healthz");
    assert_eq!(code, "431", "an oversized request is refused");
}

#[test]
fn serve_refuses_to_start_when_the_admin_port_is_taken() {
    let mut setup = Setup::new().user("acme", "alice", PASSWORD);
    let p = &mut setup.p;
    p.set_env("PASSERELLE_ADMIN_LISTEN", &format!("127.0.0.1:{}", p.admin_port()));
    let taken = std::net::TcpListener::bind(("127.0.0.1", p.admin_port())).unwrap();
    let out = p.run(&["serve"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("admin.listen"), "{}", out.stderr);
    drop(taken);
}
