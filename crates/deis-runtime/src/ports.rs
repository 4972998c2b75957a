//! Ports for app processes: each process gets its own loopback port.
//!
//! They come from a range below the kernel's ephemeral range (as
//! Kubernetes's node ports do), for two reasons:
//! - the kernel never hands such a port to another program's `bind(0)` or
//!   outgoing connection, so it stays free between allocation and the app
//!   binding it;
//! - a port podman publishes is a DNAT rule on loopback. If podman dies
//!   without removing it (a killed `conmon`), that rule would otherwise
//!   capture an ephemeral port that some unrelated server binds later, and
//!   its clients would be sent to a container that is gone.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Mutex;

/// Where app ports come from, unless the ephemeral range overlaps it.
const APP_PORTS: RangeInclusive<u16> = 20000..=32767;

/// Hands out free loopback ports, never the same one twice at a time.
pub(crate) struct Ports {
    /// Candidates outside the ephemeral range; empty if there are none,
    /// and then the kernel picks.
    candidates: Vec<u16>,
    state: Mutex<State>,
}

struct State {
    taken: HashSet<u16>,
    /// Where the next search starts, so ports are not reused at once.
    next: usize,
}

impl Default for Ports {
    fn default() -> Ports {
        Ports::outside(ephemeral_range())
    }
}

impl Ports {
    /// Ports from [`APP_PORTS`], leaving out `ephemeral`.
    fn outside(ephemeral: RangeInclusive<u16>) -> Ports {
        let candidates: Vec<u16> = APP_PORTS.filter(|port| !ephemeral.contains(port)).collect();
        let next = if candidates.is_empty() {
            0
        } else {
            rand::random_range(0..candidates.len())
        };
        Ports {
            candidates,
            state: Mutex::new(State {
                taken: HashSet::new(),
                next,
            }),
        }
    }

    /// A port nothing listens on now and no other process of ours holds.
    pub(crate) fn allocate(&self) -> std::io::Result<u16> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.candidates.is_empty() {
            return allocate_ephemeral(&mut state.taken);
        }
        for step in 0..self.candidates.len() {
            let index = (state.next + step) % self.candidates.len();
            let Some(&port) = self.candidates.get(index) else {
                continue;
            };
            if state.taken.contains(&port) || !is_free(port) {
                continue;
            }
            state.taken.insert(port);
            state.next = index + 1;
            return Ok(port);
        }
        Err(std::io::Error::other(format!(
            "every loopback port from {} to {} is in use",
            APP_PORTS.start(),
            APP_PORTS.end()
        )))
    }

    /// Gives a port back.
    pub(crate) fn release(&self, port: u16) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .taken
            .remove(&port);
    }
}

/// Whether a loopback listener can take `port` now.
fn is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port the kernel picks, when no range is left outside its own.
fn allocate_ephemeral(taken: &mut HashSet<u16>) -> std::io::Result<u16> {
    for _ in 0..64 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        if taken.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port"))
}

/// The kernel's ephemeral port range (Linux's default if it cannot be read).
fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(32768..=60999)
}

fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let low = numbers.next()?.ok()?;
    let high = numbers.next()?.ok()?;
    (low <= high).then_some(low..=high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_outside_the_ephemeral_range() {
        let ports = Ports::outside(ephemeral_range());
        let ephemeral = ephemeral_range();
        let allocated: Vec<u16> = (0..20).map(|_| ports.allocate().unwrap()).collect();
        let distinct: HashSet<u16> = allocated.iter().copied().collect();
        assert_eq!(distinct.len(), allocated.len(), "{allocated:?}");
        for port in &allocated {
            assert!(APP_PORTS.contains(port) && !ephemeral.contains(port), "{port}");
        }
        // A released port may be handed out again, later.
        ports.release(allocated[0]);
        assert!(!ports.state.lock().unwrap().taken.contains(&allocated[0]));
    }

    #[test]
    fn a_port_something_listens_on_is_skipped() {
        let ports = Ports::outside(ephemeral_range());
        let first = ports.allocate().unwrap();
        ports.release(first);
        // Something else takes the port the next search would start at.
        let next = ports.state.lock().unwrap().next;
        let busy_port = ports.candidates[next % ports.candidates.len()];
        let Ok(_busy) = std::net::TcpListener::bind(("127.0.0.1", busy_port)) else {
            return; // taken by another program already: skipped either way
        };
        assert_ne!(ports.allocate().unwrap(), busy_port);
    }

    #[test]
    fn an_ephemeral_range_covering_everything_leaves_it_to_the_kernel() {
        let ports = Ports::outside(1024..=65535);
        assert!(ports.candidates.is_empty());
        let port = ports.allocate().unwrap();
        assert!(port > 0);
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_range("1024 65535"), Some(1024..=65535));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("x"), None);
    }
}
