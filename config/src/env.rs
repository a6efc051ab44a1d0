//! Environment overrides: `PASSERELLE_<SECTION>_<KEY>` sets `section.key`, parsed by the key's type.

use toml::Value;

use crate::error::ConfigError;
use crate::schema::{self, ENV_CONFIG_FILE, ENV_PREFIX, KEYS, KeyDef, Kind, SECTIONS};

/// One override taken from the environment.
pub(crate) struct Override {
    /// The key it sets.
    pub(crate) key: &'static KeyDef,
    /// The variable it came from.
    pub(crate) var: String,
    /// The parsed value.
    pub(crate) value: Value,
}

/// Picks the `PASSERELLE_` variables out of `env` and parses them. `PASSERELLE_CONFIG` is left to the
/// caller; any other `PASSERELLE_` variable that names no key is refused, so that a typo is never
/// silently ignored.
pub(crate) fn overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    let mut found = Vec::new();
    for (var, raw) in env {
        if !var.starts_with(ENV_PREFIX) || var == ENV_CONFIG_FILE {
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.env_var() == *var) else {
            return Err(ConfigError::UnknownEnv { var: var.clone(), key: guess_key(var) });
        };
        let value = parse(key, var, raw)?;
        found.push(Override { key, var: var.clone(), value });
    }
    Ok(found)
}

/// Parses an environment value according to the key's type.
fn parse(key: &KeyDef, var: &str, raw: &str) -> Result<Value, ConfigError> {
    let bad = |expected: &str| ConfigError::invalid(key.path(), format!("{var}: expected {expected} (got \"{raw}\")"));
    Ok(match key.kind {
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(bad("true or false")),
        },
        Kind::Integer => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        kind if kind.is_list() => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        _ => Value::String(raw.to_owned()),
    })
}

/// The key a mistyped variable was probably meant to set, for the error message:
/// `PASSERELLE_SFTP_LISTN` gives `sftp.listn`.
fn guess_key(var: &str) -> String {
    let rest = var.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
    SECTIONS
        .iter()
        .map(|(section, _)| *section)
        .filter(|section| schema::is_section(section))
        .filter_map(|section| Some((section, rest.strip_prefix(section)?.strip_prefix('_')?)))
        .max_by_key(|(section, _)| section.len())
        .map_or(rest.clone(), |(section, name)| format!("{section}.{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_key_has_a_distinct_variable() {
        let mut vars: Vec<String> = KEYS.iter().map(KeyDef::env_var).collect();
        vars.sort();
        vars.dedup();
        assert_eq!(vars.len(), KEYS.len());
        assert!(!vars.iter().any(|v| v == ENV_CONFIG_FILE));
    }

    #[test]
    fn values_are_parsed_by_type() {
        let found = overrides(&env(&[
            ("PASSERELLE_SFTP_LISTEN", "127.0.0.1:1, 127.0.0.1:2"),
            ("PASSERELLE_LIMITS_MAX_AUTH_TRIES", "3"),
            ("PASSERELLE_FTPS_REQUIRE_SESSION_REUSE", "FALSE"),
            ("PASSERELLE_CONFIG", "/etc/passerelle.toml"),
            ("HOME", "/root"),
        ]))
        .unwrap();
        let values: Vec<String> = found.iter().map(|o| o.value.to_string()).collect();
        assert_eq!(values, [r#"["127.0.0.1:1", "127.0.0.1:2"]"#, "3", "false"]);
    }

    #[test]
    fn typos_name_the_key_they_missed() {
        assert_eq!(guess_key("PASSERELLE_TENANT_DB_ADMINURL"), "tenant_db.adminurl");
        assert_eq!(guess_key("PASSERELLE_NOPE"), "nope");
    }
}
