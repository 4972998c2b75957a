//! Transcoding against real in-process tonic services (deis.v2 AppsService,
//! AuthService and PsService with canned data) served by `Routes`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use deis_gateway::{Gateway, GatewayOptions, HTTP_STATUS_METADATA, Readiness, serve_both};
use deis_proto::v2::apps_service_server::{AppsService, AppsServiceServer};
use deis_proto::v2::auth_service_server::{AuthService, AuthServiceServer};
use deis_proto::v2::config_service_server::{ConfigService, ConfigServiceServer};
use deis_proto::v2::ps_service_server::{PsService, PsServiceServer};
use deis_proto::v2::*;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::service::Routes;
use tonic::{Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::ServiceExt;

const SERVICES: [&str; 4] = [
    "deis.v2.AppsService",
    "deis.v2.AuthService",
    "deis.v2.PsService",
    "deis.v2.ConfigService",
];

/// (method, `authorization` it received)
type Seen = Vec<(String, Option<String>)>;

/// Canned services; records what reached them.
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    scaled: Arc<Mutex<Option<HashMap<String, i32>>>>,
}

impl Fake {
    fn record<T>(&self, method: &str, request: &tonic::Request<T>) {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((method.to_owned(), auth));
        }
    }

    fn last_auth(&self) -> Option<String> {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.last().and_then(|(_, a)| a.clone()))
    }
}

fn app(id: &str) -> App {
    App {
        uuid: "6b5b8c2e-0000-4000-8000-000000000001".to_owned(),
        id: id.to_owned(),
        owner: "alice".to_owned(),
        structure: HashMap::from([("web".to_owned(), 1)]),
        url: format!("{id}.example.com"),
        created: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789,
        }),
        updated: None,
    }
}

fn with_http_status(mut status: Status, code: u16) -> Status {
    if let Ok(value) = code.to_string().parse() {
        status.metadata_mut().insert(HTTP_STATUS_METADATA, value);
    }
    status
}

