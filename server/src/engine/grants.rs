//! Live sessions and what their right to stay connected rests on, so that
//! an administrator's change ends them within about a second on every node.
//!
//! ```text
//!  login ─► Grant (tenant, login, address, key fingerprint or password
//!           stamp, catalog revision read before the checks) ─► Registry
//!
//!  every 1 s: catalog revision moved past a session's? ─► Catalog::access(login)
//!             ─► still admitted? yes: note the revision
//!                                no:  Ending fires (the front-end says why and
//!                                     closes), `session_end` audited
//! ```
//!
//! The catalog is the channel between the CLI and every node: each change
//! that can withdraw a right bumps its revision in the same transaction.
//! Only the login, the logout and this loop touch the registry; requests
//! never do. Temporary locks after failed logins never end a session (an
//! attacker could otherwise end anyone's sessions by failing logins).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use passerelle_catalog::{Access, Login, TenantName};
use tokio::sync::watch;
use tracing::warn;

use super::{Inner, Protocol};

/// How often the catalog revision is read: a change ends the sessions it
/// concerns within this time, plus the checks.
const POLL: Duration = Duration::from_secs(1);

/// What a session authenticated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Credential {
    /// The SSH key with this fingerprint (`SHA256:…`, as stored).
    Key(String),
    /// The password whose stored hash has this SHA-256 (the hash itself is
    /// not kept for the session's life).
    Password([u8; 32]),
}

impl Credential {
    /// A password login checked against the stored `hash`.
    pub(super) fn password(hash: &str) -> Self {
        Self::Password(stamp(hash))
    }
}

/// The SHA-256 of a stored argon2id hash: it changes with every `user
/// passwd` (each hash has a salt of its own), even to the same password.
fn stamp(hash: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, hash.as_bytes());
    let mut stamp = [0; 32];
    stamp.copy_from_slice(digest.as_ref());
    stamp
}

/// What one session's right rests on.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    pub(super) tenant: TenantName,
    pub(super) login: Login,
    pub(super) peer: SocketAddr,
    pub(super) protocol: Protocol,
    pub(super) credential: Credential,
    /// The catalog revision read before the login's checks: a change after
    /// it may not have been seen yet.
    pub(super) revision: i64,
}

/// Why a session must end, for people (the audit detail and what the
/// client is told); `None` while the catalog still admits it.
pub(super) fn verdict(grant: &Grant, access: Option<&Access>) -> Option<String> {
    let Some(access) = access else { return Some("user removed by an administrator".into()) };
    if access.tenant_removing || access.tenant != grant.tenant.as_str() {
        return Some("tenant removed by an administrator".into());
    }
    if access.admin_locked {
        return Some("user locked by an administrator".into());
    }
    match &grant.credential {
        Credential::Key(fingerprint) if !access.key_fingerprints.contains(fingerprint) => {
            return Some(format!("key {fingerprint} removed by an administrator"));
        }
        Credential::Password(used) if access.password_hash.as_deref().map(stamp) != Some(*used) => {
            return Some("password changed by an administrator".into());
        }
        _ => {}
    }
    let ip = grant.peer.ip();
    if !super::auth::admits(&access.tenant_allowed_ips, grant.peer) {
        return Some(format!("address {ip} no longer allowed for tenant {}", grant.tenant));
    }
    if !super::auth::admits(&access.user_allowed_ips, grant.peer) {
        return Some(format!("address {ip} no longer allowed for user {}", grant.login));
    }
    None
}

/// One registered session.
struct Entry {
    grant: Grant,
    started: Instant,
    /// Set once, with the reason, to end the session.
    end: watch::Sender<Option<Arc<str>>>,
}

/// Every live session of this node.
#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Entry>>,
    /// The highest catalog revision read so far (at a login, or by the
    /// watcher every second).
    latest: AtomicI64,
}

impl Registry {
    /// Registers a session; it stays registered until the returned
    /// [`Registration`] is dropped.
    pub(super) fn register(self: &Arc<Self>, grant: Grant) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.saw(grant.revision);
        let (end, ending) = watch::channel(None);
        let entry = Entry { grant, started: Instant::now(), end };
        self.live.lock().unwrap_or_else(PoisonError::into_inner).insert(id, entry);
        Registration { registry: Arc::downgrade(self), id, ending: Ending(ending) }
    }

    /// The sessions not checked against `revision` yet, and not ended.
    fn due(&self, revision: i64) -> Vec<(u64, Grant)> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter()
            .filter(|(_, e)| e.grant.revision < revision && e.end.borrow().is_none())
            .map(|(id, e)| (*id, e.grant.clone()))
            .collect()
    }

    /// The highest catalog revision read so far: what a session caches
    /// from the catalog (its tenant's import profiles) is current while
    /// this has not moved since it was read.
    pub(super) fn latest_revision(&self) -> i64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Notes that the catalog was at `revision`.
    fn saw(&self, revision: i64) {
        self.latest.fetch_max(revision, Ordering::AcqRel);
    }

    /// Notes that session `id` was found admitted at `revision`.
    fn checked(&self, id: u64, revision: i64) {
        if let Some(entry) = self.live.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&id) {
            entry.grant.revision = entry.grant.revision.max(revision);
        }
    }

    /// Ends session `id` with `reason`; returns how long it lasted, or
    /// `None` when it had already ended or gone.
    fn end(&self, id: u64, reason: &str) -> Option<Duration> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = live.get(&id)?;
        let reason: Arc<str> = Arc::from(reason);
        let ended = entry.end.send_if_modified(|end| {
            let first = end.is_none();
            if first {
                *end = Some(reason);
            }
            first
        });
        ended.then(|| entry.started.elapsed())
    }
}

