//! The bound on argon2 verifications before login. Each takes tens of
//! milliseconds of one core and its memory, and any client on the Internet
//! can ask for one: at most `limits.max_concurrent_password_checks` run at
//! once (unknown users' dummy verifications included); a check waits for
//! its turn at most [`QUEUE_WAIT`], in arrival order, then is refused.
//!
//! ```text
//!  password ─► wait ≤ 1 s for a permit ─► argon2 on a blocking thread ─► match?
//!                   │ (max_concurrent_password_checks)
//!                   └─► Busy: the same answer as a wrong password, scored
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::metrics::Metrics;

/// Longest wait for a turn. Long enough to absorb a burst of legitimate
/// logins, short enough that a queue of attackers' checks cannot grow.
pub(super) const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// No turn came within [`QUEUE_WAIT`]: the check was not made.
#[derive(Debug)]
pub(super) struct Busy;

/// The permits of concurrent verifications.
pub(super) struct PasswordChecks {
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl PasswordChecks {
    /// At most `bound` verifications at once (at least 1, checked by the config).
    pub(super) fn new(bound: u32, metrics: Arc<Metrics>) -> Self {
        let bound = usize::try_from(bound).unwrap_or(usize::MAX).clamp(1, Semaphore::MAX_PERMITS);
        Self { permits: Arc::new(Semaphore::new(bound)), metrics }
    }

    /// Whether `password` matches `hash`; with no hash, spends the time of
    /// a real verification and answers no.
    pub(super) async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, Busy> {
        let turn = tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.permits).acquire_owned()).await;
        let Ok(Ok(permit)) = turn else {
            self.metrics.password_check_refused();
            return Err(Busy);
        };
        let metrics = Arc::clone(&self.metrics);
        // The permit moves into the blocking task: a client that hangs up
        // does not free it before argon2 is done.
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _in_flight = metrics.password_check_started();
            match hash {
                Some(hash) => passerelle_keys::verify_password(&hash, &password),
                None => passerelle_keys::dummy_verify(&password),
            }
        })
        .await;
        Ok(matched.unwrap_or(false))
    }
}
