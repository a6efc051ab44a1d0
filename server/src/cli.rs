//! The command line, defined once: `--help` is generated from these docs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// passerelle: a secure managed file-transfer server (SFTP, FTPS) with per-tenant imports.
#[derive(Debug, Parser)]
#[command(name = "passerelle", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// Configuration file (TOML). Also PASSERELLE_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` of the file and PASSERELLE_DATA_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server until SIGINT or SIGTERM; SIGHUP reloads the FTPS certificate and checks the
    /// configuration file (changed keys need a restart).
    Serve {
        /// Also create tenant `demo` and user `demo` (password printed once).
        #[arg(long)]
        demo: bool,
    },
    /// Create the data directory, catalog, master key, SSH host keys and self-signed FTPS certificate that
    /// `serve` creates at its first start, and nothing else; what exists is kept. The other commands need them.
    Init,
    /// Validate or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage users' SSH public keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show the server's own keys.
    #[command(subcommand)]
    Hostkey(HostkeyCommand),
    /// Sources (addresses, IPv6 networks) banned by the defender.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Print the audit trail, oldest first (the newest `--limit` events); `audit verify` checks its chain.
    #[command(args_conflicts_with_subcommands = true)]
    Audit(AuditArgs),
    /// Manage tenants' import profiles: which files of `/inbox` are imported, into which table.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Follow, inspect and retry import jobs (one per file handed to the import pipeline).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Back up to the restic repository of `[backup]`, verify the latest backup, list backups, or
    /// restore one into a new data directory (the disaster-recovery procedure).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Check or read the encrypted archive of imported originals.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Manage the master key that protects every tenant's data key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The nodes sharing the catalog: version, state, last heartbeat, sessions, running import jobs.
    #[command(subcommand)]
    Node(NodeCommand),
    /// For packagers: write shell completions (DIR/completions) and man pages (DIR/man).
    #[command(hide = true)]
    GenerateAssets {
        /// Directory to write into (created if absent).
        dir: PathBuf,
    },
}

/// `backup` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Copy the catalog, tenant databases, host keys, TLS identity and archive consistently and store
    /// them as one snapshot (then forget snapshots older than backup.retention_days).
    Run(JsonFlag),
    /// Restore the latest snapshot into a scratch directory and check every file, database and row
    /// count against its manifest, and a rotating share of the repository's packs (exit 1 on any failure).
    Verify {
        /// Read every pack of the repository, not only this period's share.
        #[arg(long)]
        read_all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the snapshots in the repository, oldest first.
    List(JsonFlag),
    /// Restore a snapshot into a new data directory that `serve --data-dir DIR` starts from; PostgreSQL
    /// databases are recreated under their original names on the configured server.
    Restore {
        /// Snapshot id (as `backup list` prints it) or `latest`.
        snapshot: String,
        /// The new data directory: absent or empty.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Drop and recreate PostgreSQL databases and roles of the same names if they exist (refused otherwise).
        #[arg(long)]
        replace_databases: bool,
    },
}

