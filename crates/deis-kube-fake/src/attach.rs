//! The `attach` subresource of pods: a WebSocket speaking Kubernetes's
//! channel protocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`: one byte of
//! channel, then the payload; 0 stdin, 1 stdout, 2 stderr, 3 the final
//! `Status`, 4 terminal resizes, 255 a stream closed), as kube-rs and
//! kubectl speak them. No container runs here, so the test plays it
//! through an [`Attachment`].

use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::Shared;
use crate::api::{ApiError, Body};
use crate::resources::RESOURCES;
use crate::store::ObjKey;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;
/// The protocols served, in the order of preference.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// What a client attached to a pod sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachInput {
    /// Bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// The client's terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The client closed stdin.
    StdinClosed,
}

/// A client attached to a pod, for the test to play the container: read
/// what the client sends, write what the container prints, and exit.
#[derive(Debug)]
pub struct Attachment {
    input: mpsc::UnboundedReceiver<AttachInput>,
    output: mpsc::UnboundedSender<Vec<u8>>,
    exit: oneshot::Sender<i32>,
}

impl Attachment {
    /// The next thing the client sent; `None` once it went away.
    pub async fn next(&mut self) -> Option<AttachInput> {
        self.input.recv().await
    }

    /// Writes to the container's stdout (with a TTY: to its terminal).
    pub fn write(&self, bytes: &[u8]) {
        let _ = self.output.send(bytes.to_vec());
    }

    /// The container exits with `code`: the client gets the final Status,
    /// the connection closes, and the pod terminates.
    pub fn exit(self, code: i32) {
        let _ = self.exit.send(code);
    }
}

/// Whether a request asks for a WebSocket.
pub(crate) fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers an attach request for the running pod `key` with a WebSocket
/// upgrade, and serves the connection.
pub(crate) fn upgrade(
    shared: Arc<Shared>,
    key: ObjKey,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let running = shared.read(|st| {
        st.get(&key)
            .map(|pod| pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
    });
    match running {
        None => return Err(ApiError::not_found(&RESOURCES[key.res], &key.name)),
        Some(false) => {
            return Err(ApiError::bad_request(format!(
                "pod {} is not running, so it cannot be attached to",
                key.name
            )));
        }
        Some(true) => {}
    }
    let Some(client_key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(ApiError::bad_request("missing Sec-WebSocket-Key".to_owned()));
    };
    let offered = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(protocol) = PROTOCOLS
        .iter()
        .find(|p| offered.split(',').any(|o| o.trim() == **p))
        .copied()
    else {
        return Err(ApiError::bad_request(format!(
            "none of the offered subprotocols ({offered}) is supported"
        )));
    };
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                serve(shared, key, ws).await;
            }
            Err(e) => tracing::debug!("fake kube attach upgrade: {e}"),
        }
    });
    let mut response = Response::new(Body::Full(None));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(client_key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(response)
}

async fn serve<S>(shared: Arc<Shared>, key: ObjKey, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (input_tx, input) = mpsc::unbounded_channel();
    let (output, mut output_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (exit, mut exit_rx) = oneshot::channel();
    shared.add_attachment(key.clone(), Attachment { input, output, exit });
    let (mut send, mut receive) = ws.split();
    loop {
        tokio::select! {
            message = receive.next() => match message {
                Some(Ok(Message::Binary(frame))) => {
                    if let Some(input) = parse_input(&frame) {
                        let _ = input_tx.send(input);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(bytes) = output_rx.recv() => {
                let mut frame = vec![STDOUT];
                frame.extend_from_slice(&bytes);
                if send.send(Message::binary(frame)).await.is_err() {
                    break;
                }
            }
            code = &mut exit_rx => {
                let code = code.unwrap_or(0);
                // What the kubelet has written by then goes first.
                while let Ok(bytes) = output_rx.try_recv() {
                    let mut frame = vec![STDOUT];
                    frame.extend_from_slice(&bytes);
                    let _ = send.send(Message::binary(frame)).await;
                }
                let mut frame = vec![STATUS];
                frame.extend_from_slice(exit_status(code).to_string().as_bytes());
                let _ = send.send(Message::binary(frame)).await;
                let _ = send.close().await;
                shared.write(|st| st.finish_held_pod(&key, code, None));
                return;
            }
        }
    }
}

fn parse_input(frame: &[u8]) -> Option<AttachInput> {
    let (&channel, payload) = frame.split_first()?;
    match channel {
        STDIN => Some(AttachInput::Stdin(payload.to_vec())),
        RESIZE => {
            let size: Value = serde_json::from_slice(payload).ok()?;
            Some(AttachInput::Resize {
                width: u16::try_from(size.get("Width")?.as_u64()?).ok()?,
                height: u16::try_from(size.get("Height")?.as_u64()?).ok()?,
            })
        }
        CLOSE if payload.first() == Some(&STDIN) => Some(AttachInput::StdinClosed),
        _ => None,
    }
}

/// The `Status` the kubelet ends a stream with.
fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}
