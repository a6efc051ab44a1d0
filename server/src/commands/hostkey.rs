//! `hostkey show`: what clients should see when they first connect.

use passerelle_config::Config;
use passerelle_keys::{HostKeys, TlsIdentity};
use serde::Serialize;

use crate::cli::HostkeyCommand;
use crate::data_dir::DataDir;
use crate::error::CliError;
use crate::output::{self, say};

/// One key as `--json` shows it; `line` is what `ssh-keygen -lf` prints.
#[derive(Serialize)]
struct Fingerprint {
    kind: String,
    fingerprint: String,
    line: String,
}

pub(super) fn run(config: &Config, command: &HostkeyCommand) -> Result<(), CliError> {
    let HostkeyCommand::Show(flag) = command;
    let data_dir = DataDir::open(&config.data_dir)?;
    // Generated on first use, exactly as `serve` would, so the operator can
    // publish fingerprints before the first start.
    let host_keys = HostKeys::load_or_generate(&data_dir.host_keys()).map_err(|e| CliError::Runtime(e.into()))?;
    let tls =
        TlsIdentity::load_or_generate(&config.ftps.cert, &config.ftps.key).map_err(|e| CliError::Runtime(e.into()))?;
    let mut all: Vec<Fingerprint> = host_keys
        .fingerprints()
        .into_iter()
        .map(|(kind, line)| Fingerprint {
            // The ssh-keygen line is `<bits> SHA256:<hash> <comment> (<TYPE>)`.
            fingerprint: line.split_whitespace().nth(1).unwrap_or_default().to_owned(),
            kind,
            line,
        })
        .collect();
    let tls_fingerprint = tls.fingerprint_sha256();
    all.push(Fingerprint {
        kind: "tls-certificate".into(),
        fingerprint: tls_fingerprint.clone(),
        line: tls_fingerprint,
    });
    if flag.json {
        return output::json(&all);
    }
    for f in &all {
        say!("{}: {}", f.kind, f.line);
    }
    Ok(())
}
