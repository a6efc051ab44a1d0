//! The SSH side: algorithms, authentication, and the one thing a session
//! channel may do — run the `sftp` subsystem. Shells, commands (including
//! legacy `scp -O`), terminals, environment, forwarding of ports, agents and
//! X11 are refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session as SshSession, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Preferred, cipher, compression, kex, mac};
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::dispatch;
use super::grace::LoginFlag;
use crate::engine::{Alive, ConnectionPermit, Credentials, Ending, Engine, LoginAttempts, Protocol, Session, Tripwire};

/// Session channels one connection may have open at once (OpenSSH clients
/// use one); each SFTP channel has its own in-flight window.
const MAX_CHANNELS: usize = 4;

/// What a command or shell request gets on its standard error.
const ONLY_SFTP: &str = "passerelle: only SFTP is available on this server (no shell, no commands)\n";
/// What legacy `scp -O` (which runs `scp -t`/`scp -f` remotely) gets.
const NO_LEGACY_SCP: &str = "passerelle: only SFTP is available; use scp without -O (its default SFTP mode)\n";

/// Ciphers offered by default: AEAD only.
const AEAD_CIPHERS: &[cipher::Name] = &[cipher::AES_256_GCM, cipher::AES_128_GCM, cipher::CHACHA20_POLY1305];
/// `sftp.libssh2_compat`: AEAD first, then AES-CTR for libssh2 < 1.11.
const COMPAT_CIPHERS: &[cipher::Name] =
    &[cipher::AES_256_GCM, cipher::AES_128_GCM, cipher::CHACHA20_POLY1305, cipher::AES_256_CTR, cipher::AES_128_CTR];
/// MACs by default: ETM only (unused with AEAD ciphers; listed so that the
/// negotiation never lands on encrypt-and-MAC).
const ETM_MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];
/// `sftp.libssh2_compat`: ETM first, then the encrypt-and-MAC SHA-2 MACs.
const COMPAT_MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM, mac::HMAC_SHA512, mac::HMAC_SHA256];

/// The algorithms offered. Client preference decides among them (SSH rules).
pub(super) fn preferred(libssh2_compat: bool) -> Preferred {
    Preferred {
        kex: Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            // Markers, not algorithms: without them strict KEX (the Terrapin
            // fix) and RFC 8308 server-sig-algs are silently off.
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        key: Cow::Borrowed(&[
            Algorithm::Ed25519,
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 },
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 },
            Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
            Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
        ]),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(if libssh2_compat { COMPAT_CIPHERS } else { AEAD_CIPHERS }),
        mac: Cow::Borrowed(if libssh2_compat { COMPAT_MACS } else { ETM_MACS }),
        compression: Cow::Borrowed(&[compression::NONE]),
    }
}

/// The russh server configuration.
pub(super) fn config(engine: &Engine, keys: Vec<russh::keys::PrivateKey>) -> russh::server::Config {
    let limits = &engine.config().limits;
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed(crate::engine::SSH_ID)),
        methods: methods(),
        // The engine delays every failed login itself; this floor covers the
        // key probes that never reach it. The first "none" probe is free.
        auth_rejection_time: Duration::from_millis(100),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        // russh counts the initial "none" probe as a rejection, OpenSSH does
        // not: one more keeps `max_auth_tries` real attempts.
        max_auth_attempts: usize::try_from(limits.max_auth_tries).unwrap_or(usize::MAX).saturating_add(1),
        inactivity_timeout: Some(limits.idle_timeout),
        // Large enough that requests are never held back on a well-behaved
        // client; see `dispatch` for the in-flight bound.
        channel_buffer_size: 512,
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        preferred: preferred(engine.config().sftp.libssh2_compat),
        ..Default::default()
    }
}

fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

/// A refusal that leaves both methods open, so a client can try again (up
/// to `max_auth_tries`). The plain reject would drop "password" from the
/// list and allow one password attempt per connection.
fn reject() -> Auth {
    Auth::Reject { proceed_with_methods: Some(methods()), partial_success: false }
}

