//! The REST API (Deis v2 paths, transcoded from the gRPC contract) on the
//! controller's own port of the real `deis-workflow up`, driven with real
//! `curl` as Deis's tooling would: status codes, JSON shapes, Deis's
//! headers, errors and the authorization matrix; and the same data as the
//! gRPC API gives the CLI.

mod support;

use std::path::Path;

use serde_json::Value;
use support::rest::{curl, register};
use support::up::{UpServer, ok};

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
    // Deis's serializer errors: the field, then its messages.
    assert!(duplicate.json()["id"][0].is_string(), "{}", duplicate.body);

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
    assert_eq!(
        missing.json(),
        "No App matches the given query.",
        "Django's bare string"
    );
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

/// One request made both ways: the RPC with its request as JSON, and the
/// REST call the same request is over HTTP.
struct Twin {
    who: &'static str,
    rpc: &'static str,
    request: Value,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
}

fn twin(
    who: &'static str,
    rpc: &'static str,
    request: Value,
    method: &'static str,
    path: &'static str,
) -> Twin {
    Twin {
        who,
        rpc,
        request,
        method,
        path,
        body: None,
    }
}

/// The gateway and native gRPC answer the same request identically: the
/// same data for successes (REST's page links are absolute, gRPC's
/// relative to the API root: the one designed difference), and for
/// failures the gRPC code whose HTTP status REST answers, with the same
/// message where REST's body carries one.
#[test]
fn rest_and_grpc_answer_the_same_request_identically() {
    use deis_gateway::{DynamicCodec, Gateway, GatewayOptions};
    use prost_reflect::DynamicMessage;

    let data = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), None, &[]);
    let base = server.url.trim_end_matches('/').to_owned();
    let alice = register(&base, "alice");
    let bob = register(&base, "bob");
    for (path, body) in [
        ("/v2/apps", serde_json::json!({"id": "same"})),
        ("/v2/apps/same/config", serde_json::json!({"values": {"A": "1"}})),
        (
            "/v2/apps/same/domains",
            serde_json::json!({"domain": "same.example.com"}),
        ),
        ("/v2/apps/same/perms", serde_json::json!({"username": "bob"})),
        (
            "/v2/apps/same/whitelist",
            serde_json::json!({"addresses": ["10.1.0.0/16"]}),
        ),
    ] {
        let reply = curl(&base, "POST", path, Some(&alice), Some(&body.to_string()));
        assert_eq!(reply.status, 201, "{path}: {}", reply.body);
    }
    ok_json(
        &curl(&base, "DELETE", "/v2/apps/same/perms/bob", Some(&alice), None),
        204,
    );
    let token = |who: &str| match who {
        "alice" => alice.clone(),
        "bob" => bob.clone(),
        _ => "0".repeat(64),
    };
    let twins = vec![
        twin(
            "alice",
            "deis.v2.AuthService/Whoami",
            serde_json::json!({}),
            "GET",
            "/v2/auth/whoami",
        ),
        twin(
            "alice",
            "deis.v2.AppsService/ListApps",
            serde_json::json!({}),
            "GET",
            "/v2/apps",
        ),
        twin(
            "alice",
            "deis.v2.AppsService/ListApps",
            serde_json::json!({"limit": 1}),
            "GET",
            "/v2/apps?limit=1",
        ),
        twin(
            "alice",
            "deis.v2.AppsService/GetApp",
            serde_json::json!({"id": "same"}),
            "GET",
            "/v2/apps/same",
        ),
        twin(
            "alice",
            "deis.v2.ConfigService/GetConfig",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/config",
        ),
        twin(
            "alice",
            "deis.v2.ReleasesService/ListReleases",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/releases",
        ),
        twin(
            "alice",
            "deis.v2.ReleasesService/GetRelease",
            serde_json::json!({"app": "same", "version": "v2"}),
            "GET",
            "/v2/apps/same/releases/v2",
        ),
        twin(
            "alice",
            "deis.v2.DomainsService/ListDomains",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/domains",
        ),
        twin(
            "alice",
            "deis.v2.SettingsService/GetAppSettings",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/settings",
        ),
        twin(
            "alice",
            "deis.v2.SettingsService/ListWhitelist",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/whitelist",
        ),
        twin(
            "alice",
            "deis.v2.SettingsService/GetTls",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/tls",
        ),
        twin(
            "alice",
            "deis.v2.PermsService/ListAppPerms",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/perms",
        ),
        twin(
            "alice",
            "deis.v2.PsService/ListPods",
            serde_json::json!({"app": "same"}),
            "GET",
            "/v2/apps/same/pods",
        ),
        twin(
            "alice",
            "deis.v2.KeysService/ListKeys",
            serde_json::json!({}),
            "GET",
            "/v2/keys",
        ),
        twin(
            "alice",
            "deis.v2.UsersService/ListUsers",
            serde_json::json!({}),
            "GET",
            "/v2/users",
        ),
        twin(
            "alice",
            "deis.v2.PlatformService/GetPlatformInfo",
            serde_json::json!({}),
            "GET",
            "/v2/info",
        ),
        // Failures: not found, forbidden, unauthenticated, bad input, conflict.
        twin(
            "alice",
            "deis.v2.AppsService/GetApp",
            serde_json::json!({"id": "nope"}),
            "GET",
            "/v2/apps/nope",
        ),
        twin(
            "bob",
            "deis.v2.AppsService/GetApp",
            serde_json::json!({"id": "same"}),
            "GET",
            "/v2/apps/same",
        ),
        twin(
            "bob",
            "deis.v2.UsersService/ListUsers",
            serde_json::json!({}),
            "GET",
            "/v2/users",
        ),
        twin(
            "nobody",
            "deis.v2.AppsService/ListApps",
            serde_json::json!({}),
            "GET",
            "/v2/apps",
        ),
        Twin {
            body: Some(serde_json::json!({"id": "Bad_Name"})),
            ..twin(
                "alice",
                "deis.v2.AppsService/CreateApp",
                serde_json::json!({"id": "Bad_Name"}),
                "POST",
                "/v2/apps",
            )
        },
        Twin {
            body: Some(serde_json::json!({"values": {"A": "1"}})),
            ..twin(
                "alice",
                "deis.v2.ConfigService/SetConfig",
                serde_json::json!({"app": "same", "values": {"A": "1"}}),
                "POST",
                "/v2/apps/same/config",
            )
        },
    ];

    let gateway =
        Gateway::for_package(&deis_proto::DESCRIPTOR_POOL, "deis.v2", GatewayOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = runtime
        .block_on(
            tonic::transport::Endpoint::from_shared(server.url.clone())
                .unwrap()
                .connect(),
        )
        .unwrap();
    for case in twins {
        let http_method: http::Method = case.method.parse().unwrap();
        let route_path = case.path.split('?').next().unwrap_or(case.path);
        let (rule, _) = gateway
            .route(&http_method, route_path)
            .unwrap_or_else(|| panic!("no REST route for {} {}", case.method, case.path));
        let method = rule.method().clone();
        assert_eq!(
            format!("{}/{}", method.parent_service().full_name(), method.name()),
            case.rpc,
            "{} {} is another RPC",
            case.method,
            case.path
        );
        let response_body = rule.response_body().map(str::to_owned);

        // Native gRPC.
        let request = DynamicMessage::deserialize(method.input(), case.request.clone()).unwrap();
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert(
            "authorization",
            format!("token {}", token(case.who)).parse().unwrap(),
        );
        let grpc = runtime.block_on(async {
            let mut client = tonic::client::Grpc::new(channel.clone());
            client.ready().await.unwrap();
            client
                .unary(
                    request,
                    format!("/{}", case.rpc)
                        .parse::<http::uri::PathAndQuery>()
                        .unwrap(),
                    DynamicCodec::new(method.output()),
                )
                .await
        });

        // REST.
        let body = case.body.as_ref().map(Value::to_string);
        let rest = curl(
            &base,
            case.method,
            case.path,
            Some(&token(case.who)),
            body.as_deref(),
        );
        let label = format!("{} {} {} / {}", case.who, case.method, case.path, case.rpc);
        match grpc {
            Ok(response) => {
                assert!(
                    rest.status < 300,
                    "{label}: gRPC succeeded, REST {}: {}",
                    rest.status,
                    rest.body
                );
                let mut expected = gateway.to_json(response.get_ref()).unwrap();
                if let Some(field) = &response_body {
                    expected = expected[field.as_str()].take();
                }
                let mut actual = rest.json();
                for link in ["next", "previous"] {
                    if let Some(Value::String(url)) = actual.get_mut(link) {
                        *url = url.trim_start_matches(&base).to_owned();
                    }
                }
                assert_eq!(actual, expected, "{label}");
            }
            Err(status) => {
                let http = status
                    .metadata()
                    .get("x-deis-http-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u16>().ok())
                    .unwrap_or_else(|| match status.code() {
                        tonic::Code::Unauthenticated => 401,
                        tonic::Code::PermissionDenied => 403,
                        tonic::Code::NotFound => 404,
                        other => panic!("{label}: no HTTP status for {other:?}"),
                    });
                assert_eq!(
                    rest.status,
                    http,
                    "{label}: gRPC {:?} {}: {}",
                    status.code(),
                    status.message(),
                    rest.body
                );
                let json = rest.json();
                let rest_message = json.get("detail").and_then(Value::as_str).or_else(|| {
                    json.as_object()
                        .and_then(|o| o.values().next())
                        .and_then(|v| v[0].as_str())
                });
                if let Some(message) = rest_message {
                    assert_eq!(message, status.message(), "{label}");
                } else {
                    // Django's bare-string 404 names the model, not the row.
                    assert_eq!(status.code(), tonic::Code::NotFound, "{label}: {}", rest.body);
                }
            }
        }
    }
}

fn ok_json(reply: &support::rest::Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.body);
}

