//! Driving the REST API with real `curl`, as Deis's tooling would, and
//! golden transcripts of those exchanges.
//!
//! A [`Transcript`] records every request and its answer (status, content
//! type, body) with the values that differ from run to run masked (times,
//! UUIDs, tokens, keys, ports), and compares the whole with a file under
//! `tests/golden/`. `DEIS_UPDATE_GOLDEN=1` rewrites the file instead; the
//! diff then shows exactly how the API's answers changed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// One HTTP exchange through curl.
pub struct Reply {
    pub status: u16,
    /// The response headers, lower-cased.
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    pub fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }

    /// The Content-Type header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .lines()
            .find_map(|line| line.strip_prefix("content-type:"))
            .map(str::trim)
    }
}

/// `method base+path` with a token and a JSON body.
pub fn curl(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Authorization: token {t}"));
    let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
    curl_with(base, method, path, &headers, body)
}

/// `method base+path` with raw header lines and a JSON body.
pub fn curl_with(base: &str, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Reply {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "60"]);
    // `-X HEAD` would wait for the body Content-Length announces.
    if method == "HEAD" {
        command.arg("-I");
    } else {
        command.args(["-X", method, "-D", "-"]);
    }
    command.arg(format!("{base}{path}"));
    for header in headers {
        command.args(["-H", header]);
    }
    // Large bodies go through a file: a command line has a size limit.
    let file = tempfile::NamedTempFile::new().unwrap();
    if let Some(body) = body {
        std::fs::write(file.path(), body).unwrap();
        command
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.path().display()));
    }
    let out = command.output().expect("curl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// Registers `user` (password `s3cret-pw`) over REST and logs in; returns the token.
pub fn register(base: &str, user: &str) -> String {
    let body = serde_json::json!({"username": user, "password": "s3cret-pw", "email": format!("{user}@example.com")});
    let registered = curl(base, "POST", "/v2/auth/register/", None, Some(&body.to_string()));
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.json()["username"], user, "{}", registered.body);
    login(base, user, "s3cret-pw")
}

/// Logs `user` in over REST; returns the token.
pub fn login(base: &str, user: &str, password: &str) -> String {
    let login = serde_json::json!({"username": user, "password": password});
    let logged_in = curl(base, "POST", "/v2/auth/login/", None, Some(&login.to_string()));
    assert_eq!(logged_in.status, 200, "{}", logged_in.body);
    logged_in.json()["token"].as_str().unwrap().to_owned()
}

