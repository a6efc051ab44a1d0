//! Fuzz target `authorized_key`: see `passerelle_server::fuzz::authorized_key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::authorized_key(data));
