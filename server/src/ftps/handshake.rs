//! Why a TLS handshake failed, in the engine's bounded reasons and a
//! sentence an operator can act on: what tokio-rustls returns is an
//! `io::Error` that wraps rustls' own error (or an end of stream), and
//! rustls' error says which side gave up and why.
//!
//! ```text
//!  io::Error ─┬─ wraps rustls::Error ─┬─ PeerIncompatible (no common version, suite, group, EMS...)
//!             │                       ├─ AlertReceived (the client refused our certificate, or gave up)
//!             │                       └─ InvalidMessage, InappropriateMessage...: not TLS
//!             └─ UnexpectedEof, reset: closed during the handshake
//! ```

use std::io;

use rustls::{AlertDescription, PeerIncompatible};

use crate::engine::{HandshakeFailure, HandshakeReason};

/// The failure a handshake's error stands for.
pub(super) fn classify(error: &io::Error) -> HandshakeFailure {
    if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return from_rustls(tls);
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            HandshakeFailure::new(
                HandshakeReason::ClosedDuringHandshake,
                "client closed the connection during the TLS handshake",
            )
        }
        _ => HandshakeFailure::new(HandshakeReason::Other, format!("TLS handshake failed: {error}")),
    }
}

/// [`classify`] for a data connection, which the sentence says.
pub(super) fn classify_data(error: &io::Error) -> HandshakeFailure {
    let failure = classify(error);
    HandshakeFailure::new(failure.reason, format!("data connection: {}", failure.detail))
}

/// The failure of the login grace time running out mid-handshake.
pub(super) fn timeout() -> HandshakeFailure {
    HandshakeFailure::new(HandshakeReason::Timeout, "TLS handshake not finished within the login grace time")
}

fn from_rustls(error: &rustls::Error) -> HandshakeFailure {
    use HandshakeReason as R;
    let (reason, detail) = match error {
        rustls::Error::PeerIncompatible(incompatible) => return from_incompatible(incompatible),
        rustls::Error::AlertReceived(alert) => return from_alert(*alert),
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            (R::NotTheProtocol, format!("client did not speak TLS ({error})"))
        }
        rustls::Error::PeerMisbehaved(_) => (R::NotTheProtocol, format!("client broke the TLS protocol ({error})")),
        other => (R::Other, format!("TLS handshake failed: {other}")),
    };
    HandshakeFailure::new(reason, detail)
}

fn from_incompatible(incompatible: &PeerIncompatible) -> HandshakeFailure {
    use HandshakeReason as R;
    let (reason, detail) = match incompatible {
        PeerIncompatible::Tls12NotOffered => (R::NoCommonVersion, "client offered only TLS 1.0/1.1".to_owned()),
        // rustls looks for this TLS 1.2 extension before it looks at the
        // version: its absence is how a TLS 1.0/1.1 client shows.
        PeerIncompatible::SignatureAlgorithmsExtensionRequired => (
            R::NoCommonVersion,
            "client offered only TLS 1.0/1.1 (its hello has no signature_algorithms extension)".to_owned(),
        ),
        PeerIncompatible::Tls12NotOfferedOrEnabled | PeerIncompatible::SupportedVersionsExtensionRequired => (
            R::NoCommonVersion,
            "client offered no TLS version the server allows (see ftps.tls_versions; TLS 1.0/1.1 are never allowed)"
                .to_owned(),
        ),
        PeerIncompatible::NoCipherSuitesInCommon => {
            (R::NoCommonCipher, "client offered no TLS 1.2 ECDHE AEAD suite (nor a TLS 1.3 suite)".to_owned())
        }
        PeerIncompatible::ExtendedMasterSecretExtensionRequired => (
            R::NoExtendedMasterSecret,
            "client sent no extended master secret (Go before 1.21? see ftps.require_extended_master_secret)"
                .to_owned(),
        ),
        PeerIncompatible::NoKxGroupsInCommon
        | PeerIncompatible::NamedGroupsExtensionRequired
        | PeerIncompatible::KeyShareExtensionRequired
        | PeerIncompatible::NoEcPointFormatsInCommon
        | PeerIncompatible::UncompressedEcPointsRequired
        | PeerIncompatible::EcPointsExtensionRequired => {
            (R::NoCommonKeyExchange, "client offered no key exchange group among X25519, P-256, P-384".to_owned())
        }
        PeerIncompatible::NoSignatureSchemesInCommon => {
            (R::NoCommonSignature, "client accepts no signature scheme of the server's certificate key".to_owned())
        }
        other => (R::Other, format!("client's TLS is incompatible: {other:?}")),
    };
    HandshakeFailure::new(reason, detail)
}

fn from_alert(alert: AlertDescription) -> HandshakeFailure {
    use HandshakeReason as R;
    match alert {
        AlertDescription::UnknownCA => HandshakeFailure::new(
            R::ClientRejectedServer,
            "client rejected the server's certificate (unknown CA: give the client the certificate or its CA)",
        ),
        AlertDescription::BadCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateRevoked
        | AlertDescription::UnsupportedCertificate => HandshakeFailure::new(
            R::ClientRejectedServer,
            format!("client rejected the server's certificate (alert {alert:?}: a name or date it does not accept?)"),
        ),
        AlertDescription::ProtocolVersion => HandshakeFailure::new(
            R::NoCommonVersion,
            "client gave up: no TLS version in common (alert ProtocolVersion)",
        ),
        other => HandshakeFailure::new(R::ClientAlert, format!("client ended the TLS handshake with alert {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: rustls::Error) -> io::Error {
        // What tokio-rustls returns for a rustls error.
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn rustls_errors_map_to_reasons_an_operator_can_act_on() {
        let cases = [
            (PeerIncompatible::Tls12NotOffered.into(), HandshakeReason::NoCommonVersion, "TLS 1.0/1.1"),
            (PeerIncompatible::NoCipherSuitesInCommon.into(), HandshakeReason::NoCommonCipher, "ECDHE AEAD"),
            (
                PeerIncompatible::ExtendedMasterSecretExtensionRequired.into(),
                HandshakeReason::NoExtendedMasterSecret,
                "ftps.require_extended_master_secret",
            ),
            (PeerIncompatible::NoKxGroupsInCommon.into(), HandshakeReason::NoCommonKeyExchange, "X25519"),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                HandshakeReason::ClientRejectedServer,
                "unknown CA",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::BadCertificate),
                HandshakeReason::ClientRejectedServer,
                "BadCertificate",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                HandshakeReason::NotTheProtocol,
                "did not speak TLS",
            ),
        ];
        for (error, reason, words) in cases {
            let failure = classify(&wrapped(error));
            assert_eq!(failure.reason, reason, "{failure}");
            assert!(failure.detail.contains(words), "{failure}");
        }
    }

    #[test]
    fn an_end_of_stream_is_a_close_during_the_handshake() {
        let failure = classify(&io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"));
        assert_eq!(failure.reason, HandshakeReason::ClosedDuringHandshake);
    }
}
