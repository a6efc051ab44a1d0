//! Authentication against the catalog. Every failure looks the same to the
//! client (same answer, same minimum delay, an argon2 verification even for
//! unknown users, the same score whether the login exists or not); the real
//! reason goes to the audit trail only. A login must come from an address
//! that both the tenant's and the user's allowlists admit (an empty list
//! admits any).
//!
//! ```text
//!  user? ─► tenant? ─► credential checked ─► admitted? ─► locked? ─► matches? ─► session
//!  (catalog errors: refused, neither scored nor counted)
//! ```
//!
//! Who pays for a failure: the source is always scored (that is how an
//! attacker gets banned); the account's lock counts only a wrong credential
//! of a method the account has, from an address its allowlists admit. So
//! nobody outside the allowlists, and nobody guessing passwords of a
//! key-only account, can lock a user out. Key probes before a signature
//! (every key of an agent is offered in turn) are neither scored nor counted.

use std::net::SocketAddr;
use std::time::Duration;

use passerelle_catalog::{LockState, Login, TenantName};
use passerelle_keys::AuthorizedKey;
use russh::keys::PublicKey;

use super::fs::TenantFs;
use super::grants::{Credential, Grant};
use super::password_checks::Busy;
use super::session::Session;
use super::{Engine, Offence, Protocol, Tripwire};

/// Every failed attempt takes at least this long, whatever failed, so timing
/// does not tell an unknown login from a wrong password. Other clients are
/// never delayed: the wait is asynchronous.
const FAILURE_DELAY: Duration = Duration::from_millis(300);

/// What a client presents.
#[derive(Clone, Copy)]
pub(crate) enum Credentials<'a> {
    /// A password, checked against the argon2id hash.
    Password(&'a str),
    /// A public key whose signature the protocol layer has verified.
    PublicKey(&'a PublicKey),
}

/// The single answer to a failed login. Deliberately carries no reason.
#[derive(Debug)]
struct AuthFailure;

/// Why [`LoginAttempts::attempt`] gave no session. Deliberately carries no
/// reason for the failure itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginRefused {
    /// The client may try again on this connection.
    TryAgain,
    /// That was the connection's last attempt (`limits.max_auth_tries`):
    /// the front-end ends the connection, which is scored as abuse.
    TooManyAttempts,
}

/// The logins of one connection. Every failure counts; the
/// `limits.max_auth_tries`-th trips the connection's tripwire, and no
/// credential is checked after it.
pub(crate) struct LoginAttempts {
    engine: Engine,
    peer: SocketAddr,
    protocol: Protocol,
    tripwire: Tripwire,
    failures: u32,
}

impl LoginAttempts {
    /// No attempt yet on the connection from `peer`.
    pub(crate) fn new(engine: Engine, peer: SocketAddr, protocol: Protocol, tripwire: Tripwire) -> Self {
        Self { engine, peer, protocol, tripwire, failures: 0 }
    }

    /// Checks credentials and opens a session on the user's tenant tree.
    pub(crate) async fn attempt(&mut self, login: &str, credentials: Credentials<'_>) -> Result<Session, LoginRefused> {
        // russh's own bound is one attempt more, for the "none" probe
        // OpenSSH sends first; a client that skips it (paramiko) must not
        // get that attempt as one more guess.
        if self.failures >= self.engine.config().limits.max_auth_tries {
            return Err(LoginRefused::TooManyAttempts);
        }
        match self.authenticate(login, credentials).await {
            Ok(session) => Ok(session),
            Err(AuthFailure) => {
                self.failures += 1;
                if self.failures >= self.engine.config().limits.max_auth_tries {
                    self.tripwire.trip("too many authentication attempts");
                    return Err(LoginRefused::TooManyAttempts);
                }
                Err(LoginRefused::TryAgain)
            }
        }
    }

    /// Checks credentials; opens a session, or records why not.
    async fn authenticate(&self, login: &str, credentials: Credentials<'_>) -> Result<Session, AuthFailure> {
        let (engine, peer, protocol) = (&self.engine, self.peer, self.protocol);
        let started = tokio::time::Instant::now();
        let method = match credentials {
            Credentials::Password(_) => "password".to_owned(),
            Credentials::PublicKey(key) => format!("publickey {}", key.fingerprint(Default::default())),
        };
        // Read before the checks: a change committed during them moves it
        // past this, and the session is checked again (see `grants`).
        let revision = engine.inner.catalog.revision().await.unwrap_or(i64::MIN);
        match engine.check(login, credentials, peer).await {
            Ok((tenant, login, credential)) => {
                let grant =
                    Grant { tenant: tenant.clone(), login: login.clone(), peer, protocol, credential, revision };
                match engine.open_session(grant) {
                    Ok(session) => {
                        engine.inner.audit.login(peer, protocol, Some(&tenant), login.as_str(), "ok", &method);
                        Ok(session)
                    }
                    Err(reason) => self.fail(Some(&tenant), login.as_str(), reason, &method, started).await,
                }
            }
            Err((tenant, reason)) => self.fail(tenant.as_ref(), login, reason, &method, started).await,
        }
    }

