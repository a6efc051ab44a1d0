//! `profile set/list/show`: each tenant's import profiles, stored in the
//! catalog as the text of one TOML file and checked by
//! [`passerelle_import::Profiles::parse`] before they are stored. The import
//! runner reads the stored text for every job, so a change applies to the next
//! file without a restart.

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
    max_bytes: u64,
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
            let profiles =
                admin.catalog.import_profiles(&tenant).await?.map(|text| parse_stored(&tenant, &text)).transpose()?;
            let listed: Vec<ListedProfile<'_>> = profiles.iter().flatten().map(ListedProfile::from).collect();
            if json.json {
                return output::json(&listed);
            }
            if listed.is_empty() {
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed.iter().map(row).collect();
            output::table(&LIST_HEADER, &rows);
        }
        ProfileCommand::Show { tenant } => {
            let tenant = existing_tenant(admin, &tenant).await?;
            // Verbatim, as the administrator wrote it (and TOML, which it was
            // parsed as, allows no C0 control character but tab in it).
            if let Some(text) = admin.catalog.import_profiles(&tenant).await? {
                print!("{text}");
            }
        }
    }
    Ok(())
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
        profile.max_bytes.to_string(),
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
