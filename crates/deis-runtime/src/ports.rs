//! Ports for app processes: each process gets its own loopback port.

use std::collections::HashSet;
use std::sync::Mutex;

/// Hands out free loopback ports, never the same one twice at a time.
#[derive(Default)]
pub(crate) struct Ports {
    taken: Mutex<HashSet<u16>>,
}

impl Ports {
    /// A port nothing listens on now and no other process of ours holds.
    pub(crate) fn allocate(&self) -> std::io::Result<u16> {
        for _ in 0..64 {
            // The kernel picks a free ephemeral port; it stays free until the
            // app binds it, a window in which nothing else of ours asks.
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
                .local_addr()?
                .port();
            let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
            if taken.insert(port) {
                return Ok(port);
            }
        }
        Err(std::io::Error::other("no free port"))
    }

    /// Gives a port back.
    pub(crate) fn release(&self, port: u16) {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).remove(&port);
    }
}
