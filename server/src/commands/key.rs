//! `key add/list/remove`.

use passerelle_catalog::Login;
use passerelle_keys::AuthorizedKey;
use serde::Serialize;

use super::read_keys;
use super::user::tenant_of;
use crate::admin::Admin;
use crate::cli::KeyCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

#[derive(Serialize)]
struct ListedKey {
    fingerprint: String,
    bits: u32,
    kind: String,
    comment: String,
    added_at: String,
    public_key: String,
}

pub(super) async fn run(admin: &Admin, command: KeyCommand) -> Result<(), CliError> {
    match command {
        KeyCommand::Add { login, file } => {
            let login = Login::parse(&login)?;
            let tenant = tenant_of(admin, &login).await?;
            let keys = read_keys(&file)?;
            let existing = admin.catalog.keys(&login).await?;
            if let Some(dup) = keys.iter().find(|k| existing.iter().any(|e| e.fingerprint == k.fingerprint())) {
                return Err(usage(format!("key {} is already authorised for {login}", dup.fingerprint())));
            }
            for key in &keys {
                admin.catalog.add_key(&login, &key.fingerprint(), &key.to_openssh()).await?;
                admin.audit("key_add", Some(&tenant), Some(&login), Some(key.fingerprint())).await?;
                say!("{}", key.ssh_keygen_line());
            }
        }
        KeyCommand::List { login, json } => {
            let login = Login::parse(&login)?;
            let stored = admin.catalog.keys(&login).await?;
            let mut listed = Vec::with_capacity(stored.len());
            for key in stored {
                // Stored keys were checked when added; re-parsing gives bits and type.
                let parsed = AuthorizedKey::parse(&key.public_key).map_err(|e| CliError::Runtime(e.into()))?;
                listed.push((parsed, key));
            }
            if json.json {
                let rows: Vec<ListedKey> = listed
                    .iter()
                    .map(|(parsed, key)| ListedKey {
                        fingerprint: key.fingerprint.clone(),
                        bits: parsed.bits(),
                        kind: parsed.type_label().to_owned(),
                        comment: parsed.comment().to_owned(),
                        added_at: output::timestamp(key.added_at),
                        public_key: key.public_key.clone(),
                    })
                    .collect();
                return output::json(&rows);
            }
            for (parsed, _) in &listed {
                say!("{}", parsed.ssh_keygen_line());
            }
        }
        KeyCommand::Remove { login, fingerprint } => {
            let login = Login::parse(&login)?;
            let tenant = tenant_of(admin, &login).await?;
            admin.catalog.remove_key(&login, &fingerprint).await?;
            admin.audit("key_remove", Some(&tenant), Some(&login), Some(fingerprint.clone())).await?;
            say!("key {fingerprint} removed from {login}");
        }
    }
    Ok(())
}