/// The README's REST walkthrough, run as written against a fresh `up`:
/// every `$ ` command (continued by a trailing `\`) in one shell, each
/// output compared with the lines under it, `...` matching anything.
#[test]
fn the_readme_rest_walkthrough_runs_as_written() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split_once("<!-- walkthrough: run by tests/gateway.rs -->")
        .and_then(|(_, rest)| rest.split_once("```console\n"))
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("README.md has the REST walkthrough");
    let steps = walkthrough_steps(block);
    assert!(steps.len() >= 8, "{steps:?}");

    let data = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), None, &[]);
    let base = server.url.trim_end_matches('/');
    let outputs = tempfile::tempdir().unwrap();
    let mut script = String::from("set -u\n");
    for (i, (command, _)) in steps.iter().enumerate() {
        let command = command.replace("http://127.0.0.1:8000", base);
        let out = outputs.path().join(i.to_string());
        script.push_str(&format!("{{ {command}\n}} > '{}' 2>&1\n", out.display()));
    }
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "the walkthrough's shell failed:\n{script}");
    for (i, (command, expected)) in steps.iter().enumerate() {
        let actual = std::fs::read_to_string(outputs.path().join(i.to_string())).unwrap();
        let pattern = expected
            .iter()
            .map(|line| {
                line.split("...")
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(".*")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let pattern = regex::Regex::new(&format!("^{pattern}\n?$")).unwrap();
        assert!(
            pattern.is_match(&actual),
            "README step `{command}`:\n--- README\n{}\n--- actual\n{actual}",
            expected.join("\n")
        );
    }
}

/// `(command, expected output lines)` of a console block.
fn walkthrough_steps(block: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut continued = false;
    for line in block.lines() {
        if continued {
            let (command, _) = steps.last_mut().expect("a continued command");
            command.push('\n');
            command.push_str(line);
            continued = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push((command.to_owned(), Vec::new()));
            continued = command.ends_with('\\');
        } else if let Some((_, output)) = steps.last_mut() {
            output.push(line.to_owned());
        }
    }
    steps
}
