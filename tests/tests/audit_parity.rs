//! One event, one record: a transfer that breaks off reads the same in the
//! audit trail whether it came over SFTP or FTPS.

use passerelle_tests::{AuditRow, Fixture, Setup, random_file, wait_for_audit};
use serde_json::json;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";
/// Large enough that no transfer of it finishes before the client cuts it;
/// `.part` keeps the import pipeline away from it.
const BIG: &str = "/inbox/big.bin.part";
const BIG_SIZE: u64 = 64 * 1024 * 1024;

fn start() -> Fixture {
    Setup::new().user("acme", "alice", PASSWORD).ftps().serve()
}

/// The audit row of `action` over `protocol`, once it is recorded.
fn row(f: &Fixture, protocol: &str, action: &str) -> AuditRow {
    wait_for_audit(&f.p, &format!("{action} over {protocol}"), |r| {
        r.protocol == protocol && r.action == action && r.path == BIG
    })
}

#[test]
fn an_interrupted_download_is_recorded_alike_over_sftp_and_ftps() {
    let f = start();
    random_file(&f.inbox("acme").join("big.bin.part"), BIG_SIZE);

    let report = f.sftp("alice").paramiko(json!([{"op": "read_then_cut", "remote": BIG, "bytes": 1024 * 1024}]));
    assert_eq!(report["results"][0]["ok"], true, "{report}");
    let report = f.ftps("alice").script(json!({"ops": [{"op": "abort_get", "remote": BIG}]}));
    assert_eq!(report["results"][0]["value"]["codes"], json!([426, 226]), "{report}");

    let (sftp, ftps) = (row(&f, "sftp", "download"), row(&f, "ftps", "download"));
    for r in [&sftp, &ftps] {
        assert_eq!(r.outcome, "failed", "{r:?}");
        assert_eq!(r.detail, "interrupted before the end of the transfer", "{r:?}");
        assert!(r.bytes.is_some_and(|sent| sent < BIG_SIZE), "{r:?}");
    }
}

#[test]
fn an_interrupted_upload_is_recorded_alike_over_sftp_and_ftps() {
    let f = start();
    let report = f.sftp("alice").paramiko(json!([{"op": "write_then_cut", "remote": BIG, "bytes": 1024 * 1024}]));
    assert_eq!(report["results"][0]["ok"], true, "{report}");
    let sftp = row(&f, "sftp", "upload");
    let report = f.ftps("alice").script(json!({"ops": [{"op": "abort_put", "remote": BIG, "data": "a;b\n"}]}));
    assert_eq!(report["results"][0]["value"]["codes"], json!([426, 226]), "{report}");
    let ftps = row(&f, "ftps", "upload");
    for r in [&sftp, &ftps] {
        assert_eq!(r.outcome, "aborted", "{r:?}");
        assert_eq!(r.detail, "interrupted before completion; discarded", "{r:?}");
    }
}
