//! Behaviour of configuration loading, as the server and the operator see it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passerelle_config::{
    ByteSize, Config, ConfigError, LogFormat, QuotasConfig, Sources, TenantDbBackend, TlsVersion, example_toml,
    reference_markdown,
};

const EXAMPLE: &str = "passerelle.example.toml";
const REFERENCE: &str = "REFERENCE.md";

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Loads `toml` as the config file, with `env` as the environment.
fn load_with(toml: &str, env_pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passerelle.toml");
    std::fs::write(&file, toml).unwrap();
    Config::load(Sources { file: Some(&file), data_dir: None, env: env(env_pairs) })
}

fn refusal(toml: &str) -> String {
    load_with(toml, &[]).expect_err("must be refused").to_string()
}

fn assert_in_sync(name: &str, generated: &str) {
    let path = committed(name);
    if std::env::var_os("UPDATE_CONFIG_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "config/{name} is out of date with the key definitions; regenerate it with\n    \
         UPDATE_CONFIG_DOCS=1 cargo test -p passerelle-config\nand commit the result"
    );
}

#[test]
fn defaults_are_the_documented_interface_values() {
    let c = Config::load(Sources::default()).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("./passerelle-data"));
    assert_eq!(c.sftp.listen, [addr("127.0.0.1:2222")]);
    assert_eq!(c.ftps.explicit_listen, [addr("127.0.0.1:2121")]);
    assert_eq!(c.ftps.implicit_listen, [addr("127.0.0.1:9990")]);
    assert_eq!(c.ftps.passive_ports, 50000..=50100);
    assert_eq!(c.ftps.cert, Path::new("./passerelle-data").join("tls").join("cert.pem"));
    assert_eq!(c.ftps.key, Path::new("./passerelle-data").join("tls").join("key.pem"));
    assert_eq!(c.ftps.tls_versions, [TlsVersion::Tls12]);
    assert!(c.ftps.require_session_reuse);
    assert!(c.ftps.require_extended_master_secret);
    assert_eq!(c.catalog.url, "sqlite://./passerelle-data/catalog.db");
    assert!(!c.catalog.is_postgres());
    assert_eq!(c.tenant_db.backend, TenantDbBackend::Sqlite);
    assert_eq!(c.tenant_db.admin_url, None);
    assert_eq!(c.tenant_db.name_prefix, "passerelle_");
    assert_eq!(c.admin.listen, addr("127.0.0.1:9100"));
    assert_eq!(c.archive.retention_days, 30);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.limits.login_grace_time, Duration::from_secs(30));
    assert_eq!(c.limits.max_auth_tries, 6);
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(15 * 60));
    assert_eq!(c.limits.max_sessions_per_user, 10);
    assert_eq!(c.limits.max_connections_per_ip, 20);
    assert_eq!(c.limits.max_connections, 500);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        usize::try_from(c.limits.max_concurrent_password_checks).unwrap(),
        cores,
        "as many password checks as cores"
    );
    assert_eq!(c.quotas, QuotasConfig { bytes: None, files: None }, "no quota unless configured");
    assert_eq!(usize::try_from(c.pipeline.workers).unwrap(), cores.min(64), "as many import workers as cores");
}

#[test]
fn committed_example_file_is_generated_from_the_key_definitions() {
    assert_in_sync(EXAMPLE, &example_toml());
}

#[test]
fn committed_reference_is_generated_from_the_key_definitions() {
    assert_in_sync(REFERENCE, &reference_markdown());
}

#[test]
fn example_file_loads_and_means_the_defaults() {
    let from_example = load_with(&example_toml(), &[]).unwrap();
    assert_eq!(from_example, Config::load(Sources::default()).unwrap());
}

#[test]
fn example_file_mentions_every_key_and_its_environment_variable() {
    let example = example_toml();
    for line in reference_markdown().lines().skip_while(|l| !l.starts_with("| ---")).skip(1) {
        let env_var = line.split('`').nth(3).unwrap();
        assert!(example.contains(env_var), "{env_var} missing from the example");
    }
}

#[test]
fn data_dir_moves_the_paths_that_default_from_it() {
    let c = Config::load(Sources { data_dir: Some(Path::new("/srv/p")), ..Sources::default() }).unwrap();
    assert_eq!(c.ftps.cert, Path::new("/srv/p/tls/cert.pem"));
    assert_eq!(c.ftps.key, Path::new("/srv/p/tls/key.pem"));
    assert_eq!(c.catalog.url, "sqlite:///srv/p/catalog.db");
}

