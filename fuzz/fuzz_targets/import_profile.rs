//! Fuzz target `import_profile`: see `passerelle_server::fuzz::import_profile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::import_profile(data));