/// `archive` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// Decrypt every archived original and compare it with the SHA-256 its import recorded; exit 1 if any
    /// fails, naming it.
    Verify {
        /// Only the archive of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Decrypt one archive file (from the archive or a copy of it) with the data key its header names.
    Decrypt {
        /// The encrypted file.
        file: PathBuf,
        /// Where to write the original (a new file, 0600); default: standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `keys` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Replace the master key: every tenant's data key is re-wrapped under a new one in one catalog
    /// transaction, the new key file takes the old one's place, and the old one is kept as `<file>.old`
    /// (0600) until you delete it. No archive is touched. Stop `serve` first; then update your offline copy.
    RotateMaster,
}

/// `profile` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Check a tenant's profile file (TOML, `[[import]]` tables) and store it, replacing the previous one.
    Set {
        /// Tenant name.
        tenant: String,
        /// Profile file (at most 1 MiB), `-` for standard input.
        file: PathBuf,
    },
    /// List a tenant's import profiles.
    List {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Print a tenant's profile file as stored, ready to edit and `profile set` again (with --json: the
    /// text and the profiles `profile list --json` prints).
    Show {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `import` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// List import jobs, oldest first (the most recent `--limit` ones).
    List(ImportListArgs),
    /// Show every field of one import job.
    Show {
        /// Job id, as `import list` prints it.
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Try a waiting job now, or run a rejected job again with the current profiles.
    Retry {
        /// Job id, as `import list` prints it.
        id: String,
        /// Wait for the run to end and print its verdict (exit 1 unless imported or duplicate).
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1).
        #[arg(long, value_name = "SECONDS", default_value_t = 3600, requires = "wait",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
    /// End a job that is received, validating or waiting-retry: rejected, with a receipt, its original archived.
    Cancel {
        /// Job id, as `import list` prints it.
        id: String,
    },
}

/// `import list` filters.
#[derive(Debug, Args)]
pub(crate) struct ImportListArgs {
    /// Only jobs of this tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only jobs in this status: received, validating, loading, waiting-retry, imported, rejected, duplicate.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// At most this many jobs (the most recent).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) limit: u32,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `node` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// List the nodes: `gone` when silent for longer than cluster.lease_timeout, `stopped` after a clean exit.
    List(JsonFlag),
}

/// `ban` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum BanCommand {
    /// List the bans in force.
    List(JsonFlag),
    /// Ban an address or a network for defender.ban_time (the server sees it within a second or two).
    Add {
        /// IPv4 or IPv6 address, or network in CIDR notation (`2001:db8:1:2::/64`).
        ip: String,
    },
    /// Lift the ban of an address or network and forget its offences (the server sees it within a second
    /// or two). An IPv6 address also lifts the ban of its defender.ipv6_prefix network.
    Remove {
        /// IPv4 or IPv6 address, or network in CIDR notation (`2001:db8:1:2::/64`).
        ip: String,
    },
}

/// `audit` filters.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only events of this tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only events of this login.
    #[arg(long)]
    pub(crate) login: Option<String>,
    /// Only events since then: a duration ago (`90s`, `30m`, `1h`, `2d`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// At most this many events (the newest).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) limit: u32,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
    #[command(subcommand)]
    pub(crate) command: Option<AuditCommand>,
}

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that no audit row was changed, removed or inserted since it was written (each row's MAC
    /// chains it to the one before); exit 1 naming the first row that was.
    Verify {
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `tenant copy-anonymized SOURCE --to TARGET | --to-file FILE`.
#[derive(Debug, Args)]
pub(crate) struct CopyAnonymizedArgs {
    /// The tenant whose tables are copied (not a test zone).
    pub(crate) source: String,
    #[command(flatten)]
    pub(crate) target: CopyTargetArgs,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// Where `tenant copy-anonymized` writes: one of `--to`, `--to-file`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct CopyTargetArgs {
    /// A tenant created with `tenant add --test-zone`; its copies of the tables are replaced.
    #[arg(long, value_name = "TENANT")]
    pub(crate) to: Option<String>,
    /// A new standalone SQLite file (refused if it exists), created 0600.
    #[arg(long, value_name = "FILE")]
    pub(crate) to_file: Option<PathBuf>,
}

/// `--set CIDR... | --clear` of the allow-ip verbs.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct AllowIpChange {
    /// The networks (CIDR) allowed from now on, replacing the current list.
    #[arg(long, value_name = "CIDR", num_args = 1..)]
    pub(crate) set: Vec<String>,
    /// Allow any address again.
    #[arg(long)]
    pub(crate) clear: bool,
}

/// `--bytes SIZE --files N | --clear` of `tenant quota`.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct QuotaChange {
    /// Bytes the tenant may store: "10 GiB", "500 MiB", "500MB" or a number of bytes.
    #[arg(long, value_name = "SIZE", conflicts_with = "clear")]
    pub(crate) bytes: Option<String>,
    /// Files the tenant may store, at least 1.
    #[arg(long, value_name = "N", conflicts_with = "clear")]
    pub(crate) files: Option<u64>,
    /// Remove the tenant's own quota: the `[quotas]` defaults of the configuration apply again.
    #[arg(long)]
    pub(crate) clear: bool,
}

/// `--json` for list and show verbs.
#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `config` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check the configuration; exit 2 with the offending key if it is refused.
    Check,
    /// Print the effective configuration, secrets redacted.
    Show,
}

