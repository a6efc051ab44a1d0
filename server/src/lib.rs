//! `passerelle`: the server and its admin CLI. The binary (`main.rs`) only
//! calls [`run`]; the code lives in this library so that the fuzz targets
//! (`fuzz/`) and the corpus replay test reach the parsers through [`fuzz`].
//!
//! Exit status: 0 ok, 1 runtime error, 2 usage or configuration error.

use std::process::ExitCode;

use clap::Parser;

mod admin;
mod admin_endpoint;
mod assets;
mod backup;
mod cli;
mod commands;
mod config_source;
mod data_dir;
mod engine;
mod error;
mod escape;
mod ftps;
#[doc(hidden)]
pub mod fuzz;
mod logging;
mod master_key;
mod output;
mod pipeline;
mod progress;
mod purge;
mod reload;
mod removal;
mod sandbox;
mod serve;
mod service;
mod sftp;
mod state;
mod usage;

/// Runs the command line of the process and returns its exit status.
pub fn run() -> ExitCode {
    // Everything passerelle creates (catalog, databases, keys, uploads) is
    // private to its user unless a step widens it on purpose.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("passerelle: {}", escape::Escaped(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

/// A multi-threaded runtime. Its threads inherit the Landlock domain of the thread that builds it.
fn runtime() -> Result<tokio::runtime::Runtime, error::CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::Error::new(e).context("cannot start the async runtime").into())
}
