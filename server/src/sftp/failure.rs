//! Why an SSH connection ended before its key exchange was done, in the
//! shared handshake reasons, with a sentence that quotes what the client
//! sent (escaped) so that an operator can act on it.
//!
//! Not handshake failures: a client that finished its key exchange (sent
//! NEWKEYS), whatever happens next; a connection that sent nothing at all
//! and closed (a TCP probe or health check); a connection cut because its
//! address was banned, or by the server's shutdown.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::time::Duration;

use russh::AlgorithmKind;

use super::kexinit::ClientHello;
use crate::engine::{HandshakeFailure, HandshakeReason};
use crate::escape::escape;

/// SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE (RFC 4253 §11.1).
const HOST_KEY_NOT_VERIFIABLE: u32 = 9;
/// How many of the client's names a sentence quotes before "and N more".
const NAMES_SHOWN: usize = 8;
/// The longest name quoted (longer ones are cut, with an ellipsis).
const NAME_CHARS: usize = 64;

/// How a connection ended before the client was logged in.
#[derive(Debug)]
pub(super) enum Ending<'a> {
    /// russh returned this error.
    Error(&'a russh::Error),
    /// The session ended without an error (the client disconnected).
    Closed,
}

/// The handshake failure of a connection that ended as `ending` after the
/// client sent `hello`; `None` when it is not one. `grace` is the login
/// grace time, for the sentence of a timeout.
pub(super) fn classify(ending: &Ending<'_>, hello: &ClientHello, grace: Duration) -> Option<HandshakeFailure> {
    use HandshakeReason as R;
    if hello.newkeys {
        return None;
    }
    let error = match ending {
        Ending::Error(error) => Some(*error),
        Ending::Closed => None,
    };
    if let Some(russh::Error::IO(e)) = error
        && e.kind() == ErrorKind::ConnectionAborted
    {
        // The grace stream cut a banned address: the ban is recorded already.
        return None;
    }
    if let Some(russh::Error::NoCommonAlgo { kind, theirs, .. }) = error {
        return Some(no_common(kind, hello, theirs));
    }
    let timed_out = error.is_some_and(is_timeout);
    if hello.first_bytes.is_empty() {
        return timed_out.then(|| {
            HandshakeFailure::new(R::Timeout, format!("client sent nothing within the login grace time ({grace:?})"))
        });
    }
    if !hello.first_bytes.starts_with(&b"SSH-"[..hello.first_bytes.len().min(4)]) {
        return Some(HandshakeFailure::new(
            R::NotTheProtocol,
            format!("client sent no SSH identification line: it began with \"{}\"", shown_bytes(&hello.first_bytes)),
        ));
    }
    if let Some(version) = hello.identification.as_deref().and_then(other_version) {
        return Some(HandshakeFailure::new(R::NoCommonVersion, version));
    }
    if timed_out {
        return Some(HandshakeFailure::new(
            R::Timeout,
            format!("key exchange not finished within the login grace time ({grace:?}): {}", progress(hello)),
        ));
    }
    if let Some(error) = error.filter(|e| is_malformed(e)) {
        return Some(HandshakeFailure::new(
            R::NotTheProtocol,
            format!("client broke the key exchange ({error}): {}", progress(hello)),
        ));
    }
    if let Some(disconnect) = &hello.disconnect {
        let reason = if disconnect.code == HOST_KEY_NOT_VERIFIABLE { R::ClientRejectedServer } else { R::ClientAlert };
        return Some(HandshakeFailure::new(
            reason,
            format!(
                "client disconnected during the key exchange (code {}): \"{}\"",
                disconnect.code,
                escape(&disconnect.description)
            ),
        ));
    }
    let detail = match error {
        Some(e) if !is_closed(e) => return Some(HandshakeFailure::new(R::Other, format!("{e}: {}", progress(hello)))),
        _ if hello.kex_started => "client closed the connection after receiving the host key, before finishing the \
                                   key exchange (does it know this server's host key? see `passerelle hostkey show \
                                   --known-hosts`)"
            .to_owned(),
        _ => format!("client closed the connection during the key exchange: {}", progress(hello)),
    };
    Some(HandshakeFailure::new(R::ClosedDuringHandshake, detail))
}

/// "no common key exchange: client offers diffie-hellman-group14-sha1 only".
fn no_common(kind: &AlgorithmKind, hello: &ClientHello, theirs: &[String]) -> HandshakeFailure {
    use HandshakeReason as R;
    let seen = hello.kexinit.as_ref();
    // What the client sent, as read off the wire; russh's copy when the
    // observer could not read it.
    let (reason, what, names) = match kind {
        AlgorithmKind::Kex => (R::NoCommonKeyExchange, "key exchange", seen.map(|k| &k.kex)),
        AlgorithmKind::Key => (R::NoCommonSignature, "host key algorithm", seen.map(|k| &k.host_key)),
        AlgorithmKind::Cipher => (R::NoCommonCipher, "cipher", seen.map(|k| &k.ciphers)),
        AlgorithmKind::Mac => (R::NoCommonMac, "MAC", seen.map(|k| &k.macs)),
        AlgorithmKind::Compression => (R::Other, "compression", seen.map(|k| &k.compression)),
    };
    let names: Vec<&String> = names.map_or(theirs, Vec::as_slice).iter().filter(|n| !is_marker(n)).collect();
    HandshakeFailure::new(reason, format!("no common {what}: client offers {}", offer(&names)))
}

