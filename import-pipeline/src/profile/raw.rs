//! The profile file as written: serde structures that refuse unknown keys,
//! and errors that name the profile and the key.

use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::ProfileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    import: Vec<RawProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) name: String,
    #[serde(rename = "match")]
    pub(super) pattern: String,
    pub(super) table: String,
    #[serde(default = "auto")]
    pub(super) delimiter: String,
    #[serde(default = "auto")]
    pub(super) encoding: String,
    #[serde(default = "yes")]
    pub(super) header: bool,
    #[serde(default = "append")]
    pub(super) mode: String,
    #[serde(default)]
    pub(super) key: Option<Vec<String>>,
    /// A size string or a number of bytes; read by the caller for a precise message.
    #[serde(default)]
    pub(super) max_bytes: Option<Value>,
    #[serde(default = "yes")]
    pub(super) reject_at_close: bool,
    #[serde(default)]
    pub(super) columns: Vec<RawColumn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) column_type: String,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) format: Option<String>,
    #[serde(default)]
    pub(super) decimal_separator: Option<String>,
    #[serde(default)]
    pub(super) personal: Option<String>,
    #[serde(default)]
    pub(super) window_days: Option<i64>,
}

fn auto() -> String {
    "auto".to_owned()
}

fn yes() -> bool {
    true
}

fn append() -> String {
    "append".to_owned()
}

/// Parses the TOML and the structure; semantic checks are the caller's.
pub(super) fn parse(text: &str) -> Result<Vec<RawProfile>, ProfileError> {
    let table: Table = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        ProfileError::syntax(line, error.message())
    })?;
    let names = profile_names(&table);
    let file: RawFile = serde_path_to_error::deserialize(Value::Table(table)).map_err(|error| {
        let path = error.path().to_string();
        let located = locate(error.path(), &names);
        // The bare message: the error's Display adds the key path, given already.
        let message = error.into_inner().message().to_owned();
        match located {
            Some((profile, key)) => ProfileError::at(&profile, key, message),
            None => ProfileError::in_file(path, message),
        }
    })?;
    Ok(file.import)
}

/// The `name` of each `[[import]]`, where it is a string, to name profiles in errors.
fn profile_names(table: &Table) -> Vec<Option<String>> {
    match table.get("import") {
        Some(Value::Array(profiles)) => {
            profiles.iter().map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    }
}

/// Splits `import[2].columns[0].type` into the profile (by name when it has
/// one, else `import[2]`) and the key within it; `None` outside any profile.
fn locate(path: &serde_path_to_error::Path, names: &[Option<String>]) -> Option<(String, String)> {
    let segments: Vec<&Segment> = path.iter().collect();
    match segments.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "import" => {
            let profile = names.get(*index).cloned().flatten().unwrap_or_else(|| format!("import[{index}]"));
            let mut key = String::new();
            for segment in rest {
                match segment {
                    Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                    Segment::Map { key: name } | Segment::Enum { variant: name } => {
                        if !key.is_empty() {
                            key.push('.');
                        }
                        key.push_str(name);
                    }
                    Segment::Unknown => key.push_str(".?"),
                }
            }
            if key.is_empty() {
                key.push_str("(the table itself)");
            }
            Some((profile, key))
        }
        _ => None,
    }
}
