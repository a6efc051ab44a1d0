//! The header line against the profile's columns.

use crate::profile::Profile;

/// Maps each field of the header to its declared column. Names are trimmed
/// and compared case-insensitively (declared names are lower-case), in any
/// order. Missing, unexpected, empty and repeated names are all named in one
/// message.
pub(super) fn map(profile: &Profile, names: &[&str]) -> Result<Vec<usize>, String> {
    let columns = profile.columns();
    let mut mapping = Vec::with_capacity(names.len());
    let mut found = vec![None; columns.len()];
    let mut unexpected = Vec::new();
    let mut repeated = Vec::new();
    let mut empty = Vec::new();
    for (field, name) in names.iter().enumerate() {
        let wanted = name.trim().to_lowercase();
        if wanted.is_empty() {
            empty.push((field + 1).to_string());
            continue;
        }
        match columns.iter().position(|c| c.name() == wanted) {
            Some(column) => {
                if let Some(first) = found[column] {
                    repeated.push(format!("{} (fields {} and {})", columns[column].name(), first + 1, field + 1));
                } else {
                    found[column] = Some(field);
                    mapping.push(column);
                }
            }
            None => unexpected.push(super::value::quote(name.trim())),
        }
    }
    let missing: Vec<&str> =
        columns.iter().zip(&found).filter(|(_, found)| found.is_none()).map(|(c, _)| c.name()).collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing {}", list("column", &missing)));
    }
    if !unexpected.is_empty() {
        problems.push(format!("unexpected {}", list("column", &unexpected)));
    }
    if !empty.is_empty() {
        problems.push(format!("empty column name in {}", list("field", &empty)));
    }
    if !repeated.is_empty() {
        problems.push(format!("repeated {}", list("column", &repeated)));
    }
    if problems.is_empty() {
        Ok(mapping)
    } else {
        Err(format!("header does not match profile {:?}: {}", profile.name(), problems.join("; ")))
    }
}

fn list(noun: &str, items: &[impl AsRef<str>]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    let plural = if items.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", items.join(", "))
}
