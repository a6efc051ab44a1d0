//! Where the configuration comes from: kept, so that `serve` can read it again on SIGHUP exactly as
//! it was read at start.

use std::path::{Path, PathBuf};

use passerelle_config::{Config, Sources};

use crate::cli::Cli;
use crate::error::CliError;

/// The `--config` file (or `PASSERELLE_CONFIG`) and the `--data-dir` flag of the command line.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSource {
    file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// `--config` wins over PASSERELLE_CONFIG.
    pub(crate) fn of(cli: &Cli) -> Self {
        let file = cli.config.clone().or_else(|| std::env::var_os("PASSERELLE_CONFIG").map(PathBuf::from));
        Self { file, data_dir: cli.data_dir.clone() }
    }

    /// The configuration file, if one is named.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Flags > environment > file > defaults.
    pub(crate) fn load(&self) -> Result<Config, CliError> {
        let sources = Sources { file: self.file(), data_dir: self.data_dir.as_deref(), env: Sources::process_env() };
        Ok(Config::load(sources)?)
    }
}
