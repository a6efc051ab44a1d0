//! `ban list/remove`: the defender's bans, as stored in the catalog.

use std::net::IpAddr;

use crate::admin::Admin;
use crate::cli::BanCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

pub(super) async fn run(admin: &Admin, command: BanCommand) -> Result<(), CliError> {
    match command {
        BanCommand::List(flag) => {
            let bans = admin.catalog.active_bans(passerelle_catalog::now_ms()).await?;
            if flag.json {
                return output::json(&bans);
            }
            let rows: Vec<Vec<String>> = bans
                .iter()
                .map(|ban| {
                    vec![
                        ban.ip.clone(),
                        output::timestamp(ban.banned_at),
                        output::timestamp(ban.expires_at),
                        ban.offences.to_string(),
                        ban.reason.clone(),
                    ]
                })
                .collect();
            output::table(&["IP", "BANNED", "UNTIL", "OFFENCES", "REASON"], &rows);
        }
        BanCommand::Remove { ip } => {
            let parsed: IpAddr = ip.trim().parse().map_err(|_| usage(format!("{ip:?}: not an IP address")))?;
            // Stored as the server sees it: IPv4-mapped IPv6 as IPv4.
            let ip = parsed.to_canonical().to_string();
            admin.catalog.remove_ban(&ip).await?;
            admin.audit("ban_remove", None, None, Some(ip.clone())).await?;
            say!("ban of {ip} removed");
        }
    }
    Ok(())
}
