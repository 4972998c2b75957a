//! Transcoding features the deis.v2 protos do not use (nested field paths,
//! `{x=**}`, custom verbs, enums, 64-bit integers, repeated query
//! parameters), against an echo service over a descriptor built in the
//! test. The service answers with its request, so the JSON shows exactly
//! the message the gateway built.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use deis_gateway::{DynamicCodec, Gateway, GatewayOptions};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::{Value as Json, json};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

fn field(name: &str, number: u32, kind: &str) -> Json {
    json!({ "name": name, "number": number, "label": "LABEL_OPTIONAL", "type": kind, "jsonName": camel(name) })
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn method(name: &str, http: Json) -> Json {
    json!({
        "name": name,
        "inputType": ".test.v1.EchoRequest",
        "outputType": ".test.v1.EchoRequest",
        "options": { "[google.api.http]": http },
    })
}

/// `test.v1`, written as a JSON `FileDescriptorProto` with the HTTP rules
/// as extension options, added to the deis pool (which has google.api).
fn pool() -> DescriptorPool {
    let file = json!({
        "name": "test/v1/echo.proto",
        "package": "test.v1",
        "dependency": ["google/api/annotations.proto"],
        "syntax": "proto3",
        "enumType": [{
            "name": "Color",
            "value": [
                { "name": "COLOR_UNSPECIFIED", "number": 0 },
                { "name": "RED", "number": 1 },
                { "name": "GREEN", "number": 2 },
            ],
        }],
        "messageType": [
            { "name": "Sub", "field": [field("subfield", 1, "TYPE_STRING"), field("big", 2, "TYPE_INT64")] },
            {
                "name": "EchoRequest",
                "field": [
                    field("name", 1, "TYPE_STRING"),
                    field("message_id", 2, "TYPE_STRING"),
                    { "name": "sub", "number": 3, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE",
                      "typeName": ".test.v1.Sub", "jsonName": "sub" },
                    { "name": "tags", "number": 4, "label": "LABEL_REPEATED", "type": "TYPE_STRING", "jsonName": "tags" },
                    field("revision", 5, "TYPE_INT32"),
                    { "name": "color", "number": 6, "label": "LABEL_OPTIONAL", "type": "TYPE_ENUM",
                      "typeName": ".test.v1.Color", "jsonName": "color" },
                    { "name": "labels", "number": 7, "label": "LABEL_REPEATED", "type": "TYPE_MESSAGE",
                      "typeName": ".test.v1.EchoRequest.LabelsEntry", "jsonName": "labels" },
                    field("flag", 8, "TYPE_BOOL"),
                    field("count", 9, "TYPE_UINT64"),
                    { "name": "note", "number": 10, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING",
                      "jsonName": "note", "oneofIndex": 0, "proto3Optional": true },
                ],
                "nestedType": [{
                    "name": "LabelsEntry",
                    "field": [field("key", 1, "TYPE_STRING"), field("value", 2, "TYPE_STRING")],
                    "options": { "mapEntry": true },
                }],
                "oneofDecl": [{ "name": "_note" }],
            },
        ],
        "service": [{
            "name": "Echo",
            "method": [
                method("Get", json!({
                    "get": "/v1/{name=messages/*}",
                    "additionalBindings": [
                        { "get": "/v1/messages/{message_id}/{sub.subfield}" },
                        { "post": "/v1/messages/{message_id}", "body": "sub" },
                    ],
                })),
                method("Special", json!({ "get": "/v1/messages/special/{sub.subfield}" })),
                method("Files", json!({ "get": "/v1/files/{name=**}" })),
                method("Cancel", json!({ "post": "/v1/{name=operations/**}:cancel", "body": "*" })),
                method("Patch", json!({
                    "patch": "/v1/messages/{message_id}",
                    "body": "*",
                    "responseBody": "sub",
                })),
                method("Custom", json!({
                    "custom": { "kind": "REPORT", "path": "/v1/reports/{name}" },
                })),
            ],
        }],
    });
    let mut pool = deis_proto::DESCRIPTOR_POOL.clone();
    let Some(desc) = pool.get_message_by_name("google.protobuf.FileDescriptorProto") else {
        panic!("descriptor.proto is not in the deis pool");
    };
    let message = DynamicMessage::deserialize(desc, file).unwrap_or_else(|e| panic!("{e}"));
    pool.decode_file_descriptor_proto(prost::Message::encode_to_vec(&message).as_slice())
        .unwrap_or_else(|e| panic!("{e}"));
    pool
}

/// A gRPC service answering every method with its request.
#[derive(Clone)]
struct Echo(MessageDescriptor);

impl NamedService for Echo {
    const NAME: &'static str = "test.v1.Echo";
}

struct Reply;

impl tonic::server::UnaryService<DynamicMessage> for Reply {
    type Response = DynamicMessage;
    type Future = Ready<Result<tonic::Response<DynamicMessage>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

impl tower::Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let codec = DynamicCodec::new(self.0.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(Reply, request).await)
        })
    }
}

