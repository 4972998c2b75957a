//! REST/JSON ↔ gRPC transcoding driven by `google.api.http` annotations
//! (grpc-gateway semantics), with Deis Workflow v2 REST compatibility.
//!
//! The gateway reads every annotated method of the services it is given
//! from a prost-reflect [`DescriptorPool`] (which must keep options, as
//! `deis_proto::DESCRIPTOR_POOL` does), and answers an HTTP request by
//! building the request message, calling the RPC **in process** through the
//! same tower service that serves gRPC (so authentication, limits, metrics
//! and tracing are those of native gRPC), and writing the response as JSON.
//!
//! # Public API
//!
//! - [`Gateway::new`]`(pool, services, options)`: parses the rules.
//! - [`Gateway::handle`]`(request, grpc)`: answers one HTTP request.
//! - [`Gateway::rules`]: the parsed bindings ([`Rule`]), for tools.
//! - [`Gateway::is_rest`]: whether a request is for the gateway.
//! - [`serve_both`] / [`GatewayLayer`]: one tower service for REST and gRPC
//!   on one port (see below).
//! - [`openapi::document`]: the OpenAPI 3.0 document of the same rules.
//! - [`PathTemplate`], [`DynamicCodec`]: the template matcher and the
//!   `DynamicMessage` tonic codec, reusable on their own.
//!
//! # Mounting beside tonic
//!
//! ```ignore
//! let gateway = Gateway::new(&deis_proto::DESCRIPTOR_POOL, SERVICES, options)?;
//! tonic::transport::Server::builder()
//!     .accept_http1(true)               // REST clients speak HTTP/1.1
//!     .layer(gateway.layer())           // outermost: REST calls then pass
//!     .layer(metrics_layer)             // through metrics like gRPC calls
//!     .add_service(...)
//!     .serve_with_incoming_shutdown(incoming, shutdown)
//! ```
//!
//! or, with a `tonic::service::Routes` served by hand,
//! `serve_both(routes, gateway)`.
//!
//! # Transcoding
//!
//! - Templates: variables, nested field paths (`{app.name}`), `{x=**}`,
//!   custom verbs (`:cancel`), `additional_bindings`, `custom` kinds.
//! - Request: the JSON body (`body: "*"` or one field), then query
//!   parameters for the remaining fields (dotted paths, repeated keys
//!   accumulate, unknown keys ignored), then path variables, which win.
//!   `application/x-www-form-urlencoded` bodies are read like query
//!   parameters; values of map and message fields may be JSON text.
//! - Response: the message or its `response_body` field; server streams as
//!   newline-delimited JSON (`application/x-ndjson`), one line per message,
//!   a mid-stream error ending it with a `{"detail": …}` line.
//!
//! # Deis v2 compatibility
//!
//! - Proto field names (snake_case) on output, every field present (unset
//!   optional and message fields as `null`), timestamps to whole seconds;
//!   snake_case or lowerCamel accepted on input.
//! - Paths match with or without a trailing `/`.
//! - Errors are `{"detail": "<message>"}` with the status in the
//!   [`HTTP_STATUS_METADATA`] metadata when the controller sent one, else
//!   the google.rpc code → HTTP table. 404 `Not found.` for unknown paths,
//!   405 with `Allow` for a known path, 413 over
//!   [`GatewayOptions::max_body_bytes`], 400 naming the field for bad input,
//!   400 for a message nested deeper than prost decodes (100 levels).
//! - Successful statuses from [`GatewayOptions::success_status`] (Deis's
//!   201s by default), or the metadata key, else 204 for DELETE, else 200.
//! - `DEIS_API_VERSION`, `DEIS_PLATFORM_VERSION` and the hyphenated
//!   `Deis-Api-Version`, `Deis-Platform-Version` on every response, with
//!   allow-all CORS exposing them.
//! - `GET /v2/`: 401 without credentials; with them, 200 `{}` once the
//!   [`GatewayOptions::auth_check_method`] RPC accepts the token.
//! - `GET|HEAD /healthz` → `OK`; `/readiness` → `OK` or 503 per
//!   [`GatewayOptions::readiness`].

