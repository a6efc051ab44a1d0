//! `serve`: prepares keys and the catalog, sandboxes itself, then runs until SIGINT or SIGTERM.
//! The protocol front-ends (SFTP, FTPS) and the import pipeline attach here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use passerelle_catalog::{Login, TenantName};
use passerelle_config::Config;
use passerelle_keys::HostKeys;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::admin::Admin;
use crate::admin_endpoint::AdminEndpoint;
use crate::backup::Backups;
use crate::config_source::ConfigSource;
use crate::engine::Engine;
use crate::engine::fs::TenantFs;
use crate::error::CliError;
use crate::ftps::FtpsServer;
use crate::logging;
use crate::output::say;
use crate::pipeline;
use crate::sftp::SftpServer;

/// Removes upload temporaries that a previous run left behind when it was
/// killed mid-upload: those uploads never completed, and no client holds
/// them now, since this process has not started listening yet.
async fn discard_interrupted_uploads(admin: &Admin) -> Result<(), CliError> {
    for tenant in admin.catalog.tenants().await? {
        let name = TenantName::parse(&tenant.name)?;
        let root = admin.data_dir.tenant_root(&name);
        let fs = TenantFs::open(&root).with_context(|| format!("tenant {name}: cannot open {}", root.display()))?;
        let removed = fs
            .remove_stale_uploads(Duration::ZERO)
            .await
            .with_context(|| format!("tenant {name}: cannot clean interrupted uploads"))?;
        if removed > 0 {
            info!(tenant = %name, removed, "discarded interrupted uploads");
        }
    }
    Ok(())
}

/// Name of the tenant and of the user that `serve --demo` creates.
const DEMO: &str = "demo";

/// The import profile of the demo tenant (`passerelle profile show demo`).
const DEMO_PROFILE: &str = include_str!("demo-profile.toml");

/// Runs the server until SIGINT or SIGTERM, in two runtimes. The first creates what a first start
/// creates (data directory, catalog, keys) and reads the keys; it ends with its threads. Then this
/// thread enters the sandbox (`sandbox.landlock`), and the second runtime, whose every thread is
/// created from here on and so inherits the sandbox, opens the catalog again, binds the listeners
/// and serves.
pub(crate) fn main(source: &ConfigSource, demo: bool) -> Result<(), CliError> {
    let config = source.load()?;
    logging::init(&config.log);
    let (config, host_keys) = crate::runtime()?.block_on(prepare(config, demo))?;
    // Refused here, before anything serves: an unsafe password file, a repository in the data directory.
    let backups = Backups::of(&config)?;
    match &backups {
        // The sandbox needs a local repository's directory to exist (restic initialises it later).
        Some(_) => crate::sandbox::create_backup_repository(&config)?,
        None => info!("backups off (backup.repository is not set)"),
    }
    crate::sandbox::enter(&config, source.file())?;
    crate::runtime()?.block_on(serve(config, host_keys, source, backups))
}

/// Opens or creates the state, logs the keys' fingerprints, creates the demo tenant if asked, and
/// closes the catalog again.
async fn prepare(config: Config, demo: bool) -> Result<(Config, HostKeys), CliError> {
    let crate::state::State { admin, host_keys, tls, created } = crate::state::prepare(config).await?;
    for what in &created {
        info!(created = %what, "first start");
    }
    for (kind, fingerprint) in host_keys.fingerprints() {
        info!(kind = %kind, fingerprint = %fingerprint, "ssh host key");
    }
    info!(fingerprint = %tls.fingerprint_sha256(), "tls certificate");
    if demo {
        create_demo(&admin).await?;
    }
    admin.catalog.close().await;
    Ok((admin.config, host_keys))
}

