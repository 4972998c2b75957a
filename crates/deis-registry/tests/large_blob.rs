//! A 256 MiB blob goes up and comes back down while the process's peak
//! resident memory grows by far less than the blob: nothing buffers it.
//! (Alone in its test binary, so no other test's memory is counted.)

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::TestRegistry;
use deis_registry::DigestHasher;
use futures::StreamExt;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};

const BLOB: usize = 256 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;
const ALLOWED_GROWTH: u64 = 64 * 1024 * 1024;

/// The process's peak resident set size in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Chunk `i` of the generated blob: distinct per chunk, made on demand.
fn chunk(i: usize) -> Bytes {
    let mut block = vec![(i % 251) as u8; CHUNK];
    block[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(block)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_blob_streams_through_in_bounded_memory() {
    let registry = TestRegistry::start().await;
    // Warm up the runtime, client and store so the baseline includes them.
    registry.push_blob("big", b"warm up").await;
    let baseline = peak_rss();

    let reply = registry.req(Method::POST, "/v2/big/blobs/uploads/").send().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").to_owned();

    // A streamed body (no Content-Length), hashed as it is generated.
    let hasher = Arc::new(Mutex::new(DigestHasher::new()));
    let hashing = Arc::clone(&hasher);
    let frames = futures::stream::iter(0..BLOB / CHUNK).map(move |i| {
        let data = chunk(i);
        hashing.lock().unwrap().update(&data);
        Ok::<_, std::io::Error>(http_body::Frame::data(data))
    });
    let body = BodyExt::boxed(StreamBody::new(frames));
    let reply = registry.req(Method::PATCH, &location).stream(body).send().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.header("range"), format!("0-{}", BLOB - 1));
    let digest = hasher.lock().unwrap().clone().finish();

    let reply = registry
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    // Download it, streaming, and compare chunk by chunk.
    let response = registry
        .req(Method::GET, &format!("/v2/big/blobs/{digest}"))
        .send_streaming()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], BLOB.to_string().as_str());
    let mut body = response.into_body();
    let mut received = 0usize;
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while pending.len() >= CHUNK {
            let expected = chunk(received / CHUNK);
            assert!(
                pending[..CHUNK] == expected[..],
                "chunk {} differs",
                received / CHUNK
            );
            pending = pending.split_off(CHUNK);
            received += CHUNK;
        }
    }
    assert_eq!((received, pending.len()), (BLOB, 0));

    let growth = peak_rss().saturating_sub(baseline);
    println!(
        "peak resident memory grew by {} MiB for a {} MiB blob",
        growth >> 20,
        BLOB >> 20
    );
    assert!(growth < ALLOWED_GROWTH, "peak RSS grew by {growth} bytes");
    registry.stop().await;
}
