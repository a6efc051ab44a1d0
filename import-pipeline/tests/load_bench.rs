//! Timing of one load, for `benches/import-vs-copy.sh`; not a test.
//!
//! ```text
//! LOAD_BENCH_FILE=big.csv LOAD_BENCH_PROFILE=profile.toml \
//!   cargo test --release -p passerelle-import --test load_bench -- --ignored --nocapture
//! ```
//!
//! Provisions a fresh tenant database (`LOAD_BENCH_BACKEND`: `postgres`,
//! the default, with the admin URL from `TEST_PG_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; or `sqlite`, a tenant
//! file in a temporary directory, as the default configuration has), loads the file
//! with the first profile of `LOAD_BENCH_PROFILE`, prints
//! `load_seconds=…` (what an import job runs: validation, digest and load
//! in one pass) and `validate_seconds=…` (validation alone, with the
//! digest, no database, for comparison), then destroys the database.

use std::fs::File;
use std::time::Instant;

use passerelle_catalog::TenantName;
use passerelle_import::{Discard, ImportRef, Profiles, TenantDbProvisioner, load, validate};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run by benches/import-vs-copy.sh"]
async fn load_bench() {
    let path = std::env::var("LOAD_BENCH_FILE").expect("LOAD_BENCH_FILE");
    let profile_path = std::env::var("LOAD_BENCH_PROFILE").expect("LOAD_BENCH_PROFILE");
    let profiles = Profiles::parse(&std::fs::read_to_string(profile_path).unwrap()).unwrap();
    let profile = profiles.iter().next().expect("a profile").clone();
    let admin =
        std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    let started = Instant::now();
    let report = validate(File::open(&path).unwrap(), &profile, &mut Discard).unwrap();
    let validate_seconds = started.elapsed().as_secs_f64();
    assert!(report.is_accepted(), "{:?}", report.errors);

    let dir = tempfile::tempdir().unwrap();
    let provisioner = match std::env::var("LOAD_BENCH_BACKEND").as_deref() {
        Ok("sqlite") => TenantDbProvisioner::Sqlite { dir: dir.path().join("tenant-db") },
        Ok("postgres") | Err(_) => {
            let prefix = format!("plb{}_", hex::encode(rand::random::<[u8; 4]>()));
            TenantDbProvisioner::postgres(&admin, &prefix).unwrap()
        }
        Ok(other) => panic!("LOAD_BENCH_BACKEND={other}: expected sqlite or postgres"),
    };
    let database = provisioner.create(&TenantName::parse("bench").unwrap()).await.unwrap();
    let started = Instant::now();
    // load() reads in 64 KiB chunks itself; the File is not buffered again.
    let outcome = load(&database, &profile, File::open(&path).unwrap(), ImportRef::new("bench")).await;
    let load_seconds = started.elapsed().as_secs_f64();
    provisioner.destroy(&database).await.unwrap();
    let outcome = outcome.unwrap();
    assert!(outcome.is_imported(), "{:?}", outcome.report.errors);
    println!("rows={}", outcome.rows);
    println!("bytes={}", outcome.report.bytes);
    println!("validate_seconds={validate_seconds:.3}");
    println!("load_seconds={load_seconds:.3}");
}
