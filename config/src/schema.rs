//! The single definition of every configuration key: its place, type, default, documentation and how
//! its effective value is shown. The loader, the environment overrides, the example file, the markdown
//! reference and `config show` are all driven by [`KEYS`].

use toml::Value;

use crate::duration;
use crate::model::Config;

/// The shape of a key's value, used to parse environment overrides and to document the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A filesystem path (TOML string).
    Path,
    /// Free text (TOML string).
    Text,
    /// A database URL (TOML string).
    Url,
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    Integer,
    /// One `IP:port` socket address (TOML string).
    Address,
    /// A list of `IP:port` socket addresses.
    AddressList,
    /// `"START-END"`, an inclusive range of ports.
    PortRange,
    /// `"30s"`, `"15m"`, `"2h"`, `"500ms"`.
    Duration,
    /// `"10 GiB"`, `"500 MiB"`, `"500MB"` or a number of bytes (TOML string).
    Size,
    /// A list of TLS versions.
    TlsVersions,
    /// A list of IP networks in CIDR notation (a bare address means just that address).
    NetworkList,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl Kind {
    /// How the type is named in the reference.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Path => "path".into(),
            Self::Text => "string".into(),
            Self::Url => "URL".into(),
            Self::Bool => "boolean".into(),
            Self::Integer => "integer".into(),
            Self::Address => "address".into(),
            Self::AddressList => "list of addresses".into(),
            Self::PortRange => "port range".into(),
            Self::Duration => "duration".into(),
            Self::Size => "size".into(),
            Self::TlsVersions => "list of TLS versions".into(),
            Self::NetworkList => "list of CIDR networks".into(),
            Self::Choice(choices) => choices.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" | "),
        }
    }

    /// Whether an environment value is a comma-separated list.
    pub(crate) fn is_list(self) -> bool {
        matches!(self, Self::AddressList | Self::TlsVersions | Self::NetworkList)
    }
}

/// What a key is worth when nobody sets it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Default {
    /// A fixed value, written as a TOML literal (it is parsed, and printed in the example file as is).
    Value(&'static str),
    /// Computed from `data_dir`; `template` spells it with `<data_dir>`.
    FromDataDir {
        /// E.g. `<data_dir>/tls/cert.pem` or `sqlite://<data_dir>/catalog.db`.
        template: &'static str,
    },
    /// Unset unless needed; `example` is a TOML literal shown, commented out, in the example file.
    Unset {
        /// An illustrative value.
        example: &'static str,
    },
}

/// One configuration key.
pub(crate) struct KeyDef {
    /// The `[section]` holding the key, or `""` for a top-level key.
    pub(crate) section: &'static str,
    /// The key's name inside its section.
    pub(crate) name: &'static str,
    /// The value's shape.
    pub(crate) kind: Kind,
    /// Its default.
    pub(crate) default: Default,
    /// Whether the value may hold a password (it is redacted when shown).
    pub(crate) secret: bool,
    /// Documentation, one or more sentences (written as comments in the example file).
    pub(crate) doc: &'static str,
    /// The effective value in a loaded configuration, as TOML; `None` when unset.
    pub(crate) effective: fn(&Config) -> Option<Value>,
}

impl KeyDef {
    /// The dotted path, e.g. `ftps.passive_ports`.
    pub(crate) fn path(&self) -> String {
        if self.section.is_empty() { self.name.to_owned() } else { format!("{}.{}", self.section, self.name) }
    }

    /// The environment variable overriding the key, e.g. `PASSERELLE_FTPS_PASSIVE_PORTS`.
    pub(crate) fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.path().replace('.', "_").to_ascii_uppercase())
    }
}

/// Every environment override starts with this.
pub(crate) const ENV_PREFIX: &str = "PASSERELLE_";

/// Read by the caller (it names the configuration file), never an override.
pub(crate) const ENV_CONFIG_FILE: &str = "PASSERELLE_CONFIG";

