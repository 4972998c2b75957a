//! Path templates, table-driven, with the examples of `google/api/http.proto`.

use deis_gateway::PathTemplate;

/// (template, request path, expected captures; `None`: no match)
type Case = (
    &'static str,
    &'static str,
    Option<&'static [(&'static str, &'static str)]>,
);

fn parse(template: &str) -> PathTemplate {
    match PathTemplate::parse(template) {
        Ok(t) => t,
        Err(e) => panic!("{template}: {e}"),
    }
}

#[test]
fn matches_the_http_proto_examples() {
    let cases: &[Case] = &[
        // `get: "/v1/{name=messages/*}"`
        (
            "/v1/{name=messages/*}",
            "/v1/messages/123456",
            Some(&[("name", "messages/123456")]),
        ),
        ("/v1/{name=messages/*}", "/v1/messages/123456/x", None),
        ("/v1/{name=messages/*}", "/v1/messages", None),
        ("/v1/{name=messages/*}", "/v1/other/123456", None),
        // `get: "/v1/messages/{message_id}"`
        (
            "/v1/messages/{message_id}",
            "/v1/messages/123456",
            Some(&[("message_id", "123456")]),
        ),
        // `get: "/v1/messages/{message_id}/{sub.subfield}"`
        (
            "/v1/messages/{message_id}/{sub.subfield}",
            "/v1/messages/123456/foo",
            Some(&[("message_id", "123456"), ("sub.subfield", "foo")]),
        ),
        // `get: "/v1/users/{user_id}/messages/{message_id}"` (additional_bindings example)
        (
            "/v1/users/{user_id}/messages/{message_id}",
            "/v1/users/me/messages/123456",
            Some(&[("user_id", "me"), ("message_id", "123456")]),
        ),
        (
            "/v1/{name=projects/*/topics/*}",
            "/v1/projects/p1/topics/t1",
            Some(&[("name", "projects/p1/topics/t1")]),
        ),
        // `{x=**}`: zero or more segments, slashes kept.
        (
            "/v1/files/{path=**}",
            "/v1/files/a/b/c",
            Some(&[("path", "a/b/c")]),
        ),
        ("/v1/files/{path=**}", "/v1/files/a", Some(&[("path", "a")])),
        ("/v1/files/{path=**}", "/v1/files", Some(&[("path", "")])),
        (
            "/v1/{name=shelves/*/books/**}",
            "/v1/shelves/s1/books/b/c",
            Some(&[("name", "shelves/s1/books/b/c")]),
        ),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/s1/other/b", None),
        // Custom verbs.
        (
            "/v1/{name=operations/**}:cancel",
            "/v1/operations/a/b:cancel",
            Some(&[("name", "operations/a/b")]),
        ),
        ("/v1/{name=operations/**}:cancel", "/v1/operations/a/b", None),
        ("/v1/{name=operations/**}:cancel", "/v1/operations/a/b:undo", None),
        ("/v1/messages:batchGet", "/v1/messages:batchGet", Some(&[])),
        ("/v1/messages:batchGet", "/v1/messages", None),
        (
            "/v1/{parent=*}/items:search",
            "/v1/p/items:search",
            Some(&[("parent", "p")]),
        ),
        // Plain wildcards bind nothing.
        ("/v1/*/x", "/v1/a/x", Some(&[])),
        ("/v1/**", "/v1/a/b/c", Some(&[])),
        // Deis: an optional trailing slash, on either side.
        ("/v2/apps/{id}", "/v2/apps/foo/", Some(&[("id", "foo")])),
        ("/v2/apps/{id}", "/v2/apps/foo", Some(&[("id", "foo")])),
        ("/v2/auth/login/", "/v2/auth/login", Some(&[])),
        ("/v2/auth/login/", "/v2/auth/login/", Some(&[])),
        ("/v2/apps", "/v2/apps/", Some(&[])),
        // Percent-decoding, per segment.
        ("/v2/apps/{id}", "/v2/apps/a%20b", Some(&[("id", "a b")])),
        (
            "/v2/domains/{domain}",
            "/v2/domains/%C3%A9t%C3%A9.fr",
            Some(&[("domain", "été.fr")]),
        ),
        (
            "/v1/files/{path=**}",
            "/v1/files/a%2Fb/c",
            Some(&[("path", "a/b/c")]),
        ),
        // Not UTF-8 after decoding: no match rather than an error.
        ("/v2/apps/{id}", "/v2/apps/%FF", None),
        // Empty segments never bind a variable.
        ("/v2/apps/{id}", "/v2/apps//", None),
        ("/v2/apps/{id}/config", "/v2/apps//config", None),
        // Literals are exact.
        ("/v2/apps", "/v2/app", None),
        ("/v2/apps", "/v2/apps/x", None),
        ("/v2/apps", "/v2/Apps", None),
    ];
    for (template, path, want) in cases {
        let got = parse(template).match_path(path);
        let want: Option<Vec<(String, String)>> = want.map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        });
        assert_eq!(got, want, "{template} against {path}");
    }
}

#[test]
fn parses_structure() {
    let t = parse("/v1/{name=operations/**}:cancel");
    assert_eq!(t.verb(), Some("cancel"));
    let vars: Vec<&str> = t.variables().iter().map(|v| v.field_path()).collect();
    assert_eq!(vars, ["name"]);
    assert_eq!(t.openapi_path(), "/v1/{name}:cancel");
    let var = &t.variables()[0];
    assert_eq!(t.variable_pattern(var).as_deref(), Some("operations/.*"));

    let t = parse("/v1/messages/{message_id}/{sub.subfield}");
    let vars: Vec<&str> = t.variables().iter().map(|v| v.field_path()).collect();
    assert_eq!(vars, ["message_id", "sub.subfield"]);
    assert_eq!(t.variable_pattern(&t.variables()[0]), None);
    assert_eq!(t.as_str(), "/v1/messages/{message_id}/{sub.subfield}");
}

#[test]
fn rejects_malformed_templates() {
    let bad = [
        "",
        "/",
        "v1/x",
        "/v1//x",
        "/v1/{name",
        "/v1/{name=}",
        "/v1/{a={b}}",
        "/v1/{1bad}",
        "/v1/{a.}",
        "/v1/{x}/{x}",
        "/v1/**/x",
        "/v1/{p=**}/x",
        "/v1/x:",
        "/v1/x:a/b",
        "/v1/a*b",
        "/v1/x}",
    ];
    for template in bad {
        assert!(
            PathTemplate::parse(template).is_err(),
            "`{template}` should not parse"
        );
    }
}
