//! Drain and abort signals for open connections. A connection checks its
//! signal with one atomic load per wake-up (no lock on the hot path); the
//! router raises signals per listener generation or for all connections.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

// Levels: 0 serves normally.

/// Finish in-flight requests, then close.
pub(crate) const DRAINING: u8 = 1;
/// Close now.
pub(crate) const ABORTING: u8 = 2;

/// One connection's signal.
pub(crate) struct Signal {
    level: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Raises the level, bumps `epoch` so watchers re-read it, then wakes.
    fn raise(&self, level: u8, epoch: &AtomicU64) {
        if self.level.fetch_max(level, Ordering::AcqRel) < level {
            epoch.fetch_add(1, Ordering::AcqRel);
            let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// A connection's handle on its signal; unregisters when dropped.
pub(crate) struct Watch {
    signal: Arc<Signal>,
    registered: Option<Waker>,
    /// The registry epoch `level` was read at, and that level: the signal is
    /// only re-read when some signal was raised since.
    epoch: u64,
    level: u8,
    id: u64,
    registry: Arc<Registry>,
}

impl Watch {
    /// The current level, making sure a later raise wakes this task.
    pub(crate) fn level(&mut self, cx: &Context<'_>) -> u8 {
        if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            *self.signal.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
            self.registered = Some(waker);
        }
        let epoch = self.registry.epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.level = self.signal.level.load(Ordering::Acquire);
        }
        self.level
    }

    /// Resolves once the level reaches `level`.
    pub(crate) async fn reached(&mut self, level: u8) {
        poll_fn(|cx| {
            if self.level(cx) >= level {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.registry.lock();
        state.conns.remove(&self.id);
        if state.conns.is_empty() {
            self.registry.empty.notify_waiters();
        }
    }
}

#[derive(Default)]
struct State {
    conns: HashMap<u64, (u64, Weak<Signal>)>,
    drained: HashSet<u64>,
    global: u8,
}

/// Every open connection by listener generation.
#[derive(Default)]
pub(crate) struct Registry {
    /// Bumped after any signal is raised (read on every wake-up, written
    /// rarely, so it stays cached).
    epoch: AtomicU64,
    state: Mutex<State>,
    next: AtomicU64,
    empty: Notify,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection of a listener generation.
    pub(crate) fn register(self: &Arc<Self>, generation: u64) -> Watch {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let level = if state.drained.contains(&generation) {
            state.global.max(DRAINING)
        } else {
            state.global
        };
        let signal = Arc::new(Signal {
            level: AtomicU8::new(level),
            waker: Mutex::new(None),
        });
        state.conns.insert(id, (generation, Arc::downgrade(&signal)));
        let epoch = self.epoch.load(Ordering::Acquire);
        drop(state);
        Watch {
            signal,
            registered: None,
            epoch,
            level,
            id,
            registry: Arc::clone(self),
        }
    }

    /// Drains the connections of one listener generation (and later ones of it).
    pub(crate) fn drain_generation(&self, generation: u64) {
        let signals: Vec<Arc<Signal>> = {
            let mut state = self.lock();
            state.drained.insert(generation);
            state
                .conns
                .values()
                .filter(|(g, _)| *g == generation)
                .filter_map(|(_, s)| s.upgrade())
                .collect()
        };
        for signal in signals {
            signal.raise(DRAINING, &self.epoch);
        }
    }

    /// Raises every connection, present and future, to `level`.
    pub(crate) fn raise_all(&self, level: u8) {
        let signals: Vec<Arc<Signal>> = {
            let mut state = self.lock();
            state.global = state.global.max(level);
            state.conns.values().filter_map(|(_, s)| s.upgrade()).collect()
        };
        for signal in signals {
            signal.raise(level, &self.epoch);
        }
    }

    /// Waits until no connection is open, at most `limit`; whether it got there.
    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.empty.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.lock().conns.is_empty() {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}
