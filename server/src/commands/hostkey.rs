//! `hostkey show`: what clients should see when they first connect, as
//! fingerprints to publish or (`--known-hosts`) as the lines of a client's
//! `known_hosts` file.

use std::net::SocketAddr;

use passerelle_config::Config;
use passerelle_keys::{HostKeys, KeyError, TlsIdentity};
use serde::Serialize;

use crate::cli::{HostkeyCommand, HostkeyShowArgs};
use crate::data_dir::DataDir;
use crate::error::{CliError, usage};
use crate::output::{self, say};

/// One key as `--json` shows it; `line` is what `ssh-keygen -lf` prints.
#[derive(Serialize)]
struct Fingerprint {
    kind: String,
    fingerprint: String,
    line: String,
    /// With `--known-hosts`, the key's `known_hosts` line (SSH keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    known_hosts: Option<String>,
}

pub(super) fn run(config: &Config, command: &HostkeyCommand) -> Result<(), CliError> {
    let HostkeyCommand::Show(args) = command;
    if args.known_hosts {
        return known_hosts(config, args);
    }
    // Never generated here: fingerprints an operator publishes must be those
    // of the keys the server uses (`init` or `serve` create them).
    let host_keys = existing_host_keys(config)?;
    let tls = existing_tls(config)?;
    let mut all = ssh_fingerprints(&host_keys, None);
    all.extend(tls.as_ref().map(tls_fingerprint));
    if args.json.json {
        return output::json(&all);
    }
    for f in &all {
        say!("{}: {}", f.kind, f.line);
    }
    Ok(())
}

/// `--known-hosts`: a line per host key, then the TLS certificate's
/// fingerprint as a `#` comment (which OpenSSH and Go's knownhosts skip),
/// so that the output can be used as a known_hosts file as it is. Nothing
/// is generated: the keys a client must know are the server's own.
fn known_hosts(config: &Config, args: &HostkeyShowArgs) -> Result<(), CliError> {
    let hosts = host_patterns(&config.sftp.listen, &args.host, args.port)?;
    let host_keys = existing_host_keys(config)?;
    let lines = host_keys.known_hosts_lines(&hosts).map_err(|e| CliError::Runtime(e.into()))?;
    let tls = existing_tls(config)?;
    if args.json.json {
        let mut all = ssh_fingerprints(&host_keys, Some(lines));
        all.extend(tls.as_ref().map(tls_fingerprint));
        return output::json(&all);
    }
    // Printed as they are: escaping could only break a line a client must read.
    for line in &lines {
        output::verbatim(format_args!("{line}\n"));
    }
    if let Some(tls) = &tls {
        output::verbatim(format_args!("# tls-certificate {}\n", tls.fingerprint_sha256()));
    }
    Ok(())
}

/// The host part of the lines: each name as `known_hosts` writes it for the
/// port (bare on 22, `[name]:port` otherwise), comma-separated.
fn host_patterns(listen: &[SocketAddr], hosts: &[String], port: Option<u16>) -> Result<String, CliError> {
    let first = listen.first();
    let Some(port) = port.or(first.map(SocketAddr::port)) else {
        return Err(usage("sftp.listen is empty (SFTP is off): give the port clients connect to with --port"));
    };
    let names = if hosts.is_empty() {
        match first {
            Some(addr) if !addr.ip().is_unspecified() => vec![addr.ip().to_string()],
            _ => {
                return Err(usage(
                    "sftp.listen names no host clients can connect to (it is a wildcard address, or empty): give \
                     the name clients use with --host NAME",
                ));
            }
        }
    } else {
        hosts.to_vec()
    };
    let mut patterns = Vec::with_capacity(names.len());
    for name in names {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || ",#[]*?!".contains(c)) {
            return Err(usage(format!(
                "--host {name:?}: not a host name or address (no spaces, commas, brackets or wildcards; repeat \
                 --host for several names)"
            )));
        }
        patterns.push(if port == 22 { name } else { format!("[{name}]:{port}") });
    }
    Ok(patterns.join(","))
}

/// The SSH host keys of an existing data directory (none is generated).
fn existing_host_keys(config: &Config) -> Result<HostKeys, CliError> {
    let data_dir = DataDir::open_existing(&config.data_dir)?;
    HostKeys::load(&data_dir.host_keys()).map_err(|e| match e {
        KeyError::MissingHostKey { path } => {
            usage(format!("no SSH host key at {}; run `passerelle init` (or `serve`) to create them", path.display()))
        }
        other => CliError::Runtime(other.into()),
    })
}

/// The TLS certificate, when both of its files exist (none is generated).
fn existing_tls(config: &Config) -> Result<Option<TlsIdentity>, CliError> {
    let (cert, key) = (&config.ftps.cert, &config.ftps.key);
    if !cert.exists() && !key.exists() {
        return Ok(None);
    }
    TlsIdentity::load(cert, key).map(Some).map_err(|e| CliError::Runtime(e.into()))
}

fn ssh_fingerprints(host_keys: &HostKeys, known_hosts: Option<Vec<String>>) -> Vec<Fingerprint> {
    let mut known_hosts = known_hosts.map(Vec::into_iter);
    host_keys
        .fingerprints()
        .into_iter()
        .map(|(kind, line)| Fingerprint {
            // The ssh-keygen line is `<bits> SHA256:<hash> <comment> (<TYPE>)`.
            fingerprint: line.split_whitespace().nth(1).unwrap_or_default().to_owned(),
            kind,
            line,
            known_hosts: known_hosts.as_mut().and_then(Iterator::next),
        })
        .collect()
}

fn tls_fingerprint(tls: &TlsIdentity) -> Fingerprint {
    let fingerprint = tls.fingerprint_sha256();
    Fingerprint {
        kind: "tls-certificate".into(),
        fingerprint: fingerprint.clone(),
        line: fingerprint,
        known_hosts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Vec<SocketAddr> {
        vec![text.parse().unwrap()]
    }

    #[test]
    fn hosts_follow_openssh_brackets() {
        assert_eq!(host_patterns(&addr("127.0.0.1:2222"), &[], None).unwrap(), "[127.0.0.1]:2222");
        assert_eq!(host_patterns(&addr("192.0.2.7:22"), &[], None).unwrap(), "192.0.2.7");
        assert_eq!(host_patterns(&addr("[::1]:2222"), &[], None).unwrap(), "[::1]:2222");
        let names = ["sftp.example.com".to_owned(), "203.0.113.9".to_owned()];
        assert_eq!(host_patterns(&addr("0.0.0.0:22"), &names, None).unwrap(), "sftp.example.com,203.0.113.9");
        assert_eq!(host_patterns(&addr("0.0.0.0:22"), &names[..1], Some(2022)).unwrap(), "[sftp.example.com]:2022");
    }

    #[test]
    fn a_wildcard_or_no_listener_needs_flags() {
        assert!(host_patterns(&addr("0.0.0.0:22"), &[], None).is_err());
        assert!(host_patterns(&addr("[::]:22"), &[], None).is_err());
        assert!(host_patterns(&[], &["h".into()], None).is_err());
        assert_eq!(host_patterns(&[], &["h".into()], Some(22)).unwrap(), "h");
        for bad in ["", "a b", "a,b", "*.example.com", "h\n"] {
            assert!(host_patterns(&addr("127.0.0.1:22"), &[bad.into()], None).is_err(), "{bad:?}");
        }
    }
}
