//! Syslog drains: RFC 5424 messages, octet-counted (RFC 6587), over one
//! kept-open TCP or TLS connection.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use deis_scheduler::LogLine;
use futures::FutureExt as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::target::host_port;
use super::{CONNECT_TIMEOUT, WRITE_TIMEOUT};

/// PRI 190: facility local7 (23), severity info (6), as Heroku's drains.
const PRI: u32 = 190;

/// Appends one octet-counted RFC 5424 message for `line` to `out`:
/// `<len> <190>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`, where HOSTNAME
/// is the app, APP-NAME the source (`app`, `router`, `deis`) and PROCID the
/// process (`web.1`). Header fields are made valid (printable ASCII, the
/// RFC's length limits, `-` when empty); the text is sent as it is (octet
/// counting allows newlines; the length counts bytes).
pub(super) fn frame(out: &mut Vec<u8>, line: &LogLine) {
    let header = format!(
        "<{PRI}>1 {} {} {} {} - -",
        line.time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        header_field(&line.app, 255),
        header_field(line.source.as_str(), 48),
        header_field(&line.process, 128),
    );
    let length = header.len() + 1 + line.text.len();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{length} {header} ");
    out.extend_from_slice(line.text.as_bytes());
}

/// A header field as RFC 5424 wants it: 1 to `max` characters of printable
/// US-ASCII (33 to 126); anything else becomes `_`, and empty becomes `-`.
fn header_field(value: &str, max: usize) -> Cow<'_, str> {
    if value.is_empty() {
        return Cow::Borrowed("-");
    }
    if value.len() <= max && value.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .take(max)
            .collect(),
    )
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection for T {}

/// A syslog endpoint and the connection to it, opened when there is
/// something to send and kept until an error.
pub(super) struct SyslogSink {
    host: String,
    port: u16,
    /// For `syslog+tls`: the client configuration and the name to verify.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    connection: Option<Box<dyn Connection>>,
    buffer: Vec<u8>,
}

impl SyslogSink {
    pub(super) fn new(
        host: String,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<SyslogSink, String> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = ServerName::try_from(host.clone()).map_err(|_| {
                    format!("{host:?} is not a host name a TLS certificate can be checked against")
                })?;
                Some((config, name))
            }
        };
        Ok(SyslogSink {
            host,
            port,
            tls,
            connection: None,
            buffer: Vec::new(),
        })
    }

    fn endpoint(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// Writes the lines, connecting first if needed. On error the
    /// connection is dropped (the next call opens a new one) and the lines
    /// count as not written (some may have been: delivery is at least once).
    pub(super) async fn deliver(&mut self, lines: &[Arc<LogLine>]) -> Result<(), String> {
        self.buffer.clear();
        for line in lines {
            frame(&mut self.buffer, line);
        }
        if self.connection.as_mut().is_some_and(|c| !still_open(c)) {
            self.connection = None;
        }
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            connection.write_all(&self.buffer).await?;
            connection.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.connection = Some(connection);
                if self.buffer.capacity() > 1 << 20 {
                    self.buffer = Vec::new();
                }
                Ok(())
            }
            Ok(Err(error)) => Err(format!("writing to {} failed: {error}", self.endpoint())),
            Err(_) => Err(format!(
                "writing to {} timed out after {} s",
                self.endpoint(),
                WRITE_TIMEOUT.as_secs()
            )),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let endpoint = self.endpoint();
        let tcp = connect_tcp(&self.host, self.port, CONNECT_TIMEOUT).await?;
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp)).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(error)) => Err(format!("the TLS handshake with {endpoint} failed: {error}")),
            Err(_) => Err(format!(
                "the TLS handshake with {endpoint} timed out after {} s",
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    /// Closes the connection politely (TLS close_notify), briefly.
    pub(super) async fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.shutdown()).await;
        }
    }
}

/// Whether a kept connection still looks usable: the peer has not closed it
/// (a read would return end of file) nor reset it. Whatever the peer sent is
/// read and ignored.
fn still_open(connection: &mut Box<dyn Connection>) -> bool {
    let mut scratch = [0u8; 512];
    for _ in 0..64 {
        match connection.read(&mut scratch).now_or_never() {
            None => return true,
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(_)) => continue,
        }
    }
    true
}

/// Opens a TCP connection, with one-sentence errors.
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let endpoint = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(format!("connection refused by {endpoint}"))
        }
        Ok(Err(error)) => Err(format!("cannot connect to {endpoint}: {error}")),
        Err(_) => Err(format!(
            "connecting to {endpoint} timed out after {} s",
            timeout.as_secs()
        )),
    }
}