#[test]
fn unknown_key_in_file_is_refused_naming_it() {
    assert_eq!(refusal("[sftp]\nlisen = [\"127.0.0.1:22\"]\n"), "config: sftp.lisen: unknown key");
    assert_eq!(refusal("colour = 1\n"), "config: colour: unknown key");
    assert_eq!(refusal("[smtp]\nhost = 1\n"), "config: smtp: unknown key");
}

#[test]
fn values_of_the_wrong_type_are_refused_naming_the_key() {
    let message = refusal("[archive]\nretention_days = \"thirty\"\n");
    assert!(message.starts_with("config: archive.retention_days: invalid type"), "{message}");
    let message = refusal("[sftp]\nlisten = [\"127.0.0.1:22\", \"nowhere\"]\n");
    assert!(message.starts_with("config: sftp.listen[1]: "), "{message}");
    let message = refusal("[ftps]\nrequire_session_reuse = \"yes\"\n");
    assert!(message.starts_with("config: ftps.require_session_reuse: "), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn values_out_of_range_are_refused_naming_the_key() {
    assert_eq!(
        refusal("[archive]\nretention_days = 0\n"),
        "config: archive.retention_days: must be between 1 and 3650 (got 0)"
    );
    assert!(
        refusal("[ftps]\npassive_ports = \"100-200\"\n").starts_with("config: ftps.passive_ports: ports below 1024")
    );
    assert!(refusal("[ftps]\npassive_ports = \"50100-50000\"\n").starts_with("config: ftps.passive_ports: "));
    assert!(refusal("[limits]\nlogin_grace_time = \"11m\"\n").starts_with("config: limits.login_grace_time: "));
    assert!(refusal("[limits]\nidle_timeout = \"0s\"\n").starts_with("config: limits.idle_timeout: "));
    assert!(refusal("[limits]\nmax_auth_tries = 21\n").starts_with("config: limits.max_auth_tries: "));
    assert_eq!(
        refusal("[limits]\nmax_concurrent_password_checks = 0\n"),
        "config: limits.max_concurrent_password_checks: must be between 1 and 1024 (got 0)"
    );
    assert_eq!(refusal("[pipeline]\nworkers = 0\n"), "config: pipeline.workers: must be between 1 and 64 (got 0)");
    assert_eq!(refusal("[pipeline]\nworkers = 65\n"), "config: pipeline.workers: must be between 1 and 64 (got 65)");
    assert!(refusal("[tenant_db]\nname_prefix = \"Bad-\"\n").starts_with("config: tenant_db.name_prefix: "));
    assert!(refusal("[catalog]\nurl = \"mysql://db/x\"\n").starts_with("config: catalog.url: "));
    assert!(refusal("[log]\nformat = \"xml\"\n").starts_with("config: log.format: "));
    assert!(refusal("[log]\nlevel = \" \"\n").starts_with("config: log.level: "));
    assert_eq!(
        refusal("[uploads]\nmax_file_size = \"0 B\"\n"),
        "config: uploads.max_file_size: must be over zero and below 8 EiB (got \"0 B\")"
    );
    assert!(refusal("[uploads]\nmax_file_size = \"4 gigs\"\n").contains("expected a size such as \"10 GiB\""));
    assert!(
        refusal("[limits]\nmax_open_files_per_session = 0\n")
            .starts_with("config: limits.max_open_files_per_session: ")
    );
    let c = load_with("[uploads]\nmax_file_size = \"512MiB\"\n", &[]).unwrap();
    assert_eq!(c.uploads.max_file_size.bytes(), 512 << 20);
}

#[test]
fn quotas_take_sizes_and_file_counts_from_the_file_and_the_environment() {
    let c = load_with("[quotas]\nbytes = \"10 GiB\"\nfiles = 10000\n", &[]).unwrap();
    assert_eq!(c.quotas, QuotasConfig { bytes: Some(ByteSize::new(10 << 30)), files: Some(10_000) });
    assert!(c.to_redacted_toml().contains("[quotas]\nbytes = \"10 GiB\"\nfiles = 10000\n"));
    let c = load_with("", &[("PASSERELLE_QUOTAS_BYTES", "500MB"), ("PASSERELLE_QUOTAS_FILES", "7")]).unwrap();
    assert_eq!(c.quotas, QuotasConfig { bytes: Some(ByteSize::new(500_000_000)), files: Some(7) });
    assert!(refusal("[quotas]\nbytes = \"lots\"\n").starts_with("config: quotas.bytes: expected a size such as"));
    assert!(refusal("[quotas]\nbytes = \"0\"\n").starts_with("config: quotas.bytes: must be at least 1 byte"));
    assert!(refusal("[quotas]\nfiles = 0\n").starts_with("config: quotas.files: must be at least 1"));
    assert!(refusal("[quotas]\nfiles = -1\n").starts_with("config: quotas.files"));
}

#[test]
fn backups_need_a_repository_and_an_absolute_password_file() {
    let c = load_with("", &[]).unwrap();
    assert_eq!(c.backup.target, None, "no backups unless configured");
    assert_eq!(c.backup.interval, Duration::from_secs(3600));
    assert_eq!(c.backup.retention_days, 30);
    assert_eq!(c.backup.verify_interval, Duration::from_secs(24 * 3600));
    let c = load_with(
        "[backup]\nrepository = \"rest:https://u:hunter2xyz@backup.example/p\"\npassword_file = \"/etc/p/pw\"\n",
        &[("PASSERELLE_BACKUP_INTERVAL", "30m")],
    )
    .unwrap();
    let target = c.backup.target.clone().expect("backups on");
    assert_eq!(target.password_file, PathBuf::from("/etc/p/pw"));
    assert_eq!(target.local_path(), None, "a REST repository is not a directory");
    assert_eq!(c.backup.interval, Duration::from_secs(1800));
    assert!(!c.to_redacted_toml().contains("hunter2xyz") && !format!("{c:?}").contains("hunter2xyz"));
    let local = load_with("[backup]\nrepository = \"/srv/b\"\npassword_file = \"/etc/p/pw\"\n", &[]).unwrap();
    assert_eq!(local.backup.target.unwrap().local_path(), Some(PathBuf::from("/srv/b")));
    assert_eq!(
        refusal("[backup]\nrepository = \"/srv/b\"\n"),
        "config: backup.password_file: required when backup.repository is set"
    );
    assert!(
        refusal("[backup]\npassword_file = \"/etc/p/pw\"\n").starts_with("config: backup.password_file: only used")
    );
    assert!(
        refusal("[backup]\nrepository = \"/srv/b\"\npassword_file = \"pw\"\n")
            .starts_with("config: backup.password_file: must be an absolute path")
    );
    assert!(refusal("[backup]\nretention_days = 0\n").starts_with("config: backup.retention_days: must be between 1"));
}

#[test]
fn unsafe_tls_versions_are_refused() {
    assert_eq!(
        refusal("[ftps]\ntls_versions = [\"1.2\", \"1.0\"]\n"),
        "config: ftps.tls_versions: TLS 1.0 is unsafe and refused; use \"1.2\" (and optionally \"1.3\")"
    );
    assert!(refusal("[ftps]\ntls_versions = [\"1.1\"]\n").contains("TLS 1.1 is unsafe"));
    assert!(refusal("[ftps]\ntls_versions = [\"SSLv3\"]\n").contains("SSLv3 is unsafe"));
    assert!(refusal("[ftps]\ntls_versions = []\n").starts_with("config: ftps.tls_versions: must not be empty"));
    let c = load_with("[ftps]\ntls_versions = [\"1.3\", \"1.2\"]\n", &[]).unwrap();
    assert_eq!(c.ftps.tls_versions, [TlsVersion::Tls13, TlsVersion::Tls12]);
}

#[test]
fn postgres_tenant_backend_needs_an_admin_url_and_sqlite_refuses_one() {
    assert_eq!(
        refusal("[tenant_db]\nbackend = \"postgres\"\n"),
        "config: tenant_db.admin_url: required when tenant_db.backend = \"postgres\""
    );
    assert!(
        refusal("[tenant_db]\nadmin_url = \"postgres://a:b@h/db\"\n")
            .starts_with("config: tenant_db.admin_url: only used")
    );
    let c = load_with("[tenant_db]\nbackend = \"postgres\"\nadmin_url = \"postgresql://a:b@h/db\"\n", &[]).unwrap();
    assert_eq!(c.tenant_db.backend, TenantDbBackend::Postgres);
}

#[test]
fn environment_overrides_the_file_and_the_flag_overrides_both() {
    let toml = "data_dir = \"/from/file\"\n[sftp]\nlisten = [\"127.0.0.1:1\"]\n[limits]\nmax_auth_tries = 5\n";
    let c = load_with(toml, &[]).unwrap();
    assert_eq!((c.sftp.listen.len(), c.limits.max_auth_tries), (1, 5));
    assert_eq!(c.data_dir, Path::new("/from/file"));

    let vars = [
        ("PASSERELLE_SFTP_LISTEN", "127.0.0.1:2222,127.0.0.1:2223"),
        ("PASSERELLE_LIMITS_MAX_AUTH_TRIES", "3"),
        ("PASSERELLE_DATA_DIR", "/from/env"),
        ("PASSERELLE_CONFIG", "/ignored/here.toml"),
        ("PASSERELLE_TENANT_DB_BACKEND", "postgres"),
        ("PASSERELLE_TENANT_DB_ADMIN_URL", "postgres://admin:pw@db/postgres"),
    ];
    let c = load_with(toml, &vars).unwrap();
    assert_eq!(c.sftp.listen, [addr("127.0.0.1:2222"), addr("127.0.0.1:2223")]);
    assert_eq!(c.limits.max_auth_tries, 3);
    assert_eq!(c.data_dir, Path::new("/from/env"));
    assert_eq!(c.catalog.url, "sqlite:///from/env/catalog.db");
    assert_eq!(c.tenant_db.admin_url.as_deref(), Some("postgres://admin:pw@db/postgres"));

    let flag = Config::load(Sources { file: None, data_dir: Some(Path::new("/from/flag")), env: env(&vars) }).unwrap();
    assert_eq!(flag.data_dir, Path::new("/from/flag"));
}

#[test]
fn bad_environment_values_name_the_key_and_the_variable() {
    let message = load_with("", &[("PASSERELLE_LIMITS_MAX_AUTH_TRIES", "many")]).unwrap_err().to_string();
    assert_eq!(
        message,
        "config: limits.max_auth_tries: PASSERELLE_LIMITS_MAX_AUTH_TRIES: expected an integer (got \"many\")"
    );
    let message = load_with("", &[("PASSERELLE_ARCHIVE_RETENTION_DAYS", "0")]).unwrap_err().to_string();
    assert!(message.ends_with("(set by PASSERELLE_ARCHIVE_RETENTION_DAYS)"), "{message}");
}

#[test]
fn unknown_passerelle_variable_is_refused() {
    let error = load_with("", &[("PASSERELLE_SFTP_LISTN", "127.0.0.1:22")]).unwrap_err();
    assert_eq!(error.to_string(), "config: PASSERELLE_SFTP_LISTN: unknown environment override (no key sftp.listn)");
}

#[test]
fn file_problems_are_one_line_naming_the_file_or_line() {
    let missing = Path::new("/nonexistent/passerelle.toml");
    let message = Config::load(Sources { file: Some(missing), ..Sources::default() }).unwrap_err().to_string();
    assert!(message.starts_with("config: /nonexistent/passerelle.toml: cannot read: "), "{message}");
    let message = refusal("data_dir = \"x\"\n\n[sftp\n");
    assert!(message.starts_with("config: ") && message.contains(".toml, line 3: invalid TOML: "), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn redacted_toml_hides_passwords_and_reloads_to_the_same_config() {
    let toml = "[catalog]\nurl = \"postgres://cat:catpw@db/catalog\"\n\
                [tenant_db]\nbackend = \"postgres\"\nadmin_url = \"postgres://admin:adminpw@db/postgres\"\n";
    let c = load_with(toml, &[]).unwrap();
    assert!(c.catalog.is_postgres());
    let shown = c.to_redacted_toml();
    assert!(!shown.contains("catpw") && !shown.contains("adminpw"), "{shown}");
    assert!(shown.contains("url = \"postgres://cat:***@db/catalog\""), "{shown}");
    assert!(shown.contains("admin_url = \"postgres://admin:***@db/postgres\""), "{shown}");
    let debug = format!("{c:?}");
    assert!(!debug.contains("catpw") && !debug.contains("adminpw"), "{debug}");

    let defaults = Config::load(Sources::default()).unwrap();
    assert_eq!(load_with(&defaults.to_redacted_toml(), &[]).unwrap(), defaults);
}

#[test]
fn sources_and_connection_rates_are_bounded() {
    let c = load_with("", &[]).unwrap();
    assert_eq!(
        (c.defender.ipv6_prefix, c.defender.entries_soft_limit, c.defender.entries_hard_limit),
        (64, 100_000, 150_000)
    );
    assert_eq!((c.limits.connection_rate, c.limits.connection_burst), (10, 20));
    assert_eq!(
        refusal("[defender]\nipv6_prefix = 16\n"),
        "config: defender.ipv6_prefix: must be between 32 and 128 (got 16)"
    );
    assert!(refusal("[defender]\nipv6_prefix = 129\n").contains("must be between 32 and 128 (got 129)"));
    assert_eq!(
        refusal("[defender]\nentries_soft_limit = 10\nentries_hard_limit = 10\n"),
        "config: defender.entries_hard_limit: must be more than defender.entries_soft_limit (got 10 <= 10)"
    );
    assert!(
        refusal("[defender]\nentries_soft_limit = 0\n").starts_with("config: defender.entries_soft_limit: must be")
    );
    assert_eq!(
        refusal("[limits]\nconnection_rate = 0\n"),
        "config: limits.connection_rate: must be between 1 and 100000 (got 0)"
    );
    assert!(refusal("[limits]\nconnection_burst = 0\n").starts_with("config: limits.connection_burst: must be"));
}
