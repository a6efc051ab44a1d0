//! `profile set/list/show`: each tenant's import profiles, stored in the
//! catalog as the text of one TOML file and checked by
//! [`passerelle_import::Profiles::parse`] before they are stored. The import
//! runner reads the stored text for every job, so a change applies to the next
//! file without a restart.

use std::collections::HashMap;

use passerelle_catalog::TenantName;
use passerelle_import::{DelimiterSetting, EncodingSetting, Profile, Profiles};
use serde::Serialize;

use super::{existing_tenant, read_input};
use crate::admin::Admin;
use crate::cli::ProfileCommand;
use crate::error::{CliError, usage};
use crate::output::{self, say};

/// The columns of `profile list`.
const LIST_HEADER: [&str; 10] =
    ["PROFILE", "MATCH", "TABLE", "MODE", "KEY", "COLUMNS", "DELIMITER", "ENCODING", "HEADER", "MAX BYTES"];

/// One profile as `profile list --json` prints it.
#[derive(Serialize)]
struct ListedProfile<'a> {
    name: &'a str,
    #[serde(rename = "match")]
    pattern: &'a str,
    table: &'a str,
    mode: String,
    key: &'a [String],
    columns: usize,
    delimiter: String,
    encoding: &'static str,
    header: bool,
    /// The limit in bytes, as the pipeline applies it.
    max_bytes: u64,
    /// `max_bytes` as the profile file writes it (`"1GiB"`); `None` when the
    /// file leaves it to the default.
    max_bytes_written: Option<String>,
    /// Whether an invalid upload is refused at its close.
    reject_at_close: bool,
}

/// `profile show --json`: the stored text and what it defines.
#[derive(Serialize)]
struct ShownProfiles<'a> {
    tenant: &'a str,
    /// The profile file as stored; `None` when none was ever set.
    text: Option<&'a str>,
    profiles: Vec<ListedProfile<'a>>,
}

impl<'a> From<&'a Profile> for ListedProfile<'a> {
    fn from(profile: &'a Profile) -> Self {
        Self {
            name: profile.name(),
            pattern: profile.pattern(),
            table: profile.table(),
            mode: profile.mode().to_string(),
            key: profile.key(),
            columns: profile.columns().len(),
            delimiter: delimiter(profile.delimiter()),
            encoding: encoding(profile.encoding()),
            header: profile.header(),
            max_bytes: profile.max_bytes(),
            max_bytes_written: None,
            reject_at_close: profile.reject_at_close(),
        }
    }
}

pub(super) async fn run(admin: &Admin, command: ProfileCommand) -> Result<(), CliError> {
    match command {
        ProfileCommand::Set { tenant, file } => {
            let tenant = existing_tenant(admin, &tenant).await?;
            let (name, text) = read_input(&file)?;
            let profiles = Profiles::parse(&text).map_err(|e| usage(format!("{name}: {e}")))?;
            admin.catalog.set_import_profiles(&tenant, &text).await?;
            let names: Vec<&str> = profiles.iter().map(Profile::name).collect();
            let detail = if names.is_empty() { "no profiles".to_owned() } else { names.join(",") };
            admin.audit("profile_set", Some(&tenant), None, Some(detail)).await?;
            if profiles.is_empty() {
                say!("tenant {tenant}: no import profiles; every file dropped in /inbox is rejected");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = profiles
                .iter()
                .map(|p| vec![p.name().to_owned(), p.pattern().to_owned(), p.table().to_owned(), p.mode().to_string()])
                .collect();
            output::table(&["PROFILE", "MATCH", "TABLE", "MODE"], &rows);
        }
        ProfileCommand::List { tenant, json } => {
            let tenant = existing_tenant(admin, &tenant).await?;
            let text = admin.catalog.import_profiles(&tenant).await?;
            let profiles = text.as_deref().map(|text| parse_stored(&tenant, text)).transpose()?;
            let listed = listed(profiles.as_ref(), text.as_deref());
            if json.json {
                return output::json(&listed);
            }
            // The header even when empty, as every other list prints it.
            let rows: Vec<Vec<String>> = listed.iter().map(row).collect();
            output::table(&LIST_HEADER, &rows);
        }
        ProfileCommand::Show { tenant, json } => {
            let tenant = existing_tenant(admin, &tenant).await?;
            let text = admin.catalog.import_profiles(&tenant).await?;
            if json.json {
                let profiles = text.as_deref().map(|text| parse_stored(&tenant, text)).transpose()?;
                let shown = ShownProfiles {
                    tenant: tenant.as_str(),
                    text: text.as_deref(),
                    profiles: listed(profiles.as_ref(), text.as_deref()),
                };
                return output::json(&shown);
            }
            // Verbatim, as the administrator wrote it (and TOML, which it was
            // parsed as, allows no C0 control character but tab in it).
            if let Some(text) = text {
                output::verbatim(format_args!("{text}"));
            }
        }
    }
    Ok(())
}

/// The profiles as listed, with their sizes as `text` writes them.
fn listed<'a>(profiles: Option<&'a Profiles>, text: Option<&str>) -> Vec<ListedProfile<'a>> {
    let written = text.map(written_sizes).unwrap_or_default();
    profiles
        .into_iter()
        .flatten()
        .map(|profile| ListedProfile {
            max_bytes_written: written.get(profile.name()).cloned(),
            ..ListedProfile::from(profile)
        })
        .collect()
}