struct Harness {
    gateway: Gateway,
    routes: Routes,
}

fn harness() -> Harness {
    let pool = pool();
    let gateway =
        Gateway::new(&pool, &["test.v1.Echo"], GatewayOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let Some(desc) = pool.get_message_by_name("test.v1.EchoRequest") else {
        panic!("no EchoRequest");
    };
    Harness {
        gateway,
        routes: Routes::new(Echo(desc)),
    }
}

impl Harness {
    async fn call(&self, method: Method, uri: &str, content_type: &str, body: &str) -> (StatusCode, Json) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap_or_else(|e| panic!("{e}"));
        let response = self.gateway.handle(request, self.routes.clone()).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        (status, json)
    }

    async fn get(&self, uri: &str) -> Json {
        let (status, json) = self.call(Method::GET, uri, "application/json", "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {json}");
        json
    }
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn rules_are_read_from_the_descriptor() {
    let h = harness();
    let rules: Vec<String> = h
        .gateway
        .rules()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} body={:?} response_body={:?} #{}",
                r.method().name(),
                r.http_method(),
                r.template(),
                r.body(),
                r.response_body(),
                r.binding()
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            "Get GET /v1/{name=messages/*} body=None response_body=None #0",
            "Get GET /v1/messages/{message_id}/{sub.subfield} body=None response_body=None #1",
            "Get POST /v1/messages/{message_id} body=Some(\"sub\") response_body=None #2",
            "Special GET /v1/messages/special/{sub.subfield} body=None response_body=None #0",
            "Files GET /v1/files/{name=**} body=None response_body=None #0",
            "Cancel POST /v1/{name=operations/**}:cancel body=Some(\"*\") response_body=None #0",
            "Patch PATCH /v1/messages/{message_id} body=Some(\"*\") response_body=Some(\"sub\") #0",
            "Custom REPORT /v1/reports/{name} body=None response_body=None #0",
        ]
    );
}

#[tokio::test]
async fn variables_nested_fields_and_query_parameters() {
    let h = harness();
    let got = h.get("/v1/messages/123456?revision=2&sub.subfield=foo").await;
    assert_eq!(got["name"], "messages/123456");
    assert_eq!(got["revision"], 2);
    assert_eq!(got["sub"], json!({"subfield": "foo", "big": 0}));
    // Defaults are all present; unset optional and message fields are null.
    assert_eq!(got["message_id"], "");
    assert_eq!(got["note"], Json::Null);
    assert_eq!(got["color"], "COLOR_UNSPECIFIED");
    assert_eq!(got["tags"], json!([]));
    assert_eq!(got["labels"], json!({}));
    assert_eq!(h.get("/v1/messages/1").await["sub"], Json::Null);

    // additional_bindings with a nested path field.
    let got = h.get("/v1/messages/123456/foo").await;
    assert_eq!(
        (got["message_id"].as_str(), got["sub"]["subfield"].as_str()),
        (Some("123456"), Some("foo"))
    );

    // A literal beats a variable in the same position.
    let got = h.get("/v1/messages/special/x").await;
    assert_eq!(
        (got["message_id"].as_str(), got["sub"]["subfield"].as_str()),
        (Some(""), Some("x"))
    );

    // Repeated keys accumulate; enums by name or number; booleans as forms
    // spell them; 64-bit integers as numbers; nested query names in either case.
    let got = h
        .get("/v1/messages/1?tags=a&tags=b&color=GREEN&flag=on&count=18446744073709551615&sub.big=-5&note=hi")
        .await;
    assert_eq!(got["tags"], json!(["a", "b"]));
    assert_eq!(got["color"], "GREEN");
    assert_eq!(got["flag"], true);
    assert_eq!(got["count"], json!(18_446_744_073_709_551_615_u64));
    assert_eq!(got["sub"]["big"], -5);
    assert_eq!(got["note"], "hi");
    assert_eq!(
        h.get("/v1/messages/1?color=1&tags=%5B%22x%22%2C%22y%22%5D").await["tags"],
        json!(["x", "y"])
    );
    assert_eq!(h.get("/v1/messages/1?color=1").await["color"], "RED");
    // A query parameter cannot override a path variable.
    assert_eq!(h.get("/v1/messages/1?name=other").await["name"], "messages/1");
    // Maps from JSON text.
    assert_eq!(
        h.get("/v1/messages/1?labels=%7B%22k%22%3A%22v%22%7D").await["labels"],
        json!({"k": "v"})
    );
}

