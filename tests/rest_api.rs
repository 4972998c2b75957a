//! Golden tests of the REST API: every endpoint of Deis v2's catalogue
//! (`deis-v2.md` §2.2) that the platform serves, called with real `curl` on
//! a real `deis-workflow up` with a real `git push`ed app, for its success
//! answer and the error cases Deis lists, plus the authorization matrix
//! (owner, collaborator, stranger, administrator, anonymous). Every
//! exchange goes into `tests/golden/rest_api.txt`, so a change in any
//! status code or JSON shape shows up as a diff of that file.
//!
//! Not covered here, and why: `/v2/hooks/*` are the Deis builder's private
//! callbacks; this platform's builder talks to the controller over an
//! internal gRPC API that REST does not expose. `POST /v2/apps/<id>/builds`
//! with an image is covered in `tests/images.rs` (it needs an image in a
//! registry, which needs buildah); here it is called for its error case.

mod support;

use serde_json::{Value, json};
use support::rest::{Transcript, curl, curl_with, login, register};
use support::up::{UpServer, register_and_push};

const APP: &str = "golden";

#[test]
fn every_deis_v2_endpoint_over_rest() {
    let data = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), None, &["--rest-addr", "127.0.0.1:0"]);
    let base = server.url.trim_end_matches('/').to_owned();
    let mut t = Transcript::new(&base);

    t.section("health and the API root");
    t.call(None, "GET", "/healthz", None, 200);
    t.call(None, "HEAD", "/healthz", None, 200);
    t.call(None, "GET", "/readiness", None, 200);
    t.call(None, "GET", "/v2/", None, 401);

    t.section("auth: register, login, whoami");
    // The first user to register is the administrator.
    let user = |name: &str| json!({"username": name, "password": "s3cret-pw", "email": format!("{name}@example.com")});
    let root = t.call(None, "POST", "/v2/auth/register", Some(user("root")), 201);
    assert_eq!(root.json()["is_superuser"], true, "{}", root.body);
    t.call(None, "POST", "/v2/auth/register/", Some(user("root")), 400);
    t.call(
        None,
        "POST",
        "/v2/auth/register",
        Some(json!({"password": "s3cret-pw"})),
        400,
    );
    let logged_in = t.call(
        None,
        "POST",
        "/v2/auth/login/",
        Some(json!({"username": "root", "password": "s3cret-pw"})),
        200,
    );
    t.user("root", logged_in.json()["token"].as_str().unwrap());
    t.call(
        None,
        "POST",
        "/v2/auth/login/",
        Some(json!({"username": "root", "password": "wrong"})),
        400,
    );
    t.call(Some("root"), "GET", "/v2/", None, 200);
    t.call(Some("root"), "GET", "/v2/auth/whoami", None, 200);

    // alice pushes the app with the CLI and real git over SSH; bob will
    // collaborate on it; eve is a stranger to it.
    let home = tempfile::tempdir().unwrap();
    let _repo = register_and_push(&server, home.path(), "static", APP);
    t.user("alice", &login(&base, "alice", "s3cret-pw"));
    t.user("bob", &register(&base, "bob"));
    t.user("eve", &register(&base, "eve"));

    t.section("apps");
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps",
        Some(json!({"id": "Bad_Name"})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps",
        Some(json!({"id": "deis"})),
        400,
    );
    t.call(Some("alice"), "POST", "/v2/apps", Some(json!({"id": APP})), 400);
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps/",
        Some(json!({"id": "spare"})),
        201,
    );
    t.call(Some("alice"), "GET", "/v2/apps", None, 200);
    let page = t.call(Some("alice"), "GET", "/v2/apps?limit=1", None, 200).json();
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{base}/v2/apps?")),
        "absolute link: {next}"
    );
    t.call(Some("alice"), "GET", "/v2/apps?limit=1&offset=1", None, 200);
    t.call(Some("alice"), "GET", &format!("/v2/apps/{APP}"), None, 200);
    t.call(Some("alice"), "GET", &format!("/v2/apps/{APP}/"), None, 200);
    let missing = t.call(Some("alice"), "GET", "/v2/apps/nope", None, 404);
    assert_eq!(missing.json(), json!("No App matches the given query."));

    t.section("perms");
    let perms = format!("/v2/apps/{APP}/perms");
    t.call(
        Some("alice"),
        "POST",
        &perms,
        Some(json!({"username": "bob"})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &perms,
        Some(json!({"username": "nobody"})),
        404,
    );
    t.call(Some("alice"), "GET", &perms, None, 200);
    t.call(Some("bob"), "POST", &perms, Some(json!({"username": "eve"})), 403);

    t.section("config");
    let config = format!("/v2/apps/{APP}/config");
    t.call(Some("alice"), "GET", &config, None, 200);
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"values": {"GREETING": "hello", "DEBUG": "1"}})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"values": {"GREETING": "hello"}})),
        409,
    );
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"values": {"NOPE": null}})),
        422,
    );
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"values": {"1BAD": "x"}})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"memory": {"web": "lots"}})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        &config,
        Some(json!({"values": {"DEBUG": null}})),
        201,
    );

    t.section("builds");
    let builds = format!("/v2/apps/{APP}/builds");
    let list = t.call(Some("alice"), "GET", &builds, None, 200).json();
    let build = list["results"][0]["uuid"].as_str().unwrap().to_owned();
    // Release summaries name the pushed commit, which differs every run.
    let sha = list["results"][0]["sha"].as_str().unwrap_or_default();
    t.alias(sha.get(..7).expect("the build names its commit"), "<sha>");
    t.call(Some("alice"), "GET", &format!("{builds}/{build}"), None, 200);
    let unknown = t.call(
        Some("alice"),
        "GET",
        &format!("{builds}/00000000-0000-4000-8000-000000000000"),
        None,
        404,
    );
    assert_eq!(unknown.json(), json!("No Build matches the given query."));
    t.call(Some("alice"), "POST", &builds, Some(json!({"procfile": {}})), 400);

    t.section("releases");
    let releases = format!("/v2/apps/{APP}/releases");
    t.call(Some("alice"), "GET", &releases, None, 200);
    let first = t
        .call(Some("alice"), "GET", &format!("{releases}/v1"), None, 200)
        .json();
    assert_eq!(first["build"], Value::Null, "v1 has no build: {first}");
    t.call(Some("alice"), "GET", &format!("{releases}/v99"), None, 404);
    let rollback = format!("{releases}/rollback");
    t.call(
        Some("alice"),
        "POST",
        &rollback,
        Some(json!({"version": -1})),
        400,
    );
    t.call(Some("alice"), "POST", &rollback, Some(json!({"version": 1})), 400);
    t.call(Some("alice"), "POST", &rollback, Some(json!({})), 201);

    t.section("scale, processes, run");
    let scale = format!("/v2/apps/{APP}/scale");
    t.call(Some("alice"), "POST", &scale, Some(json!({"web": 2})), 204);
    t.call(Some("alice"), "POST", &scale, Some(json!({"web": -1})), 400);
    t.call(Some("alice"), "POST", &scale, Some(json!({"worker": 1})), 404);
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps/spare/scale",
        Some(json!({"web": 1})),
        400,
    );
    // Processes of earlier releases show as terminating for a moment.
    settle_pods(&t, 2);
    let pods = t
        .call(Some("alice"), "GET", &format!("/v2/apps/{APP}/pods"), None, 200)
        .json();
    assert_eq!(pods["count"], 2, "{pods}");
    t.call(
        Some("alice"),
        "GET",
        &format!("/v2/apps/{APP}/pods/web"),
        None,
        200,
    );
    // A restart answers with the processes that replaced the old ones. Of
    // one type it is not recorded: which of two processes restarted at once
    // comes up first varies.
    let restarted = curl(
        t.base(),
        "POST",
        &format!("/v2/apps/{APP}/pods/web/restart"),
        Some(t.token("alice")),
        None,
    );
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    let restarted = restarted.json();
    assert_eq!(
        restarted.as_array().map(Vec::len),
        Some(2),
        "a plain list: {restarted}"
    );
    t.call(
        Some("alice"),
        "POST",
        &format!("/v2/apps/{APP}/pods/web/{APP}-web-1/restart"),
        None,
        200,
    );
    let run = format!("/v2/apps/{APP}/run");
    settle_pods(&t, 2);
    let ran = t.call(
        Some("alice"),
        "POST",
        &run,
        Some(json!({"command": "echo hi from run"})),
        200,
    );
    assert_eq!(ran.json()["exit_code"], 0, "{}", ran.body);
    t.call(Some("alice"), "POST", &run, Some(json!({"command": ""})), 400);
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps/spare/run",
        Some(json!({"command": "true"})),
        400,
    );
    t.call(Some("alice"), "POST", &scale, Some(json!({"web": 1})), 204);

    t.section("logs");
    let logs = t.call(Some("alice"), "GET", &format!("/v2/apps/{APP}/logs"), None, 200);
    assert!(logs.content_type().is_some_and(|c| c.starts_with("text/plain")));
    assert!(logs.body.contains("deployed"), "{}", logs.body);
    // Nothing from the router for an app nobody visited: 204, as in Deis.
    t.call(
        Some("alice"),
        "GET",
        "/v2/apps/spare/logs?source=router",
        None,
        204,
    );
    t.call(
        Some("alice"),
        "GET",
        &format!("/v2/apps/{APP}/logs/entries?log_lines=1"),
        None,
        200,
    );

    t.section("domains");
    let domains = format!("/v2/apps/{APP}/domains");
    t.call(
        Some("alice"),
        "POST",
        &domains,
        Some(json!({"domain": "golden.example.com"})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &domains,
        Some(json!({"domain": "foo.*.bar.com"})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps/spare/domains",
        Some(json!({"domain": "golden.example.com"})),
        400,
    );
    t.call(Some("alice"), "GET", &domains, None, 200);

    t.section("certs");
    let cert = std::fs::read_to_string(cert_fixture("ec.crt")).unwrap();
    let key = std::fs::read_to_string(cert_fixture("ec-pkcs8.key")).unwrap();
    t.call(
        Some("alice"),
        "POST",
        "/v2/certs",
        Some(json!({"name": "golden-cert", "certificate": cert, "key": key})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        "/v2/certs",
        Some(json!({"name": "Bad_Name", "certificate": cert, "key": key})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        "/v2/certs",
        Some(json!({"name": "broken", "certificate": "not a certificate", "key": key})),
        400,
    );
    t.call(Some("alice"), "GET", "/v2/certs", None, 200);
    t.call(Some("alice"), "GET", "/v2/certs/golden-cert", None, 200);
    t.call(Some("bob"), "GET", "/v2/certs/golden-cert", None, 404);
    let attach = "/v2/certs/golden-cert/domain/";
    t.call(
        Some("alice"),
        "POST",
        attach,
        Some(json!({"domain": "golden.example.com"})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        attach,
        Some(json!({"domain": "golden.example.com"})),
        409,
    );
    t.call(
        Some("alice"),
        "DELETE",
        "/v2/certs/golden-cert/domain/golden.example.com",
        None,
        204,
    );
    t.call(Some("alice"), "DELETE", "/v2/certs/golden-cert", None, 204);
    t.call(
        Some("alice"),
        "DELETE",
        &format!("{domains}/golden.example.com"),
        None,
        204,
    );
    let gone = t.call(
        Some("alice"),
        "DELETE",
        &format!("{domains}/golden.example.com"),
        None,
        404,
    );
    assert_eq!(gone.json(), json!("No Domain matches the given query."));

    t.section("settings, whitelist, tls");
    let settings = format!("/v2/apps/{APP}/settings");
    t.call(Some("alice"), "GET", &settings, None, 200);
    t.call(
        Some("alice"),
        "POST",
        &settings,
        Some(json!({"maintenance": true})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &settings,
        Some(json!({"maintenance": true})),
        409,
    );
    t.call(
        Some("alice"),
        "POST",
        &settings,
        Some(json!({"label": {"nope": null}})),
        422,
    );
    t.call(
        Some("alice"),
        "POST",
        &settings,
        Some(json!({"autoscale": {"web": {"min": 1}}})),
        400,
    );
    t.call(
        Some("alice"),
        "POST",
        &settings,
        Some(json!({"maintenance": false})),
        201,
    );
    let whitelist = format!("/v2/apps/{APP}/whitelist");
    t.call(Some("alice"), "GET", &whitelist, None, 200);
    t.call(
        Some("alice"),
        "POST",
        &whitelist,
        Some(json!({"addresses": ["10.0.0.0/8"]})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &whitelist,
        Some(json!({"addresses": ["not-an-ip"]})),
        400,
    );
    t.call(
        Some("alice"),
        "DELETE",
        &whitelist,
        Some(json!({"addresses": ["1.2.3.4"]})),
        422,
    );
    t.call(
        Some("alice"),
        "DELETE",
        &whitelist,
        Some(json!({"addresses": ["10.0.0.0/8"]})),
        204,
    );
    let tls = format!("/v2/apps/{APP}/tls");
    let before = t.call(Some("alice"), "GET", &tls, None, 200).json();
    assert_eq!(before["https_enforced"], Value::Null, "{before}");
    t.call(
        Some("alice"),
        "POST",
        &tls,
        Some(json!({"https_enforced": true})),
        201,
    );
    t.call(
        Some("alice"),
        "POST",
        &tls,
        Some(json!({"https_enforced": true})),
        409,
    );

    t.section("keys");
    let keys = t.call(Some("alice"), "GET", "/v2/keys", None, 200).json();
    let key_id = keys["results"][0]["id"].as_str().unwrap().to_owned();
    // The CLI names a key by its comment, which names this machine.
    t.alias(&key_id, "<key-id>");
    let public = keys["results"][0]["public"].as_str().unwrap().to_owned();
    t.call(Some("alice"), "GET", &format!("/v2/keys/{key_id}"), None, 200);
    t.call(
        Some("alice"),
        "POST",
        "/v2/keys",
        Some(json!({"id": "broken", "public": "ssh-ed25519 !!!not-base64"})),
        400,
    );
    t.call(
        Some("bob"),
        "POST",
        "/v2/keys",
        Some(json!({"id": "bobs-key", "public": public})),
        400,
    );
    t.call(Some("bob"), "DELETE", &format!("/v2/keys/{key_id}"), None, 404);

    t.section("drains and platform information (this platform's additions)");
    let drains = format!("/v2/apps/{APP}/drains");
    t.call(Some("alice"), "GET", &drains, None, 200);
    t.call(
        Some("alice"),
        "POST",
        &drains,
        Some(json!({"url": "ftp://nowhere"})),
        400,
    );
    t.call(Some("alice"), "GET", "/v2/info", None, 200);

    t.section("users and administrators");
    t.call(Some("root"), "GET", "/v2/users", None, 200);
    t.call(Some("alice"), "GET", "/v2/users", None, 403);
    t.call(Some("root"), "GET", "/v2/admin/perms", None, 200);
    t.call(Some("alice"), "GET", "/v2/admin/perms", None, 403);
    t.call(
        Some("root"),
        "POST",
        "/v2/admin/perms",
        Some(json!({"username": "bob"})),
        201,
    );
    t.call(Some("root"), "DELETE", "/v2/admin/perms/bob", None, 204);
    t.call(
        Some("alice"),
        "POST",
        "/v2/admin/perms",
        Some(json!({"username": "alice"})),
        403,
    );

    authorization_matrix(&mut t);

    t.section("passwords, tokens, transfer, cancel, destroy");
    t.call(
        Some("eve"),
        "POST",
        "/v2/auth/passwd",
        Some(json!({"password": "wrong", "new_password": "n3w-s3cret"})),
        401,
    );
    t.call(
        Some("eve"),
        "POST",
        "/v2/auth/passwd",
        Some(json!({"password": "s3cret-pw"})),
        400,
    );
    t.call(
        Some("eve"),
        "POST",
        "/v2/auth/passwd",
        Some(json!({"username": "bob", "new_password": "n3w-s3cret"})),
        403,
    );
    t.call(
        Some("eve"),
        "POST",
        "/v2/auth/passwd",
        Some(json!({"password": "s3cret-pw", "new_password": "n3w-s3cret"})),
        200,
    );
    t.call(
        Some("eve"),
        "POST",
        "/v2/auth/tokens/",
        Some(json!({"username": "bob"})),
        403,
    );
    let fresh = t.call(Some("eve"), "POST", "/v2/auth/tokens/", Some(json!({})), 200);
    // The old token stops working at once.
    t.call(Some("eve"), "GET", "/v2/auth/whoami", None, 401);
    t.user("eve", fresh.json()["token"].as_str().unwrap());
    t.call(Some("eve"), "GET", "/v2/auth/whoami", None, 200);
    t.call(
        Some("bob"),
        "POST",
        &format!("/v2/apps/{APP}"),
        Some(json!({"owner": "bob"})),
        403,
    );
    t.call(
        Some("alice"),
        "POST",
        "/v2/apps/spare",
        Some(json!({"owner": "bob"})),
        200,
    );
    t.call(Some("alice"), "GET", "/v2/apps/spare", None, 403);
    t.call(
        Some("bob"),
        "DELETE",
        &format!("/v2/apps/{APP}/perms/bob"),
        None,
        204,
    );
    t.call(Some("alice"), "DELETE", "/v2/auth/cancel", None, 409);
    t.call(Some("eve"), "DELETE", "/v2/auth/cancel", None, 204);
    t.call(Some("eve"), "GET", "/v2/auth/whoami", None, 401);
    t.call(Some("bob"), "DELETE", "/v2/apps/spare", None, 204);
    t.call(Some("alice"), "DELETE", &format!("/v2/apps/{APP}"), None, 204);
    t.call(Some("alice"), "GET", &format!("/v2/apps/{APP}"), None, 404);

    t.section("shapes of bad requests");
    t.call(Some("alice"), "PUT", "/v2/apps", None, 405);
    t.call(Some("alice"), "GET", "/v2/nothing-here", None, 404);
    let malformed = curl(
        &base,
        "POST",
        "/v2/apps",
        Some(t.token("alice")),
        Some("{\"id\": "),
    );
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    // A REST client's gRPC-looking headers are not gRPC's: no deadline of a
    // nanosecond cuts the call short, and the answer stays JSON.
    let timed = curl_with(
        &base,
        "GET",
        "/v2/auth/whoami",
        &[
            &format!("Authorization: token {}", t.token("alice")),
            "grpc-timeout: 1n",
        ],
        None,
    );
    assert_eq!(timed.status, 200, "{}", timed.body);
    assert_eq!(timed.json()["username"], "alice");

    // The REST API's own port answers the same, and refuses gRPC.
    let rest_url = server
        .rest_url
        .clone()
        .expect("the banner shows the REST address");
    assert_ne!(rest_url, base);
    let whoami = curl(&rest_url, "GET", "/v2/auth/whoami", Some(t.token("alice")), None);
    assert_eq!(
        (whoami.status, whoami.json()["username"].clone()),
        (200, json!("alice"))
    );
    let grpc = curl_with(
        &rest_url,
        "POST",
        "/deis.v2.AuthService/Whoami",
        &["Content-Type: application/grpc", "TE: trailers"],
        None,
    );
    assert!(
        grpc.headers.contains("grpc-status: 12"),
        "gRPC is refused on the REST port: {}",
        grpc.headers
    );

    t.check("rest_api");
    server.interrupt();
}

/// Who may do what, over REST: each row calls one endpoint as each role and
/// records the statuses. Writes run in an order where each succeeds or
/// fails for its authorization alone.
fn authorization_matrix(t: &mut Transcript) {
    t.section("authorization matrix (owner alice, collaborator bob, stranger eve, admin root, anonymous)");
    let app = format!("/v2/apps/{APP}");
    let reads = [
        app.clone(),
        format!("{app}/config"),
        format!("{app}/builds"),
        format!("{app}/releases"),
        format!("{app}/releases/v2"),
        format!("{app}/pods"),
        format!("{app}/domains"),
        format!("{app}/settings"),
        format!("{app}/whitelist"),
        format!("{app}/tls"),
        format!("{app}/perms"),
        format!("{app}/drains"),
        format!("{app}/logs/entries"),
    ];
    let roles = [Some("alice"), Some("bob"), Some("eve"), Some("root"), None];
    let base = t.base().to_owned();
    for path in &reads {
        let mut row = format!("GET {path}:");
        for role in roles {
            let token = role.map(|r| t.token(r).to_owned());
            let reply = curl(&base, "GET", path, token.as_deref(), None);
            let expected = match role {
                Some("eve") => 403,
                None => 401,
                _ => 200,
            };
            assert_eq!(reply.status, expected, "{role:?} GET {path}: {}", reply.body);
            row.push_str(&format!(" {}={}", role.unwrap_or("anonymous"), reply.status));
        }
        t.note(&row);
    }
    // Writes: (who, method, path, body, status).
    let writes: Vec<(Option<&str>, &str, String, Value, u16)> = vec![
        (
            None,
            "POST",
            format!("{app}/config"),
            json!({"values": {"BY": "nobody"}}),
            401,
        ),
        (
            Some("eve"),
            "POST",
            format!("{app}/config"),
            json!({"values": {"BY": "eve"}}),
            403,
        ),
        (
            Some("bob"),
            "POST",
            format!("{app}/config"),
            json!({"values": {"BY": "bob"}}),
            201,
        ),
        (
            Some("root"),
            "POST",
            format!("{app}/config"),
            json!({"values": {"BY": "root"}}),
            201,
        ),
        (
            Some("eve"),
            "POST",
            format!("{app}/scale"),
            json!({"web": 1}),
            403,
        ),
        (
            Some("bob"),
            "POST",
            format!("{app}/scale"),
            json!({"web": 1}),
            204,
        ),
        (
            Some("eve"),
            "POST",
            format!("{app}/domains"),
            json!({"domain": "eve.example.com"}),
            403,
        ),
        (
            Some("bob"),
            "POST",
            format!("{app}/perms"),
            json!({"username": "eve"}),
            403,
        ),
        (
            Some("eve"),
            "POST",
            format!("{app}/perms"),
            json!({"username": "eve"}),
            403,
        ),
        (
            Some("root"),
            "POST",
            format!("{app}/perms"),
            json!({"username": "eve"}),
            201,
        ),
        (
            Some("bob"),
            "DELETE",
            format!("{app}/perms/eve"),
            Value::Null,
            403,
        ),
        (
            Some("alice"),
            "DELETE",
            format!("{app}/perms/eve"),
            Value::Null,
            204,
        ),
        (Some("eve"), "POST", app.clone(), json!({"owner": "eve"}), 403),
        (Some("bob"), "DELETE", app.clone(), Value::Null, 403),
        (Some("eve"), "DELETE", app.clone(), Value::Null, 403),
        (None, "DELETE", app.clone(), Value::Null, 401),
    ];
    for (who, method, path, body, expected) in writes {
        let token = who.map(|w| t.token(w).to_owned());
        let body_text = (!body.is_null()).then(|| body.to_string());
        let reply = curl(&base, method, &path, token.as_deref(), body_text.as_deref());
        assert_eq!(reply.status, expected, "{who:?} {method} {path}: {}", reply.body);
        t.note(&format!(
            "{method} {path} {}: {}={}",
            body_text.unwrap_or_default(),
            who.unwrap_or("anonymous"),
            reply.status
        ));
    }
}

/// Waits until the app's processes are `count` processes, all up.
fn settle_pods(t: &Transcript, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pods = curl(
            t.base(),
            "GET",
            &format!("/v2/apps/{APP}/pods"),
            Some(t.token("alice")),
            None,
        )
        .json();
        let results = pods["results"].as_array().cloned().unwrap_or_default();
        if results.len() == count && results.iter().all(|p| p["state"] == "up") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes never settled: {pods}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn cert_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("crates/deis-core/tests/fixtures/certs")
        .join(name)
}