/// Sections in the order they are documented; `""` is the top level.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("", "Passerelle configuration."),
    ("sftp", "SFTP front-end."),
    ("ftps", "FTPS front-end: explicit (AUTH TLS) and implicit TLS; plaintext FTP and active mode are not offered."),
    ("catalog", "Catalog database: tenants, users, keys, imports and the audit trail."),
    ("tenant_db", "Tenant databases: each tenant gets its own database and database account."),
    ("admin", "Admin HTTP endpoint: GET /healthz and GET /metrics (Prometheus)."),
    ("archive", "Encrypted archives of imported files."),
    ("receipts", "Import receipts in each tenant's /outbox."),
    ("pipeline", "Import pipeline: how many tenants import at once."),
    (
        "audit",
        "Retention of the audit trail and of finished import jobs in the catalog. The server deletes what is \
         older, in small batches (at start and hourly) that never hold up transfers.",
    ),
    ("log", "Logging."),
    ("limits", "Limits protecting the SFTP and FTPS front-ends."),
    (
        "defender",
        "Brute-force defence: every source address earns a score for failed logins, exceeded limits and \
         protocol abuse; an address whose score reaches the threshold within the observation time is banned \
         (dropped at connect, before any protocol work). Bans are stored in the catalog, so that the CLI and \
         every node see them and they survive a restart; each new ban of an address lasts longer.",
    ),
    (
        "account_lock",
        "Temporary account lock: too many failed logins for one login, from any source, lock it; the client \
         sees the same answer as for a wrong password. `passerelle user unlock` lifts the lock.",
    ),
    (
        "proxy_protocol",
        "PROXY protocol (v1 and v2, as HAProxy sends it) on every listener. Connections from a trusted proxy \
         must start with a PROXY header, whose source address is then the client's address everywhere (bans, \
         allowlists, audit); any other source is served directly, and refused if it sends a PROXY header.",
    ),
    (
        "sandbox",
        "How `serve` confines itself once its listeners are bound and its keys read, beyond what a service \
         manager does (see packaging/systemd/passerelle.service).",
    ),
    (
        "keys",
        "The master key, from which every tenant's data key is protected: the keys that encrypt archived \
         originals and tenant database passwords are stored in the catalog wrapped under it.",
    ),
    ("uploads", "How completed uploads are stored, and when the disk is too full to take more."),
    (
        "quotas",
        "Default per-tenant quotas: what each tenant may store, counting its inbox and outbox, the files \
         its import jobs hold and its archived originals. `passerelle tenant quota NAME` overrides them \
         for one tenant. An upload that would go over is refused while it is sent, and nothing of it is \
         kept; the server sees changed quotas within a few seconds.",
    ),
    (
        "backup",
        "Backups with restic (encrypted, authenticated, deduplicated; local, SFTP, S3, REST or rclone \
         repositories). Each run takes a consistent copy of the catalog, every tenant database, the SSH host \
         keys, the TLS identity and the archive (with a manifest of SHA-256 sums) and stores it as one \
         snapshot; `serve` runs it every `interval`, then forgets snapshots older than `retention_days`, and \
         restores and checks the latest snapshot every `verify_interval`. `passerelle backup run|verify|list|\
         restore` do the same by hand. Unset `repository`: no backups (said once at start).",
    ),
    (
        "node",
        "This node among several sharing one PostgreSQL catalog and one data directory (one node alone \
         needs nothing here). `passerelle node list` shows every node the catalog knows.",
    ),
    (
        "cluster",
        "How nodes sharing the catalog see each other: each writes a heartbeat (its state and live sessions) \
         every third of `lease_timeout`; a node silent for longer is gone, its import leases and periodic \
         duties (retention, backups, audit chain checks) go to another node.",
    ),
    (
        "shutdown",
        "How `serve` stops on SIGTERM: it says `draining` (GET /healthz answers 503, so a load balancer sends \
         new connections elsewhere), closes its listeners, lets live connections finish for up to \
         `drain_timeout`, ends the rest, hands its import jobs back, and records itself `stopped`.",
    ),
];

fn string(s: impl Into<String>) -> Option<Value> {
    Some(Value::String(s.into()))
}

fn strings<T: ToString>(items: &[T]) -> Option<Value> {
    Some(Value::Array(items.iter().map(|i| Value::String(i.to_string())).collect()))
}

fn duration(d: std::time::Duration) -> Option<Value> {
    string(duration::format(d))
}

fn size(s: crate::ByteSize) -> Option<Value> {
    string(s.to_string())
}

fn integer(n: u32) -> Option<Value> {
    Some(Value::Integer(n.into()))
}