#[tokio::test]
async fn multi_segment_variables_and_custom_verbs() {
    let h = harness();
    assert_eq!(h.get("/v1/files/a/b/c.txt").await["name"], "a/b/c.txt");
    assert_eq!(h.get("/v1/files").await["name"], "");
    assert_eq!(h.get("/v1/files/a%20b/c").await["name"], "a b/c");

    let (status, got) = h
        .call(
            Method::POST,
            "/v1/operations/abc/def:cancel",
            JSON,
            r#"{"tags":["x"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "operations/abc/def");
    assert_eq!(got["tags"], json!(["x"]));
    // Without the verb, nothing answers.
    let (status, _) = h.call(Method::POST, "/v1/operations/abc", JSON, "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The path wins over the body.
    let (_, got) = h
        .call(
            Method::POST,
            "/v1/operations/x:cancel",
            JSON,
            r#"{"name":"evil","messageId":"m"}"#,
        )
        .await;
    assert_eq!(
        (got["name"].as_str(), got["message_id"].as_str()),
        (Some("operations/x"), Some("m"))
    );

    // `custom` kinds.
    let (status, got) = h
        .call(
            Method::from_bytes(b"REPORT").unwrap_or_default(),
            "/v1/reports/r1",
            JSON,
            "",
        )
        .await;
    assert_eq!((status, got["name"].as_str()), (StatusCode::OK, Some("r1")));
}

#[tokio::test]
async fn body_fields_and_response_bodies() {
    let h = harness();
    // `body: "sub"`: the body is that field; 64-bit integers as strings or numbers.
    let (status, got) = h
        .call(
            Method::POST,
            "/v1/messages/m1",
            JSON,
            r#"{"subfield":"s","big":"12"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["message_id"], "m1");
    assert_eq!(got["sub"], json!({"subfield": "s", "big": 12}));
    // Query parameters fill the fields outside the body, not the body field.
    let (_, got) = h
        .call(
            Method::POST,
            "/v1/messages/m1?revision=4&sub.subfield=q",
            JSON,
            r#"{"subfield":"s"}"#,
        )
        .await;
    assert_eq!(
        (got["revision"].as_i64(), got["sub"]["subfield"].as_str()),
        (Some(4), Some("s"))
    );

    // `response_body: "sub"`.
    let (_, got) = h
        .call(
            Method::PATCH,
            "/v1/messages/m1",
            JSON,
            r#"{"sub":{"subfield":"only"}}"#,
        )
        .await;
    assert_eq!(got, json!({"subfield": "only", "big": 0}));
}

#[tokio::test]
async fn form_bodies() {
    let h = harness();
    let (status, got) = h
        .call(
            Method::POST,
            "/v1/operations/x:cancel",
            FORM,
            "tags=a&tags=b&sub.subfield=q+r&labels=%7B%22k%22%3A%22v%22%7D&revision=3&flag=true&unknown=1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["tags"], json!(["a", "b"]));
    assert_eq!(got["sub"]["subfield"], "q r");
    assert_eq!(got["labels"], json!({"k": "v"}));
    assert_eq!(
        (got["revision"].as_i64(), got["flag"].as_bool()),
        (Some(3), Some(true))
    );
    // A form for a message body field names fields inside it.
    let (_, got) = h
        .call(Method::POST, "/v1/messages/m", FORM, "subfield=z&big=9")
        .await;
    assert_eq!(got["sub"], json!({"subfield": "z", "big": 9}));
}

#[tokio::test]
async fn errors_name_nested_fields() {
    let h = harness();
    let cases = [
        (JSON, r#"{"sub":{"big":"many"}}"#, "sub.big: "),
        (JSON, r#"{"tags":"notalist"}"#, "tags: "),
        (JSON, r#"{"revision":1.5}"#, "revision: "),
        (JSON, r#"{"count":-1}"#, "count: "),
        (FORM, "revision=x", "revision: "),
        (FORM, "sub=notjson", "sub: "),
        (FORM, "labels=[1]", "labels: "),
    ];
    for (content_type, body, prefix) in cases {
        let (status, got) = h
            .call(Method::POST, "/v1/operations/x:cancel", content_type, body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let detail = got["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with(prefix), "{body}: {detail}");
    }
    // Bad values in path variables are 400 too; bad encodings match nothing.
    let (status, _) = h.call(Method::GET, "/v1/messages/%FF", JSON, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
