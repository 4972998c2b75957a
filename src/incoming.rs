//! Accepted connections for the tonic servers (the logger's API, the
//! routing feed).
//!
//! tonic's own loop retries a failed `accept()` at once, which spins a core
//! for as long as the process is out of descriptors; this stream pauses
//! instead, as every other listener here does.

use std::convert::Infallible;

use deis_core::accept::AcceptBackoff;
use futures::Stream;
use tokio::net::{TcpListener, TcpStream};

/// The connections `listener` accepts, with `TCP_NODELAY` set; `what` names
/// the listener in the warning a failure logs.
pub(crate) fn incoming(
    listener: TcpListener,
    what: &'static str,
) -> impl Stream<Item = Result<TcpStream, Infallible>> {
    futures::stream::unfold(
        (listener, AcceptBackoff::default()),
        move |(listener, mut backoff)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        backoff.succeeded();
                        if let Err(error) = stream.set_nodelay(true) {
                            tracing::debug!(%error, "cannot set TCP_NODELAY on a {what} connection");
                        }
                        return Some((Ok(stream), (listener, backoff)));
                    }
                    Err(error) => {
                        let pause = backoff.failed();
                        tracing::warn!(%error, retry_in = ?pause, "cannot accept a {what} connection");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        },
    )
}
