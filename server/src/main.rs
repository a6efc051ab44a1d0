//! `passerelle`: the server and its admin CLI, one binary.
//!
//! Exit status: 0 ok, 1 runtime error, 2 usage or configuration error.

use std::process::ExitCode;

use clap::Parser;

mod admin;
mod admin_endpoint;
mod cli;
mod commands;
mod data_dir;
mod engine;
mod error;
mod escape;
mod ftps;
mod logging;
mod output;
mod pipeline;
mod serve;
mod sftp;
mod usage;

fn main() -> ExitCode {
    // Everything passerelle creates (catalog, databases, keys, uploads) is
    // private to its user unless a step widens it on purpose.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("passerelle: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("passerelle: {}", escape::Escaped(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}