/// The keys, in the order they are documented.
pub(crate) const KEYS: &[KeyDef] = &[
    KeyDef {
        section: "",
        name: "data_dir",
        kind: Kind::Path,
        default: Default::Value(r#""./passerelle-data""#),
        secret: false,
        doc: "Directory holding all state: catalog, tenant trees, keys, TLS certificate and archives. \
              A relative path is relative to the working directory. The --data-dir flag overrides it.",
        effective: |c| string(c.data_dir.to_string_lossy()),
    },
    KeyDef {
        section: "sftp",
        name: "listen",
        kind: Kind::AddressList,
        default: Default::Value(r#"["127.0.0.1:2222"]"#),
        secret: false,
        doc: "Addresses (IP:port) the SFTP server listens on; an empty list disables SFTP. \
              In production typically [\"0.0.0.0:22\"].",
        effective: |c| strings(&c.sftp.listen),
    },
    KeyDef {
        section: "sftp",
        name: "libssh2_compat",
        kind: Kind::Bool,
        default: Default::Value("false"),
        secret: false,
        doc: "Also offer aes256-ctr/aes128-ctr with hmac-sha2-512/256 (encrypt-and-MAC, no ETM) for \
              clients built on libssh2 older than 1.11, such as curl and PHP on Debian 12, which know no \
              AES-GCM, ChaCha20 or ETM MAC. Off by default: only AEAD ciphers are offered.",
        effective: |c| Some(Value::Boolean(c.sftp.libssh2_compat)),
    },
    KeyDef {
        section: "ftps",
        name: "explicit_listen",
        kind: Kind::AddressList,
        default: Default::Value(r#"["127.0.0.1:2121"]"#),
        secret: false,
        doc: "Addresses for explicit FTPS (clients send AUTH TLS before anything else); an empty list \
              disables it. In production typically [\"0.0.0.0:21\"].",
        effective: |c| strings(&c.ftps.explicit_listen),
    },
    KeyDef {
        section: "ftps",
        name: "implicit_listen",
        kind: Kind::AddressList,
        default: Default::Value(r#"["127.0.0.1:9990"]"#),
        secret: false,
        doc: "Addresses for implicit FTPS (TLS from the first byte); an empty list disables it. \
              In production typically [\"0.0.0.0:990\"].",
        effective: |c| strings(&c.ftps.implicit_listen),
    },
    KeyDef {
        section: "ftps",
        name: "passive_ports",
        kind: Kind::PortRange,
        default: Default::Value(r#""50000-50100""#),
        secret: false,
        doc: "Ports offered for passive data connections, \"START-END\" with both ends included; \
              ports below 1024 are refused.",
        effective: |c| string(format!("{}-{}", c.ftps.passive_ports.start(), c.ftps.passive_ports.end())),
    },
    KeyDef {
        section: "ftps",
        name: "cert",
        kind: Kind::Path,
        default: Default::FromDataDir { template: "<data_dir>/tls/cert.pem" },
        secret: false,
        doc: "PEM certificate chain presented by FTPS. A self-signed certificate is generated here if \
              the file is absent.",
        effective: |c| string(c.ftps.cert.to_string_lossy()),
    },
    KeyDef {
        section: "ftps",
        name: "key",
        kind: Kind::Path,
        default: Default::FromDataDir { template: "<data_dir>/tls/key.pem" },
        secret: false,
        doc: "PEM private key matching ftps.cert.",
        effective: |c| string(c.ftps.key.to_string_lossy()),
    },
    KeyDef {
        section: "ftps",
        name: "tls_versions",
        kind: Kind::TlsVersions,
        default: Default::Value(r#"["1.2"]"#),
        secret: false,
        doc: "TLS versions accepted: \"1.2\" and/or \"1.3\". Older versions (SSL 3, TLS 1.0, TLS 1.1) \
              are unsafe and refused.",
        effective: |c| {
            Some(Value::Array(c.ftps.tls_versions.iter().map(|v| Value::String(v.as_str().into())).collect()))
        },
    },
    KeyDef {
        section: "ftps",
        name: "require_session_reuse",
        kind: Kind::Bool,
        default: Default::Value("true"),
        secret: false,
        doc: "Require data connections to resume the TLS session of their control connection, so that \
              nobody else can hijack a data connection.",
        effective: |c| Some(Value::Boolean(c.ftps.require_session_reuse)),
    },
    KeyDef {
        section: "ftps",
        name: "require_extended_master_secret",
        kind: Kind::Bool,
        default: Default::Value("true"),
        secret: false,
        doc: "Require TLS 1.2 clients to send the extended master secret (RFC 7627), which binds the session \
              to its own handshake and defeats the triple handshake attack on resumed sessions. Turn it off \
              only for clients that lack it (Go before 1.21, such as the rclone 1.60 of Debian 12); their \
              handshakes are otherwise refused with \"client sent no extended master secret\". Sessions made \
              without it can still be resumed only by data connections of their own control connection. TLS \
              1.3 always has it.",
        effective: |c| Some(Value::Boolean(c.ftps.require_extended_master_secret)),
    },
    KeyDef {
        section: "ftps",
        name: "max_passive_ports_per_user",
        kind: Kind::Integer,
        default: Default::Value("4"),
        secret: false,
        doc: "Passive data ports (PASV, EPSV) one user may hold at once over all its sessions on this node, at \
              least 1; a session holds one at a time. Beyond it PASV and EPSV get 425 \"too many passive data \
              ports held by this user (limit N)\"; see ftps.passive_idle_timeout.",
        effective: |c| integer(c.ftps.max_passive_ports_per_user),
    },
    KeyDef {
        section: "ftps",
        name: "passive_idle_timeout",
        kind: Kind::Duration,
        default: Default::Value(r#""30s""#),
        secret: false,
        doc: "A passive data port that no transfer command used for this long is closed and given back to \
              the pool (the client's next PASV or EPSV opens another); over zero.",
        effective: |c| string(duration::format(c.ftps.passive_idle_timeout)),
    },
    KeyDef {
        section: "catalog",
        name: "url",
        kind: Kind::Url,
        default: Default::FromDataDir { template: "sqlite://<data_dir>/catalog.db" },
        secret: true,
        doc: "Catalog database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB \
              (postgresql:// also accepted).",
        effective: |c| string(&c.catalog.url),
    },
    KeyDef {
        section: "tenant_db",
        name: "backend",
        kind: Kind::Choice(&["sqlite", "postgres"]),
        default: Default::Value(r#""sqlite""#),
        secret: false,
        doc: "Engine holding tenant databases: \"sqlite\" (one file per tenant under data_dir) or \
              \"postgres\" (one database and role per tenant; needs tenant_db.admin_url).",
        effective: |c| string(c.tenant_db.backend.as_str()),
    },
    KeyDef {
        section: "tenant_db",
        name: "admin_url",
        kind: Kind::Url,
        default: Default::Unset { example: r#""postgres://passerelle_admin:PASSWORD@localhost:5432/postgres""# },
        secret: true,
        doc: "PostgreSQL URL of an account allowed to create databases and roles. Required when \
              tenant_db.backend = \"postgres\", refused otherwise.",
        effective: |c| c.tenant_db.admin_url.as_deref().and_then(string),
    },
    KeyDef {
        section: "tenant_db",
        name: "name_prefix",
        kind: Kind::Text,
        default: Default::Value(r#""passerelle_""#),
        secret: false,
        doc: "Prefix of every per-tenant PostgreSQL database and role name; must match \
              ^[a-z][a-z0-9_]{0,20}$.",
        effective: |c| string(&c.tenant_db.name_prefix),
    },
    KeyDef {
        section: "admin",
        name: "listen",
        kind: Kind::Address,
        default: Default::Value(r#""127.0.0.1:9100""#),
        secret: false,
        doc: "Address (IP:port) of the admin HTTP endpoint (GET /healthz, GET /metrics). Keep it private.",
        effective: |c| string(c.admin.listen.to_string()),
    },
    KeyDef {
        section: "archive",
        name: "retention_days",
        kind: Kind::Integer,
        default: Default::Value("30"),
        secret: false,
        doc: "Days the archived original of an import is kept after its job ended, 1 to 3650 (checked hourly).",
        effective: |c| integer(c.archive.retention_days),
    },
    KeyDef {
        section: "receipts",
        name: "retention_days",
        kind: Kind::Integer,
        default: Default::Value("30"),
        secret: false,
        doc: "Days a receipt stays in /outbox after it was last written, 1 to 3650 (checked at start, then \
              hourly). Clients may also delete receipts themselves.",
        effective: |c| integer(c.receipts.retention_days),
    },
    KeyDef {
        section: "pipeline",
        name: "workers",
        kind: Kind::Integer,
        default: Default::Unset { example: "4" },
        secret: false,
        doc: "Tenants whose import jobs run at the same time, 1 to 64; unset: the number of CPU cores (at \
              most 64). Jobs of one tenant always run one at a time, in arrival order; a tenant's small file \
              waits behind its own earlier files, never behind other tenants' imports while a worker is free.",
        effective: |c| integer(c.pipeline.workers),
    },
    KeyDef {
        section: "audit",
        name: "retention_days",
        kind: Kind::Integer,
        default: Default::Value("400"),
        secret: false,
        doc: "Days audit events, and import jobs after their verdict (imported, rejected, duplicate), are \
              kept, 1 to 36500; jobs still under way or waiting are never deleted. The default keeps a year \
              of traceability with a margin.",
        effective: |c| integer(c.audit.retention_days),
    },
    KeyDef {
        section: "log",
        name: "format",
        kind: Kind::Choice(&["text", "json"]),
        default: Default::Value(r#""text""#),
        secret: false,
        doc: "Log output: \"text\" for people, \"json\" for one JSON object per line.",
        effective: |c| string(c.log.format.as_str()),
    },
    KeyDef {
        section: "log",
        name: "level",
        kind: Kind::Text,
        default: Default::Value(r#""info""#),
        secret: false,
        doc: "A tracing EnvFilter directive, e.g. \"info\" or \"passerelle=debug,info\".",
        effective: |c| string(&c.log.level),
    },
    KeyDef {
        section: "limits",
        name: "login_grace_time",
        kind: Kind::Duration,
        default: Default::Value(r#""30s""#),
        secret: false,
        doc: "Time a client has to log in after connecting; over zero and at most 10m.",
        effective: |c| string(duration::format(c.limits.login_grace_time)),
    },
    KeyDef {
        section: "limits",
        name: "max_auth_tries",
        kind: Kind::Integer,
        default: Default::Value("6"),
        secret: false,
        doc: "Failed authentication attempts allowed on one connection before it is closed, 1 to 20.",
        effective: |c| integer(c.limits.max_auth_tries),
    },
    KeyDef {
        section: "limits",
        name: "idle_timeout",
        kind: Kind::Duration,
        default: Default::Value(r#""15m""#),
        secret: false,
        doc: "A session without activity for this long is closed; over zero.",
        effective: |c| string(duration::format(c.limits.idle_timeout)),
    },
    KeyDef {
        section: "limits",
        name: "max_sessions_per_user",
        kind: Kind::Integer,
        default: Default::Value("10"),
        secret: false,
        doc: "Concurrent sessions allowed for one user, at least 1.",
        effective: |c| integer(c.limits.max_sessions_per_user),
    },
    KeyDef {
        section: "limits",
        name: "max_connections_per_ip",
        kind: Kind::Integer,
        default: Default::Value("20"),
        secret: false,
        doc: "Concurrent connections allowed from one source, logged in or not, at least 1: an IPv4 \
              address, or an IPv6 network of defender.ipv6_prefix bits. Going over it counts as an exceeded \
              limit for the defender.",
        effective: |c| integer(c.limits.max_connections_per_ip),
    },
    KeyDef {
        section: "limits",
        name: "max_connections",
        kind: Kind::Integer,
        default: Default::Value("500"),
        secret: false,
        doc: "Concurrent connections over all front-ends, at least 1.",
        effective: |c| integer(c.limits.max_connections),
    },
    KeyDef {
        section: "limits",
        name: "max_startups",
        kind: Kind::Text,
        default: Default::Value(r#""10:30:100""#),
        secret: false,
        doc: "Connections not yet logged in, as OpenSSH's MaxStartups \"start:rate:full\": from start such \
              connections on, a new one is dropped with probability rate percent, rising linearly to 100 % at \
              full. A single number N means \"N:100:N\".",
        effective: |c| {
            let s = &c.limits.max_startups;
            string(format!("{}:{}:{}", s.start, s.rate, s.full))
        },
    },
    KeyDef {
        section: "limits",
        name: "connection_rate",
        kind: Kind::Integer,
        default: Default::Value("10"),
        secret: false,
        doc: "New connections one source (see defender.ipv6_prefix) may open per second on average, 1 to \
              100000; there is no \"off\": set a large value to loosen it. Checked at accept, before any \
              key exchange or TLS work (after the PROXY header of a trusted proxy): a connection over the \
              rate is closed at once and scores defender.score_refused_connection.",
        effective: |c| integer(c.limits.connection_rate),
    },
    KeyDef {
        section: "limits",
        name: "connection_burst",
        kind: Kind::Integer,
        default: Default::Value("20"),
        secret: false,
        doc: "New connections one source may open at once before limits.connection_rate applies (the \
              token bucket's size), 1 to 100000.",
        effective: |c| integer(c.limits.connection_burst),
    },
    KeyDef {
        section: "limits",
        name: "max_open_files_per_session",
        kind: Kind::Integer,
        default: Default::Value("256"),
        secret: false,
        doc: "Files and directories one session may hold open at once (uploads, downloads, listings), over \
              all its SFTP channels, at least 1; advertised to SFTP clients through limits@openssh.com. An \
              open beyond it is refused with \"too many open files in this session (limit N)\".",
        effective: |c| integer(c.limits.max_open_files_per_session),
    },
    KeyDef {
        section: "limits",
        name: "max_open_files_per_user",
        kind: Kind::Integer,
        default: Default::Value("1024"),
        secret: false,
        doc: "Files and directories one user may hold open at once over all its sessions on this node, at \
              least 1. Whatever these limits say, the server keeps 256 descriptors of its open-file limit \
              (raised to the hard limit at start) for the catalog and the listeners, and refuses opens \
              beyond the rest with \"server busy: too many open files (limit N)\".",
        effective: |c| integer(c.limits.max_open_files_per_user),
    },
    KeyDef {
        section: "limits",
        name: "max_buffered_bytes_per_session",
        kind: Kind::Size,
        default: Default::Value(r#""64 MiB""#),
        secret: false,
        doc: "Upload data one session may hold in memory while the SHA-256 of its uploads is computed on \
              the fly: pieces that arrive ahead of a gap (pipelining clients) wait there until the gap \
              closes, at most 16 MiB per upload. Once the session holds this much, further early pieces \
              are not kept: the upload still succeeds, and its digest is computed by reading the finished \
              file once more (bounded by uploads.max_file_size).",
        effective: |c| size(c.limits.max_buffered_bytes_per_session),
    },
    KeyDef {
        section: "limits",
        name: "max_concurrent_password_checks",
        kind: Kind::Integer,
        default: Default::Unset { example: "4" },
        secret: false,
        doc: "Password verifications (argon2id, tens of milliseconds of a core and its memory each) run at \
              once before login, over all front-ends, unknown logins' decoy verifications included; at least \
              1, at most 1024; unset: the number of CPU cores. A check waits at most 1s for its turn, in \
              arrival order; then the login fails with the same answer and delay as a wrong password, is \
              audited as password_checks_busy and scored as an exceeded limit.",
        effective: |c| integer(c.limits.max_concurrent_password_checks),
    },
    KeyDef {
        section: "defender",
        name: "enabled",
        kind: Kind::Bool,
        default: Default::Value("true"),
        secret: false,
        doc: "Score source addresses and ban those over the threshold. Bans already stored keep being \
              enforced when false (`passerelle ban remove` lifts them).",
        effective: |c| Some(Value::Boolean(c.defender.enabled)),
    },
    KeyDef {
        section: "defender",
        name: "threshold",
        kind: Kind::Integer,
        default: Default::Value("15"),
        secret: false,
        doc: "Score at which an address is banned, at least 1 (SFTPGo's default).",
        effective: |c| integer(c.defender.threshold),
    },
    KeyDef {
        section: "defender",
        name: "score_invalid_user",
        kind: Kind::Integer,
        default: Default::Value("2"),
        secret: false,
        doc: "Score of a failed login; every failed login, whether the user exists or not, scores the \
              higher of defender.score_invalid_user and defender.score_wrong_password, so that the time a \
              ban takes does not tell which logins exist (the audit trail keeps the difference).",
        effective: |c| integer(c.defender.score_invalid_user),
    },
    KeyDef {
        section: "defender",
        name: "score_wrong_password",
        kind: Kind::Integer,
        default: Default::Value("2"),
        secret: false,
        doc: "Score of a failed login of an existing user (wrong password, unknown key, locked account, \
              address outside the allowlists); every failed login scores the higher of this and \
              defender.score_invalid_user.",
        effective: |c| integer(c.defender.score_wrong_password),
    },
    KeyDef {
        section: "defender",
        name: "score_limit_exceeded",
        kind: Kind::Integer,
        default: Default::Value("3"),
        secret: false,
        doc: "Score of a connection refused by limits.max_connections_per_ip or a login refused by \
              limits.max_sessions_per_user.",
        effective: |c| integer(c.defender.score_limit_exceeded),
    },
    KeyDef {
        section: "defender",
        name: "score_refused_connection",
        kind: Kind::Integer,
        default: Default::Value("1"),
        secret: false,
        doc: "Score of a connection turned away at connect by limits.max_startups or limits.max_connections \
              (limits.max_connections_per_ip scores defender.score_limit_exceeded). Repeated refusals from one \
              address are written to the audit trail and the log once, then counted in one summary per minute.",
        effective: |c| integer(c.defender.score_refused_connection),
    },
    KeyDef {
        section: "defender",
        name: "score_protocol_abuse",
        kind: Kind::Integer,
        default: Default::Value("3"),
        secret: false,
        doc: "Score of a connection that breaks the protocol before logging in: malformed packets, a bad or \
              untrusted PROXY header, login grace time exceeded, too many authentication attempts.",
        effective: |c| integer(c.defender.score_protocol_abuse),
    },
    KeyDef {
        section: "defender",
        name: "observation_time",
        kind: Kind::Duration,
        default: Default::Value(r#""30m""#),
        secret: false,
        doc: "Scores older than this are forgotten; over zero.",
        effective: |c| duration(c.defender.observation_time),
    },
    KeyDef {
        section: "defender",
        name: "ban_time",
        kind: Kind::Duration,
        default: Default::Value(r#""30m""#),
        secret: false,
        doc: "Length of an address's first ban; over zero.",
        effective: |c| duration(c.defender.ban_time),
    },
    KeyDef {
        section: "defender",
        name: "ban_time_increment",
        kind: Kind::Integer,
        default: Default::Value("50"),
        secret: false,
        doc: "Each further ban of the same address lasts this many percent longer than the previous one \
              (50: 30m, 45m, 1h7m30s...), 0 to 1000.",
        effective: |c| integer(c.defender.ban_time_increment),
    },
    KeyDef {
        section: "defender",
        name: "max_ban_time",
        kind: Kind::Duration,
        default: Default::Value(r#""24h""#),
        secret: false,
        doc: "Longest ban, however often an address offends; at least defender.ban_time.",
        effective: |c| duration(c.defender.max_ban_time),
    },
    KeyDef {
        section: "defender",
        name: "safe_list",
        kind: Kind::NetworkList,
        default: Default::Value("[]"),
        secret: false,
        doc: "Networks (CIDR) that are never scored nor banned, e.g. a monitoring host. Their logins are \
              still checked and audited.",
        effective: |c| strings(&c.defender.safe_list),
    },
    KeyDef {
        section: "defender",
        name: "ipv6_prefix",
        kind: Kind::Integer,
        default: Default::Value("64"),
        secret: false,
        doc: "IPv6 sources are counted by network of this prefix length, 32 to 128: scores, bans, \
              limits.max_connections_per_ip and limits.connection_rate apply to the whole /64 (by default), \
              since one client usually holds all of it and can rotate its address at will. IPv4 sources \
              (IPv4-mapped IPv6 included) are counted by address.",
        effective: |c| integer(c.defender.ipv6_prefix.into()),
    },
    KeyDef {
        section: "defender",
        name: "entries_soft_limit",
        kind: Kind::Integer,
        default: Default::Value("100000"),
        secret: false,
        doc: "Sources each table in memory (scores, bans, connection rates) is cut back to when it reaches \
              defender.entries_hard_limit, dropping the oldest entries first; at least 1.",
        effective: |c| integer(c.defender.entries_soft_limit),
    },
    KeyDef {
        section: "defender",
        name: "entries_hard_limit",
        kind: Kind::Integer,
        default: Default::Value("150000"),
        secret: false,
        doc: "Most sources each table in memory (scores, bans, connection rates) holds; more than \
              defender.entries_soft_limit. Scores and rate buckets touched longest ago are dropped first, \
              bans ending soonest first (they stay in the catalog).",
        effective: |c| integer(c.defender.entries_hard_limit),
    },
    KeyDef {
        section: "account_lock",
        name: "max_failures",
        kind: Kind::Integer,
        default: Default::Value("10"),
        secret: false,
        doc: "Failed logins of one login within account_lock.observation_time that lock it; 0 turns \
              account locks off.",
        effective: |c| integer(c.account_lock.max_failures),
    },
    KeyDef {
        section: "account_lock",
        name: "observation_time",
        kind: Kind::Duration,
        default: Default::Value(r#""15m""#),
        secret: false,
        doc: "Window in which failed logins of one login are counted; over zero.",
        effective: |c| duration(c.account_lock.observation_time),
    },
    KeyDef {
        section: "account_lock",
        name: "lock_time",
        kind: Kind::Duration,
        default: Default::Value(r#""15m""#),
        secret: false,
        doc: "How long such a lock lasts; over zero.",
        effective: |c| duration(c.account_lock.lock_time),
    },
    KeyDef {
        section: "proxy_protocol",
        name: "trusted_proxies",
        kind: Kind::NetworkList,
        default: Default::Value("[]"),
        secret: false,
        doc: "Networks (CIDR) of the proxies allowed to send a PROXY header; empty turns the PROXY protocol \
              off. A connection from one of them without a valid header within 5 s is dropped.",
        effective: |c| strings(&c.proxy_protocol.trusted_proxies),
    },
    KeyDef {
        section: "sandbox",
        name: "landlock",
        kind: Kind::Bool,
        default: Default::Value("true"),
        secret: false,
        doc: "Restrict the server's own filesystem access with Landlock, where the kernel has it (Linux 5.13 \
              and later): read and write in `data_dir` and the directory of a SQLite catalog, read the \
              configuration file, the FTPS certificate and key (their directories, for renewals), the \
              master key file and the system files that name resolution and TLS need; nothing else, even \
              through a bug. One log line at start says which ruleset is in force, or that the kernel has \
              none. false: no Landlock.",
        effective: |c| Some(Value::Boolean(c.sandbox.landlock)),
    },
    KeyDef {
        section: "keys",
        name: "master_key_file",
        kind: Kind::Path,
        default: Default::FromDataDir { template: "<data_dir>.master.key" },
        secret: false,
        doc: "File holding the master key (mode 0600, owned by the service user), outside data_dir: by \
              default beside it. `passerelle init` (or the first start of a new installation) creates it; \
              after that it is required, and a missing or different key is refused, never replaced. Keep an \
              offline copy: without it no archive and no tenant database password can be decrypted. \
              `passerelle keys rotate-master` replaces it.",
        effective: |c| string(c.keys.master_key_file.to_string_lossy()),
    },
    KeyDef {
        section: "uploads",
        name: "fsync",
        kind: Kind::Bool,
        default: Default::Value("false"),
        secret: false,
        doc: "Flush each upload's data and directory entry to disk before telling the client it \
              completed, so that even a power loss never loses an acknowledged file (each small file \
              then costs two disk flushes). false, like OpenSSH, SFTPGo and vsftpd: an acknowledged \
              upload survives any crash of passerelle and reaches the disk within seconds; a power \
              loss before that can lose it, and the import pipeline then refuses the damaged file \
              (it no longer matches the SHA-256 sealed on it at upload) instead of importing it. A \
              client's fsync@openssh.com always flushes its upload.",
        effective: |c| Some(Value::Boolean(c.uploads.fsync)),
    },
    KeyDef {
        section: "uploads",
        name: "max_file_size",
        kind: Kind::Size,
        default: Default::Value(r#""4 GiB""#),
        secret: false,
        doc: "Largest file an upload may make, over zero (there is no \"unlimited\": every upload, and every \
              digest or validation pass over it, stays within this bound). A write that would end beyond it \
              is refused with \"file too large: uploads are limited to 4 GiB (uploads.max_file_size)\" \
              (SFTP failure, FTPS 552) and the upload discarded; the import pipeline refuses a larger file \
              found in an inbox without reading it. Writes must also arrive roughly in order: one that \
              would leave a gap of more than 16 MiB before it (a sparse file) is refused.",
        effective: |c| size(c.uploads.max_file_size),
    },
    KeyDef {
        section: "uploads",
        name: "min_free_space",
        kind: Kind::Size,
        default: Default::Value(r#""256 MiB""#),
        secret: false,
        doc: "Free space kept on the filesystem of data_dir, so that the catalog (audit trail, import job \
              states) and the import pipeline always have room: an upload is refused (SFTP failure, FTPS \
              452, its temporary removed) once it would leave less than this free, and an import waits in \
              waiting-retry until there is more. Logins and downloads go on, and GET /healthz reports the \
              condition. A size: \"256 MiB\", \"1GiB\", \"500MB\" (KiB, MiB, GiB, TiB are powers of 1024; \
              KB, MB, GB, TB powers of 1000) or a number of bytes; \"0\" turns the reserve off.",
        effective: |c| string(c.uploads.min_free_space.to_string()),
    },
    KeyDef {
        section: "quotas",
        name: "bytes",
        kind: Kind::Size,
        default: Default::Unset { example: r#""10 GiB""# },
        secret: false,
        doc: "Bytes each tenant may store (apparent file sizes), e.g. \"10 GiB\" or \"500 MiB\" (KiB, MiB, \
              GiB, TiB are powers of 1024; KB, MB, GB, TB powers of 1000); unset: unlimited. SFTP `df` \
              shows it as the size of the disk.",
        effective: |c| c.quotas.bytes.and_then(|size| string(size.to_string())),
    },
    KeyDef {
        section: "quotas",
        name: "files",
        kind: Kind::Integer,
        default: Default::Unset { example: "10000" },
        secret: false,
        doc: "Files each tenant may store, at least 1; unset: unlimited. Creating a file beyond it is refused.",
        effective: |c| c.quotas.files.map(|n| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))),
    },
    KeyDef {
        section: "backup",
        name: "repository",
        kind: Kind::Text,
        default: Default::Unset { example: r#""/srv/backup/passerelle""# },
        secret: true,
        doc: "The restic repository backups go to: a local directory (outside data_dir; created and \
              initialised at the first run) or any repository restic takes (`sftp:host:/path`, `s3:...`, \
              `rest:...`, `rclone:...`). Unset: no backups. Under the Landlock sandbox a local repository's \
              directory is the only one outside data_dir that `serve` may write.",
        effective: |c| c.backup.target.as_ref().and_then(|t| string(t.repository.clone())),
    },
    KeyDef {
        section: "backup",
        name: "password_file",
        kind: Kind::Path,
        default: Default::Unset { example: r#""/etc/passerelle/backup-password""# },
        secret: false,
        doc: "File holding the repository's password (its first line), given to restic in its environment \
              only. Required with `repository`. It must be an absolute path outside data_dir (a backup must \
              not carry its own key) and readable by its owner only (0600 or 0400); anything else is refused. \
              Keep a copy offline: without it no backup can be read.",
        effective: |c| c.backup.target.as_ref().and_then(|t| string(t.password_file.display().to_string())),
    },
    KeyDef {
        section: "backup",
        name: "interval",
        kind: Kind::Duration,
        default: Default::Value(r#""1h""#),
        secret: false,
        doc: "How often `serve` takes a backup (the recovery point objective). The copy of the databases \
              takes a moment; the upload runs after it and holds nothing up.",
        effective: |c| duration(c.backup.interval),
    },
    KeyDef {
        section: "backup",
        name: "retention_days",
        kind: Kind::Integer,
        default: Default::Value("30"),
        secret: false,
        doc: "Days snapshots are kept, 1 to 3650: after each backup, `restic forget --keep-within <days>d \
              --prune`.",
        effective: |c| integer(c.backup.retention_days),
    },
    KeyDef {
        section: "backup",
        name: "verify_interval",
        kind: Kind::Duration,
        default: Default::Value(r#""24h""#),
        secret: false,
        doc: "How often `serve` restores the latest snapshot into a scratch directory and checks it \
              (`passerelle backup verify`), reading a rotating share of the repository's packs so that \
              every pack is read within retention_days. /healthz says degraded when the last verified \
              snapshot is older than 26 hours.",
        effective: |c| duration(c.backup.verify_interval),
    },
    KeyDef {
        section: "node",
        name: "id",
        kind: Kind::Text,
        default: Default::Unset { example: r#""node-a""# },
        secret: false,
        doc: "The node's name in the catalog (node list, import leases, periodic duties): 1 to 63 ASCII \
              letters, digits, '.', '_' or '-', starting with a letter or digit; unset: the host name. Each \
              node sharing a catalog needs its own; a node restarted under the same id takes its row over.",
        effective: |c| string(&c.node.id),
    },
    KeyDef {
        section: "cluster",
        name: "lease_timeout",
        kind: Kind::Duration,
        default: Default::Value(r#""15s""#),
        secret: false,
        doc: "How long a node's heartbeat, import leases and periodic duties outlive its last renewal, 3s to \
              10m; the heartbeat runs every third of it. After it, a silent node shows as gone, another node \
              resumes its import jobs, and its sessions stop counting against limits.max_sessions_per_user.",
        effective: |c| duration(c.cluster.lease_timeout),
    },
    KeyDef {
        section: "shutdown",
        name: "drain_timeout",
        kind: Kind::Duration,
        default: Default::Value(r#""30s""#),
        secret: false,
        doc: "How long live connections may go on after SIGTERM closed the listeners, 1s to 1h; those still \
              open then are ended (an upload in progress is recorded as aborted).",
        effective: |c| duration(c.shutdown.drain_timeout),
    },
];

/// Finds a key by section and name.
pub(crate) fn find(section: &str, name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.section == section && k.name == name)
}

/// Whether `name` is a section.
pub(crate) fn is_section(name: &str) -> bool {
    !name.is_empty() && SECTIONS.iter().any(|(s, _)| *s == name)
}

/// Parses a TOML literal from [`KEYS`].
pub(crate) fn parse_literal(literal: &str) -> Value {
    let table: toml::Table = format!("v = {literal}").parse().expect("KEYS holds valid TOML literals");
    table.get("v").cloned().expect("the literal was just inserted")
}

/// The default `data_dir`, as written in [`KEYS`].
pub(crate) fn default_data_dir() -> String {
    match find("", "data_dir").map(|k| k.default) {
        Some(Default::Value(literal)) => parse_literal(literal).as_str().unwrap_or_default().to_owned(),
        _ => unreachable!("data_dir has a fixed default"),
    }
}

/// Expands a `<data_dir>` template as text, e.g. for a URL.
pub(crate) fn expand(template: &str, data_dir: &str) -> String {
    template.replace("<data_dir>", data_dir)
}

/// Expands a `<data_dir>/...` template as a path below `data_dir`, keeping non-UTF-8 directories intact.
pub(crate) fn expand_path(template: &str, data_dir: &std::path::Path) -> std::path::PathBuf {
    let rest = template.strip_prefix("<data_dir>/").expect("path templates start with <data_dir>/");
    rest.split('/').fold(data_dir.to_path_buf(), |path, part| path.join(part))
}
