//! Fuzz target `ssh_kexinit`: see `passerelle_server::fuzz::ssh_kexinit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passerelle_server::fuzz::ssh_kexinit(data));
