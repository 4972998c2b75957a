//! The SSH server's accept loop.
//!
//! russh's own loop (`Server::run_on_socket`) stops the server for good on
//! the first failed `accept()` (out of descriptors, say), and lets a client
//! that never logs in hold its connection until the inactivity timeout. This
//! one keeps accepting after a failure, backing off; bounds the connections
//! still logging in, as OpenSSH's `MaxStartups` does; and closes those that
//! have not logged in within the grace period, as its `LoginGraceTime` does.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use deis_core::accept::AcceptBackoff;
use russh::Disconnect;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ssh::{Connection, SshState};

/// Limits on connections that have not logged in yet.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// How long a client has from connecting to logging in.
    pub grace: Duration,
    /// How many connections may be logging in at once; more wait in the
    /// listen backlog.
    pub max_pending: usize,
}

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            grace: Duration::from_secs(60),
            max_pending: 64,
        }
    }
}

/// Handed to a connection's handler: fired (and its slot freed) once the
/// client has logged in.
pub(crate) struct PendingLogin {
    logged_in: oneshot::Sender<()>,
    _slot: OwnedSemaphorePermit,
}

impl PendingLogin {
    pub(crate) fn complete(self) {
        let _ = self.logged_in.send(());
    }
}

/// The running accept loop.
pub(crate) struct SshListener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SshListener {
    pub(crate) fn start(
        listener: TcpListener,
        config: Arc<russh::server::Config>,
        state: Arc<SshState>,
        limits: LoginLimits,
    ) -> SshListener {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, config, state, limits, stopped));
        SshListener { stop, task }
    }

    /// Stops accepting and disconnects every session.
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    state: Arc<SshState>,
    limits: LoginLimits,
    stopped: watch::Receiver<bool>,
) {
    let pending = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let mut backoff = AcceptBackoff::default();
    loop {
        // A slot first, so that connections beyond the limit wait in the
        // kernel's backlog rather than in memory here.
        let Ok(slot) = Arc::clone(&pending).acquire_owned().await else {
            return;
        };
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                let pause = backoff.failed();
                tracing::warn!(%error, retry_in = ?pause, "the builder cannot accept an SSH connection");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        backoff.succeeded();
        tokio::spawn(serve(
            socket,
            peer,
            Arc::clone(&config),
            Arc::clone(&state),
            limits.grace,
            slot,
            stopped.clone(),
        ));
    }
}

async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    config: Arc<russh::server::Config>,
    state: Arc<SshState>,
    grace: Duration,
    slot: OwnedSemaphorePermit,
    mut stopped: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + grace;
    let _ = socket.set_nodelay(true);
    // A second descriptor for the socket, kept until the client logs in:
    // shutting the socket down closes the connection whether or not the
    // client reads, a Disconnect message does not. Out of descriptors,
    // there is none, and the message has to do.
    let mut spare = socket
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    let (logged_in, mut on_login) = oneshot::channel();
    let handler = Connection::new(
        state,
        peer,
        PendingLogin {
            logged_in,
            _slot: slot,
        },
    );
    let session =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler)).await {
            Ok(Ok(session)) => session,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "SSH connection setup failed");
                return;
            }
            Err(_) => {
                // Dropping the setup closed russh's descriptor.
                tracing::debug!(%peer, "closing an SSH connection that sent no version string in time");
                shut_down(spare.as_ref());
                return;
            }
        };
    let handle = session.handle();
    let disconnect = |reason: &str| {
        let sent = handle.disconnect(Disconnect::ByApplication, reason.to_owned(), String::new());
        // The session's queue may be full: do not wait on it for long.
        tokio::time::timeout(Duration::from_secs(1), sent)
    };
    tokio::pin!(session);
    // Neither logged in nor past the grace yet.
    let mut login_pending = true;
    // A oneshot receiver must not be polled again once it has answered.
    let mut awaiting_login = true;
    let login_timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(login_timeout);
    loop {
        tokio::select! {
            ended = &mut session => {
                if let Err(error) = ended {
                    tracing::debug!(%error, %peer, "SSH session ended with an error");
                }
                return;
            }
            result = &mut on_login, if awaiting_login => {
                awaiting_login = false;
                if result.is_ok() {
                    login_pending = false;
                    spare = None;
                }
                // Otherwise the handler is gone and the session is ending.
            }
            () = &mut login_timeout, if login_pending => {
                login_pending = false;
                tracing::debug!(%peer, ?grace, "closing an SSH connection that did not log in in time");
                if spare.is_some() {
                    shut_down(spare.take().as_ref());
                } else {
                    let _ = disconnect("authentication timed out").await;
                }
            }
            changed = stopped.changed() => {
                if changed.is_ok() && !*stopped.borrow() {
                    continue;
                }
                let _ = disconnect("the builder is stopping").await;
                shut_down(spare.as_ref());
                return;
            }
        }
    }
}

/// Ends the connection both ways, through the spare descriptor if any.
fn shut_down(spare: Option<&std::net::TcpStream>) {
    if let Some(socket) = spare {
        let _ = socket.shutdown(Shutdown::Both);
    }
}
