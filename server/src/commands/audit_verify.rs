//! `audit verify`: checks the audit trail's chain from its checkpoint to its
//! head; exit 1 naming the first row changed, removed or inserted.

use anyhow::anyhow;
use passerelle_catalog::ChainVerdict;
use serde::Serialize;

use crate::admin::Admin;
use crate::error::CliError;
use crate::output::{self, say};

/// The verdict, as `--json` prints it.
#[derive(Serialize)]
struct Report {
    /// Whether every row checked is as written.
    intact: bool,
    /// Rows checked (intact trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    checked: Option<u64>,
    /// Rows up to this id predate the chain (intact trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    legacy_until: Option<i64>,
    /// The last row pruned, or where the chain started (intact trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<i64>,
    /// The first row concerned (broken trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<i64>,
    /// `changed`, `removed`, `inserted`, `checkpoint` or `head` (broken trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'static str>,
    /// What was found, in words.
    message: String,
}

pub(super) async fn run(admin: &Admin, json: bool) -> Result<(), CliError> {
    let verdict = admin.catalog.verify_audit_chain(None).await?;
    let report = match &verdict {
        ChainVerdict::Intact(summary) => {
            let mut message = format!("audit trail intact: {} chained rows checked", summary.checked);
            if summary.checkpoint > summary.legacy_until {
                message += &format!(", from the checkpoint after row {} (older rows pruned)", summary.checkpoint);
            }
            if summary.legacy_until > 0 {
                message += &format!(
                    "; rows up to {} predate the chain (written before it existed) and are not covered",
                    summary.legacy_until
                );
            }
            Report {
                intact: true,
                checked: Some(summary.checked),
                legacy_until: Some(summary.legacy_until),
                checkpoint: Some(summary.checkpoint),
                row: None,
                problem: None,
                message,
            }
        }
        ChainVerdict::Broken(broken) => Report {
            intact: false,
            checked: None,
            legacy_until: None,
            checkpoint: None,
            row: Some(broken.row()),
            problem: Some(broken.kind()),
            message: format!("audit trail broken: {broken}"),
        },
    };
    if json {
        output::json(&report)?;
    } else if report.intact {
        say!("{}", report.message);
    }
    match verdict {
        ChainVerdict::Intact(_) => Ok(()),
        ChainVerdict::Broken(_) => Err(CliError::Runtime(anyhow!(report.message))),
    }
}
