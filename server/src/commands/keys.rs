//! `keys rotate-master`.

use crate::admin::Admin;
use crate::cli::KeysCommand;
use crate::error::CliError;
use crate::output::say;

pub(super) async fn run(admin: &Admin, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::RotateMaster => {
            let done = crate::master_key::rotate(admin).await?;
            // The audit chain is under the new key now.
            let catalog = admin.catalog.clone().with_audit_key(done.audit_key.clone());
            let detail = format!("from {} to {}", done.old_id, done.new_id);
            admin.audit_in(&catalog, "master_key_rotate", None, None, Some(detail)).await?;
            say!(
                "master key rotated: {} -> {} ({} tenant data keys re-wrapped)",
                done.old_id,
                done.new_id,
                done.rewrapped
            );
            say!(
                "the old key is kept as {}; replace your offline copy with {}, then delete it",
                done.old_file.display(),
                admin.config.keys.master_key_file.display()
            );
            say!("restart running servers: they still hold the old key");
        }
    }
    Ok(())
}
