//! Login rate limiting per username and per source address.
//!
//! Failed attempts are counted in a sliding window; while either counter is
//! over its limit, further attempts are refused without checking the
//! password, so guessing costs the attacker time and not us CPU.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits on failed login attempts.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// Failed attempts allowed per username within `window`.
    pub per_username: usize,
    /// Failed attempts allowed per source address within `window`.
    pub per_address: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_username: 10,
            per_address: 30,
            window: Duration::from_secs(300),
        }
    }
}

#[derive(Default)]
struct Failures {
    by_user: HashMap<String, VecDeque<Instant>>,
    by_addr: HashMap<IpAddr, VecDeque<Instant>>,
}

/// Counts failed logins and says when to refuse.
pub struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<Failures>,
}

fn prune(queue: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while queue.front().is_some_and(|t| now.duration_since(*t) >= window) {
        queue.pop_front();
    }
}

fn retry_after(queue: &VecDeque<Instant>, limit: usize, now: Instant, window: Duration) -> Option<Duration> {
    if queue.len() < limit {
        return None;
    }
    // The oldest counted failure leaves the window first.
    queue
        .front()
        .map(|oldest| window.saturating_sub(now.duration_since(*oldest)))
}

impl LoginLimiter {
    /// A limiter with the given limits.
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            limits,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// `Err(wait)` when this username or address must wait before trying again.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let window = self.limits.window;
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut wait = None;
        if let Some(queue) = failures.by_user.get_mut(username) {
            prune(queue, now, window);
            wait = retry_after(queue, self.limits.per_username, now, window);
        }
        if let Some(queue) = addr.and_then(|a| failures.by_addr.get_mut(&a)) {
            prune(queue, now, window);
            wait = wait.max(retry_after(queue, self.limits.per_address, now, window));
        }
        wait.map_or(Ok(()), Err)
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, username: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures
            .by_user
            .entry(username.to_owned())
            .or_default()
            .push_back(now);
        if let Some(addr) = addr {
            failures.by_addr.entry(addr).or_default().push_back(now);
        }
        // Bound memory under a spray of distinct usernames.
        if failures.by_user.len() > 100_000 {
            let window = self.limits.window;
            failures
                .by_user
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
    }

    /// Forgets the failures of a username after a successful login.
    pub fn record_success(&self, username: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.by_user.remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_per_user_and_per_address() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_username: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        });
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check("alice", Some(addr)).is_ok());
            limiter.record_failure("alice", Some(addr));
        }
        assert!(limiter.check("alice", Some(addr)).is_err());
        // Another user from the same address still has two attempts left.
        assert!(limiter.check("bob", Some(addr)).is_ok());
        limiter.record_failure("bob", Some(addr));
        limiter.record_failure("bob", Some(addr));
        assert!(
            limiter.check("carol", Some(addr)).is_err(),
            "address limit reached"
        );
        assert!(limiter.check("carol", None).is_ok());
        limiter.record_success("alice");
        assert!(limiter.check("alice", None).is_ok());
    }

    #[test]
    fn failures_expire_with_the_window() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_username: 1,
            per_address: 1,
            window: Duration::from_millis(20),
        });
        limiter.record_failure("alice", None);
        assert!(limiter.check("alice", None).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.check("alice", None).is_ok());
    }
}
