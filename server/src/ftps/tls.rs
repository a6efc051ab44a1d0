//! The TLS policy of FTPS, and the certificate that can be reloaded without
//! a restart.
//!
//! - Versions: `ftps.tls_versions` (TLS 1.2 only by default). rustls has no
//!   SSL 3, TLS 1.0 or 1.1 at all.
//! - Suites: ECDHE with AES-GCM or ChaCha20-Poly1305 only (rustls has no CBC
//!   and no static RSA key exchange); the server's order wins.
//! - Groups: X25519, P-256, P-384. Extended master secret required unless
//!   `ftps.require_extended_master_secret` is off (for Go before 1.21).
//! - Crypto: aws-lc-rs, the one provider of the whole binary.
//! - Resumption: bound to one control connection ([`SessionTls`]), so that
//!   a data connection can resume the TLS session of its own control
//!   connection and no other, by either mechanism clients use:
//!   - session IDs (OpenSSL, GnuTLS), in a cache private to the control
//!     connection;
//!   - session tickets (Go's crypto/tls knows no other): random names of
//!     sessions kept by the control connection ([`SessionTickets`]), so
//!     that only tickets it, or a data connection that resumed, issued
//!     resume anything.
//!
//!   Only the control handshake, and data handshakes that resumed, add to
//!   what can be resumed: a full handshake on a data port (someone else
//!   racing the client to it) must not leave a session or a ticket that a
//!   later data port accepts. Its session is staged and dropped, its ticket
//!   (if the client asked for one) is never accepted.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use passerelle_config::{FtpsConfig, TlsVersion};
use passerelle_keys::{KeyError, TlsIdentity};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{HandshakeKind, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Sessions one control connection may keep for its data connections to
/// resume: its own, plus the TLS 1.3 tickets of resumed data connections.
/// The same bound holds for the session tickets it accepts.
const SESSIONS_PER_CONTROL: usize = 8;

/// Why the TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The certificate or key file fails the checks made at start (a key
    /// file others can read, a symlink, a short RSA key, a pair that does
    /// not match...).
    #[error(transparent)]
    Identity(#[from] KeyError),
    /// The checked PEM text is not what rustls reads.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the key, the pair or the policy.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate presented to clients; [`CertStore::reload`] swaps it for
/// new handshakes, connections already open keep theirs.
#[derive(Debug)]
pub(crate) struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads `cert` and `key` (PEM) with the checks of
    /// [`TlsIdentity::load`]: they must match, the key file must be private.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let current = RwLock::new(Arc::new(read_pair(cert, key)?));
        Ok(Self { cert: cert.to_owned(), key: key.to_owned(), current })
    }

    /// Reads and checks the files again, as at start; on error the
    /// certificate in use stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(read_pair(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// The pair after every check of the keys crate, in rustls' form.
fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let identity = TlsIdentity::load(cert, key)?;
    let pem = |path: &Path, message: String| TlsError::Pem { path: path.to_owned(), message };
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(identity.key_pem().expose_secret().as_bytes())
        .map_err(|e| pem(key, e.to_string()))?;
    Ok(CertifiedKey::from_der(chain, private, &provider())?)
}

/// aws-lc-rs restricted to the policy's suites and groups.
fn provider() -> CryptoProvider {
    use aws_lc_rs::cipher_suite as cs;
    use aws_lc_rs::kx_group;
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            // Used only when "1.3" is configured; all AEAD with (EC)DHE.
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..aws_lc_rs::default_provider()
    }
}

/// The FTPS TLS policy with its reloadable certificate.
#[derive(Clone)]
pub(crate) struct TlsPolicy {
    base: Arc<ServerConfig>,
}

