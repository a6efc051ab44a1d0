//! Loading: defaults, then the file, then the environment, then the `--data-dir` flag, merged into one
//! TOML table, then read by serde (naming the key on a type error) and checked.

use std::collections::HashMap;
use std::path::Path;

use toml::{Table, Value};

use crate::env::{self, Override};
use crate::error::{ConfigError, one_line};
use crate::model::Config;
use crate::raw::Raw;
use crate::schema::{self, Default, KEYS, SECTIONS};
use crate::validate::validate;

/// Where configuration comes from, besides the embedded defaults.
///
/// Precedence, highest first: `data_dir`, then `env`, then `file`, then the defaults.
#[derive(Debug, Clone, std::default::Default)]
pub struct Sources<'a> {
    /// The configuration file, if any (from `--config` or `PASSERELLE_CONFIG`, resolved by the caller).
    /// A file that is named but cannot be read is an error.
    pub file: Option<&'a Path>,
    /// The `--data-dir` flag, which overrides `data_dir` from every other source.
    pub data_dir: Option<&'a Path>,
    /// The environment, as `(name, value)` pairs. Only names starting with `PASSERELLE_` are looked at;
    /// `PASSERELLE_CONFIG` is ignored (it names the file).
    pub env: Vec<(String, String)>,
}

impl Sources<'_> {
    /// The process environment, as [`Sources::env`] expects it. Variables whose name or value is not
    /// UTF-8 are skipped, except that a `PASSERELLE_` one is kept with its value converted lossily so
    /// that it is still checked.
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                match value.into_string() {
                    Ok(value) => Some((name, value)),
                    Err(value) if name.starts_with(schema::ENV_PREFIX) => {
                        Some((name, value.to_string_lossy().into_owned()))
                    }
                    Err(_) => None,
                }
            })
            .collect()
    }
}

impl Config {
    /// Loads, merges and checks the configuration.
    ///
    /// Unknown keys (in the file or as `PASSERELLE_` variables), values of the wrong type, values out of
    /// range and unsafe settings are refused with a [`ConfigError`] naming the key.
    pub fn load(sources: Sources<'_>) -> Result<Self, ConfigError> {
        let mut merged = defaults();
        if let Some(path) = sources.file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            let file = parse_file(path, &text)?;
            check_known(&file)?;
            for (name, value) in file {
                match value {
                    Value::Table(section) if schema::is_section(&name) => {
                        for (key, value) in section {
                            set(&mut merged, &name, &key, value);
                        }
                    }
                    value => set(&mut merged, "", &name, value),
                }
            }
        }
        let overrides = env::overrides(&sources.env)?;
        let mut origins = HashMap::new();
        for Override { key, var, value } in overrides {
            origins.insert(key.path(), var);
            set(&mut merged, key.section, key.name, value);
        }
        if let Some(dir) = sources.data_dir {
            set(&mut merged, "", "data_dir", Value::String(dir.to_string_lossy().into_owned()));
        }
        read(merged).map_err(|error| blame_env(error, &origins))
    }
}

/// Deserializes and validates the merged table.
fn read(merged: Table) -> Result<Config, ConfigError> {
    let raw: Raw = serde_path_to_error::deserialize(Value::Table(merged)).map_err(|error| {
        let key = error.path().to_string();
        ConfigError::invalid(key, error.into_inner().to_string())
    })?;
    validate(raw)
}

/// Says which environment variable set a refused value, since the file would not show it.
fn blame_env(error: ConfigError, origins: &HashMap<String, String>) -> ConfigError {
    match error {
        ConfigError::Invalid { key, message } => {
            let base = key.split('[').next().unwrap_or(&key);
            let message = match origins.get(base) {
                Some(var) if !message.contains(var.as_str()) => format!("{message} (set by {var})"),
                _ => message,
            };
            ConfigError::Invalid { key, message }
        }
        other => other,
    }
}

/// The embedded defaults as a table: every section present, every key with a fixed default set.
fn defaults() -> Table {
    let mut table = Table::new();
    for (section, _) in SECTIONS.iter().filter(|(s, _)| !s.is_empty()) {
        table.insert((*section).to_owned(), Value::Table(Table::new()));
    }
    for key in KEYS {
        if let Default::Value(literal) = key.default {
            set(&mut table, key.section, key.name, schema::parse_literal(literal));
        }
    }
    table
}

fn set(table: &mut Table, section: &str, name: &str, value: Value) {
    let target = if section.is_empty() {
        table
    } else {
        match table.entry(section).or_insert_with(|| Value::Table(Table::new())) {
            Value::Table(inner) => inner,
            _ => unreachable!("sections are tables"),
        }
    };
    target.insert(name.to_owned(), value);
}

fn parse_file(path: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|error| ConfigError::Syntax {
        file: path.to_path_buf(),
        line: error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: one_line(error.message()),
    })
}

/// Refuses any section or key of the file that is not in [`KEYS`].
fn check_known(file: &Table) -> Result<(), ConfigError> {
    for (name, value) in file {
        if schema::is_section(name) {
            let Value::Table(section) = value else {
                return Err(ConfigError::invalid(name.clone(), format!("must be a table ([{name}])")));
            };
            if let Some(key) = section.keys().find(|key| schema::find(name, key).is_none()) {
                return Err(ConfigError::UnknownKey { key: format!("{name}.{key}") });
            }
        } else if schema::find("", name).is_none() {
            return Err(ConfigError::UnknownKey { key: name.clone() });
        }
    }
    Ok(())
}
