//! `init`: creates what `serve` creates at its first start, and says what.

use passerelle_config::Config;

use crate::error::CliError;
use crate::output::say;

pub(super) async fn run(config: Config) -> Result<(), CliError> {
    let data_dir = config.data_dir.clone();
    let state = crate::state::prepare(config).await?;
    state.admin.catalog.close().await;
    if state.created.is_empty() {
        say!("{} is ready already; nothing created", data_dir.display());
    }
    for what in &state.created {
        say!("created {what}");
    }
    Ok(())
}