fn check_token<T>(request: &tonic::Request<T>) -> Result<(), Status> {
    match request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some("token secret") => Ok(()),
        _ => Err(with_http_status(Status::unauthenticated("Invalid token."), 401)),
    }
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AppsService for Fake {
    async fn create_app(
        &self,
        request: tonic::Request<CreateAppRequest>,
    ) -> Result<Response<CreateAppResponse>, Status> {
        self.record("CreateApp", &request);
        let id = request.into_inner().id;
        match id.as_str() {
            // Deis answers 409 here; the gRPC code alone would give 400.
            "taken" => Err(with_http_status(
                Status::failed_precondition("Application with this id already exists."),
                409,
            )),
            "" => Ok(Response::new(CreateAppResponse {
                app: Some(app("generated-name")),
            })),
            // A per-field validation error, as the controller sends it.
            "Bad_Name" => Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                "App name must start with an alphabetic character.",
                ErrorDetails::with_bad_request_violation(
                    "id",
                    "App name must start with an alphabetic character.",
                ),
            )),
            _ => Ok(Response::new(CreateAppResponse { app: Some(app(&id)) })),
        }
    }

    async fn list_apps(
        &self,
        request: tonic::Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        self.record("ListApps", &request);
        let r = request.into_inner();
        Ok(Response::new(ListAppsResponse {
            count: 2,
            next: Some(format!("/v2/apps?limit={}&offset={}", r.limit, r.offset)),
            previous: None,
            results: vec![app("one"), app("two")],
        }))
    }

    async fn get_app(
        &self,
        request: tonic::Request<GetAppRequest>,
    ) -> Result<Response<GetAppResponse>, Status> {
        self.record("GetApp", &request);
        check_token(&request)?;
        let id = request.into_inner().id;
        if id == "missing" {
            // No HTTP status metadata: the code table decides.
            return Err(Status::not_found("No App matches the given query."));
        }
        if id == "gone" {
            // A lookup by name: Deis answers Django's bare-string 404.
            return Err(Status::with_error_details(
                tonic::Code::NotFound,
                "App gone does not exist.",
                ErrorDetails::with_resource_info("App", "", "", "App gone does not exist."),
            ));
        }
        Ok(Response::new(GetAppResponse { app: Some(app(&id)) }))
    }

    async fn transfer_app(
        &self,
        request: tonic::Request<TransferAppRequest>,
    ) -> Result<Response<TransferAppResponse>, Status> {
        self.record("TransferApp", &request);
        Ok(Response::new(TransferAppResponse {}))
    }

    async fn delete_app(
        &self,
        request: tonic::Request<DeleteAppRequest>,
    ) -> Result<Response<DeleteAppResponse>, Status> {
        self.record("DeleteApp", &request);
        Ok(Response::new(DeleteAppResponse {}))
    }

    async fn run_command(
        &self,
        request: tonic::Request<RunCommandRequest>,
    ) -> Result<Response<RunCommandResponse>, Status> {
        self.record("RunCommand", &request);
        let r = request.into_inner();
        Ok(Response::new(RunCommandResponse {
            exit_code: 0,
            output: format!("{}: {}", r.app, r.command),
        }))
    }

    type RunAttachedStream = Stream<RunAttachedResponse>;

    async fn run_attached(
        &self,
        _request: tonic::Request<tonic::Streaming<RunAttachedRequest>>,
    ) -> Result<Response<Self::RunAttachedStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_logs(
        &self,
        request: tonic::Request<GetLogsRequest>,
    ) -> Result<Response<GetLogsResponse>, Status> {
        self.record("GetLogs", &request);
        let r = request.into_inner();
        Ok(Response::new(GetLogsResponse {
            lines: vec![format!("{} {} {}", r.app, r.log_lines, r.process)],
            entries: Vec::new(),
        }))
    }

    async fn get_log_text(
        &self,
        request: tonic::Request<GetLogTextRequest>,
    ) -> Result<Response<deis_proto::google::api::HttpBody>, Status> {
        self.record("GetLogText", &request);
        let r = request.into_inner();
        let data = if r.app == "quiet" {
            Vec::new()
        } else {
            format!("{} line one\n{} line two\n", r.app, r.app).into_bytes()
        };
        let empty = data.is_empty();
        let mut response = Response::new(deis_proto::google::api::HttpBody {
            content_type: "text/plain; charset=utf-8".to_owned(),
            data,
            extensions: Vec::new(),
        });
        if empty && let Ok(value) = "204".parse() {
            response.metadata_mut().insert(HTTP_STATUS_METADATA, value);
        }
        Ok(response)
    }

    type FollowLogsStream = Stream<FollowLogsResponse>;

    async fn follow_logs(
        &self,
        request: tonic::Request<FollowLogsRequest>,
    ) -> Result<Response<Self::FollowLogsStream>, Status> {
        self.record("FollowLogs", &request);
        let r = request.into_inner();
        if r.app == "gone" {
            return Err(Status::not_found("No App matches the given query."));
        }
        let mut items: Vec<Result<FollowLogsResponse, Status>> = (0..r.log_lines)
            .map(|i| {
                Ok(FollowLogsResponse {
                    event: Some(follow_logs_response::Event::Line(LogLine {
                        time: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000 + i64::from(i),
                            nanos: 5,
                        }),
                        app: r.app.clone(),
                        source: "app".to_owned(),
                        process: "web.1".to_owned(),
                        release: "v2".to_owned(),
                        text: format!("line {i}"),
                    })),
                })
            })
            .collect();
        items.push(Ok(FollowLogsResponse {
            event: Some(follow_logs_response::Event::Missed(7)),
        }));
        if r.app == "broken" {
            items.push(Err(Status::unavailable("The logger went away.")));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

#[tonic::async_trait]
impl AuthService for Fake {
    async fn register(
        &self,
        _request: tonic::Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn login(&self, _request: tonic::Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn whoami(
        &self,
        request: tonic::Request<WhoamiRequest>,
    ) -> Result<Response<WhoamiResponse>, Status> {
        self.record("Whoami", &request);
        check_token(&request)?;
        Ok(Response::new(WhoamiResponse {
            user: Some(User {
                username: "alice".to_owned(),
                ..User::default()
            }),
        }))
    }

    async fn change_password(
        &self,
        request: tonic::Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(ChangePasswordResponse {
            status: format!("{}/{}", r.password, r.new_password),
        }))
    }

    async fn cancel_account(
        &self,
        _request: tonic::Request<CancelAccountRequest>,
    ) -> Result<Response<CancelAccountResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn regenerate_token(
        &self,
        _request: tonic::Request<RegenerateTokenRequest>,
    ) -> Result<Response<RegenerateTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tonic::async_trait]
impl PsService for Fake {
    async fn list_pods(
        &self,
        request: tonic::Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(ListPodsResponse {
            results: vec![Pod {
                name: format!("{}|{}|{}", r.app, r.r#type, r.name),
                ..Pod::default()
            }],
            count: 1,
        }))
    }

    async fn scale_pods(
        &self,
        request: tonic::Request<ScalePodsRequest>,
    ) -> Result<Response<ScalePodsResponse>, Status> {
        if let Ok(mut scaled) = self.scaled.lock() {
            *scaled = Some(request.into_inner().structure);
        }
        Ok(Response::new(ScalePodsResponse {}))
    }

    async fn restart_pods(
        &self,
        request: tonic::Request<RestartPodsRequest>,
    ) -> Result<Response<RestartPodsResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(RestartPodsResponse {
            results: vec![
                Pod {
                    name: format!("{}-{}-1", r.app, r.r#type),
                    state: "up".to_owned(),
                    ..Pod::default()
                },
                Pod {
                    name: r.name,
                    ..Pod::default()
                },
            ],
        }))
    }
}

#[tonic::async_trait]
impl ConfigService for Fake {
    async fn get_config(
        &self,
        _request: tonic::Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    /// Echoes the health checks.
    async fn set_config(
        &self,
        request: tonic::Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        self.record("SetConfig", &request);
        let r = request.into_inner();
        Ok(Response::new(SetConfigResponse {
            config: Some(Config {
                app: r.app,
                healthcheck: r.healthcheck,
                ..Config::default()
            }),
            release_version: 2,
        }))
    }
}

fn routes(fake: &Fake) -> Routes {
    Routes::new(AppsServiceServer::new(fake.clone()))
        .add_service(AuthServiceServer::new(fake.clone()))
        .add_service(PsServiceServer::new(fake.clone()))
        .add_service(ConfigServiceServer::new(fake.clone()))
}

fn gateway_with(options: GatewayOptions) -> Gateway {
    match Gateway::new(&deis_proto::DESCRIPTOR_POOL, &SERVICES, options) {
        Ok(g) => g,
        Err(e) => panic!("gateway: {e}"),
    }
}

fn gateway() -> Gateway {
    gateway_with(GatewayOptions {
        api_version: "2.3".to_owned(),
        platform_version: "9.9.9".to_owned(),
        ..GatewayOptions::default()
    })
}

/// What a test sees of a response.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Json {
        match serde_json::from_slice(&self.body) {
            Ok(j) => j,
            Err(e) => panic!(
                "not JSON ({e}): {:?} (status {})",
                String::from_utf8_lossy(&self.body),
                self.status
            ),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

async fn send(
    gateway: &Gateway,
    fake: &Fake,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = match builder.body(Full::new(Bytes::from(body.to_owned()))) {
        Ok(r) => r,
        Err(e) => panic!("request: {e}"),
    };
    let response = gateway.handle(request, routes(fake)).await;
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => panic!("body: {e}"),
    };
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

const JSON_TYPE: (&str, &str) = ("content-type", "application/json");
const AUTH: (&str, &str) = ("authorization", "token secret");

#[tokio::test]
async fn create_app_maps_the_body_and_response_body() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE, AUTH],
        r#"{"id":"myapp"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "Deis answers 201 to a creation");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.json();
    // `response_body: "app"`: the App itself, snake_case, every key present.
    assert_eq!(body["id"], "myapp");
    assert_eq!(body["owner"], "alice");
    assert_eq!(body["structure"], json!({"web": 1}));
    assert_eq!(body["created"], "2023-11-14T22:13:20Z", "whole seconds, as Deis");
    assert_eq!(
        body["updated"],
        Json::Null,
        "unset timestamps are present as null"
    );
    assert!(body.get("app").is_none());

    // An empty body is an empty request (Deis names the app).
    let a = send(&gw, &fake, Method::POST, "/v2/apps/", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.json()["id"], "generated-name");
}

#[tokio::test]
async fn every_response_carries_the_version_headers() {
    let (gw, fake) = (gateway(), Fake::default());
    for (method, uri) in [
        (Method::GET, "/v2/apps"),
        (Method::GET, "/v2/apps/missing"),
        (Method::GET, "/v2/nothing"),
        (Method::PUT, "/v2/apps"),
        (Method::GET, "/healthz"),
        (Method::GET, "/readiness"),
        (Method::GET, "/v2/"),
        (Method::GET, "/v2/apps/a/logs/follow?log_lines=1"),
    ] {
        let a = send(&gw, &fake, method.clone(), uri, &[AUTH], "").await;
        for (name, want) in [
            ("DEIS_API_VERSION", "2.3"),
            ("DEIS_PLATFORM_VERSION", "9.9.9"),
            ("Deis-Api-Version", "2.3"),
            ("Deis-Platform-Version", "9.9.9"),
            ("access-control-allow-origin", "*"),
        ] {
            assert_eq!(a.header(name), Some(want), "{name} on {method} {uri}");
        }
    }
}

#[tokio::test]
async fn path_variables_match_with_or_without_a_trailing_slash() {
    let (gw, fake) = (gateway(), Fake::default());
    for uri in ["/v2/apps/myapp", "/v2/apps/myapp/"] {
        let a = send(&gw, &fake, Method::GET, uri, &[AUTH], "").await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(a.json()["id"], "myapp");
    }
    // Percent-decoded.
    let a = send(&gw, &fake, Method::GET, "/v2/apps/my%2Dapp", &[AUTH], "").await;
    assert_eq!(a.json()["id"], "my-app");
}

#[tokio::test]
async fn list_endpoints_take_limit_and_offset() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps?limit=5&offset=10&format=json",
        &[AUTH, ("host", "deis.example.com:8000")],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.json();
    assert_eq!(body["count"], 2);
    // Links relative to the API root come back absolute, as Django's do.
    assert_eq!(
        body["next"],
        "http://deis.example.com:8000/v2/apps?limit=5&offset=10"
    );
    assert_eq!(body["previous"], Json::Null, "Deis's envelope has every key");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["results"][1]["id"], "two");
    // HEAD runs the GET and drops the body.
    let a = send(&gw, &fake, Method::HEAD, "/v2/apps", &[AUTH], "").await;
    assert_eq!((a.status, a.body.len()), (StatusCode::OK, 0));
    assert_eq!(a.header("content-type"), Some("application/json"));

    // Query names in lowerCamel as well as snake_case; empty numbers are "not given".
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/a/logs/entries?logLines=7&process=web",
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(a.json()["lines"], json!(["a 7 web"]));
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/a/logs/entries?log_lines=",
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(a.json()["lines"], json!(["a 0 "]));
}