impl TlsPolicy {
    /// Builds the policy from `[ftps]` over `certs`.
    pub(crate) fn new(config: &FtpsConfig, certs: Arc<CertStore>) -> Result<Self, TlsError> {
        let versions: Vec<&'static SupportedProtocolVersion> = config
            .tls_versions
            .iter()
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect();
        let mut base = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_cert_resolver(certs);
        base.require_ems = config.require_extended_master_secret;
        base.ignore_client_order = true;
        // Replaced per control connection, as the ticketer (none here); see
        // `session`.
        base.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Self { base: Arc::new(base) })
    }

    /// The TLS of one control connection and its data connections: session
    /// IDs and tickets of their own.
    pub(crate) fn session(&self) -> SessionTls {
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSIONS_PER_CONTROL);
        let tickets = Arc::new(SessionTickets::default());
        let mut config = (*self.base).clone();
        config.session_storage = Arc::clone(&sessions);
        let mut control = config.clone();
        control.ticketer =
            Arc::new(IssuedTickets { tickets: Arc::clone(&tickets), staged: None, found: AtomicBool::new(false) });
        let control = TlsAcceptor::from(Arc::new(control));
        SessionTls { control, config: Arc::new(config), sessions, tickets }
    }
}

/// One control connection's TLS configuration: its session cache and its
/// tickets are its own, so a handshake through it that resumes proves it
/// is the same client as the control connection.
#[derive(Clone)]
pub(crate) struct SessionTls {
    /// For the control connection: its session enters the cache, its
    /// tickets the kept ones.
    control: TlsAcceptor,
    /// The data connections' configuration, less their staged storage.
    config: Arc<ServerConfig>,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<SessionTickets>,
}

impl SessionTls {
    /// The acceptor of the control connection.
    pub(crate) fn control(&self) -> &TlsAcceptor {
        &self.control
    }

    /// The TLS handshake of a data connection. It may resume a session of the
    /// cache or of a kept ticket; what it would add (a new session, new
    /// tickets) is kept only if it resumed, i.e. if its client holds the
    /// control connection's secrets. Whether it resumed is for the caller
    /// to check.
    pub(crate) async fn accept_data(&self, stream: TcpStream) -> io::Result<DataTls> {
        let staged = Arc::new(Staged { sessions: Arc::clone(&self.sessions), puts: Mutex::default() });
        let tickets = Arc::new(IssuedTickets {
            tickets: Arc::clone(&self.tickets),
            staged: Some(Mutex::default()),
            found: AtomicBool::new(false),
        });
        let mut config = (*self.config).clone();
        let storage: Arc<Staged> = Arc::clone(&staged);
        config.session_storage = storage;
        let ticketer: Arc<IssuedTickets> = Arc::clone(&tickets);
        config.ticketer = ticketer;
        let stream = TlsAcceptor::from(Arc::new(config)).accept(stream).await?;
        let mut resumed_by = None;
        if stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
            staged.commit();
            tickets.commit();
            // rustls looks a ticket up first, and a session ID only when no
            // ticket was offered.
            let by_ticket = tickets.found.load(Ordering::Relaxed);
            resumed_by = Some(if by_ticket { ResumedBy::Ticket } else { ResumedBy::SessionId });
        }
        Ok(DataTls { stream, resumed_by })
    }
}

/// A data connection after its TLS handshake.
pub(crate) struct DataTls {
    /// The connection.
    pub(crate) stream: TlsStream<TcpStream>,
    /// How it resumed the control connection's session; `None` for a full
    /// handshake.
    pub(crate) resumed_by: Option<ResumedBy>,
}

/// How a data connection resumed a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResumedBy {
    /// A session ticket (TLS 1.2 or 1.3).
    Ticket,
    /// A TLS 1.2 session ID.
    SessionId,
}

impl ResumedBy {
    /// The log's name for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ticket => "ticket",
            Self::SessionId => "session id",
        }
    }
}

/// How long a client may keep a ticket, as a hint: the ticket lives no
/// longer than its control connection anyway.
const TICKET_LIFETIME_SECS: u32 = 24 * 3600;

/// A ticket and the session it names.
type Ticket = (Vec<u8>, Vec<u8>);

/// The session tickets of one control connection. A ticket here is a random
/// name for a session kept in memory, like a session ID, not the session
/// sealed with a key: a ticket issued to anyone else (a stranger's full
/// handshake on a data port) or to another control connection names nothing
/// here, and there is no key to keep, rotate or leak. The control
/// handshake's tickets are kept as long as the connection (Python's ftplib
/// offers that session on every data connection); those of data handshakes
/// that resumed, the newest few.
#[derive(Default)]
struct SessionTickets {
    control: Mutex<Vec<Ticket>>,
    data: Mutex<VecDeque<Ticket>>,
}