/// One SSH connection.
pub(super) struct Connection {
    engine: Engine,
    peer: SocketAddr,
    logged_in: LoginFlag,
    session: Option<Arc<Session>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Session channels open now: those waiting for a request plus the
    /// SFTP sessions running.
    live: Arc<AtomicUsize>,
    /// Held by every task of the connection, so that a shutdown can wait for them.
    alive: Alive,
    permit: ConnectionPermit,
    logins: LoginAttempts,
    /// Where the session's end signal goes at login (the connection task
    /// disconnects the client when it fires).
    ending: Option<oneshot::Sender<Ending>>,
}

impl Connection {
    pub(super) fn new(
        engine: Engine,
        peer: SocketAddr,
        logged_in: LoginFlag,
        permit: ConnectionPermit,
        alive: Alive,
        tripwire: Tripwire,
        ending: oneshot::Sender<Ending>,
    ) -> Self {
        let logins = LoginAttempts::new(engine.clone(), peer, Protocol::Sftp, tripwire);
        Self {
            engine,
            peer,
            logged_in,
            session: None,
            channels: HashMap::new(),
            live: Arc::default(),
            alive,
            permit,
            logins,
            ending: Some(ending),
        }
    }

    async fn login(&mut self, user: &str, credentials: Credentials<'_>) -> Auth {
        // Past `limits.max_auth_tries` the tripwire is set; russh's own
        // attempt limit then ends the connection.
        match self.logins.attempt(user, credentials).await {
            Ok(session) => {
                if let Some(ending) = self.ending.take() {
                    let _ = ending.send(session.ending());
                }
                self.session = Some(Arc::new(session));
                self.logged_in.set();
                self.permit.logged_in();
                Auth::Accept
            }
            Err(_) => reject(),
        }
    }

    /// Drops a session channel that will not run SFTP.
    fn forget(&mut self, channel: ChannelId) {
        if self.channels.remove(&channel).is_some() {
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Answers a shell or command request: a message on standard error,
    /// exit status 1, and the channel closed.
    fn refuse_with_message(channel: ChannelId, message: &str, session: &mut SshSession) -> Result<(), russh::Error> {
        session.channel_success(channel)?;
        session.extended_data(channel, 1, message.as_bytes().to_vec())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, Credentials::Password(password)).await)
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        // ssh-rsa signs with SHA-1: refused, as OpenSSH does by default.
        if *offer.algorithm == (Algorithm::Rsa { hash: None }) {
            return Ok(reject());
        }
        if self.engine.key_is_authorized(user, offer.public_key).await { Ok(Auth::Accept) } else { Ok(reject()) }
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if *key.algorithm == (Algorithm::Rsa { hash: None }) {
            return Ok(reject());
        }
        Ok(self.login(user, Credentials::PublicKey(key.public_key)).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if self.session.is_none() || self.live.load(Ordering::Acquire) >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let user = self.session.as_ref().filter(|_| name == "sftp");
        let (Some(user), true) = (user, self.channels.contains_key(&channel)) else {
            debug!(subsystem = %name.chars().take(64).collect::<String>(), "refused subsystem");
            return session.channel_failure(channel);
        };
        let user = Arc::clone(user);
        let Some(sftp) = self.channels.remove(&channel) else { return session.channel_failure(channel) };
        session.channel_success(channel)?;
        let stall = self.engine.config().limits.idle_timeout;
        let (alive, live) = (self.alive.clone(), Arc::clone(&self.live));
        tokio::spawn(async move {
            dispatch::run(sftp, user, stall).await;
            live.fetch_sub(1, Ordering::AcqRel);
            drop(alive);
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.forget(channel);
        let legacy_scp = data.starts_with(b"scp ");
        info!(peer = %self.peer, legacy_scp, "refused command execution");
        Self::refuse_with_message(channel, if legacy_scp { NO_LEGACY_SCP } else { ONLY_SFTP }, session)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut SshSession) -> Result<(), Self::Error> {
        self.forget(channel);
        info!(peer = %self.peer, "refused shell");
        Self::refuse_with_message(channel, ONLY_SFTP, session)
    }

    #[allow(clippy::too_many_arguments, reason = "russh's Handler trait fixes the signature")]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(&mut self, channel: ChannelId, session: &mut SshSession) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        Ok(false)
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        info!(peer = %self.peer, "refused port forwarding");
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        info!(peer = %self.peer, "refused remote port forwarding");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut SshSession) -> Result<(), Self::Error> {
        // A session channel closed before it ran SFTP.
        self.forget(channel);
        Ok(())
    }
}