#[tokio::test]
async fn http_body_responses_are_sent_raw() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(&gw, &fake, Method::GET, "/v2/apps/a/logs", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(a.body, Bytes::from_static(b"a line one\na line two\n"));
    // Nothing to send and the service says 204: no body at all.
    let a = send(&gw, &fake, Method::GET, "/v2/apps/quiet/logs", &[AUTH], "").await;
    assert_eq!((a.status, a.body.len()), (StatusCode::NO_CONTENT, 0));
}

#[tokio::test]
async fn deis_irregular_error_bodies_come_from_the_error_details() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE, AUTH],
        r#"{"id":"Bad_Name"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json(),
        json!({"id": ["App name must start with an alphabetic character."]})
    );
    let a = send(&gw, &fake, Method::GET, "/v2/apps/gone", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json(), json!("No App matches the given query."));
}

#[tokio::test]
async fn streams_come_out_as_ndjson() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/web/logs/follow?log_lines=3",
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/x-ndjson"));
    let text = String::from_utf8_lossy(&a.body).into_owned();
    assert!(text.ends_with('\n'));
    let lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["line"]["text"], "line 0");
    assert_eq!(lines[2]["line"]["time"], "2023-11-14T22:13:22Z");
    assert_eq!(lines[3]["missed"], 7, "uint64 as a JSON number");

    // An error mid-stream ends it with a detail line.
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/broken/logs/follow?log_lines=2",
        &[AUTH],
        "",
    )
    .await;
    let text = String::from_utf8_lossy(&a.body).into_owned();
    let last: Json = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    assert_eq!(text.lines().count(), 4);
    assert_eq!(last, json!({"detail": "The logger went away."}));

    // An error before the first message is an ordinary error response.
    let a = send(&gw, &fake, Method::GET, "/v2/apps/gone/logs/follow", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.detail(), "No App matches the given query.");
}

