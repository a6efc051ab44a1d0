//! Fuzz target `ftp_control`: see `passerelle_server::fuzz::ftp_control`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::ftp_control(data));