/// Names in the key exchange list that announce an extension rather than
/// offer an algorithm (RFC 8308 `ext-info-c`, OpenSSH's strict KEX): no use
/// to an operator choosing what to enable.
fn is_marker(name: &str) -> bool {
    name.starts_with("ext-info-") || name.starts_with("kex-strict-")
}

/// "a only", "a, b, c", "a, b, … and 3 more", "nothing".
fn offer(names: &[&String]) -> String {
    let mut text = String::new();
    for (i, name) in names.iter().take(NAMES_SHOWN).enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let cut: String = name.chars().take(NAME_CHARS).collect();
        text.push_str(&escape(&cut));
        if cut.len() < name.len() {
            text.push('…');
        }
    }
    match names.len() {
        0 => "nothing".into(),
        1 => format!("{text} only"),
        n if n > NAMES_SHOWN => {
            let _ = write!(text, " and {} more", n - NAMES_SHOWN);
            text
        }
        _ => text,
    }
}

/// The first bytes, readable: invalid UTF-8 shown as U+FFFD, controls escaped.
fn shown_bytes(bytes: &[u8]) -> String {
    escape(&String::from_utf8_lossy(bytes))
}

/// The sentence for an identification line of another SSH version than 2.0
/// (1.99 means "2.0 and 1.x"), `None` for version 2.
fn other_version(line: &str) -> Option<String> {
    let version = line.strip_prefix("SSH-")?.split('-').next().unwrap_or_default();
    match version {
        "2.0" | "1.99" => None,
        v if v.starts_with("1.") => Some(format!("client speaks SSH-1 only (\"{}\")", escape(line))),
        _ => Some(format!("client speaks an unknown SSH version (\"{}\")", escape(line))),
    }
}

/// How far the client got, for a sentence.
fn progress(hello: &ClientHello) -> &'static str {
    match (&hello.identification, &hello.kexinit, hello.kex_started) {
        (None, ..) => "it sent no whole identification line",
        (Some(_), None, _) => "it sent its identification but no KEXINIT",
        (Some(_), Some(_), false) => "it sent its KEXINIT but never started the key exchange",
        (Some(_), Some(_), true) => "it started the key exchange but never finished it",
    }
}

fn is_timeout(error: &russh::Error) -> bool {
    use russh::Error as E;
    match error {
        E::IO(e) => e.kind() == ErrorKind::TimedOut,
        E::Elapsed(_) | E::InactivityTimeout | E::ConnectionTimeout | E::KeepaliveTimeout => true,
        _ => false,
    }
}

/// The client's side ended the connection.
fn is_closed(error: &russh::Error) -> bool {
    use russh::Error as E;
    match error {
        E::IO(e) => matches!(
            e.kind(),
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::NotConnected
        ),
        E::Disconnect | E::HUP => true,
        _ => false,
    }
}