mod codec;
mod error;
pub mod openapi;
mod request;
mod response;
mod rule;
mod service;
mod template;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tower::Service;

pub use codec::{DynamicCodec, DynamicDecoder, DynamicEncoder};
pub use error::GatewayError;
pub use response::HTTP_STATUS_METADATA;
pub use rule::Rule;
pub use service::{GatewayLayer, RestOrGrpc, serve_both};
pub use template::{Captures, PathTemplate, TemplateError, Variable};

use error::RestError;
use request::BodyFormat;
use response::JsonEncoder;
use template::RequestPath;

/// The error type of boxed services and bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future a [`Readiness`] check returns.
pub type ReadinessFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Decides what `/readiness` answers (e.g. "the database answers `SELECT 0`").
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> ReadinessFuture + Send + Sync>);

impl Readiness {
    /// A check that runs `check` on every `/readiness` request.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(check())))
    }

    async fn ready(&self) -> bool {
        (self.0)().await
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Readiness(..)")
    }
}

/// How the gateway behaves; [`Default`] is Deis v2.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Larger request bodies get 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// `DEIS_API_VERSION`. Default `2.3`.
    pub api_version: String,
    /// `DEIS_PLATFORM_VERSION`. Default this crate's version.
    pub platform_version: String,
    /// Status of successful answers by method full name
    /// (`deis.v2.AppsService.CreateApp` → 201). Default
    /// [`deis_success_statuses`].
    pub success_status: HashMap<String, u16>,
    /// 64-bit integers as JSON strings (canonical proto3 JSON) rather than
    /// numbers. Default `false`: Deis sends numbers, and our 64-bit fields
    /// are counters far below 2^53.
    pub stringify_64_bit_integers: bool,
    /// Cut timestamps to whole seconds, as Deis formats them. Default `true`.
    pub truncate_timestamps: bool,
    /// The RPC (`package.Service.Method`, empty request) that `GET /v2/`
    /// calls to check a token. Default `deis.v2.AuthService.Whoami`; when
    /// it is `None` or not in the pool, any `Authorization` header is enough.
    pub auth_check_method: Option<String>,
    /// What `/readiness` asks. Default: always ready.
    pub readiness: Option<Readiness>,
    /// Methods (full names) that need no credentials; the OpenAPI document
    /// marks them `security: []` and every other operation as needing the
    /// token. The services decide who may call what; this only describes
    /// it. Default [`deis_public_methods`].
    pub public_methods: Vec<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            api_version: "2.3".to_owned(),
            platform_version: env!("CARGO_PKG_VERSION").to_owned(),
            success_status: deis_success_statuses(),
            stringify_64_bit_integers: false,
            truncate_timestamps: true,
            auth_check_method: Some("deis.v2.AuthService.Whoami".to_owned()),
            readiness: None,
            public_methods: deis_public_methods(),
        }
    }
}

/// The calls of Deis's public API that need no token: registering, logging
/// in, and the platform facts a client reads before it logs in.
pub fn deis_public_methods() -> Vec<String> {
    [
        "deis.v2.AuthService.Register",
        "deis.v2.AuthService.Login",
        "deis.v2.PlatformService.GetPlatformInfo",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deis v2's non-200 answers to successful non-DELETE calls (DELETE is
/// 204 anyway), from its views: creations are 201, scaling is 204.
pub fn deis_success_statuses() -> HashMap<String, u16> {
    const CREATED: [&str; 15] = [
        "AuthService.Register",
        "UsersService.GrantAdmin",
        "AppsService.CreateApp",
        "ConfigService.SetConfig",
        "BuildsService.CreateBuild",
        "ReleasesService.RollbackRelease",
        "DomainsService.AddDomain",
        "DrainsService.AddDrain",
        "SettingsService.UpdateAppSettings",
        "SettingsService.AddWhitelist",
        "SettingsService.SetTls",
        "PermsService.GrantAppPerm",
        "KeysService.AddKey",
        "CertsService.CreateCert",
        "CertsService.AttachCert",
    ];
    let mut map: HashMap<String, u16> = CREATED.iter().map(|m| (format!("deis.v2.{m}"), 201)).collect();
    map.insert("deis.v2.PsService.ScalePods".to_owned(), 204);
    map
}

/// A REST/JSON front for gRPC services. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Vec<Rule>,
    options: GatewayOptions,
    encoder: JsonEncoder,
    api_version: HeaderValue,
    platform_version: HeaderValue,
    auth_check: Option<MethodDescriptor>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("rules", &self.inner.rules.len())
            .field("options", &self.inner.options)
            .finish()
    }
}