/// A recorded sequence of REST exchanges, compared with a golden file.
pub struct Transcript {
    base: String,
    tokens: HashMap<String, String>,
    text: String,
    masks: Vec<(Regex, &'static str)>,
    aliases: Vec<(String, &'static str)>,
}

impl Transcript {
    /// A transcript of calls to `base` (`http://host:port`).
    pub fn new(base: &str) -> Transcript {
        let masks = [
            (
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                "<time>",
            ),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "<uuid>",
            ),
            (r"\b[0-9a-f]{40}\b", "<hex40>"),
            // Builds are named for the pushed commit.
            (r"\bgit-[0-9a-f]{8}\b", "git-<sha>"),
            (r"\b[0-9a-f]{64}\b", "<hex64>"),
            (r"\b([0-9a-f]{2}:){15}[0-9a-f]{2}\b", "<md5>"),
            (r"SHA256:[A-Za-z0-9+/]{43}", "SHA256:<base64>"),
            (r#"ssh-ed25519 [A-Za-z0-9+/=]+( [^\s"]+)?"#, "<ssh-key>"),
            (r"(127\.0\.0\.1|localhost):\d+", "<host>"),
            (r#""(\w+_port)": \d+"#, r#""$1": <port>"#),
            // Process names carry a per-start suffix.
            (r"\b(web|worker|cmd|run)\.\d+\b", "$1.<n>"),
        ];
        Transcript {
            base: base.trim_end_matches('/').to_owned(),
            tokens: HashMap::new(),
            text: String::new(),
            masks: masks
                .into_iter()
                .map(|(re, with)| (Regex::new(re).unwrap(), with))
                .collect(),
            aliases: Vec::new(),
        }
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Masks `value`, a value of this run only (e.g. a name derived from
    /// the host), as `placeholder` throughout the transcript.
    pub fn alias(&mut self, value: &str, placeholder: &'static str) {
        self.aliases.push((value.to_owned(), placeholder));
    }

    /// Remembers `who`'s token for later calls.
    pub fn user(&mut self, who: &str, token: &str) {
        self.tokens.insert(who.to_owned(), token.to_owned());
    }

    /// `who`'s token.
    pub fn token(&self, who: &str) -> &str {
        self.tokens
            .get(who)
            .unwrap_or_else(|| panic!("no token for {who}"))
    }

    /// A heading in the transcript.
    pub fn section(&mut self, title: &str) {
        self.text.push_str(&format!("\n## {title}\n"));
    }

    /// Calls the API as `who` (`None`: anonymous), records the exchange,
    /// and checks the status right away (a clear failure at the call).
    pub fn call(
        &mut self,
        who: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Reply {
        let token = who.map(|w| self.token(w).to_owned());
        let body_text = body.as_ref().map(Value::to_string);
        let reply = curl(&self.base, method, path, token.as_deref(), body_text.as_deref());
        assert_eq!(
            reply.status,
            expect,
            "{} {method} {path} {}: {}",
            who.unwrap_or("anonymous"),
            body_text.as_deref().unwrap_or(""),
            reply.body
        );
        self.record(who, method, path, body.as_ref(), &reply);
        reply
    }

    fn record(&mut self, who: Option<&str>, method: &str, path: &str, body: Option<&Value>, reply: &Reply) {
        let mut entry = format!("\n{} {method} {path}", who.unwrap_or("anonymous"));
        if let Some(body) = body {
            entry.push(' ');
            entry.push_str(&body.to_string());
        }
        entry.push_str(&format!("\n-> {}", reply.status));
        if let Some(content_type) = reply.content_type() {
            entry.push(' ');
            entry.push_str(content_type);
        }
        entry.push('\n');
        let shown = match serde_json::from_str::<Value>(&reply.body) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
            // Text (logs) is only counted: its lines depend on timing.
            Err(_) if reply.body.is_empty() => String::new(),
            Err(_) => "<text>".to_owned(),
        };
        if !shown.is_empty() {
            entry.push_str(&shown);
            entry.push('\n');
        }
        self.text.push_str(&entry);
    }

    /// Records a line of the test's own (e.g. an authorization matrix row).
    pub fn note(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (re, with) in &self.masks {
            text = re.replace_all(&text, *with).into_owned();
        }
        // After the patterns, so that a short alias does not cut into a
        // value a pattern masks whole.
        for (value, with) in &self.aliases {
            text = text.replace(value.as_str(), with);
        }
        text
    }

    /// Compares the transcript with `tests/golden/<name>.txt`, or writes it
    /// there when `DEIS_UPDATE_GOLDEN` is set.
    pub fn check(&self, name: &str) {
        let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
            .join("tests/golden")
            .join(format!("{name}.txt"));
        let header = "# Recorded by the REST tests; DEIS_UPDATE_GOLDEN=1 rewrites it. Values that\n\
                      # differ between runs (times, UUIDs, tokens, keys, ports) are masked.\n";
        let actual = format!("{header}{}", self.mask(&self.text));
        if std::env::var_os("DEIS_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with DEIS_UPDATE_GOLDEN=1 to record it",
                path.display()
            )
        });
        if expected != actual {
            let saved = std::env::temp_dir().join(format!("{name}.actual.txt"));
            let _ = std::fs::write(&saved, &actual);
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            let context = |text: &str| -> String {
                text.lines()
                    .skip(first.saturating_sub(8))
                    .take(24)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "the REST answers differ from {} at line {} (all of this run's: {}).\n\
                 --- expected\n{}\n--- actual\n{}\n\
                 (DEIS_UPDATE_GOLDEN=1 rewrites the file if the change is intended)",
                path.display(),
                saved.display(),
                first + 1,
                context(&expected),
                context(&actual)
            );
        }
    }
}
