//! Structured logs on standard error, as text or JSON (`log.format`).
//!
//! Text logs show every field through [`Escaped`]: a login name, a file name
//! or a client's version string sent by an anonymous client cannot move the
//! cursor of the terminal reading the log, nor start a forged line in it.
//! JSON logs are escaped by JSON itself and carry the exact text.

use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;

use passerelle_config::{LogConfig, LogFormat};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::escape::Escaped;

/// Installs the global subscriber. `RUST_LOG` refines `log.level` when set.
pub(crate) fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    // Colours only for a person at a terminal, never in files or journald.
    let ansi = std::io::stderr().is_terminal();
    // A log line that cannot be written (journald restarted, the reader of a pipe gone) is lost:
    // tracing-subscriber's report of it would go to the same broken stderr with eprintln!, which
    // panics, turning a lost line into a crashed server.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    match config.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.fmt_fields(EscapedFields).init(),
    }
}

/// The fields of a text log line: `message name=value ...`, each value escaped.
#[derive(Debug, Clone, Copy)]
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes the fields of one event or span, separated by spaces.
struct FieldWriter<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let space = if self.first { "" } else { " " };
        self.first = false;
        self.result = match field.name() {
            "message" => write!(self.writer, "{space}{}", Escaped(value)),
            name => write!(self.writer, "{space}{}={}", name.trim_start_matches("r#"), Escaped(value)),
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = write!(text, "{value:?}");
        self.write(field, &text);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// The text logs of `log`, as `EscapedFields` formats them.
    fn logged(log: impl FnOnce()) -> String {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&lines);
        let make_writer = move || Sink(std::sync::Arc::clone(&sink));
        let layer =
            tracing_subscriber::fmt::layer().fmt_fields(EscapedFields).with_ansi(false).with_writer(make_writer);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        String::from_utf8(lines.lock().unwrap().clone()).unwrap()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_and_message_from_a_client_are_escaped() {
        let login = "eve\x1b[2J\nFORGED login ok";
        let out = logged(|| tracing::info!(login = %login, name = login, "login refused for {login}"));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.contains("login refused for eve\\x1b[2J\\nFORGED login ok"), "{out}");
        assert!(out.contains("login=eve\\x1b[2J\\nFORGED login ok"), "{out}");
        assert!(out.contains("name=eve\\x1b[2J\\nFORGED"), "{out}");
    }
}
