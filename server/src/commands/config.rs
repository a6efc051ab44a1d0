//! `config check` and `config show`.

use passerelle_config::Config;

use crate::cli::ConfigCommand;
use crate::error::CliError;

pub(super) fn run(config: &Config, command: &ConfigCommand) -> Result<(), CliError> {
    match command {
        // Loading already refused anything wrong; reaching here means it is valid.
        ConfigCommand::Check => println!("configuration OK"),
        ConfigCommand::Show => print!("{}", config.to_redacted_toml()),
    }
    Ok(())
}