impl SessionTickets {
    /// Keeps a ticket of the control handshake (one in TLS 1.2, a couple in
    /// 1.3); false beyond the bound.
    fn keep_control(&self, ticket: Ticket) -> bool {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if control.len() >= SESSIONS_PER_CONTROL {
            return false;
        }
        control.push(ticket);
        true
    }

    /// Keeps a ticket of a resumed data handshake, forgetting the oldest
    /// beyond the bound.
    fn keep_data(&self, ticket: Ticket) {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        if data.len() >= SESSIONS_PER_CONTROL {
            data.pop_front();
        }
        data.push_back(ticket);
    }

    /// The session `ticket` names, if this control connection issued it.
    fn find(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let named = |kept: &Ticket| (kept.0 == ticket).then(|| kept.1.clone());
        let control = self.control.lock().unwrap_or_else(PoisonError::into_inner).iter().find_map(named);
        control.or_else(|| self.data.lock().unwrap_or_else(PoisonError::into_inner).iter().find_map(named))
    }
}

impl std::fmt::Debug for SessionTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sessions' secrets stay out of logs.
        f.debug_struct("SessionTickets").finish_non_exhaustive()
    }
}

/// [`SessionTickets`] as one handshake sees them. The control handshake's
/// tickets are kept at once (`staged` is `None`); a data handshake's wait
/// for [`IssuedTickets::commit`], which only a resumed handshake reaches.
#[derive(Debug)]
struct IssuedTickets {
    tickets: Arc<SessionTickets>,
    staged: Option<Mutex<Vec<Ticket>>>,
    /// Whether a ticket presented named a session.
    found: AtomicBool,
}

impl IssuedTickets {
    /// Keeps the tickets this handshake issued.
    fn commit(&self) {
        if let Some(staged) = &self.staged {
            for ticket in std::mem::take(&mut *staged.lock().unwrap_or_else(PoisonError::into_inner)) {
                self.tickets.keep_data(ticket);
            }
        }
    }
}

impl ProducesTickets for IssuedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut name = vec![0; 32];
        ::aws_lc_rs::rand::fill(&mut name).ok()?;
        let ticket = (name.clone(), plain.to_vec());
        match &self.staged {
            None => self.tickets.keep_control(ticket).then_some(name),
            Some(staged) => {
                let mut staged = staged.lock().unwrap_or_else(PoisonError::into_inner);
                // One handshake issues one ticket (TLS 1.2) or a couple (TLS 1.3).
                if staged.len() >= SESSIONS_PER_CONTROL {
                    return None;
                }
                staged.push(ticket);
                Some(name)
            }
        }
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let session = self.tickets.find(cipher);
        if session.is_some() {
            self.found.store(true, Ordering::Relaxed);
        }
        session
    }
}

