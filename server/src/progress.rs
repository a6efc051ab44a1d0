//! Progress of long administration work, on standard error when it is a
//! terminal, and nothing at all when it is not (a pipe, a file, cron,
//! systemd): scripts read results on standard output and a clean standard
//! error, never the bars.

use std::borrow::Cow;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner moves on its own while nothing reports.
const TICK: Duration = Duration::from_millis(120);

/// One bar or spinner; it is cleared when dropped, so that the lines the
/// command prints next stand alone.
pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// A spinner for work of unknown length: `message` says what it is.
    pub(crate) fn spinner(message: impl Into<Cow<'static, str>>) -> Self {
        let bar = ProgressBar::with_draw_target(None, target());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| plain()));
        bar.set_message(message);
        bar.enable_steady_tick(TICK);
        Self(bar)
    }

    /// A bar for `total` items (files, entries) of work `message` names.
    pub(crate) fn bar(total: u64, message: impl Into<Cow<'static, str>>) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} ({elapsed}, {eta} left)")
                .unwrap_or_else(|_| plain())
                .progress_chars("=> "),
        );
        bar.set_message(message);
        Self(bar)
    }

    /// Says where the work stands now.
    pub(crate) fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        self.0.set_message(message);
    }

    /// `n` more items done.
    pub(crate) fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Standard error when it is a terminal; hidden otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }
}

/// The style the templates fall back to (they are constants, so never).
fn plain() -> ProgressStyle {
    ProgressStyle::default_bar()
}
