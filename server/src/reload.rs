//! SIGHUP in `serve`: the configuration is read again and compared with the one in force.
//!
//! What changes live needs no reload: tenants, users, keys, quota overrides, import profiles and bans
//! live in the catalog and are read when used; the FTPS front-end reloads its certificate and key on
//! the same signal. Every other key is read once at start (listeners, limits, pools and the data
//! directory are built from it), so a changed key is named in the log with the restart it needs,
//! and a broken file is reported while the running configuration stays.

use std::collections::BTreeMap;

use passerelle_config::Config;
use tracing::{info, warn};

use crate::config_source::ConfigSource;

/// Reads the configuration of `source` again and logs how it differs from `running`.
pub(crate) fn check(running: &Config, source: &ConfigSource) {
    match source.load() {
        Err(e) => warn!(error = %e, "SIGHUP: the configuration is not valid; the running one stays in force"),
        Ok(new) => {
            let changed = changed_keys(running, &new);
            if changed.is_empty() {
                info!("SIGHUP: configuration unchanged (catalog settings are always live)");
            } else {
                warn!(
                    keys = %changed.join(","),
                    "SIGHUP: changed keys take effect at the next restart (systemctl restart passerelle); \
                     the running configuration stays in force"
                );
            }
        }
    }
}

/// The dotted keys whose effective values differ (secrets are compared redacted).
fn changed_keys(running: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (flatten(running), flatten(new));
    let mut keys: Vec<String> =
        old.iter().filter(|(key, value)| new.get(*key) != Some(value)).map(|(key, _)| key.clone()).collect();
    keys.extend(new.keys().filter(|key| !old.contains_key(*key)).cloned());
    keys.sort();
    keys
}

/// `section.key` → value, from the configuration as `config show` prints it.
fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut keys = BTreeMap::new();
    let Ok(table) = config.to_redacted_toml().parse::<toml::Table>() else {
        return keys;
    };
    for (name, value) in table {
        match value {
            toml::Value::Table(section) => {
                keys.extend(section.into_iter().map(|(key, value)| (format!("{name}.{key}"), value)));
            }
            value => {
                keys.insert(name, value);
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passerelle.toml");
        std::fs::write(&file, toml).unwrap();
        let sources = passerelle_config::Sources { file: Some(&file), data_dir: None, env: Vec::new() };
        Config::load(sources).unwrap()
    }

    #[test]
    fn changed_keys_are_named_by_their_dotted_path() {
        let running = config("data_dir = \"/srv/p\"\n");
        assert!(changed_keys(&running, &running.clone()).is_empty());
        let new = config("data_dir = \"/srv/p\"\n[limits]\nmax_auth_tries = 3\n[log]\nlevel = \"debug\"\n");
        assert_eq!(changed_keys(&running, &new), ["limits.max_auth_tries", "log.level"]);
    }
}
