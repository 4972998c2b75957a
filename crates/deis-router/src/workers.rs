//! Worker threads, each with its own single-threaded tokio runtime (the
//! nginx model): a connection, its requests and the upstream connections
//! they use stay on one thread, with no cross-thread scheduling.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::Arc;

use deis_uring::Ring;
use tracing::warn;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
    static RING: RefCell<Option<Arc<Ring>>> = const { RefCell::new(None) };
}

/// The calling worker's io_uring, if it has one.
pub(crate) fn ring() -> Option<Arc<Ring>> {
    RING.with(|ring| ring.borrow().clone())
}

/// Gives the calling worker an io_uring and runs its driver; without one
/// (a kernel that lacks it, or forbids it as some container sandboxes do)
/// the worker's sockets use tokio's reactor alone. Says whether it did.
fn start_ring(index: usize) -> bool {
    let ring = match Ring::new() {
        Ok(ring) => ring,
        Err(e) => {
            if index == 0 {
                warn!(error = %e, "io_uring unavailable; the router uses epoll");
            }
            return false;
        }
    };
    RING.with(|slot| *slot.borrow_mut() = Some(Arc::clone(&ring)));
    tokio::spawn(async move {
        let error = ring.drive().await;
        // New sockets stay off the ring; those on it cannot be moved.
        RING.with(|slot| *slot.borrow_mut() = None);
        warn!(%error, "the router's io_uring failed");
    });
    true
}

/// The index of the worker running the caller (0 outside workers).
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropping these stops the workers.
    stops: Vec<oneshot::Sender<()>>,
    /// How many workers run an io_uring.
    rings: usize,
}

impl Workers {
    /// No workers: everything runs on the caller's runtime.
    pub(crate) fn empty() -> Workers {
        Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            rings: 0,
        }
    }

    /// Starts `count` workers; none when `count` is 0. With `io_uring`,
    /// each worker's plain HTTP/1.1 sockets go through an io_uring of its
    /// own (see `deis_uring`).
    pub(crate) fn start(count: usize, io_uring: bool) -> io::Result<Workers> {
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            stops: Vec::with_capacity(count),
            rings: 0,
        };
        let (ring_started, rings) = std::sync::mpsc::channel::<bool>();
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            let ring_started = ring_started.clone();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            std::thread::Builder::new()
                .name(format!("deis-router-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    runtime.block_on(async {
                        let _ = ring_started.send(io_uring && start_ring(index));
                        drop(ring_started);
                        let _ = stopped.await;
                    });
                })?;
        }
        drop(ring_started);
        // Each worker answers once, or drops its sender by failing.
        workers.rings = rings.iter().filter(|&started| started).count();
        Ok(workers)
    }

    /// The workers' runtimes; empty means "use the caller's runtime".
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// How many workers run an io_uring.
    pub(crate) fn rings(&self) -> usize {
        self.rings
    }

    /// Stops every worker; their remaining tasks are dropped.
    pub(crate) fn stop(&mut self) {
        self.stops.clear();
        self.handles.clear();
    }
}