/// Held by a session: deregisters it when dropped.
pub(super) struct Registration {
    registry: Weak<Registry>,
    id: u64,
    ending: Ending,
}

impl Registration {
    /// The session's end signal.
    pub(super) fn ending(&self) -> Ending {
        self.ending.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
        }
    }
}

/// Fires when an administrator's change ends the session: the front-end
/// then tells the client why and closes the connection.
#[derive(Clone)]
pub(crate) struct Ending(watch::Receiver<Option<Arc<str>>>);

impl Ending {
    /// Resolves, with the sentence to tell the client, once the session has
    /// been ended; never otherwise. Cancel-safe.
    pub(crate) async fn ended(&mut self) -> String {
        let reason =
            self.0.wait_for(Option::is_some).await.ok().and_then(|reason| reason.as_deref().map(str::to_owned));
        match reason {
            Some(reason) => format!("session ended: {reason}"),
            // The session is gone: nothing will end it any more.
            None => std::future::pending().await,
        }
    }
}

/// Checks the live sessions again whenever the catalog revision moves;
/// stops when the engine is gone.
pub(super) async fn watch_catalog(engine: Weak<Inner>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(POLL).await;
        let Some(inner) = engine.upgrade() else { return };
        match check(&inner).await {
            Ok(()) => failing = false,
            // Said once per outage, not every second; the sessions are
            // checked again once the catalog answers.
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "cannot check live sessions against the catalog");
            }
            Err(_) => {}
        }
    }
}

/// One round: the sessions due are checked, login by login.
async fn check(inner: &Inner) -> Result<(), passerelle_catalog::CatalogError> {
    let revision = inner.catalog.revision().await?;
    inner.grants.saw(revision);
    let mut due: HashMap<Login, Vec<(u64, Grant)>> = HashMap::new();
    for (id, grant) in inner.grants.due(revision) {
        due.entry(grant.login.clone()).or_default().push((id, grant));
    }
    for (login, sessions) in due {
        let access = inner.catalog.access(&login).await?;
        for (id, grant) in sessions {
            match verdict(&grant, access.as_ref()) {
                None => inner.grants.checked(id, revision),
                Some(reason) => {
                    if let Some(lasted) = inner.grants.end(id, &reason) {
                        inner.audit.session_ended(&grant, &reason, lasted);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(credential: Credential) -> Grant {
        Grant {
            tenant: TenantName::parse("acme").unwrap(),
            login: Login::parse("alice").unwrap(),
            peer: "192.0.2.7:40000".parse().unwrap(),
            protocol: Protocol::Sftp,
            credential,
            revision: 0,
        }
    }

    fn access() -> Access {
        Access {
            tenant: "acme".into(),
            tenant_removing: false,
            admin_locked: false,
            password_hash: Some("$argon2id$one".into()),
            key_fingerprints: vec!["SHA256:k1".into()],
            user_allowed_ips: Vec::new(),
            tenant_allowed_ips: vec!["192.0.2.0/24".into()],
        }
    }

    #[test]
    fn a_session_ends_when_what_it_rests_on_is_withdrawn() {
        let key = grant(Credential::Key("SHA256:k1".into()));
        let password = grant(Credential::password("$argon2id$one"));
        assert_eq!(verdict(&key, Some(&access())), None);
        assert_eq!(verdict(&password, Some(&access())), None);
        assert_eq!(verdict(&key, None).unwrap(), "user removed by an administrator");
        let locked = Access { admin_locked: true, ..access() };
        assert_eq!(verdict(&key, Some(&locked)).unwrap(), "user locked by an administrator");
        let removing = Access { tenant_removing: true, admin_locked: true, ..access() };
        assert_eq!(verdict(&key, Some(&removing)).unwrap(), "tenant removed by an administrator");
        let rekeyed = Access { key_fingerprints: vec!["SHA256:k2".into()], ..access() };
        assert_eq!(verdict(&key, Some(&rekeyed)).unwrap(), "key SHA256:k1 removed by an administrator");
        assert_eq!(verdict(&password, Some(&rekeyed)), None, "a password session keeps its password");
        let repassed = Access { password_hash: Some("$argon2id$two".into()), ..access() };
        assert_eq!(verdict(&password, Some(&repassed)).unwrap(), "password changed by an administrator");
        assert_eq!(verdict(&key, Some(&repassed)), None, "a key session keeps its key");
        let moved = Access { tenant_allowed_ips: vec!["198.51.100.0/24".into()], ..access() };
        assert_eq!(verdict(&key, Some(&moved)).unwrap(), "address 192.0.2.7 no longer allowed for tenant acme");
        let narrowed = Access { user_allowed_ips: vec!["192.0.2.8/32".into()], ..access() };
        assert_eq!(verdict(&key, Some(&narrowed)).unwrap(), "address 192.0.2.7 no longer allowed for user alice");
    }

    #[tokio::test]
    async fn an_ended_session_says_why_once_and_leaves_the_registry_when_dropped() {
        let registry = Arc::new(Registry::default());
        let registration = registry.register(grant(Credential::Key("SHA256:k1".into())));
        let mut ending = registration.ending();
        assert_eq!(registry.due(1).len(), 1);
        assert_eq!(registry.due(0).len(), 0, "checked at its own revision");
        assert!(registry.end(0, "user locked by an administrator").is_some());
        assert!(registry.end(0, "again").is_none(), "ended once");
        assert_eq!(ending.ended().await, "session ended: user locked by an administrator");
        assert!(registry.due(5).is_empty(), "an ended session is not checked again");
        drop(registration);
        assert!(registry.live.lock().unwrap().is_empty());
    }
}
