//! The import queue never gets stuck or starved: every legal file name gets
//! its receipt, a job that cannot succeed ends with one instead of being
//! tried again and again, an administrator can cancel a waiting job, files
//! stamped in the future are taken, and one tenant's backlog does not hold
//! back another tenant's files.

use passerelle_tests::{Fixture, Passerelle, Setup, entry_names};

/// The demo profile: `employees/*.csv`, upsert by `employee_id`.
const PROFILE: &str = passerelle_tests::DEMO_PROFILE;

/// The users log in with their keys.
const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

const GOOD: &str = "employee_id;email;hired_on;salary\n1;ada@example.com;10/12/2025;4200,50\n";

/// A running server whose tenants have the demo profile and an `employees` inbox directory.
fn installation(p: Passerelle, tenants: &[(&str, &str)], env: &[(&str, &str)]) -> Fixture {
    let mut setup = Setup::on(p).envs(env);
    for (tenant, login) in tenants {
        setup = setup.user(tenant, login, PASSWORD).profile(tenant, PROFILE).inbox_dirs(tenant, &["employees"]);
    }
    setup.serve()
}

/// A CSV of the demo profile whose one row is employee `id` (distinct content, so never a duplicate).
fn employee(id: u32) -> String {
    format!("employee_id;email;hired_on;salary\n{id};e{id}@example.com;10/12/2025;4200,50\n")
}

#[test]
fn file_names_up_to_255_bytes_get_their_receipts_over_sftp() {
    let f = installation(Passerelle::new(), &[("acme", "alice")], &[]);
    // 255 bytes, multi-byte UTF-8: the receipt's name is shortened.
    let longest = format!("{}x.csv", "é".repeat(125));
    assert_eq!(longest.len(), 255);
    // 240 bytes: the receipt's own name fits, a temporary named after it did not.
    let long = format!("{}.csv", "n".repeat(236));
    for (name, content) in [(&longest, employee(1)), (&long, employee(2))] {
        let path = format!("employees/{name}");
        f.upload("alice", &path, content.as_bytes());
        let receipt = f.receipt("alice", &path);
        assert_eq!(receipt["status"], "imported", "{receipt}");
        assert_eq!(receipt["file"], path.as_str(), "the receipt names the whole path");
    }
    // The shortened name: the first 226 bytes (113 characters), `~`, 16 hex digits.
    let shortened = f.receipt_path(&format!("employees/{longest}"));
    let name = shortened.rsplit_once('/').unwrap().1;
    assert!(name.len() <= 255 && name.starts_with(&"é".repeat(113)) && name.ends_with(".result.json"), "{name}");
    // Nothing left behind: no temporaries, receipts removed by `receipt`.
    assert_eq!(entry_names(&f.outbox("acme").join("employees")), Vec::<String>::new());
    assert_eq!(entry_names(&f.inbox("acme").join("employees")), Vec::<String>::new());
    drop(f.server);
}
