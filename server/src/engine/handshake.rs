//! Handshakes that failed (TLS or SSH key exchange), made visible: each is
//! counted in `/metrics` by protocol and reason (never by address), and
//! written to the log and the audit trail with the address and a sentence an
//! operator can act on, at most once per source, protocol and reason a
//! minute (repeats are counted and summarised, see `refusals`).
//!
//! ```text
//!  front-end ─► HandshakeFailure { reason, detail } ─► Engine::handshake_failed
//!                                                        ├─ passerelle_handshake_failures_total{protocol,reason}
//!                                                        └─ first of its source and reason in a minute?
//!                                                             ├─ yes: warning + audit row (action "handshake")
//!                                                             └─ no: counted, summarised later
//! ```

use std::fmt;

/// Why a handshake failed, as a bounded set: the `reason` label of
/// `passerelle_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HandshakeReason {
    /// The client offered no protocol version the server allows (TLS 1.0 or
    /// 1.1 only, TLS 1.3 only when 1.2 is configured, SSH-1).
    NoCommonVersion,
    /// No cipher suite (TLS) or cipher (SSH) in common.
    NoCommonCipher,
    /// TLS: the client sent no extended master secret, which the server
    /// requires (`ftps.require_extended_master_secret`).
    NoExtendedMasterSecret,
    /// No key exchange group (TLS) or algorithm (SSH) in common.
    NoCommonKeyExchange,
    /// No signature scheme (TLS) or host key algorithm (SSH) in common.
    NoCommonSignature,
    /// SSH: no MAC in common.
    NoCommonMac,
    /// The client refused the server's certificate or host key (for
    /// instance a TLS alert "unknown CA" or "bad certificate").
    ClientRejectedServer,
    /// The client sent an alert or a disconnect the other reasons do not cover.
    ClientAlert,
    /// What the client sent is not the protocol (not TLS, not SSH, malformed).
    NotTheProtocol,
    /// The client closed the connection during the handshake.
    ClosedDuringHandshake,
    /// The handshake did not finish within the login grace time.
    Timeout,
    /// Anything else (the detail says what).
    Other,
}

impl HandshakeReason {
    /// The label value in `/metrics`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::NoCommonVersion => "no_common_version",
            Self::NoCommonCipher => "no_common_cipher",
            Self::NoExtendedMasterSecret => "no_extended_master_secret",
            Self::NoCommonKeyExchange => "no_common_key_exchange",
            Self::NoCommonSignature => "no_common_signature",
            Self::NoCommonMac => "no_common_mac",
            Self::ClientRejectedServer => "client_rejected_server",
            Self::ClientAlert => "client_alert",
            Self::NotTheProtocol => "not_the_protocol",
            Self::ClosedDuringHandshake => "closed_during_handshake",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for HandshakeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One failed handshake: its reason, and the sentence for the log and the
/// audit trail ("client sent no extended master secret", "no common key
/// exchange: client offers diffie-hellman-group14-sha1 only").
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HandshakeFailure {
    /// The bounded reason (the metric's label).
    pub(crate) reason: HandshakeReason,
    /// What an operator reads; it may quote what the client offered, never
    /// a secret.
    pub(crate) detail: String,
}

impl HandshakeFailure {
    /// A failure for `reason`, explained by `detail`.
    pub(crate) fn new(reason: HandshakeReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}
