//! Request and response bodies: requests are read frame by frame (never
//! collected unless small and bounded), responses stream from storage.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

use crate::error::RegistryError;

/// Errors of request bodies, whatever their source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the registry reads it.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// The body of every registry response.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams an object to the client.
pub(crate) fn stream(reader: deis_objects::ObjectReader) -> ResponseBody {
    let frames = reader
        .stream
        .map_ok(http_body::Frame::data)
        .map_err(std::io::Error::other);
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// The next non-empty data frame; `None` at the end. A client that sends
/// nothing for `idle` is given up on, so a stalled upload cannot hold its
/// session (or a connection slot) forever.
pub(crate) async fn next_data(
    body: &mut RequestBody,
    idle: Duration,
) -> Result<Option<Bytes>, RegistryError> {
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| RegistryError::Body(format!("no data for {} s", idle.as_secs())))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(RegistryError::Body(e.to_string())),
            // Trailers carry nothing the registry uses.
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => return Ok(Some(data)),
                _ => {}
            },
        }
    }
}

/// Reads a whole body of at most `limit` bytes; `None` when it is larger.
pub(crate) async fn read_limited(
    body: &mut RequestBody,
    limit: usize,
    idle: Duration,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let mut collected = Vec::new();
    while let Some(data) = next_data(body, idle).await? {
        if collected.len() + data.len() > limit {
            return Ok(None);
        }
        collected.extend_from_slice(&data);
    }
    Ok(Some(collected))
}
