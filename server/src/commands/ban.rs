//! `ban list/add/remove`: the defender's bans, as stored in the catalog.
//! A ban is an address or a network (`2001:db8:1:2::/64`); the server
//! bans IPv6 sources as networks of `defender.ipv6_prefix` bits.

use ipnet::IpNet;
use passerelle_catalog::{Ban, CatalogError, now_ms};

use crate::admin::Admin;
use crate::cli::BanCommand;
use crate::engine::{BanTarget, parse_network};
use crate::error::{CliError, usage};
use crate::output::{self, say};

pub(super) async fn run(admin: &Admin, command: BanCommand) -> Result<(), CliError> {
    match command {
        BanCommand::List(flag) => {
            let bans = admin.catalog.active_bans(now_ms()).await?;
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
        BanCommand::Add { ip } => {
            let target = BanTarget::new(network(&ip)?, admin.config.defender.ipv6_prefix).exact();
            let offences = admin.catalog.ban_offences(&target).await?.saturating_add(1);
            let now = now_ms();
            let length = i64::try_from(admin.config.defender.ban_time.as_millis()).unwrap_or(i64::MAX);
            let ban = Ban {
                ip: target.clone(),
                banned_at: now,
                expires_at: now.saturating_add(length),
                offences,
                reason: "banned by an administrator".into(),
            };
            admin.catalog.upsert_ban(&ban).await?;
            admin.audit("ban_add", None, None, Some(target.clone())).await?;
            say!("{target} banned until {}", output::timestamp(ban.expires_at));
        }
        BanCommand::Remove { ip } => {
            let target = BanTarget::new(network(&ip)?, admin.config.defender.ipv6_prefix);
            let mut removed = None;
            for candidate in target.candidates() {
                match admin.catalog.remove_ban(&candidate).await {
                    Ok(()) => {
                        removed = Some(candidate);
                        break;
                    }
                    Err(CatalogError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let Some(removed) = removed else {
                return Err(CatalogError::NotFound(format!("ban of {}", target.exact())).into());
            };
            admin.audit("ban_remove", None, None, Some(removed.clone())).await?;
            say!("ban of {removed} removed");
        }
    }
    Ok(())
}

fn network(text: &str) -> Result<IpNet, CliError> {
    parse_network(text).ok_or_else(|| usage(format!("{text:?}: not an IP address nor a network (CIDR)")))
}
