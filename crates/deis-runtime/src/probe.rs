//! Health checks (`deis healthchecks:set`): Kubernetes-style probes run
//! against a local process. httpGet sends a real HTTP/1.1 request; tcpSocket
//! connects; exec runs a command in the process's environment.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe checks. A probe's `port` names a container port, which on
/// this runtime is always the process's own `PORT` (a slug process listens
/// on the port it is given; a container's port is published there), so
/// checks go to that port whatever the probe says: `deis healthchecks:set
/// readiness httpGet 5000` works as it does on Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// `GET path` answers 200–399.
    Http {
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection is accepted.
    Tcp,
    /// The command exits 0.
    Exec { command: Vec<String> },
}

/// One probe with Kubernetes's timing fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) check: Check,
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    pub(crate) timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) failure_threshold: u32,
}

fn seconds(probe: &Value, field: &str, default: u64) -> u64 {
    probe
        .get(field)
        .and_then(Value::as_f64)
        .filter(|v| *v >= 0.0)
        .map_or(default, |v| v as u64)
}

impl Probe {
    /// A probe from its JSON (already validated by the controller).
    pub(crate) fn from_json(probe: &Value) -> Option<Probe> {
        let check = if let Some(http) = probe.get("httpGet") {
            Check::Http {
                path: http.get("path").and_then(Value::as_str).unwrap_or("/").to_owned(),
                headers: http
                    .get("httpHeaders")
                    .and_then(Value::as_array)
                    .map(|headers| {
                        headers
                            .iter()
                            .filter_map(|h| {
                                Some((
                                    h.get("name")?.as_str()?.to_owned(),
                                    h.get("value")?.as_str()?.to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        } else if probe.get("tcpSocket").is_some() {
            Check::Tcp
        } else if let Some(exec) = probe.get("exec") {
            let command = exec
                .get("command")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .filter(|c| !c.is_empty())?;
            Check::Exec { command }
        } else {
            return None;
        };
        Some(Probe {
            check,
            initial_delay: Duration::from_secs(seconds(probe, "initialDelaySeconds", 0)),
            period: Duration::from_secs(seconds(probe, "periodSeconds", 10).max(1)),
            timeout: Duration::from_secs(seconds(probe, "timeoutSeconds", 1).max(1)),
            success_threshold: u32::try_from(seconds(probe, "successThreshold", 1).max(1)).unwrap_or(1),
            failure_threshold: u32::try_from(seconds(probe, "failureThreshold", 3).max(1)).unwrap_or(3),
        })
    }

    /// What routable processes without a readiness probe get: their PORT
    /// accepts connections.
    pub(crate) fn default_tcp() -> Probe {
        Probe {
            check: Check::Tcp,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }

    /// Runs the check once against a process listening on `port` (see
    /// [`Check`] for why the probe's own port is not used). `exec` runs an
    /// exec probe's command in the process's environment and says whether
    /// it exited 0.
    pub(crate) async fn check<F, Fut>(&self, port: u16, exec: F) -> bool
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let attempt = async {
            match &self.check {
                Check::Http { path, headers } => http_ok(port, path, headers).await,
                Check::Tcp => TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
                Check::Exec { command } => exec(command.clone()).await,
            }
        };
        tokio::time::timeout(self.timeout, attempt).await.unwrap_or(false)
    }
}

/// GET `path` on 127.0.0.1:`port`; true for a 2xx or 3xx status.
async fn http_ok(port: u16, path: &str, headers: &[(String, String)]) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: deis-healthcheck\r\n");
    for (name, value) in headers {
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut read = 0;
    // The status line is all we need.
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
    status.is_some_and(|s| (200..400).contains(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_parse_with_kubernetes_defaults() {
        let p = Probe::from_json(&json!({"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5}))
            .unwrap();
        assert_eq!(
            p.check,
            Check::Http {
                path: "/health".into(),
                headers: vec![]
            }
        );
        assert_eq!(
            (p.period, p.timeout, p.failure_threshold),
            (Duration::from_secs(5), Duration::from_secs(1), 3)
        );
        let p = Probe::from_json(&json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 2})).unwrap();
        assert_eq!(p.initial_delay, Duration::from_secs(2));
        assert!(Probe::from_json(&json!({"nothing": 1})).is_none());
    }

    #[tokio::test]
    async fn http_and_tcp_checks_hit_a_real_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let status = if request.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "500 Oops"
                    };
                    let _ = socket
                        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                        .await;
                });
            }
        });
        let no_exec = |_: Vec<String>| async { false };
        let ok = Probe::from_json(&json!({"httpGet": {"path": "/ok"}})).unwrap();
        assert!(ok.check(port, no_exec).await);
        let bad = Probe::from_json(&json!({"httpGet": {"path": "/broken"}})).unwrap();
        assert!(!bad.check(port, no_exec).await);
        // The probe's container port (as `deis healthchecks:set readiness
        // httpGet 5000` writes it) is where the process listens: its PORT.
        let container_port = Probe::from_json(&json!({"httpGet": {"path": "/ok", "port": 5000}})).unwrap();
        assert!(container_port.check(port, no_exec).await);
        let tcp = Probe::from_json(&json!({"tcpSocket": {"port": 5000}})).unwrap();
        assert!(tcp.check(port, no_exec).await);
        assert!(Probe::default_tcp().check(port, no_exec).await);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!Probe::default_tcp().check(closed, no_exec).await);
    }
}
