//! Authentication against the catalog. Every failure looks the same to the
//! client (same answer, same minimum delay, an argon2 verification even for
//! unknown users); the real reason goes to the audit trail only. Every
//! failure is scored by the defender; credential failures of an existing
//! user count towards its account lock. A login must come from an address
//! that both the tenant's and the user's allowlists admit (an empty list
//! admits any).

use std::net::SocketAddr;
use std::time::Duration;

use passerelle_catalog::{LockState, Login, TenantName};
use passerelle_keys::AuthorizedKey;
use russh::keys::PublicKey;

use super::fs::TenantFs;
use super::grants::{Credential, Grant};
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
/// `limits.max_auth_tries`-th trips the connection's tripwire.
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
        if let (Some(tenant), Reason::WrongPassword | Reason::UnknownKey) = (tenant, reason)
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
    WrongPassword,
    UnknownKey,
    Locked,
    DeniedIp,
    TooManySessions,
    TenantUnavailable,
}

impl Reason {
    /// How the defender scores it.
    fn offence(self) -> Option<Offence> {
        match self {
            Self::UnknownUser => Some(Offence::InvalidUser),
            Self::WrongPassword | Self::UnknownKey | Self::Locked | Self::DeniedIp => Some(Offence::WrongPassword),
            Self::TooManySessions => Some(Offence::LimitExceeded),
            Self::TenantUnavailable => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::UnknownKey => "unknown_key",
            Self::Locked => "locked",
            Self::DeniedIp => "denied_ip",
            Self::TooManySessions => "too_many_sessions",
            Self::TenantUnavailable => "tenant_unavailable",
        }
    }
}

impl Engine {
    /// Whether `key` is one of `login`'s authorised keys: answers the
    /// "would this key do?" query of SSH public-key authentication, before
    /// any signature. Not a login; not audited.
    pub(crate) async fn key_is_authorized(&self, login: &str, key: &PublicKey) -> bool {
        let Ok(login) = Login::parse(login) else { return false };
        self.authorized_keys(&login).await.iter().any(|k| k.matches(key))
    }

    /// The checks proper. Returns the tenant, the login and what it
    /// authenticated with, or why not.
    async fn check(
        &self,
        raw_login: &str,
        credentials: Credentials<'_>,
        peer: SocketAddr,
    ) -> Result<(TenantName, Login, Credential), (Option<TenantName>, Reason)> {
        let catalog = &self.inner.catalog;
        let user = match Login::parse(raw_login) {
            Ok(login) => catalog.user(&login).await.ok().flatten().map(|user| (login, user)),
            Err(_) => None,
        };
        let Some((login, user)) = user else {
            if let Credentials::Password(password) = credentials {
                burn_verification(password.to_owned()).await;
            }
            return Err((None, Reason::UnknownUser));
        };
        let tenant = TenantName::parse(&user.tenant).map_err(|_| (None, Reason::TenantUnavailable))?;
        let fail = |reason| (Some(tenant.clone()), reason);
        let credential = match credentials {
            Credentials::Password(password) => {
                let hash = catalog.password_hash(&login).await.ok().flatten();
                let stamp = hash.as_deref().map(Credential::password);
                if verify(hash, password.to_owned()).await { stamp } else { None }
            }
            Credentials::PublicKey(key) => self
                .authorized_keys(&login)
                .await
                .iter()
                .find(|k| k.matches(key))
                .map(|k| Credential::Key(k.fingerprint())),
        };
        if user.lock_state(passerelle_catalog::now_ms()) != LockState::Unlocked {
            return Err(fail(Reason::Locked));
        }
        let Some(credential) = credential else {
            return Err(fail(match credentials {
                Credentials::Password(_) => Reason::WrongPassword,
                Credentials::PublicKey(_) => Reason::UnknownKey,
            }));
        };
        let allowed = match catalog.tenant(&tenant).await {
            Ok(Some(t)) => t.allowed_ips,
            _ => return Err(fail(Reason::TenantUnavailable)),
        };
        if !admits(&allowed, peer) || !admits(&user.allowed_ips, peer) {
            return Err(fail(Reason::DeniedIp));
        }
        Ok((tenant, login, credential))
    }

    /// Opens the session `grant` allows, registered so that an
    /// administrator's change can end it.
    fn open_session(&self, grant: Grant) -> Result<Session, Reason> {
        let permit = self.inner.limits.open_session(grant.login.as_str()).map_err(|_| Reason::TooManySessions)?;
        let fs = TenantFs::open(&self.inner.data_dir.tenant_root(&grant.tenant))
            .map_err(|_| Reason::TenantUnavailable)?
            .with_durable_commits(self.inner.config.uploads.fsync);
        let registration = self.inner.grants.register(grant.clone());
        Ok(Session::new(self.clone(), &grant, fs, permit, registration))
    }

    async fn authorized_keys(&self, login: &Login) -> Vec<AuthorizedKey> {
        let stored = self.inner.catalog.keys(login).await.unwrap_or_default();
        stored.iter().filter_map(|k| AuthorizedKey::parse(&k.public_key).ok()).collect()
    }
}

/// argon2 is CPU-bound for tens of milliseconds: run it off the async workers.
async fn verify(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => passerelle_keys::verify_password(&hash, &password),
        None => passerelle_keys::dummy_verify(&password),
    })
    .await
    .unwrap_or(false)
}

/// Spends the time of a real verification for a login that does not exist.
async fn burn_verification(password: String) {
    verify(None, password).await;
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
