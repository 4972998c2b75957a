//! The `pre-receive` hook and its conversation with the builder.
//!
//! git runs the hook inside `git receive-pack` after the pushed objects
//! arrived (in quarantine) and before any ref moves. The hook is a thin
//! client: it sends the ref updates, the push's one-time token and the
//! quarantine location to the builder over a Unix socket, prints the build
//! output as it streams back, and exits with the build's status — so a
//! failed build rejects the push and no ref moves.
//!
//! Wire format (one connection per hook run): the hook sends one JSON line
//! ([`HookRequest`]); the builder answers with lines `o<text>` (output) and
//! one final `x<code>` (exit status).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deis_core::accept::AcceptBackoff;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Environment variable with the builder's socket path.
pub const SOCKET_ENV: &str = "DEIS_BUILDER_SOCKET";
/// Environment variable with the push's one-time token.
pub const TOKEN_ENV: &str = "DEIS_PUSH_TOKEN";

/// Largest request line accepted from a hook.
const MAX_REQUEST: u64 = 1024 * 1024;

/// How long a connection may take to send its request line. The hook
/// sends it as soon as it starts; a connection that stays silent is not a
/// hook and is closed rather than held forever.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// One ref update, as git gives it to `pre-receive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    /// The old object id (all zeros for a new ref).
    pub old: String,
    /// The new object id (all zeros for a deletion).
    pub new: String,
    /// The full ref name (`refs/heads/main`).
    pub name: String,
}

/// What the hook sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HookRequest {
    /// The push's one-time token.
    pub token: String,
    /// The ref updates.
    pub refs: Vec<RefUpdate>,
    /// `GIT_OBJECT_DIRECTORY`: where the pushed objects wait in quarantine.
    pub object_directory: Option<String>,
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`.
    pub alternate_object_directories: Option<String>,
}

/// Who pushed to which app, for one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushContext {
    /// The app.
    pub app: String,
    /// The authenticated user.
    pub username: String,
    /// The app's bare repository.
    pub repo: PathBuf,
}

/// Tokens of pushes in progress. A token is handed to one `git
/// receive-pack` through its environment and can be used by one hook run.
#[derive(Clone, Default)]
pub struct Pushes {
    inner: Arc<Mutex<HashMap<String, PushContext>>>,
}

impl Pushes {
    /// Registers a push; the token is forgotten when the guard drops.
    pub fn register(&self, context: PushContext) -> PushToken {
        let token = uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        self.lock().insert(token.clone(), context);
        PushToken {
            pushes: self.clone(),
            token,
        }
    }

    /// Takes the context of a token (once).
    pub fn take(&self, token: &str) -> Option<PushContext> {
        self.lock().remove(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PushContext>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A registered push token.
pub struct PushToken {
    pushes: Pushes,
    token: String,
}

impl PushToken {
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl Drop for PushToken {
    fn drop(&mut self) {
        self.pushes.lock().remove(&self.token);
    }
}

/// Output of a build, sent to the pusher line by line.
pub type Output = tokio::sync::mpsc::Sender<String>;

/// What the builder does with a hook's request.
#[async_trait::async_trait]
pub trait HookHandler: Send + Sync + 'static {
    /// Runs the push's build; returns the hook's exit status.
    async fn handle(&self, context: PushContext, request: HookRequest, output: Output) -> i32;
}

/// Serves hook connections on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, pushes: Pushes, handler: Arc<dyn HookHandler>) {
    serve_with_deadline(listener, pushes, handler, REQUEST_DEADLINE).await
}

async fn serve_with_deadline(
    listener: UnixListener,
    pushes: Pushes,
    handler: Arc<dyn HookHandler>,
    request_deadline: Duration,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                let pause = backoff.failed();
                tracing::warn!(%error, retry_in = ?pause, "the builder cannot accept a hook connection");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        backoff.succeeded();
        let pushes = pushes.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(err) = serve_one(stream, pushes, handler, request_deadline).await {
                tracing::warn!(error = %err, "pre-receive hook connection failed");
            }
        });
    }
}

async fn serve_one(
    stream: UnixStream,
    pushes: Pushes,
    handler: Arc<dyn HookHandler>,
    request_deadline: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut request_reader = BufReader::new(read.take(MAX_REQUEST));
    if tokio::time::timeout(request_deadline, request_reader.read_line(&mut line))
        .await
        .is_err()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no request line within {request_deadline:?}"),
        ));
    }
    let request: Result<HookRequest, _> = serde_json::from_str(&line);
    let context = request.as_ref().ok().and_then(|r| pushes.take(&r.token));
    let (Ok(request), Some(context)) = (request, context) else {
        write
            .write_all(
                b"oThis push is not known to the builder; push through the builder's SSH address.\nx1\n",
            )
            .await?;
        return Ok(());
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    let build = tokio::spawn(async move { handler.handle(context, request, tx).await });
    while let Some(text) = rx.recv().await {
        for part in text.split('\n') {
            let mut frame = Vec::with_capacity(part.len() + 2);
            frame.push(b'o');
            frame.extend_from_slice(part.trim_end_matches('\r').as_bytes());
            frame.push(b'\n');
            // The pusher may have gone; the build still finishes and is
            // recorded, so keep draining.
            let _ = write.write_all(&frame).await;
        }
    }
    let code = build.await.unwrap_or(1);
    write.write_all(format!("x{code}\n").as_bytes()).await?;
    Ok(())
}

