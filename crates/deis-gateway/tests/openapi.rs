//! The OpenAPI document of every deis.v2 service.

use std::collections::HashSet;

use deis_gateway::{Gateway, GatewayOptions, openapi};
use serde_json::Value as Json;

/// Every public service of `deis.v2`, read from the pool.
fn all_v2_services() -> Vec<String> {
    deis_proto::DESCRIPTOR_POOL
        .services()
        .filter(|s| s.package_name() == "deis.v2")
        .map(|s| s.full_name().to_owned())
        .collect()
}

fn gateway() -> Gateway {
    let services = all_v2_services();
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    Gateway::new(&deis_proto::DESCRIPTOR_POOL, &names, GatewayOptions::default())
        .unwrap_or_else(|e| panic!("the deis.v2 rules do not load: {e}"))
}

/// Every `$ref` in `json`.
fn refs<'a>(json: &'a Json, out: &mut Vec<&'a str>) {
    match json {
        Json::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s);
                    }
                } else {
                    refs(v, out);
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_rule_is_documented_once() {
    let gw = gateway();
    assert!(gw.rules().len() > 50, "only {} rules", gw.rules().len());
    let doc = openapi::document(&gw);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.0")));
    assert_eq!(doc["info"]["version"], "2.3");

    let paths = doc["paths"].as_object().unwrap_or_else(|| panic!("no paths"));
    let mut operations = 0;
    let mut ids = HashSet::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            panic!("{path}")
        };
        for (verb, op) in item {
            operations += 1;
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(op["responses"]["default"].is_object(), "{verb} {path}");
            // Every `{param}` of the path is a required path parameter.
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .inspect(|p| assert_eq!(p["required"], true))
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: Vec<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|s| s.split('}').next())
                .collect();
            assert_eq!(declared, in_path, "{verb} {path}");
        }
    }
    // Each binding exactly once: as many operations as rules, each findable.
    assert_eq!(operations, gw.rules().len());
    for rule in gw.rules() {
        let verb = rule.http_method().as_str().to_ascii_lowercase();
        assert!(
            doc["paths"][rule.template().openapi_path()][&verb].is_object(),
            "{verb} {} missing",
            rule.template()
        );
    }

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} dangles");
    }
}

#[test]
fn documents_deis_shapes() {
    let doc = openapi::document(&gateway());
    let schemas = &doc["components"]["schemas"];
    let app = &schemas["deis.v2.App"];
    assert_eq!(app["type"], "object");
    assert_eq!(app["description"], "An application.");
    assert_eq!(
        app["properties"]["structure"]["additionalProperties"]["type"],
        "integer"
    );
    assert_eq!(app["properties"]["created"]["format"], "date-time");
    assert_eq!(app["properties"]["created"]["nullable"], true);
    let page = &schemas["deis.v2.ListAppsResponse"]["properties"];
    assert_eq!(page["next"]["nullable"], true);
    assert_eq!(
        page["results"]["items"]["$ref"],
        "#/components/schemas/deis.v2.App"
    );

    let apps = &doc["paths"]["/v2/apps"];
    assert_eq!(apps["post"]["operationId"], "AppsService_CreateApp");
    assert_eq!(
        apps["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/deis.v2.App",
        "response_body is the app"
    );
    let query: Vec<&str> = apps["get"]["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(query, ["limit", "offset"]);
    assert!(doc["paths"]["/v2/apps/{id}"]["delete"]["responses"]["204"].is_object());
    assert_eq!(
        doc["paths"]["/v2/apps/{id}"]["get"]["parameters"][0]["schema"]["type"],
        "string"
    );
    let follow = &doc["paths"]["/v2/apps/{app}/logs/follow"]["get"];
    assert!(follow["responses"]["200"]["content"]["application/x-ndjson"].is_object());
    // `body: "*"` without the fields the path binds.
    let run =
        &doc["paths"]["/v2/apps/{app}/run"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(run["properties"]["command"].is_object());
    assert!(run["properties"]["app"].is_null());
    // `body: "structure"`: the map itself.
    let scale = &doc["paths"]["/v2/apps/{app}/scale"]["post"];
    assert_eq!(
        scale["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"]["type"],
        "integer"
    );
    assert!(scale["responses"]["204"].is_object());
    // additional_bindings get their own operation ids.
    assert_eq!(
        doc["paths"]["/v2/apps/{app}/pods/{type}/{name}"]["get"]["operationId"],
        "PsService_ListPods3"
    );
    assert_eq!(
        doc["paths"]["/v2/auth/login/"]["post"]["operationId"],
        "AuthService_Login"
    );
    // Comments become descriptions.
    assert_eq!(
        apps["get"]["summary"],
        "Lists the apps the caller owns or collaborates on (every app for administrators)."
    );
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    assert!(text.len() > 10_000);
}

#[test]
fn only_the_public_calls_go_without_the_token() {
    let doc = openapi::document(&gateway());
    assert_eq!(doc["security"], serde_json::json!([{ "token": [] }]));
    let mut public = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (verb, op) in item.as_object().into_iter().flatten() {
            if let Some(security) = op.get("security") {
                assert_eq!(security, &serde_json::json!([]), "{verb} {path}");
                public.push(op["operationId"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "AuthService_Login",
            "AuthService_Register",
            "PlatformService_GetPlatformInfo"
        ]
    );

    // An option, for gateways over other services.
    let services = all_v2_services();
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let options = GatewayOptions {
        public_methods: Vec::new(),
        ..GatewayOptions::default()
    };
    let gw = Gateway::new(&deis_proto::DESCRIPTOR_POOL, &names, options)
        .unwrap_or_else(|e| panic!("the deis.v2 rules do not load: {e}"));
    let doc = openapi::document(&gw);
    assert!(doc["paths"]["/v2/info"]["get"].get("security").is_none());
}
