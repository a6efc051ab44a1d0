//! Fuzz target `sftp_packets`: see `passerelle_server::fuzz::sftp_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::sftp_packets(data));