/// The hook side: what `deis-workflow hook pre-receive` runs. Returns the
/// process exit status.
pub async fn run_pre_receive() -> i32 {
    match pre_receive().await {
        Ok(code) => code,
        Err(message) => {
            println!("\x1b[1G!     {message}");
            1
        }
    }
}

async fn pre_receive() -> Result<i32, String> {
    let socket = std::env::var(SOCKET_ENV).map_err(|_| {
        "This repository is managed by the Deis builder; push to it through the builder.".to_owned()
    })?;
    let token = std::env::var(TOKEN_ENV).map_err(|_| "This push carries no builder token.".to_owned())?;
    let mut input = String::new();
    tokio::io::stdin()
        .take(MAX_REQUEST)
        .read_to_string(&mut input)
        .await
        .map_err(|e| format!("cannot read the ref updates: {e}"))?;
    let refs = parse_ref_updates(&input)?;
    let request = HookRequest {
        token,
        refs,
        object_directory: std::env::var("GIT_OBJECT_DIRECTORY").ok(),
        alternate_object_directories: std::env::var("GIT_ALTERNATE_OBJECT_DIRECTORIES").ok(),
    };
    let stream = UnixStream::connect(Path::new(&socket))
        .await
        .map_err(|e| format!("cannot reach the builder at {socket}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot talk to the builder: {e}"))?;
    let mut lines = BufReader::new(read).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(frame) = lines
        .next_line()
        .await
        .map_err(|e| format!("lost the builder: {e}"))?
    {
        match frame.split_at_checked(1) {
            // `\e[1G` moves the cursor to column 1, hiding git's "remote: "
            // prefix on a terminal, as Deis's builder did.
            Some(("o", text)) => {
                let _ = stdout.write_all(format!("\x1b[1G{text}\n").as_bytes()).await;
                let _ = stdout.flush().await;
            }
            Some(("x", code)) => return Ok(code.trim().parse().unwrap_or(1)),
            _ => {}
        }
    }
    Err("the builder closed the connection before the build finished".into())
}

/// Parses `pre-receive` stdin: one `<old> <new> <ref>` per line.
pub fn parse_ref_updates(input: &str) -> Result<Vec<RefUpdate>, String> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(old), Some(new), Some(name), None) if is_object_id(old) && is_object_id(new) => {
                    Ok(RefUpdate {
                        old: old.to_owned(),
                        new: new.to_owned(),
                        name: name.to_owned(),
                    })
                }
                _ => Err(format!("malformed ref update from git: {line:?}")),
            }
        })
        .collect()
}

/// A 40- or 64-hex-digit object id.
pub fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_updates_parse_and_refuse_garbage() {
        let zero = "0".repeat(40);
        let sha = "a".repeat(40);
        let refs = parse_ref_updates(&format!("{zero} {sha} refs/heads/main\n")).unwrap();
        assert_eq!(
            refs,
            vec![RefUpdate {
                old: zero.clone(),
                new: sha.clone(),
                name: "refs/heads/main".into()
            }]
        );
        assert!(parse_ref_updates("nope").is_err());
        assert!(parse_ref_updates(&format!("{zero} {sha} a b\n")).is_err());
        assert!(parse_ref_updates(&format!("{zero} XYZ refs/heads/main\n")).is_err());
    }

    #[test]
    fn tokens_are_single_use_and_expire_with_the_push() {
        let pushes = Pushes::default();
        let context = PushContext {
            app: "a".into(),
            username: "u".into(),
            repo: "/r".into(),
        };
        let token = pushes.register(context.clone());
        let value = token.as_str().to_owned();
        assert_eq!(pushes.take(&value), Some(context.clone()));
        assert_eq!(pushes.take(&value), None);
        let token = pushes.register(context);
        let value = token.as_str().to_owned();
        drop(token);
        assert_eq!(pushes.take(&value), None);
    }

    struct NeverCalled;

    #[async_trait::async_trait]
    impl HookHandler for NeverCalled {
        async fn handle(&self, _: PushContext, _: HookRequest, _: Output) -> i32 {
            panic!("a connection without a request must not reach the handler")
        }
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_request_deadline() {
        let deadline = Duration::from_millis(300);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(serve_with_deadline(
            listener,
            Pushes::default(),
            Arc::new(NeverCalled),
            deadline,
        ));
        let started = std::time::Instant::now();
        let mut silent = UnixStream::connect(&path).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest))
            .await
            .expect("the server held a silent connection open")
            .unwrap();
        assert!(
            rest.is_empty(),
            "the server wrote {rest:?} to a silent connection"
        );
        let waited = started.elapsed();
        assert!(waited >= deadline, "closed after {waited:?}, before the deadline");
        // The listener still serves: a request with an unknown token is
        // answered and refused.
        let mut late = UnixStream::connect(&path).await.unwrap();
        late.write_all(b"{\"token\":\"unknown\",\"refs\":[],\"object_directory\":null,\"alternate_object_directories\":null}\n")
            .await
            .unwrap();
        let mut answer = String::new();
        late.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("x1\n"), "answer: {answer:?}");
        server.abort();
    }
}
