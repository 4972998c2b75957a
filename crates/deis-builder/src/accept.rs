//! The pause after a failed `accept()`, shared by the builder's listeners.
//!
//! A failed `accept()` (out of descriptors, usually) leaves the connection
//! in the backlog and the listener readable, so retrying at once would spin
//! a core until a descriptor is freed.

use std::time::Duration;

/// The shortest and longest pause.
const RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Pauses that double after each failure, up to a second, and start over
/// after a success.
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    pub(crate) fn new() -> AcceptBackoff {
        AcceptBackoff { next: RANGE.0 }
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = RANGE.0;
    }

    /// Logs the failure and waits before the next attempt.
    pub(crate) async fn failed(&mut self, listener: &str, error: &std::io::Error) {
        let pause = self.next_pause();
        tracing::warn!(%error, retry_in = ?pause, "the builder cannot accept a {listener} connection");
        tokio::time::sleep(pause).await;
    }

    fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(RANGE.1);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_start_over_after_a_success() {
        let mut backoff = AcceptBackoff::new();
        let pauses: Vec<u128> = (0..9).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.next_pause(), Duration::from_millis(10));
    }
}
