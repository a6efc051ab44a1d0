//! `config check` and `config show`.

use passerelle_config::Config;

use crate::cli::ConfigCommand;
use crate::error::CliError;
use crate::output::{self, say};

pub(super) fn run(config: &Config, command: &ConfigCommand) -> Result<(), CliError> {
    match command {
        // Loading already refused anything wrong; reaching here means it is valid.
        ConfigCommand::Check => say!("configuration OK"),
        // Serialised TOML: verbatim, it has no C0 control character but tab.
        ConfigCommand::Show => output::verbatim(format_args!("{}", config.to_redacted_toml())),
    }
    Ok(())
}
