//! Fuzz target `tenant_path`: see `passerelle_server::fuzz::tenant_path`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::tenant_path(data));