const HEALTHZ: &str = "/healthz";
const READINESS: &str = "/readiness";
const API_ROOT: &str = "/v2";

const DEIS_API_VERSION: HeaderName = HeaderName::from_static("deis_api_version");
const DEIS_PLATFORM_VERSION: HeaderName = HeaderName::from_static("deis_platform_version");
const DEIS_API_VERSION_ALIAS: HeaderName = HeaderName::from_static("deis-api-version");
const DEIS_PLATFORM_VERSION_ALIAS: HeaderName = HeaderName::from_static("deis-platform-version");

/// Request headers that describe the HTTP exchange rather than the call.
const NOT_FORWARDED: [&str; 16] = [
    "accept",
    "accept-encoding",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

enum Route<'a> {
    Found(&'a Rule, Captures),
    WrongMethod(Vec<Method>),
    NotFound,
}

impl Gateway {
    /// [`Gateway::new`] over every service of a protobuf `package` (say
    /// `deis.v2`): the server and the OpenAPI generator use this, so they
    /// route by the same rules.
    pub fn for_package(
        pool: &DescriptorPool,
        package: &str,
        options: GatewayOptions,
    ) -> Result<Self, GatewayError> {
        let services: Vec<String> = pool
            .services()
            .filter(|service| service.package_name() == package)
            .map(|service| service.full_name().to_owned())
            .collect();
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        Self::new(pool, &names, options)
    }

    /// Reads every method of `services` (full names, e.g.
    /// `deis.v2.AppsService`) that has a `google.api.http` rule.
    pub fn new(
        pool: &DescriptorPool,
        services: &[&str],
        options: GatewayOptions,
    ) -> Result<Self, GatewayError> {
        let rules = rule::read_rules(pool, services)?;
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value).map_err(|e| GatewayError::InvalidOption {
                name,
                reason: e.to_string(),
            })
        };
        let api_version = header("api_version", &options.api_version)?;
        let platform_version = header("platform_version", &options.platform_version)?;
        let auth_check = options.auth_check_method.as_deref().and_then(|name| {
            let (service, method) = name.rsplit_once('.')?;
            pool.get_service_by_name(service)?
                .methods()
                .find(|m| m.name() == method)
        });
        let encoder = JsonEncoder::new(options.stringify_64_bit_integers, options.truncate_timestamps);
        Ok(Self {
            inner: Arc::new(Inner {
                rules,
                options,
                encoder,
                api_version,
                platform_version,
                auth_check,
            }),
        })
    }

    /// The parsed bindings, in service and method order, each primary rule
    /// followed by its additional bindings.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// The options the gateway was built with.
    pub fn options(&self) -> &GatewayOptions {
        &self.inner.options
    }

    /// A tower layer serving REST beside gRPC (see [`GatewayLayer`]).
    pub fn layer(&self) -> GatewayLayer {
        GatewayLayer::new(self.clone())
    }

    /// A tower layer for a port that serves REST only: gRPC requests are
    /// refused with UNIMPLEMENTED (in gRPC form, so gRPC clients can say why).
    pub fn rest_only_layer(&self) -> GatewayLayer {
        GatewayLayer::rest_only(self.clone())
    }

    /// The JSON of a message as the gateway writes it (for per-endpoint hooks).
    pub fn to_json(&self, message: &DynamicMessage) -> Result<serde_json::Value, serde_json::Error> {
        self.inner.encoder.message(message)
    }

    /// Whether `request` is for the gateway rather than gRPC: its content
    /// type is not `application/grpc*`.
    pub fn is_rest<B>(request: &Request<B>) -> bool {
        !request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
    }

    /// The binding that answers `method` on `path` (HEAD finds GET), with
    /// the variables it captured.
    pub fn route(&self, method: &Method, path: &str) -> Option<(&Rule, Captures)> {
        match self.find(method, path) {
            Route::Found(rule, captures) => Some((rule, captures)),
            _ => None,
        }
    }

    /// Answers one HTTP/JSON request by calling `grpc` in process with a
    /// framed gRPC request. `grpc` is any service for
    /// `http::Request<tonic::body::Body>`, such as tonic's `Routes` or the
    /// server's layered routes. Never fails: errors become `{"detail": …}`.
    pub async fn handle<S, B, ResBody>(&self, request: Request<B>, grpc: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let head = request.method() == Method::HEAD;
        let mut response = match self.dispatch(request, grpc).await {
            Ok(response) => response,
            Err(error) => response::error(&error),
        };
        if head {
            *response.body_mut() = Body::empty();
        }
        self.decorate(response.headers_mut());
        response
    }

    async fn dispatch<S, B, ResBody>(&self, request: Request<B>, grpc: S) -> Result<Response<Body>, RestError>
    where
        S: Service<Request<Body>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let path = template::normalize(request.uri().path()).to_owned();
        let method = request.method().clone();
        if method == Method::OPTIONS {
            return self.preflight(request.headers(), &path);
        }
        if matches!(path.as_str(), HEALTHZ | READINESS | API_ROOT) {
            if method != Method::GET && method != Method::HEAD {
                return Err(RestError::method_not_allowed(&method, builtin_methods()));
            }
            return match path.as_str() {
                HEALTHZ => Ok(response::text(StatusCode::OK, "OK")),
                READINESS => Ok(self.readiness().await),
                _ => self.api_root(request, grpc).await,
            };
        }
        let (rule, captures) = match self.find(&method, &path) {
            Route::Found(rule, captures) => (rule, captures),
            Route::WrongMethod(allow) => return Err(RestError::method_not_allowed(&method, allow)),
            Route::NotFound => return Err(RestError::not_found()),
        };
        let (parts, body) = request.into_parts();
        let body = match rule.body() {
            Some(_) => {
                let bytes = read_body(&parts.headers, body, self.inner.options.max_body_bytes).await?;
                Some((BodyFormat::of(&parts.headers, &bytes)?, bytes))
            }
            None => None,
        };
        let message = request::build(rule, &captures, parts.uri.query(), body)?;
        let origin = origin(&parts);
        let grpc_request = grpc_request(parts, message);

        let mut client = grpc_client(grpc).await?;
        let path = PathAndQuery::try_from(rule.grpc_path())
            .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let codec = DynamicCodec::new(rule.method().output());
        if rule.is_streaming() {
            let response = client
                .server_streaming(grpc_request, path, codec)
                .await
                .map_err(|s| response::from_status(&s))?;
            Ok(response::ndjson(
                self.inner.encoder.clone(),
                rule.clone(),
                response.into_inner(),
            ))
        } else {
            let response = client
                .unary(grpc_request, path, codec)
                .await
                .map_err(|s| response::from_status(&s))?;
            let status = self.success_status(rule, response.metadata());
            if let Some(raw) = response::http_body(rule, response.get_ref()) {
                return Ok(raw.into_response(status));
            }
            let mut json = self.inner.encoder.body(rule, response.get_ref()).map_err(|e| {
                tracing::warn!(method = rule.method().full_name(), error = %e, "cannot encode a response as JSON");
                RestError::new(StatusCode::INTERNAL_SERVER_ERROR, "Server Error")
            })?;
            if let Some(origin) = origin {
                response::absolute_page_links(&mut json, &origin);
            }
            Ok(response::json(status, &json))
        }
    }

    fn find(&self, method: &Method, path: &str) -> Route<'_> {
        let request_path = RequestPath::new(path);
        // HEAD is answered by GET bindings unless one binds HEAD itself.
        let rank = |rule: &Rule| {
            if rule.http_method() == method {
                Some(1)
            } else if method == Method::HEAD && rule.http_method() == Method::GET {
                Some(0)
            } else {
                None
            }
        };
        let mut best: Option<(u8, &Rule, Captures)> = None;
        let mut allow: Vec<Method> = Vec::new();
        for rule in &self.inner.rules {
            let Some(captures) = rule.matches(&request_path) else {
                continue;
            };
            match rank(rule) {
                Some(r) => {
                    let better = best.as_ref().is_none_or(|(best_rank, b, _)| {
                        (r, &rule.specificity) > (*best_rank, &b.specificity)
                    });
                    if better {
                        best = Some((r, rule, captures));
                    }
                }
                None if !allow.contains(rule.http_method()) => {
                    allow.push(rule.http_method().clone());
                }
                None => {}
            }
        }
        match best {
            Some((_, rule, captures)) => Route::Found(rule, captures),
            None if allow.is_empty() => Route::NotFound,
            None => Route::WrongMethod(with_implied(allow)),
        }
    }

    fn preflight(&self, headers: &HeaderMap, path: &str) -> Result<Response<Body>, RestError> {
        let allow = if matches!(path, HEALTHZ | READINESS | API_ROOT) {
            builtin_methods()
        } else {
            let request_path = RequestPath::new(path);
            let mut allow: Vec<Method> = Vec::new();
            for rule in &self.inner.rules {
                if rule.matches(&request_path).is_some() && !allow.contains(rule.http_method()) {
                    allow.push(rule.http_method().clone());
                }
            }
            if allow.is_empty() {
                return Err(RestError::not_found());
            }
            with_implied(allow)
        };
        let mut response = response::empty(StatusCode::OK);
        let list = response::allow_list(&allow);
        let h = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&list) {
            h.insert(http::header::ALLOW, value.clone());
            h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        let requested = headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("authorization, content-type"));
        h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        h.insert(
            http::header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        Ok(response)
    }

    async fn readiness(&self) -> Response<Body> {
        let ready = match &self.inner.options.readiness {
            Some(check) => check.ready().await,
            None => true,
        };
        if ready {
            response::text(StatusCode::OK, "OK")
        } else {
            response::text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
    }

    /// Deis's `GET /v2/`: the CLI calls it to check a controller URL (401
    /// expected without a token) and a token.
    async fn api_root<S, B, ResBody>(&self, request: Request<B>, grpc: S) -> Result<Response<Body>, RestError>
    where
        S: Service<Request<Body>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        if !request.headers().contains_key(AUTHORIZATION) {
            return Err(RestError::new(
                StatusCode::UNAUTHORIZED,
                "Authentication credentials were not provided.",
            ));
        }
        if let Some(method) = &self.inner.auth_check {
            let (parts, _) = request.into_parts();
            let message = DynamicMessage::new(method.input());
            let path = PathAndQuery::try_from(format!(
                "/{}/{}",
                method.parent_service().full_name(),
                method.name()
            ))
            .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut client = grpc_client(grpc).await?;
            client
                .unary(
                    grpc_request(parts, message),
                    path,
                    DynamicCodec::new(method.output()),
                )
                .await
                .map_err(|s| response::from_status(&s))?;
        }
        Ok(response::json(StatusCode::OK, &serde_json::json!({})))
    }

    fn success_status(&self, rule: &Rule, metadata: &MetadataMap) -> StatusCode {
        match response::metadata_status(metadata) {
            Some(code) if code.is_success() => code,
            _ => self.default_success(rule),
        }
    }

    /// The status of a successful answer when the response does not say.
    pub(crate) fn default_success(&self, rule: &Rule) -> StatusCode {
        if let Some(code) = self
            .inner
            .options
            .success_status
            .get(rule.method().full_name())
            .and_then(|c| StatusCode::from_u16(*c).ok())
        {
            return code;
        }
        if rule.http_method() == Method::DELETE {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        }
    }

    fn decorate(&self, headers: &mut HeaderMap) {
        let inner = &self.inner;
        headers.insert(DEIS_API_VERSION, inner.api_version.clone());
        headers.insert(DEIS_PLATFORM_VERSION, inner.platform_version.clone());
        headers.insert(DEIS_API_VERSION_ALIAS, inner.api_version.clone());
        headers.insert(DEIS_PLATFORM_VERSION_ALIAS, inner.platform_version.clone());
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "DEIS_API_VERSION, DEIS_PLATFORM_VERSION, Deis-Api-Version, Deis-Platform-Version",
            ),
        );
    }
}