#[tokio::test]
async fn errors_use_the_http_status_metadata_when_present() {
    let (gw, fake) = (gateway(), Fake::default());
    // Without metadata: NotFound → 404 by the code table.
    let a = send(&gw, &fake, Method::GET, "/v2/apps/missing", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json(), json!({"detail": "No App matches the given query."}));
    // With metadata: FailedPrecondition (400 by the table) but Deis's 409.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE, AUTH],
        r#"{"id":"taken"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.detail(), "Application with this id already exists.");
    // A method the gRPC side does not serve.
    let a = send(&gw, &fake, Method::POST, "/v2/auth/login/", &[JSON_TYPE], "{}").await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(a.detail(), "not in this test");
}

#[tokio::test]
async fn authorization_reaches_the_service() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/x",
        &[("authorization", "token wrong")],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.detail(), "Invalid token.");
    assert_eq!(a.header("www-authenticate"), Some("Token"));
    assert_eq!(fake.last_auth().as_deref(), Some("token wrong"));

    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2/apps/x",
        &[AUTH, ("grpc-metadata-x-trace", "t1")],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(fake.last_auth().as_deref(), Some("token secret"));
}

#[tokio::test]
async fn grpc_headers_do_not_pass_as_metadata() {
    let (gw, fake) = (gateway(), Fake::default());
    // The server would refuse `bogus` compression (501) and give up after
    // a nanosecond if these reached it.
    for (name, value) in [
        ("grpc-metadata-grpc-encoding", "bogus"),
        ("grpc-metadata-grpc-timeout", "1n"),
        ("grpc-metadata-content-type", "text/plain"),
        ("grpc-encoding", "bogus"),
    ] {
        let a = send(&gw, &fake, Method::GET, "/v2/apps/x", &[AUTH, (name, value)], "").await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {:?}", a.body);
        assert_eq!(a.json()["id"], "x", "{name}");
    }
}