    /// Records and scores a failed login, then answers it no sooner than
    /// [`FAILURE_DELAY`] after it `started`.
    async fn fail(
        &self,
        tenant: Option<&TenantName>,
        login: &str,
        reason: Reason,
        method: &str,
        started: tokio::time::Instant,
    ) -> Result<Session, AuthFailure> {
        let (engine, peer, protocol) = (&self.engine, self.peer, self.protocol);
        // Bounded: a login is at most 64 bytes when valid; an attacker's junk is cut.
        let shown: String = login.chars().take(64).collect();
        let outcome = if matches!(reason, Reason::DeniedIp) { "denied_ip" } else { "failed" };
        engine.inner.audit.login(peer, protocol, tenant, &shown, outcome, &format!("{method}; {}", reason.as_str()));
        if let Some(offence) = reason.offence() {
            engine.offence(peer, offence);
        }
        if let (Some(tenant), true) = (tenant, reason.counts_toward_lock())
            && let Ok(login) = Login::parse(login)
        {
            engine.count_failure(tenant, &login, peer, protocol).await;
        }
        tokio::time::sleep_until(started + FAILURE_DELAY).await;
        Err(AuthFailure)
    }
}

/// Why a login failed, for the audit trail.
#[derive(Clone, Copy, Debug)]
enum Reason {
    UnknownUser,
    /// A wrong password of an account that has one, from an admitted address.
    WrongPassword,
    /// A key that is not the account's, the account having keys, from an admitted address.
    UnknownKey,
    /// A password for an account without one (key-only).
    NoPassword,
    /// A key for an account without keys (password-only).
    NoKeys,
    Locked,
    DeniedIp,
    /// No password verification slot within the queue's wait.
    Busy,
    TooManySessions,
    TenantUnavailable,
    /// The catalog did not answer: our fault, not the client's.
    CatalogError,
}

impl Reason {
    /// How the defender scores it. Every failed login scores the same,
    /// whether the login exists or not: ban timing must not tell.
    fn offence(self) -> Option<Offence> {
        match self {
            Self::UnknownUser
            | Self::WrongPassword
            | Self::UnknownKey
            | Self::NoPassword
            | Self::NoKeys
            | Self::Locked
            | Self::DeniedIp => Some(Offence::FailedLogin),
            Self::Busy | Self::TooManySessions => Some(Offence::LimitExceeded),
            Self::TenantUnavailable | Self::CatalogError => None,
        }
    }

    /// Whether it counts toward the account's lock: only a wrong credential
    /// of a method the account has, from an address its allowlists admit
    /// (the checks only give these reasons then).
    fn counts_toward_lock(self) -> bool {
        matches!(self, Self::WrongPassword | Self::UnknownKey)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::UnknownKey => "unknown_key",
            Self::NoPassword => "no_password",
            Self::NoKeys => "no_keys",
            Self::Locked => "locked",
            Self::DeniedIp => "denied_ip",
            Self::Busy => "password_checks_busy",
            Self::TooManySessions => "too_many_sessions",
            Self::TenantUnavailable => "tenant_unavailable",
            Self::CatalogError => "catalog_error",
        }
    }
}

/// A login whose user exists, with its tenant and whether the connection's
/// address is one both allowlists admit.
struct Account {
    login: Login,
    tenant: TenantName,
    admitted: bool,
}

/// A failed check: the tenant when known, and why.
type Failure = (Option<TenantName>, Reason);

impl Engine {
    /// Whether `key` is one of `login`'s authorised keys: answers the
    /// "would this key do?" query of SSH public-key authentication, before
    /// any signature. Not a login; not audited, scored nor counted.
    pub(crate) async fn key_is_authorized(&self, login: &str, key: &PublicKey) -> bool {
        let Ok(login) = Login::parse(login) else { return false };
        self.authorized_keys(&login).await.unwrap_or_default().iter().any(|k| k.matches(key))
    }

