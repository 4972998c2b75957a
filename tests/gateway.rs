//! The REST API (Deis v2 paths, transcoded from the gRPC contract) on the
//! controller's own port of the real `deis-workflow up`, driven with real
//! `curl` as Deis's tooling would: status codes, JSON shapes, Deis's
//! headers, errors and the authorization matrix; and the same data as the
//! gRPC API gives the CLI.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::up::{UpServer, ok};

/// One HTTP exchange through curl: (status, headers, body).
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

fn curl(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-X", method, "-D", "-", "--max-time", "20"])
        .arg(format!("{base}{path}"));
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: token {token}")]);
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

fn register(base: &str, user: &str) -> String {
    let body = json!({"username": user, "password": "s3cret-pw", "email": format!("{user}@example.com")});
    let registered = curl(base, "POST", "/v2/auth/register/", None, Some(&body.to_string()));
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.json()["username"], user, "{}", registered.body);
    let login = json!({"username": user, "password": "s3cret-pw"});
    let logged_in = curl(base, "POST", "/v2/auth/login/", None, Some(&login.to_string()));
    assert_eq!(logged_in.status, 200, "{}", logged_in.body);
    logged_in.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn deis_v2_rest_on_the_controller_port() {
    let data = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), None, &[]);
    let base = server.url.trim_end_matches('/').to_owned();

    // The API root wants credentials; health needs none. Every answer
    // carries Deis's version headers.
    let root = curl(&base, "GET", "/v2/", None, None);
    assert_eq!(root.status, 401, "{}", root.body);
    assert!(!root.detail().is_empty(), "{}", root.body);
    for header in ["deis_api_version:", "deis_platform_version:", "deis-api-version:"] {
        assert!(root.headers.contains(header), "{header} in {}", root.headers);
    }
    assert_eq!(curl(&base, "GET", "/healthz", None, None).status, 200);
    assert_eq!(curl(&base, "GET", "/readiness", None, None).status, 200);

    let alice = register(&base, "alice");
    let bob = register(&base, "bob");
    assert_eq!(curl(&base, "GET", "/v2/", Some(&alice), None).status, 200);
    let whoami = curl(&base, "GET", "/v2/auth/whoami", Some(&alice), None);
    assert_eq!(whoami.json()["username"], "alice", "{}", whoami.body);

    // Apps: created with or without the trailing slash, listed in Deis's
    // page envelope, read, and refused to a stranger.
    let created = curl(
        &base,
        "POST",
        "/v2/apps/",
        Some(&alice),
        Some(r#"{"id": "rest-one"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let app = created.json();
    assert_eq!(app["id"], "rest-one");
    assert_eq!(app["owner"], "alice");
    for key in ["uuid", "created", "updated", "structure"] {
        assert!(app.get(key).is_some(), "{key} in {app}");
    }
    let created = curl(
        &base,
        "POST",
        "/v2/apps",
        Some(&alice),
        Some(r#"{"id": "rest-two"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let duplicate = curl(
        &base,
        "POST",
        "/v2/apps",
        Some(&alice),
        Some(r#"{"id": "rest-two"}"#),
    );
    assert!(
        duplicate.status == 400 || duplicate.status == 409,
        "{} {}",
        duplicate.status,
        duplicate.body
    );
    assert!(!duplicate.detail().is_empty(), "{}", duplicate.body);

    let page = curl(&base, "GET", "/v2/apps?limit=1", Some(&alice), None);
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["count"], 2, "{page}");
    assert_eq!(page["results"].as_array().unwrap().len(), 1, "{page}");
    assert!(page["next"].is_string(), "{page}");
    assert!(page["previous"].is_null(), "{page}");
    let rest = curl(&base, "GET", "/v2/apps?limit=1&offset=1", Some(&alice), None).json();
    assert_eq!(rest["results"].as_array().unwrap().len(), 1, "{rest}");
    assert_ne!(rest["results"][0]["id"], page["results"][0]["id"]);

    let info = curl(&base, "GET", "/v2/apps/rest-one/", Some(&alice), None);
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json()["id"], "rest-one");
    let missing = curl(&base, "GET", "/v2/apps/nope", Some(&alice), None);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(!missing.detail().is_empty());
    let stranger = curl(&base, "GET", "/v2/apps/rest-one", Some(&bob), None);
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    let anonymous = curl(&base, "GET", "/v2/apps", None, None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let bad_token = curl(&base, "GET", "/v2/apps", Some("not-a-token"), None);
    assert_eq!(bad_token.status, 401, "{}", bad_token.body);

    // Config: a POST is a new release; the values read back the same over
    // REST and over gRPC (the CLI).
    let set = curl(
        &base,
        "POST",
        "/v2/apps/rest-one/config/",
        Some(&alice),
        Some(r#"{"values": {"GREETING": "hi", "MODE": "rest"}}"#),
    );
    assert_eq!(set.status, 201, "{}", set.body);
    assert_eq!(set.json()["values"]["GREETING"], "hi", "{}", set.body);
    let unchanged = curl(
        &base,
        "POST",
        "/v2/apps/rest-one/config",
        Some(&alice),
        Some(r#"{"values": {"GREETING": "hi"}}"#),
    );
    assert_eq!(unchanged.status, 409, "{}", unchanged.body);
    assert!(
        unchanged.detail().contains("changed nothing"),
        "{}",
        unchanged.body
    );
    let config = curl(&base, "GET", "/v2/apps/rest-one/config", Some(&alice), None).json();
    let home = tempfile::tempdir().unwrap();
    login_cli(home.path(), &server.url);
    let cli: Value =
        serde_json::from_str(&ok(home.path(), &["config:list", "-a", "rest-one", "--json"])).unwrap();
    for key in ["GREETING", "MODE"] {
        assert_eq!(
            config["values"][key],
            cli_value(&cli, key),
            "{key}: REST {config} vs gRPC {cli}"
        );
    }
    let releases = curl(&base, "GET", "/v2/apps/rest-one/releases", Some(&alice), None).json();
    assert_eq!(releases["count"], 2, "{releases}");

    // Bad input: malformed JSON and a wrongly typed field get a 400 that
    // says what is wrong; an oversized body is refused; unknown paths 404.
    let malformed = curl(
        &base,
        "POST",
        "/v2/apps/rest-one/config",
        Some(&alice),
        Some("{\"values\": "),
    );
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(!malformed.detail().is_empty(), "{}", malformed.body);
    let wrong_type = curl(
        &base,
        "POST",
        "/v2/apps/rest-one/config",
        Some(&alice),
        Some(r#"{"values": 5}"#),
    );
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert!(wrong_type.detail().contains("values"), "{}", wrong_type.body);
    let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    assert_eq!(
        curl(&base, "POST", "/v2/apps", Some(&alice), Some(&huge)).status,
        413
    );
    assert_eq!(
        curl(&base, "GET", "/v2/nothing-here", Some(&alice), None).status,
        404
    );

    // Destroying over REST: 204, then gone.
    assert_eq!(
        curl(&base, "DELETE", "/v2/apps/rest-two/", Some(&alice), None).status,
        204
    );
    assert_eq!(
        curl(&base, "GET", "/v2/apps/rest-two", Some(&alice), None).status,
        404
    );

    // The gRPC API keeps working on the same port.
    let apps = ok(home.path(), &["apps"]);
    assert!(apps.contains("rest-one") && !apps.contains("rest-two"), "{apps}");
}

fn login_cli(home: &Path, url: &str) {
    ok(home, &["login", url, "--username=alice", "--password=s3cret-pw"]);
}

/// A config value from `deis config:list --json`, whatever its envelope.
fn cli_value(cli: &Value, key: &str) -> Value {
    cli.get("values")
        .and_then(|v| v.get(key))
        .or_else(|| cli.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}
