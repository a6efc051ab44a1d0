//! How a command fails: a refused input (exit 2) or a runtime failure (exit 1).

use std::fmt;

/// The error of a CLI command, carrying its exit status.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Refused input or configuration: nothing was changed.
    Usage(String),
    /// Something failed while doing the work.
    Runtime(anyhow::Error),
}

impl CliError {
    /// The documented exit status: 2 for refused input, 1 for runtime errors.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            // `{:#}` prints the whole context chain on one line.
            Self::Runtime(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        Self::Runtime(err)
    }
}

impl From<passerelle_config::ConfigError> for CliError {
    fn from(err: passerelle_config::ConfigError) -> Self {
        Self::Usage(err.to_string())
    }
}

impl From<passerelle_catalog::NameError> for CliError {
    fn from(err: passerelle_catalog::NameError) -> Self {
        Self::Usage(err.to_string())
    }
}

impl From<passerelle_catalog::CatalogError> for CliError {
    fn from(err: passerelle_catalog::CatalogError) -> Self {
        use passerelle_catalog::CatalogError;
        match err {
            // Naming something that does not exist, or exists already, is a refused input.
            CatalogError::NotFound(_) | CatalogError::AlreadyExists(_) => Self::Usage(err.to_string()),
            other => Self::Runtime(other.into()),
        }
    }
}

/// Shorthand for a refused input.
pub(crate) fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}
