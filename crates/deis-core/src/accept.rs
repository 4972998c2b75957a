//! How long a listener pauses after a failed `accept()`.
//!
//! A failed `accept()` (out of descriptors, usually) leaves the connection
//! in the backlog and the listener readable, so a loop that retried at once
//! would spin a core until a descriptor is freed. Every accept loop that can
//! see such a failure pauses by this rule instead.

use std::time::Duration;

/// The shortest and longest pause.
const RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Pauses that double after each failure, up to a second, and start over
/// after a success.
#[derive(Debug)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff { next: RANGE.0 }
    }
}

impl AcceptBackoff {
    /// The pause to take after a failure.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(RANGE.1);
        pause
    }

    /// A connection was accepted: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.next = RANGE.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_start_over_after_a_success() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..9).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(10));
    }
}
