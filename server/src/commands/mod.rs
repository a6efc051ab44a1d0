//! One module per command group; each validates all input before changing anything.

mod archive;
mod audit;
mod audit_verify;
mod backup;
mod ban;
mod config;
mod copy_anonymized;
mod hostkey;
mod import;
mod import_wait;
mod init;
mod key;
mod keys;
mod node;
mod profile;
mod quota;
mod tenant;
mod user;

use std::io::Read as _;
use std::path::Path;

use passerelle_catalog::TenantName;

use crate::admin::Admin;
use crate::cli::{Cli, Command};
use crate::config_source::ConfigSource;
use crate::error::{CliError, usage};

/// Runs the parsed command line. `serve` builds its own runtimes (it sandboxes itself between
/// them, see [`crate::serve`]); the admin verbs run on one each.
pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    let source = ConfigSource::of(&cli);
    match cli.command {
        Command::GenerateAssets { dir } => crate::assets::write(&dir),
        Command::Serve { demo } => crate::serve::main(&source, demo),
        Command::Config(command) => config::run(&source.load()?, &command),
        Command::Init => block_on(init::run(source.load()?)),
        Command::Hostkey(command) => hostkey::run(&source.load()?, &command),
        Command::Tenant(command) => block_on(async { tenant::run(&Admin::open(source.load()?).await?, command).await }),
        Command::User(command) => block_on(async { user::run(&Admin::open(source.load()?).await?, command).await }),
        Command::Key(command) => block_on(async { key::run(&Admin::open(source.load()?).await?, command).await }),
        Command::Ban(command) => block_on(async { ban::run(&Admin::open(source.load()?).await?, command).await }),
        Command::Audit(args) => block_on(async { audit::run(&Admin::open(source.load()?).await?, args).await }),
        Command::Profile(command) => {
            block_on(async { profile::run(&Admin::open(source.load()?).await?, command).await })
        }
        Command::Import(command) => block_on(async { import::run(&Admin::open(source.load()?).await?, command).await }),
        Command::Backup(command) => block_on(backup::run(source.load()?, command)),
        Command::Archive(command) => {
            block_on(async { archive::run(&Admin::open(source.load()?).await?, command).await })
        }
        Command::Keys(command) => block_on(async { keys::run(&Admin::open(source.load()?).await?, command).await }),
        Command::Node(command) => block_on(async { node::run(&Admin::open(source.load()?).await?, command).await }),
    }
}

/// Runs an admin verb to completion on a runtime of its own.
fn block_on(work: impl Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    crate::runtime()?.block_on(work)
}

/// Parses every `--allow-ip`/`--set` network before anything is changed. A
/// bare address is a network of one; host bits are cleared.
fn parse_networks(flag: &str, raw: &[String]) -> Result<Vec<ipnet::IpNet>, CliError> {
    raw.iter()
        .map(|cidr| {
            cidr.parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    usage(format!("{flag} {cidr:?}: not an IP network (expected e.g. 203.0.113.0/24 or 2001:db8::/32)"))
                })
        })
        .collect()
}

/// Reads a password from the first line of standard input. It is never echoed,
/// logged or placed in an error message.
fn password_from_stdin() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| usage(format!("cannot read the password from standard input: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(usage("no password on standard input"));
    }
    Ok(password.to_owned())
}

/// Reads and checks every public key in `file` (`-`: standard input). Blank
/// lines and `#` comments are skipped; one bad line refuses the whole file.
fn read_keys(file: &Path) -> Result<Vec<passerelle_keys::AuthorizedKey>, CliError> {
    let (name, text) = read_input(file)?;
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = passerelle_keys::AuthorizedKey::parse(line)
            .map_err(|e| usage(format!("{name}, line {}: {e}", number + 1)))?;
        if keys.iter().any(|k: &passerelle_keys::AuthorizedKey| k.fingerprint() == key.fingerprint()) {
            return Err(usage(format!("{name}, line {}: the same key appears twice", number + 1)));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(usage(format!("{name}: no public key found")));
    }
    Ok(keys)
}

/// The most an input file (keys, profiles) may hold.
const MAX_INPUT_BYTES: usize = 1 << 20;

/// Reads a UTF-8 text of at most 1 MiB from `file` (`-`: standard input).
/// Returns the input's name for messages, and its text.
fn read_input(file: &Path) -> Result<(String, String), CliError> {
    let (name, reader): (String, Box<dyn std::io::Read>) = if file == Path::new("-") {
        ("standard input".to_owned(), Box::new(std::io::stdin().lock()))
    } else {
        let opened = std::fs::File::open(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
        (file.display().to_string(), Box::new(opened))
    };
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_INPUT_BYTES + 1).unwrap_or(u64::MAX);
    reader.take(limit).read_to_end(&mut bytes).map_err(|e| usage(format!("{name}: {e}")))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(usage(format!("{name}: larger than 1 MiB")));
    }
    let text = String::from_utf8(bytes).map_err(|_| usage(format!("{name}: not UTF-8 text")))?;
    Ok((name, text))
}

/// The tenant called `name`; an unknown tenant is a refused input.
async fn existing_tenant(admin: &Admin, name: &str) -> Result<TenantName, CliError> {
    let tenant = TenantName::parse(name)?;
    if admin.catalog.tenant(&tenant).await?.is_none() {
        return Err(usage(format!("tenant {tenant} not found")));
    }
    Ok(tenant)
}
