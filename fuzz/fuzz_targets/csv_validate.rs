//! Fuzz target `csv_validate`: see `passerelle_server::fuzz::csv_validate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::csv_validate(data));
