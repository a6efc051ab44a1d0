//! Fuzz target `config_toml`: see `passerelle_server::fuzz::config_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::config_toml(data));