/// Errors of bytes that are not a valid key exchange.
fn is_malformed(error: &russh::Error) -> bool {
    use russh::Error as E;
    matches!(
        error,
        E::Version
            | E::PacketSize(_)
            | E::PacketAuth
            | E::DecryptionError
            | E::Inconsistent
            | E::Kex
            | E::KexInit
            | E::IndexOutOfBounds
            | E::Utf8(_)
            | E::StrictKeyExchangeViolation { .. }
            | E::SshEncoding(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sftp::kexinit::KexInit;

    const GRACE: Duration = Duration::from_secs(30);

    fn hello(identification: &str) -> ClientHello {
        ClientHello {
            first_bytes: identification.as_bytes().iter().copied().take(32).collect(),
            identification: Some(identification.into()),
            ..ClientHello::default()
        }
    }

    fn with_kexinit(kex: &[&str]) -> ClientHello {
        ClientHello {
            kexinit: Some(KexInit { kex: kex.iter().map(ToString::to_string).collect(), ..KexInit::default() }),
            ..hello("SSH-2.0-OpenSSH_9.2")
        }
    }

    fn no_common_error(kind: AlgorithmKind) -> russh::Error {
        russh::Error::NoCommonAlgo { kind, ours: vec!["ours".into()], theirs: vec!["from-russh".into()] }
    }

    #[test]
    fn no_common_key_exchange_quotes_the_client() {
        let error = no_common_error(AlgorithmKind::Kex);
        let openssh = with_kexinit(&["diffie-hellman-group14-sha1", "ext-info-c", "kex-strict-c-v00@openssh.com"]);
        let failure = classify(&Ending::Error(&error), &openssh, GRACE).unwrap();
        assert_eq!(failure.reason, HandshakeReason::NoCommonKeyExchange);
        assert_eq!(failure.detail, "no common key exchange: client offers diffie-hellman-group14-sha1 only");
        // Without the observer's copy, russh's.
        let failure = classify(&Ending::Error(&error), &hello("SSH-2.0-x"), GRACE).unwrap();
        assert_eq!(failure.detail, "no common key exchange: client offers from-russh only");
    }

    #[test]
    fn each_kind_has_its_reason() {
        for (kind, reason) in [
            (AlgorithmKind::Key, HandshakeReason::NoCommonSignature),
            (AlgorithmKind::Cipher, HandshakeReason::NoCommonCipher),
            (AlgorithmKind::Mac, HandshakeReason::NoCommonMac),
            (AlgorithmKind::Compression, HandshakeReason::Other),
        ] {
            let error = no_common_error(kind);
            assert_eq!(classify(&Ending::Error(&error), &with_kexinit(&[]), GRACE).unwrap().reason, reason);
        }
    }

    #[test]
    fn long_offers_are_cut_and_escaped() {
        let names: Vec<String> = (0..12).map(|i| format!("algo{i}")).collect();
        assert_eq!(
            offer(&names.iter().collect::<Vec<_>>()),
            "algo0, algo1, algo2, algo3, algo4, algo5, algo6, algo7 and 4 more"
        );
        let odd = ["a\nb".to_owned(), "x".repeat(100)];
        assert_eq!(offer(&odd.iter().collect::<Vec<_>>()), format!("a\\nb, {}…", "x".repeat(64)));
        assert_eq!(offer(&[]), "nothing");
    }

    #[test]
    fn garbage_and_old_versions() {
        let garbage = ClientHello { first_bytes: b"GET / HTTP/1.1\r\n".to_vec(), ..ClientHello::default() };
        let failure = classify(&Ending::Error(&russh::Error::Version), &garbage, GRACE).unwrap();
        assert_eq!(failure.reason, HandshakeReason::NotTheProtocol);
        assert_eq!(failure.detail, "client sent no SSH identification line: it began with \"GET / HTTP/1.1\\r\\n\"");
        let failure = classify(&Ending::Error(&russh::Error::Version), &hello("SSH-1.5-Old"), GRACE).unwrap();
        assert_eq!(failure.reason, HandshakeReason::NoCommonVersion);
        assert_eq!(failure.detail, "client speaks SSH-1 only (\"SSH-1.5-Old\")");
    }

    #[test]
    fn closing_and_timing_out() {
        let eof = russh::Error::IO(ErrorKind::UnexpectedEof.into());
        let failure = classify(&Ending::Error(&eof), &with_kexinit(&["x"]), GRACE).unwrap();
        assert_eq!(failure.reason, HandshakeReason::ClosedDuringHandshake);
        let started = ClientHello { kex_started: true, ..with_kexinit(&["x"]) };
        let failure = classify(&Ending::Closed, &started, GRACE).unwrap();
        assert!(failure.detail.contains("host key"), "{}", failure.detail);
        let timeout = russh::Error::IO(ErrorKind::TimedOut.into());
        let failure = classify(&Ending::Error(&timeout), &hello("SSH-2.0-x"), GRACE).unwrap();
        assert_eq!(failure.reason, HandshakeReason::Timeout);
        let silent = ClientHello::default();
        assert_eq!(classify(&Ending::Error(&timeout), &silent, GRACE).unwrap().reason, HandshakeReason::Timeout);
    }

    #[test]
    fn a_clients_disconnect_is_quoted() {
        use crate::sftp::kexinit::Disconnect;
        for (code, reason) in [(9, HandshakeReason::ClientRejectedServer), (3, HandshakeReason::ClientAlert)] {
            let hello = ClientHello {
                disconnect: Some(Disconnect { code, description: "bye\r\n".into() }),
                ..with_kexinit(&["x"])
            };
            let failure = classify(&Ending::Closed, &hello, GRACE).unwrap();
            assert_eq!(failure.reason, reason);
            assert_eq!(
                failure.detail,
                format!("client disconnected during the key exchange (code {code}): \"bye\\r\\n\"")
            );
        }
    }

    #[test]
    fn what_is_no_handshake_failure() {
        let done = ClientHello { newkeys: true, ..with_kexinit(&["x"]) };
        let eof = russh::Error::IO(ErrorKind::UnexpectedEof.into());
        assert_eq!(classify(&Ending::Error(&eof), &done, GRACE), None);
        assert_eq!(classify(&Ending::Closed, &done, GRACE), None);
        // A TCP probe: connected, sent nothing, closed.
        assert_eq!(classify(&Ending::Error(&russh::Error::Disconnect), &ClientHello::default(), GRACE), None);
        let banned = russh::Error::IO(ErrorKind::ConnectionAborted.into());
        assert_eq!(classify(&Ending::Error(&banned), &with_kexinit(&["x"]), GRACE), None);
    }
}