async fn serve(
    config: Config,
    host_keys: HostKeys,
    source: &ConfigSource,
    backups: Option<Backups>,
) -> Result<(), CliError> {
    let admin = Admin::open(config).await?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    discard_interrupted_uploads(&admin).await?;
    // Before the engine, which shares the limit out.
    crate::engine::raise_open_file_limit();
    let engine = Engine::new(Arc::new(admin.config.clone()), admin.catalog.clone(), admin.data_dir.clone());
    engine.load_bans().await.context("cannot read the bans from the catalog")?;
    // Before the listeners: the other nodes' sessions count from the first login.
    engine.join_cluster().await.context("cannot register the node in the catalog")?;
    // Before the listeners: no upload-completed event may go unheard.
    let imports =
        pipeline::start(&engine, &admin.data_dir, Arc::clone(admin.master_key())).await.context("import pipeline")?;
    let mut sftp = SftpServer::start(engine.clone(), host_keys.keys().to_vec()).await?;
    let mut ftps = FtpsServer::start(engine.clone()).await?;
    let endpoint = AdminEndpoint::start(engine.clone()).await?;
    let backups = backups.map(|backups| {
        let keyring = passerelle_import::Keyring::new(engine.catalog().clone(), Arc::clone(admin.master_key()));
        crate::backup::schedule::start(engine.clone(), keyring, backups)
    });
    info!(data_dir = %admin.config.data_dir.display(), "passerelle ready");
    crate::service::ready();
    #[cfg(debug_assertions)]
    crate::sandbox::probe().await;
    let signal_name = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => crate::reload::check(&admin.config, source),
        }
    };
    info!(signal = signal_name, "shutting down");
    crate::service::stopping();
    if let Some(backups) = backups {
        // A run cut short leaves no snapshot (restic writes it last); the next start takes one.
        backups.abort();
    }
    drain(&engine, &mut sftp, &mut ftps).await;
    ftps.shutdown().await;
    sftp.shutdown().await;
    // Its jobs' leases go back to the catalog: another node resumes them at once.
    imports.shutdown().await;
    // Last: a load balancer saw 503 until the connections were gone.
    endpoint.shutdown().await;
    engine.flush_audit().await;
    engine.leave_cluster().await;
    drop(engine);
    admin.catalog.close().await;
    info!("stopped");
    Ok(())
}

/// The drain: the node says `draining` (`/healthz` answers 503), the
/// listeners close, and live connections may finish for up to
/// `shutdown.drain_timeout`; those left are then ended by the shutdown.
async fn drain(engine: &Engine, sftp: &mut SftpServer, ftps: &mut FtpsServer) {
    engine.drain().await;
    sftp.listeners().close();
    ftps.listeners().close();
    let timeout = engine.config().shutdown.drain_timeout;
    info!(drain_timeout_secs = timeout.as_secs_f64(), "draining: listeners closed, live connections finishing");
    let drained = async {
        sftp.listeners().drained().await;
        ftps.listeners().drained().await;
    };
    if tokio::time::timeout(timeout, drained).await.is_err() {
        warn!("drain: connections still open after shutdown.drain_timeout are ended");
    }
}

/// Creates tenant `demo` and user `demo` with a generated password, printed
/// once on standard output (never logged). An existing demo tenant is kept.
async fn create_demo(admin: &Admin) -> Result<(), CliError> {
    let tenant = TenantName::parse(DEMO)?;
    let login = Login::parse(DEMO)?;
    if admin.catalog.tenant(&tenant).await?.is_some() {
        info!(tenant = DEMO, "demo tenant exists already; its password is unchanged (user passwd demo to reset)");
        return Ok(());
    }
    admin.add_tenant(&tenant, &[], false).await?;
    let password = passerelle_keys::generate_password();
    admin.add_user(&tenant, &login, Some(&password), &[], &[]).await?;
    admin.catalog.set_import_profiles(&tenant, DEMO_PROFILE).await?;
    let employees = admin.data_dir.tenant_root(&tenant).join("inbox").join("employees");
    std::fs::create_dir_all(&employees).with_context(|| format!("cannot create {}", employees.display()))?;
    say!("demo tenant created: login {DEMO}, password {password} (shown once)");
    say!("demo import profile: drop CSV files in /inbox/employees/; receipts appear in /outbox/employees/");
    Ok(())
}