/// Each profile's `max_bytes` as the file writes it (`"1GiB"` or a number),
/// by profile name: the parsed profile keeps only the number of bytes, which
/// is not what the operator wrote nor what they would recognise.
fn written_sizes(text: &str) -> HashMap<String, String> {
    let Ok(file) = text.parse::<toml::Table>() else { return HashMap::new() };
    let Some(tables) = file.get("import").and_then(toml::Value::as_array) else { return HashMap::new() };
    tables
        .iter()
        .filter_map(|table| {
            let name = table.get("name")?.as_str()?;
            let size = match table.get("max_bytes")? {
                toml::Value::String(size) => size.clone(),
                other => other.to_string(),
            };
            Some((name.to_owned(), size))
        })
        .collect()
}

/// Parses a stored profile file. It was checked when it was set, so a failure
/// means the checks have grown stricter since: a runtime error saying what to do.
fn parse_stored(tenant: &TenantName, text: &str) -> Result<Profiles, CliError> {
    Profiles::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "the stored profiles of tenant {tenant} are no longer accepted ({e}); fix them and set them again"
        )
        .into()
    })
}

fn row(profile: &ListedProfile<'_>) -> Vec<String> {
    vec![
        profile.name.to_owned(),
        profile.pattern.to_owned(),
        profile.table.to_owned(),
        profile.mode.clone(),
        if profile.key.is_empty() { "-".to_owned() } else { profile.key.join(",") },
        profile.columns.to_string(),
        // A tab shows as `\t`: the table escapes it.
        profile.delimiter.clone(),
        profile.encoding.to_owned(),
        if profile.header { "yes" } else { "no" }.to_owned(),
        profile.max_bytes_written.clone().unwrap_or_else(|| format!("{} (default)", profile.max_bytes)),
    ]
}

/// The `delimiter` key as written in a profile file.
fn delimiter(setting: DelimiterSetting) -> String {
    match setting {
        DelimiterSetting::Auto => "auto".to_owned(),
        DelimiterSetting::Fixed(byte) => char::from(byte).to_string(),
    }
}

/// The `encoding` key as written in a profile file.
fn encoding(setting: EncodingSetting) -> &'static str {
    match setting {
        EncodingSetting::Auto => "auto",
        EncodingSetting::Utf8 => "utf-8",
        EncodingSetting::Windows1252 => "windows-1252",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_kept_as_written() {
        let text = "[[import]]\nname = \"a\"\nmax_bytes = \"1GiB\"\n[[import]]\nname = \"b\"\nmax_bytes = 1000\n\
                    [[import]]\nname = \"c\"\n";
        let sizes = written_sizes(text);
        assert_eq!(sizes.get("a").map(String::as_str), Some("1GiB"));
        assert_eq!(sizes.get("b").map(String::as_str), Some("1000"));
        assert_eq!(sizes.get("c"), None);
    }
}
