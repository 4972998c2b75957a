//! Worker threads, each with its own single-threaded tokio runtime (the
//! nginx model): a connection, its requests and the upstream connections
//! they use stay on one thread, with no cross-thread scheduling.

use std::cell::Cell;
use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the caller (0 outside workers).
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropping these stops the workers.
    stops: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// No workers: everything runs on the caller's runtime.
    pub(crate) fn empty() -> Workers {
        Workers {
            handles: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// Starts `count` workers; none when `count` is 0.
    pub(crate) fn start(count: usize) -> io::Result<Workers> {
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            stops: Vec::with_capacity(count),
        };
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            std::thread::Builder::new()
                .name(format!("deis-router-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(workers)
    }

    /// The workers' runtimes; empty means "use the caller's runtime".
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every worker; their remaining tasks are dropped.
    pub(crate) fn stop(&mut self) {
        self.stops.clear();
        self.handles.clear();
    }
}