/// `{"healthcheck": {"a": {"a": … 1}}}` with `depth` objects.
fn nested_healthcheck(depth: usize) -> String {
    format!(
        "{{\"healthcheck\":{}1{}}}",
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    )
}

#[tokio::test]
async fn requests_nested_deeper_than_the_server_decodes_get_400() {
    let (gw, fake) = (gateway(), Fake::default());
    // Each JSON object inside a Struct is three levels for prost (Struct,
    // map entry, Value): 33 objects are 99 levels below the request, 34
    // are 102, more than the 100 prost decodes (the server would answer
    // INTERNAL, a 500).
    let ok = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/x/config",
        &[AUTH, JSON_TYPE],
        &nested_healthcheck(33),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    let mut echoed = &ok.json()["healthcheck"];
    for _ in 1..33 {
        echoed = &echoed["a"];
    }
    assert_eq!(echoed["a"].as_f64(), Some(1.0), "{}", ok.json());

    let calls = fake.seen.lock().map(|s| s.len()).unwrap_or_default();
    for depth in [34, 40, 50, 60, 200] {
        let a = send(
            &gw,
            &fake,
            Method::POST,
            "/v2/apps/x/config",
            &[AUTH, JSON_TYPE],
            &nested_healthcheck(depth),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{depth}: {:?}", a.body);
        if depth <= 50 {
            assert!(
                a.detail().contains("nested too deeply"),
                "{depth}: {}",
                a.detail()
            );
        }
    }
    assert_eq!(fake.seen.lock().map(|s| s.len()).unwrap_or_default(), calls);
}

#[tokio::test]
async fn api_root_checks_credentials() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(&gw, &fake, Method::GET, "/v2/", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.json(),
        json!({"detail": "Authentication credentials were not provided."})
    );
    let a = send(
        &gw,
        &fake,
        Method::GET,
        "/v2",
        &[("authorization", "token nope")],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.detail(), "Invalid token.");
    let a = send(&gw, &fake, Method::GET, "/v2/", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({}));
    assert_eq!(
        fake.seen
            .lock()
            .map(|s| s.last().map(|x| x.0.clone()))
            .ok()
            .flatten()
            .as_deref(),
        Some("Whoami")
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let fake = Fake::default();
    let gw = gateway();
    let a = send(&gw, &fake, Method::GET, "/healthz", &[], "").await;
    assert_eq!((a.status, a.body.as_ref()), (StatusCode::OK, b"OK".as_ref()));
    let a = send(&gw, &fake, Method::HEAD, "/healthz/", &[], "").await;
    assert_eq!((a.status, a.body.len()), (StatusCode::OK, 0));
    let a = send(&gw, &fake, Method::POST, "/healthz", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);

    let ready = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ready);
    let gw = gateway_with(GatewayOptions {
        readiness: Some(Readiness::new(move || {
            let ready = flag.lock().map(|r| *r).unwrap_or(false);
            async move { ready }
        })),
        ..GatewayOptions::default()
    });
    let a = send(&gw, &fake, Method::GET, "/readiness", &[], "").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    if let Ok(mut r) = ready.lock() {
        *r = true;
    }
    let a = send(&gw, &fake, Method::GET, "/readiness", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let fake = Fake::default();
    let gw = gateway_with(GatewayOptions {
        max_body_bytes: 64,
        ..GatewayOptions::default()
    });
    let big = format!(r#"{{"id":"{}"}}"#, "a".repeat(100));
    let a = send(&gw, &fake, Method::POST, "/v2/apps", &[JSON_TYPE, AUTH], &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.detail().contains("64 bytes"), "{}", a.detail());

    // Announced by Content-Length: refused before reading.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE, ("content-length", "100000")],
        "{}",
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: cut off at the limit.
    let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> = (0..10)
        .map(|_| Ok(http_body::Frame::data(Bytes::from_static(&[b' '; 16]))))
        .collect();
    let body = StreamBody::new(tokio_stream::iter(chunks));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v2/apps")
        .body(body)
        .unwrap_or_else(|e| panic!("{e}"));
    let response = gw.handle(request, routes(&fake)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Bodies within the limit pass.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE, AUTH],
        r#"{"id":"ok"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_field() {
    let (gw, fake) = (gateway(), Fake::default());
    let a = send(&gw, &fake, Method::POST, "/v2/apps", &[JSON_TYPE], r#"{"id": 5}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.detail().starts_with("id: "), "{}", a.detail());

    let a = send(&gw, &fake, Method::POST, "/v2/apps", &[JSON_TYPE], r#"{"id": "#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.detail().starts_with("JSON parse error"), "{}", a.detail());
    assert!(a.detail().contains("column"), "{}", a.detail());

    let a = send(&gw, &fake, Method::POST, "/v2/apps", &[JSON_TYPE], r#"["id"]"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.detail(), "Expected a JSON object, got an array.");

    let a = send(&gw, &fake, Method::GET, "/v2/apps?limit=many", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.detail().starts_with("limit: "), "{}", a.detail());

    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/scale",
        &[JSON_TYPE],
        r#"{"web": "x"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.detail().starts_with("structure.web: "), "{}", a.detail());

    // Unknown fields are ignored, as Deis does.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[JSON_TYPE],
        r#"{"id":"z","color":"red"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);

    // Nothing on hostile input panics.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for body in [
        deep.as_str(),
        "\u{0}",
        "nul",
        "{\"id\": \"\\ud800\"}",
        "{\"id\":null}",
    ] {
        let a = send(&gw, &fake, Method::POST, "/v2/apps", &[JSON_TYPE], body).await;
        assert!(
            a.status.is_client_error() || a.status.is_success(),
            "{body:.20}: {}",
            a.status
        );
    }
}

#[tokio::test]
async fn unknown_paths_404_and_wrong_methods_405() {
    let (gw, fake) = (gateway(), Fake::default());
    for uri in ["/v2/nothing", "/", "/v2/apps/a/b/c/d/e", "/v3/apps"] {
        let a = send(&gw, &fake, Method::GET, uri, &[AUTH], "").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(a.json(), json!({"detail": "Not found."}));
    }
    let a = send(&gw, &fake, Method::PUT, "/v2/apps/", &[AUTH], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.detail(), "Method \"PUT\" not allowed.");
    assert_eq!(a.header("allow"), Some("POST, GET, HEAD, OPTIONS"));

    // CORS preflight on a known path.
    let a = send(
        &gw,
        &fake,
        Method::OPTIONS,
        "/v2/apps/a",
        &[
            ("origin", "https://ui"),
            ("access-control-request-method", "DELETE"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("access-control-allow-methods"),
        Some("GET, POST, DELETE, HEAD, OPTIONS")
    );
}

#[tokio::test]
async fn additional_bindings_body_fields_and_list_response_bodies() {
    let (gw, fake) = (gateway(), Fake::default());
    for (uri, want) in [
        ("/v2/apps/a/pods", "a||"),
        ("/v2/apps/a/pods/web", "a|web|"),
        ("/v2/apps/a/pods/web/a-web-1/", "a|web|a-web-1"),
    ] {
        let a = send(&gw, &fake, Method::GET, uri, &[AUTH], "").await;
        assert_eq!(a.json()["results"][0]["name"], want, "{uri}");
    }
    // `response_body: "results"`: a bare array, as Deis's restart answers.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/pods/web/restart",
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.json();
    assert_eq!(body[0]["name"], "a-web-1");
    assert_eq!(body[0]["started"], Json::Null);
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/pods/web/a-web-2/restart",
        &[AUTH],
        "",
    )
    .await;
    assert_eq!(a.json()[1]["name"], "a-web-2");

    // `body: "structure"`: the JSON body is the map.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/scale",
        &[JSON_TYPE, AUTH],
        r#"{"web": 3, "worker": "2"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(a.body.is_empty());
    let scaled = fake.scaled.lock().ok().and_then(|s| s.clone());
    assert_eq!(
        scaled,
        Some(HashMap::from([("web".to_owned(), 3), ("worker".to_owned(), 2)]))
    );
}

#[tokio::test]
async fn form_bodies_are_read_like_query_parameters() {
    let (gw, fake) = (gateway(), Fake::default());
    let form = ("content-type", "application/x-www-form-urlencoded");
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/run",
        &[form, AUTH],
        "command=ls+-la&app=evil",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["output"], "a: ls -la", "the path wins over the body");

    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps/a/scale",
        &[form, AUTH],
        "web=2&worker=0",
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let scaled = fake.scaled.lock().ok().and_then(|s| s.clone());
    assert_eq!(
        scaled,
        Some(HashMap::from([("web".to_owned(), 2), ("worker".to_owned(), 0)]))
    );

    // `curl -d '{…}'` sends JSON labelled as a form.
    let a = send(
        &gw,
        &fake,
        Method::POST,
        "/v2/apps",
        &[form, AUTH],
        r#"{"id":"curl"}"#,
    )
    .await;
    assert_eq!(a.json()["id"], "curl");
}

#[tokio::test]
async fn input_accepts_snake_case_and_lower_camel() {
    let (gw, fake) = (gateway(), Fake::default());
    for body in [
        r#"{"password":"a","new_password":"b"}"#,
        r#"{"password":"a","newPassword":"b"}"#,
    ] {
        let a = send(
            &gw,
            &fake,
            Method::POST,
            "/v2/auth/passwd",
            &[JSON_TYPE, AUTH],
            body,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{body}");
        assert_eq!(a.json(), json!({"status": "a/b"}));
    }
}

#[tokio::test]
async fn serve_both_routes_by_content_type() {
    let fake = Fake::default();
    let service = serve_both(routes(&fake), gateway());

    // REST through the combined service.
    let request = Request::builder()
        .uri("/v2/apps/both")
        .header("authorization", "token secret")
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = match service.clone().oneshot(request).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    assert_eq!(response.status(), StatusCode::OK);

    // gRPC through the same service, untouched by the gateway.
    let mut client = deis_proto::v2::apps_service_client::AppsServiceClient::new(service);
    let mut request = tonic::Request::new(GetAppRequest {
        id: "grpc".to_owned(),
    });
    request.metadata_mut().insert(
        "authorization",
        tonic::metadata::MetadataValue::from_static("token secret"),
    );
    let reply = client.get_app(request).await.unwrap_or_else(|s| panic!("{s}"));
    assert_eq!(reply.into_inner().app.map(|a| a.id).as_deref(), Some("grpc"));
}

/// The mounting the controller uses: one tonic server, HTTP/1.1 accepted,
/// the gateway as the outermost layer; REST and gRPC on one port.
#[tokio::test]
async fn rest_and_grpc_share_one_port() {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(gateway().layer())
        .add_service(AppsServiceServer::new(fake.clone()))
        .add_service(AuthServiceServer::new(fake.clone()))
        .serve_with_incoming(incoming);
    let task = tokio::spawn(server);

    // Plain HTTP/1.1, as the Deis CLI sends it.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = "GET /v2/apps/web/logs/follow?log_lines=2 HTTP/1.1\r\nHost: x\r\n\
                   Authorization: token secret\r\nConnection: close\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(raw.starts_with("http/1.1 200"), "{raw}");
    assert!(raw.contains("content-type: application/x-ndjson"), "{raw}");
    assert!(raw.contains("transfer-encoding: chunked"), "{raw}");
    assert!(raw.contains("deis_api_version: 2.3"), "{raw}");
    assert!(raw.contains("\"text\":\"line 1\""), "{raw}");

    // gRPC on the same port.
    let mut client =
        deis_proto::v2::apps_service_client::AppsServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let reply = client
        .create_app(CreateAppRequest {
            id: "native".to_owned(),
        })
        .await
        .unwrap_or_else(|s| panic!("{s}"));
    assert_eq!(reply.into_inner().app.map(|a| a.id).as_deref(), Some("native"));
    task.abort();
}
