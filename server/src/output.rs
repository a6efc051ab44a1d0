//! Printing results: aligned text for people, JSON for scripts.
//!
//! Every line of text for people goes through [`table`] or [`say!`], which
//! show control and format characters escaped (see [`crate::escape`]): a
//! login name or file name chosen by a client cannot drive the operator's
//! terminal. JSON is exact: serde escapes control characters itself. The
//! TOML documents that `profile show` and `config show` print stay
//! verbatim: TOML allows no C0 control character (but tab) nor DEL in them.

use std::fmt;
use std::io::{self, Write as _};

use serde::Serialize;

use crate::error::CliError;
use crate::escape::{Escaped, escape};

/// Prints one line for people, its control and format characters escaped;
/// `say!("user {login} created")` as `println!` takes its arguments.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Prints `text` as one line, escaped; see [`say!`].
pub(crate) fn line(text: fmt::Arguments<'_>) {
    verbatim(format_args!("{}\n", Escaped(&text.to_string())));
}

/// Writes `text` to standard output as it is: only for text that must
/// reach its reader unchanged (known_hosts lines, TOML documents).
///
/// A reader that has gone (`passerelle audit | head`) ends the command
/// quietly with status 0, as `head` expects of its writer, where `print!`
/// would panic on the broken pipe; any other write error ends it with
/// status 1 and says why.
pub(crate) fn verbatim(text: fmt::Arguments<'_>) {
    if let Err(e) = io::stdout().lock().write_fmt(text) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("passerelle: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Prints `value` as pretty JSON on standard output.
pub(crate) fn json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Runtime(e.into()))?;
    verbatim(format_args!("{text}\n"));
    Ok(())
}

/// Prints rows as columns aligned under `header`, each cell escaped.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| escape(cell)).collect()).collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        verbatim(format_args!("{}\n", padded.join("  ").trim_end()));
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A Unix-milliseconds timestamp as RFC 3339 (UTC, milliseconds): the one
/// format of every time the CLI prints, in tables and in JSON alike.
pub(crate) use passerelle_catalog::rfc3339_ms as timestamp;