/// The session cache as one data handshake sees it: lookups go to the
/// control connection's cache, additions wait for [`Staged::commit`].
#[derive(Debug)]
struct Staged {
    sessions: Arc<dyn StoresServerSessions>,
    puts: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Staged {
    /// Hands the held additions to the control connection's cache.
    fn commit(&self) {
        for (key, value) in std::mem::take(&mut *self.puts.lock().unwrap_or_else(PoisonError::into_inner)) {
            self.sessions.put(key, value);
        }
    }
}

impl StoresServerSessions for Staged {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut puts = self.puts.lock().unwrap_or_else(PoisonError::into_inner);
        // One handshake stores one session, or a couple of TLS 1.3 tickets.
        if puts.len() >= SESSIONS_PER_CONTROL {
            return false;
        }
        puts.push((key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rustls::client::Tls12Resumption;
    use rustls::{ClientConfig, RootCertStore};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsConnector;

    use super::*;

    /// A policy over a certificate made for the test, and the certificate.
    fn policy(dir: &Path, versions: Vec<TlsVersion>) -> (TlsPolicy, CertificateDer<'static>) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let identity = TlsIdentity::load_or_generate(&cert, &key).expect("test certificate");
        let config = FtpsConfig {
            explicit_listen: Vec::new(),
            implicit_listen: Vec::new(),
            passive_ports: 50_000..=50_010,
            cert: cert.clone(),
            key: key.clone(),
            tls_versions: versions,
            require_session_reuse: true,
            require_extended_master_secret: true,
            max_passive_ports_per_user: 1,
            passive_idle_timeout: std::time::Duration::from_secs(30),
        };
        let store = Arc::new(CertStore::load(&cert, &key).expect("store"));
        let der = CertificateDer::from(identity.cert_der().to_vec());
        (TlsPolicy::new(&config, store).expect("policy"), der)
    }

    /// A client with a session cache of its own, trusting `cert`.
    fn client(cert: &CertificateDer<'static>, tickets: bool) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).expect("root");
        let mut config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !tickets {
            config.resumption = config.resumption.tls12_resumption(Tls12Resumption::SessionIdOnly);
        }
        TlsConnector::from(Arc::new(config))
    }

    /// Which side: the control connection, or a data connection of `SessionTls`.
    enum Side<'a> {
        Control(&'a SessionTls),
        Data(&'a SessionTls),
    }

    /// One handshake of `connector` with `side` over loopback; how the
    /// server saw it. The server then sends two bytes that the client reads,
    /// so that TLS 1.3 tickets reach it.
    async fn handshake(connector: &TlsConnector, side: Side<'_>) -> (Option<HandshakeKind>, Option<ResumedBy>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let mut tls = connector.connect(name, tcp).await.expect("client handshake");
            let mut two = [0; 2];
            tls.read_exact(&mut two).await.expect("read");
        };
        let server = async {
            let (tcp, _) = listener.accept().await.expect("accept");
            match side {
                Side::Control(session) => {
                    let mut tls = session.control().accept(tcp).await.expect("control handshake");
                    tls.write_all(b"ok").await.expect("write");
                    (tls.get_ref().1.handshake_kind(), None)
                }
                Side::Data(session) => {
                    let DataTls { mut stream, resumed_by } = session.accept_data(tcp).await.expect("data handshake");
                    stream.write_all(b"ok").await.expect("write");
                    (stream.get_ref().1.handshake_kind(), resumed_by)
                }
            }
        };
        let ((), seen) = tokio::join!(client, server);
        seen
    }

    #[tokio::test]
    async fn only_the_control_connections_client_resumes_on_its_data_connections() {
        use HandshakeKind::{Full, Resumed};
        let dir = tempfile::tempdir().expect("tempdir");
        for versions in [vec![TlsVersion::Tls12], vec![TlsVersion::Tls13]] {
            let (policy, cert) = policy(dir.path(), versions.clone());
            // Tickets (Go, OpenSSL's default), then session IDs only (TLS 1.2).
            for tickets in [true, false] {
                let by =
                    if tickets || versions == [TlsVersion::Tls13] { ResumedBy::Ticket } else { ResumedBy::SessionId };
                let session = policy.session();
                let owner = client(&cert, tickets);
                assert_eq!(handshake(&owner, Side::Control(&session)).await, (Some(Full), None));
                for transfer in 0..12 {
                    let seen = handshake(&owner, Side::Data(&session)).await;
                    assert_eq!(seen, (Some(Resumed), Some(by)), "{versions:?} tickets {tickets}, data #{transfer}");
                }
                // Someone else wins the race to a data port: a full
                // handshake, which leaves it nothing to resume later.
                let stranger = client(&cert, tickets);
                assert_eq!(handshake(&stranger, Side::Data(&session)).await, (Some(Full), None));
                let seen = handshake(&stranger, Side::Data(&session)).await;
                assert_eq!(seen, (Some(Full), None), "{versions:?} tickets {tickets}: stranger resumed");
                // Nor does the owner's session open another control connection's data ports.
                let other = policy.session();
                assert_eq!(handshake(&owner, Side::Data(&other)).await, (Some(Full), None));
            }
        }
    }

    #[test]
    fn the_policy_has_only_ecdhe_aead_suites() {
        for suite in provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"), "{name}");
            assert!(name.contains("GCM") || name.contains("CHACHA20_POLY1305"), "{name}");
        }
    }
}