/// `tenant` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant: its tree, its own database and database account.
    Add {
        /// Tenant name: [a-z0-9][a-z0-9-]{0,62}.
        name: String,
        /// Networks (CIDR) its users may log in from; repeatable. Default: any.
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ip: Vec<String>,
        /// Flag it as a test zone: it may receive anonymized copies (`tenant copy-anonymized`) and is
        /// never the source of one.
        #[arg(long)]
        test_zone: bool,
    },
    /// Copy the tables of SOURCE's import profiles into a test-zone tenant's database or a new SQLite
    /// file, every personal column (`personal = ...` in the profile) replaced irreversibly by values of
    /// the same type and shape.
    CopyAnonymized(CopyAnonymizedArgs),
    /// Replace or clear the networks a tenant's users may log in from.
    AllowIp {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        change: AllowIpChange,
    },
    /// Set a tenant's own quota (either limit or both), or `--clear` it to apply the `[quotas]` defaults again.
    Quota {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        change: QuotaChange,
    },
    /// List tenants.
    List(JsonFlag),
    /// Show one tenant, with what it stores and its quota.
    Show {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Destroy a tenant: its tree, database, database account, archives, data key, users and keys.
    Remove {
        /// Tenant name.
        name: String,
        /// Required: acknowledges that the tenant's data is destroyed.
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Print what was destroyed as JSON (as `tenant purge-report --json` shows it later).
        #[arg(long)]
        json: bool,
    },
    /// Show what the latest purge of a removed tenant destroyed, from the audit trail.
    PurgeReport {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `user` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user in a tenant.
    Add {
        /// Tenant the user belongs to.
        tenant: String,
        /// Login, unique across tenants: [a-z0-9][a-z0-9._-]{0,63}.
        login: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// OpenSSH public key file to authorise; repeatable.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// Create the user with neither password nor key (who cannot log in until `user passwd` or
        /// `key add`); without it, `user add` needs --password-stdin or --key.
        #[arg(long, conflicts_with_all = ["password_stdin", "keys"])]
        no_credentials: bool,
        /// Networks (CIDR) the user may log in from, besides the tenant's own list; repeatable. Default: any.
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ip: Vec<String>,
    },
    /// Replace or clear the networks a user may log in from.
    AllowIp {
        /// Login.
        login: String,
        #[command(flatten)]
        change: AllowIpChange,
    },
    /// List users.
    List {
        /// Only the users of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a user and their keys.
    Remove {
        /// Login.
        login: String,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        /// Login.
        login: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Lock a user out until `user unlock`.
    Lock {
        /// Login.
        login: String,
    },
    /// Lift an administrative or temporary lock.
    Unlock {
        /// Login.
        login: String,
    },
}

/// `key` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Authorise the OpenSSH public key(s) in FILE (`-` for standard input).
    Add {
        /// Login.
        login: String,
        /// Public key file, `-` for standard input.
        file: PathBuf,
    },
    /// List a user's keys as `ssh-keygen -lf` prints them.
    List {
        /// Login.
        login: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a key by its SHA256 fingerprint.
    Remove {
        /// Login.
        login: String,
        /// Fingerprint, `SHA256:…`.
        fingerprint: String,
    },
}

/// `hostkey` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum HostkeyCommand {
    /// Fingerprints of the SSH host keys and of the TLS certificate (never generated: see `init`), or
    /// with --known-hosts the lines of a client's known_hosts file.
    Show(HostkeyShowArgs),
}

/// `hostkey show` options.
#[derive(Debug, Args)]
pub(crate) struct HostkeyShowArgs {
    /// Print a known_hosts line per SSH host key (`[host]:port keytype base64`), ready for clients that
    /// check host keys strictly, then the TLS certificate's fingerprint as a `#` comment. Creates nothing:
    /// refused when the host keys do not exist yet.
    #[arg(long)]
    pub(crate) known_hosts: bool,
    /// The name or address clients connect to; repeatable. Default: the host of the first sftp.listen
    /// address, required when that is a wildcard (0.0.0.0, ::).
    #[arg(long, value_name = "NAME", requires = "known_hosts")]
    pub(crate) host: Vec<String>,
    /// The port clients connect to. Default: the port of the first sftp.listen address.
    #[arg(long, value_name = "N", requires = "known_hosts")]
    pub(crate) port: Option<u16>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}