    /// The checks proper. Returns the tenant, the login and what it
    /// authenticated with, or why not. The credential is checked before
    /// the allowlists and the lock, so that every failure costs the same time.
    async fn check(
        &self,
        raw_login: &str,
        credentials: Credentials<'_>,
        peer: SocketAddr,
    ) -> Result<(TenantName, Login, Credential), Failure> {
        let Account { login, tenant, admitted } = self.account(raw_login, credentials, peer).await?;
        let fail = |reason| (Some(tenant.clone()), reason);
        let credential = self.credential(&login, credentials).await;
        if let Err(reason @ (Reason::CatalogError | Reason::Busy)) = credential {
            return Err(fail(reason));
        }
        if !admitted {
            return Err(fail(Reason::DeniedIp));
        }
        // Read after the verification, which may have waited: a lock set
        // meanwhile by parallel failures applies to this attempt too.
        let user = self.inner.catalog.user(&login).await.map_err(|_| fail(Reason::CatalogError))?;
        if user.is_none_or(|user| user.lock_state(passerelle_catalog::now_ms()) != LockState::Unlocked) {
            return Err(fail(Reason::Locked));
        }
        let credential = credential.map_err(fail)?;
        Ok((tenant, login, credential))
    }

    /// The user `raw_login` names, its tenant and whether `peer` is admitted.
    async fn account(
        &self,
        raw_login: &str,
        credentials: Credentials<'_>,
        peer: SocketAddr,
    ) -> Result<Account, Failure> {
        let catalog = &self.inner.catalog;
        let found = match Login::parse(raw_login) {
            Ok(login) => catalog.user(&login).await.map_err(|_| (None, Reason::CatalogError))?.map(|u| (login, u)),
            Err(_) => None,
        };
        let Some((login, user)) = found else {
            if let Credentials::Password(password) = credentials {
                self.inner
                    .password_checks
                    .verify(None, password.to_owned())
                    .await
                    .map_err(|Busy| (None, Reason::Busy))?;
            }
            return Err((None, Reason::UnknownUser));
        };
        let tenant = TenantName::parse(&user.tenant).map_err(|_| (None, Reason::TenantUnavailable))?;
        let allowed = match catalog.tenant(&tenant).await {
            Ok(Some(t)) => t.allowed_ips,
            Ok(None) => return Err((Some(tenant), Reason::TenantUnavailable)),
            Err(_) => return Err((Some(tenant), Reason::CatalogError)),
        };
        let admitted = admits(&allowed, peer) && admits(&user.allowed_ips, peer);
        Ok(Account { login, tenant, admitted })
    }

    /// What `credentials` authenticate `login` with, or why they do not.
    async fn credential(&self, login: &Login, credentials: Credentials<'_>) -> Result<Credential, Reason> {
        match credentials {
            Credentials::Password(password) => {
                let hash = self.inner.catalog.password_hash(login).await.map_err(|_| Reason::CatalogError)?;
                let stamp = hash.as_deref().map(Credential::password);
                let matched =
                    self.inner.password_checks.verify(hash, password.to_owned()).await.map_err(|Busy| Reason::Busy)?;
                match stamp {
                    Some(stamp) if matched => Ok(stamp),
                    Some(_) => Err(Reason::WrongPassword),
                    None => Err(Reason::NoPassword),
                }
            }
            Credentials::PublicKey(key) => {
                let keys = self.authorized_keys(login).await.map_err(|_| Reason::CatalogError)?;
                match keys.iter().find(|k| k.matches(key)) {
                    Some(k) => Ok(Credential::Key(k.fingerprint())),
                    None if keys.is_empty() => Err(Reason::NoKeys),
                    None => Err(Reason::UnknownKey),
                }
            }
        }
    }

    /// Opens the session `grant` allows, registered so that an
    /// administrator's change can end it.
    fn open_session(&self, grant: Grant) -> Result<Session, Reason> {
        let login = grant.login.as_str();
        let elsewhere = self.inner.cluster.sessions_elsewhere(login);
        let permit = self.inner.limits.open_session(login, elsewhere).map_err(|_| Reason::TooManySessions)?;
        let fs = TenantFs::open(&self.inner.data_dir.tenant_root(&grant.tenant))
            .map_err(|_| Reason::TenantUnavailable)?
            .with_durable_commits(self.inner.config.uploads.fsync);
        let registration = self.inner.grants.register(grant.clone());
        Ok(Session::new(self.clone(), &grant, fs, permit, registration))
    }

    /// The user's keys that parse (a user removed meanwhile has none).
    async fn authorized_keys(&self, login: &Login) -> Result<Vec<AuthorizedKey>, passerelle_catalog::CatalogError> {
        let stored = match self.inner.catalog.keys(login).await {
            Ok(stored) => stored,
            Err(passerelle_catalog::CatalogError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(stored.iter().filter_map(|k| AuthorizedKey::parse(&k.public_key).ok()).collect())
    }
}

/// Whether an allowlist admits `peer` (an empty one admits any address).
pub(super) fn admits(allowed: &[String], peer: SocketAddr) -> bool {
    allowed.is_empty() || allowed.iter().any(|net| net_contains(net, peer))
}

fn net_contains(cidr: &str, peer: SocketAddr) -> bool {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    cidr.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&ip))
}
