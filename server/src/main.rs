//! `passerelle`: the server and its admin CLI, one binary.
//!
//! Exit status: 0 ok, 1 runtime error, 2 usage or configuration error.

use std::process::ExitCode;

fn main() -> ExitCode {
    passerelle_server::run()
}
