//! Shell completions and man pages, generated from the command-line definitions so that what a
//! package ships never drifts from `--help`. Packagers run the hidden verb `passerelle
//! generate-assets DIR` on the built binary (as ripgrep's `--generate` does): no build script, and
//! the pages describe exactly the binary that is shipped.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::say;

/// Writes `DIR/completions/` (bash `passerelle.bash`, zsh `_passerelle`, fish `passerelle.fish`) and
/// `DIR/man/` (`passerelle.1` and one page per subcommand, e.g. `passerelle-tenant-add.1`).
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
    say!("completions in {}, man pages in {}", completions.display(), man.display());
    Ok(())
}
