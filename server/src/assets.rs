//! What a package ships besides the binary: shell completions and man pages generated from the
//! command-line definitions, and the commented configuration file generated from the configuration
//! schema, so that none of them drifts from `--help` or from the keys the binary knows. Packagers run the hidden verb `passerelle
//! generate-assets DIR` on the built binary (as ripgrep's `--generate` does): no build script, and
//! the pages describe exactly the binary that is shipped.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::say;

/// Writes `DIR/completions/` (bash `passerelle.bash`, zsh `_passerelle`, fish `passerelle.fish`),
/// `DIR/man/` (`passerelle.1` and one page per subcommand, e.g. `passerelle-tenant-add.1`) and
/// `DIR/passerelle.toml` (see [`packaged_config`]).
pub(crate) fn write(dir: &Path) -> Result<(), CliError> {
    let completions = dir.join("completions");
    let man = dir.join("man");
    for sub in [&completions, &man] {
        std::fs::create_dir_all(sub).with_context(|| format!("cannot create {}", sub.display()))?;
    }
    let mut command = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "passerelle", &completions)
            .with_context(|| format!("cannot write the {shell} completions into {}", completions.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    let config = dir.join("passerelle.toml");
    std::fs::write(&config, packaged_config()).with_context(|| format!("cannot write {}", config.display()))?;
    say!(
        "completions in {}, man pages in {}, configuration {}",
        completions.display(),
        man.display(),
        config.display()
    );
    Ok(())
}

/// Where a package keeps the data directory.
const PACKAGED_DATA_DIR: &str = "/var/lib/passerelle";

/// Where a package keeps the master key: outside the data directory, in a directory of the service
/// user's (made by the package's postinst) that the unit may write, so that the first start creates it.
const PACKAGED_MASTER_KEY: &str = "/etc/passerelle/keys/master.key";

/// The file a package installs as `/etc/passerelle/passerelle.toml`: the example file with the
/// packaged data directory and master key and every other key commented out, so that it means the defaults (and a
/// later version's defaults apply unless the operator chose a value), each key documented in place.
fn packaged_config() -> String {
    let mut out = String::from(
        "# /etc/passerelle/passerelle.toml: the configuration of passerelle.service. Uncomment and edit a key\n\
         # to change it, then check the file with\n\
         #   passerelle --config /etc/passerelle/passerelle.toml config check\n\
         # and restart the service (systemctl restart passerelle); see `man passerelle` and the README.\n\n",
    );
    for line in passerelle_config::example_toml().lines() {
        if line.starts_with("data_dir = ") {
            out.push_str(&format!("data_dir = \"{PACKAGED_DATA_DIR}\""));
        } else if line.starts_with("# master_key_file = ") {
            out.push_str(&format!("master_key_file = \"{PACKAGED_MASTER_KEY}\""));
        } else if line.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push_str("# ");
            out.push_str(line);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_configuration_means_the_defaults_with_the_packaged_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passerelle.toml");
        std::fs::write(&file, packaged_config()).unwrap();
        let sources = passerelle_config::Sources { file: Some(&file), data_dir: None, env: Vec::new() };
        let loaded = passerelle_config::Config::load(sources).unwrap();
        let defaults =
            passerelle_config::Sources { file: None, data_dir: Some(PACKAGED_DATA_DIR.as_ref()), env: Vec::new() };
        let mut expected = passerelle_config::Config::load(defaults).unwrap();
        expected.keys.master_key_file = PACKAGED_MASTER_KEY.into();
        assert_eq!(loaded, expected);
        assert!(packaged_config().contains("# listen = [\"127.0.0.1:2222\"]"));
    }
}