fn builtin_methods() -> Vec<Method> {
    vec![Method::GET, Method::HEAD, Method::OPTIONS]
}

/// `allow` plus HEAD when GET is there, plus OPTIONS.
fn with_implied(mut allow: Vec<Method>) -> Vec<Method> {
    if allow.contains(&Method::GET) && !allow.contains(&Method::HEAD) {
        allow.push(Method::HEAD);
    }
    if !allow.contains(&Method::OPTIONS) {
        allow.push(Method::OPTIONS);
    }
    allow
}

async fn grpc_client<S, ResBody>(grpc: S) -> Result<tonic::client::Grpc<S>, RestError>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    // The server applies its own message limits; the in-process client
    // must not add lower ones.
    let mut client = tonic::client::Grpc::new(grpc)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    client.ready().await.map_err(|e| {
        let e: BoxError = e.into();
        RestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The API is not ready: {e}"),
        )
    })?;
    Ok(client)
}

/// Reads at most `limit` bytes of body; more is 413.
async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, RestError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RestError::too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(RestError::too_large(limit)),
        Err(e) => Err(RestError::bad_request(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// The gRPC request: the message, the caller's headers as metadata
/// (`authorization` passes unchanged; `grpc-metadata-x` becomes `x`, but
/// neither `grpc-*` nor `grpc-metadata-grpc-*` reaches gRPC), and
/// the HTTP request's extensions (peer address, TLS info).
/// `scheme://host` of the request as its client addressed it (behind a
/// proxy, `X-Forwarded-Proto` says the scheme), for absolute page links.
fn origin(parts: &http::request::Parts) -> Option<String> {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str))?;
    // A Host header is client input: only a plain host[:port] goes into links.
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return None;
    }
    let forwarded = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok());
    let https = forwarded == Some("https") || parts.uri.scheme_str() == Some("https");
    let scheme = if https { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

fn grpc_request(parts: http::request::Parts, message: DynamicMessage) -> tonic::Request<DynamicMessage> {
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if NOT_FORWARDED.contains(&n) || n.ends_with("-bin") {
            continue;
        }
        if let Some(stripped) = n.strip_prefix("grpc-metadata-") {
            // Metadata, never gRPC's own headers: `grpc-metadata-grpc-encoding`
            // would make the server refuse the call (501), `…-grpc-timeout`
            // cut it short.
            if stripped.starts_with("grpc-") || NOT_FORWARDED.contains(&stripped) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(stripped.as_bytes()) {
                headers.append(name, value.clone());
            }
        } else if !n.starts_with("grpc-") {
            headers.append(name.clone(), value.clone());
        }
    }
    tonic::Request::from_parts(MetadataMap::from_headers(headers), parts.extensions, message)
}
