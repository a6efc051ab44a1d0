//! The one error type of this crate: every message is one line naming the key, file or variable.

use std::path::PathBuf;

/// Why a configuration was refused.
///
/// `Display` prints exactly one line that starts with `config:` and names what is wrong (a key such as
/// `archive.retention_days`, a file, a line of a file or an environment variable), so that an operator
/// can fix it without reading code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("config: {}: cannot read: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("config: {}{}invalid TOML: {message}", file.display(), line.map(|l| format!(", line {l}: ")).unwrap_or_else(|| ": ".into()))]
    Syntax {
        /// The file being read.
        file: PathBuf,
        /// The 1-based line of the file where the parser stopped, when known.
        line: Option<usize>,
        /// The parser's message, on one line.
        message: String,
    },
    /// The file names a key or a section that does not exist.
    #[error("config: {key}: unknown key")]
    UnknownKey {
        /// The dotted path of the unknown key, e.g. `sftp.lisen`.
        key: String,
    },
    /// An environment variable starting with `PASSERELLE_` names no key.
    #[error("config: {var}: unknown environment override (no key {key})")]
    UnknownEnv {
        /// The variable, e.g. `PASSERELLE_SFTP_LISTN`.
        var: String,
        /// The key that the variable would have set, e.g. `sftp.listn`.
        key: String,
    },
    /// A key has a value of the wrong type, out of range, or unsafe.
    #[error("config: {key}: {message}")]
    Invalid {
        /// The dotted path of the key, e.g. `ftps.tls_versions` (or `sftp.listen[1]` for an element).
        key: String,
        /// What is wrong and, where it helps, what to write instead.
        message: String,
    },
}

impl ConfigError {
    /// Builds [`ConfigError::Invalid`] for `key`.
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: one_line(&message.into()) }
    }
}

/// Joins the lines of a message so that an error never spans several lines.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
