//! Fuzz target `proxy_header`: see `passerelle_server::fuzz::proxy_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::proxy_header(data));
