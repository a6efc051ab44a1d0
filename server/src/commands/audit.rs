//! `audit`: the audit trail, filtered, oldest first.

use passerelle_catalog::{AuditEvent, AuditFilter, Login, TenantName};

use crate::admin::Admin;
use crate::cli::{AuditArgs, AuditCommand};
use crate::error::{CliError, usage};
use crate::output;

pub(super) async fn run(admin: &Admin, args: AuditArgs) -> Result<(), CliError> {
    if let Some(AuditCommand::Verify { json }) = args.command {
        return super::audit_verify::run(admin, json.json).await;
    }
    let filter = AuditFilter {
        tenant: args.tenant.as_deref().map(TenantName::parse).transpose()?.map(|t| t.to_string()),
        login: args.login.as_deref().map(Login::parse).transpose()?.map(|l| l.to_string()),
        since: args.since.as_deref().map(|s| since(s, passerelle_catalog::now_ms())).transpose()?,
        limit: args.limit,
    };
    let events = admin.catalog.audit_events(&filter).await?;
    if args.json.json {
        return output::json(&events);
    }
    let rows: Vec<Vec<String>> = events.iter().map(row).collect();
    output::table(
        &["TIME", "ACTOR", "TENANT", "LOGIN", "IP", "PROTOCOL", "ACTION", "OUTCOME", "PATH", "DETAIL"],
        &rows,
    );
    Ok(())
}

fn row(event: &AuditEvent) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    vec![
        event.at.map_or_else(|| "-".into(), output::timestamp),
        event.actor.clone(),
        dash(&event.tenant),
        dash(&event.login),
        dash(&event.ip),
        event.protocol.clone(),
        event.action.clone(),
        event.outcome.clone(),
        dash(&event.path),
        dash(&event.detail),
    ]
}

/// `--since`: `90s`, `30m`, `1h`, `2d` ago, or an RFC 3339 time; Unix milliseconds.
fn since(text: &str, now_ms: i64) -> Result<i64, CliError> {
    let text = text.trim();
    if let Ok(time) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|_| usage("--since: out of range"));
    }
    let bad = || usage(format!("--since {text:?}: expected a duration such as 30m, 1h, 2d, or an RFC 3339 time"));
    let digits = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(digits);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "d" => 24 * 3600 * 1000,
        _ => return Err(bad()),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_ago_and_rfc3339() {
        let now = 10 * 24 * 3600 * 1000;
        assert_eq!(since("90s", now).unwrap(), now - 90_000);
        assert_eq!(since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(since("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(since("2d", now).unwrap(), now - 2 * 24 * 3_600_000);
        assert_eq!(since("1970-01-02T00:00:00Z", now).unwrap(), 24 * 3_600_000);
        for bad in ["", "h", "1w", "-1h", "yesterday"] {
            assert!(since(bad, now).is_err(), "{bad}");
        }
    }
}
