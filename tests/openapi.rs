//! The OpenAPI document (`GET /api/openapi.json`) tells an integrator the truth: it is
//! OpenAPI 3.1 whose every `$ref` resolves; every route sift serves under `/api` (and
//! `/metrics`, `/healthz`, `/readyz`) is in it with its method, and no other method is
//! served on its paths; each route answers behind the role the document names (no token:
//! 401, a lesser role: 403, that role: served); and no route in `src/api/` can be added
//! outside the document (a source scan refuses plain `.route(`/`.nest(` there).
//!
//! The routes are enumerated from the code that builds the router
//! (`sift::api::openapi_document()`, collected by the same `OpenApiRouter` calls that add
//! the routes) and probed on a running server.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Backend, Db, Method, Sift};
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-openapi";
const OPERATOR: &str = "operator-token-openapi";
const ADMIN: &str = "admin-token-openapi";

const ROLES: [(&str, &str); 3] = [("viewer", VIEWER), ("operator", OPERATOR), ("admin", ADMIN)];
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn rank(role: &str) -> usize {
    ROLES
        .iter()
        .position(|(r, _)| *r == role)
        .unwrap_or_else(|| panic!("unknown role {role:?} in the document"))
}

/// One documented operation.
#[derive(Debug)]
struct Op {
    path: String,
    method: &'static str,
    /// `None`: open to anyone.
    role: Option<String>,
    basic: bool,
}

/// The operations of a document, with the role each names in its security requirement.
fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let (mut role, mut basic) = (None, false);
            for req in op["security"].as_array().into_iter().flatten() {
                for (scheme, scopes) in req.as_object().expect("security requirement") {
                    let r = scopes[0].as_str().expect("a role as the scope").to_string();
                    assert!(
                        role.as_ref().is_none_or(|x| *x == r),
                        "{method} {path}: two roles"
                    );
                    role = Some(r);
                    basic |= scheme == "basic";
                }
            }
            ops.push(Op {
                path: path.clone(),
                method,
                role,
                basic,
            });
        }
    }
    ops
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("method")
}

/// A concrete path for a template: every parameter an incident-like id (a handler may
/// answer 400 or 404 to it; what matters is that the route is found).
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').expect("closing brace") + i;
        out.push_str("INC0000001");
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    out
}

/// Status of one request, reading the body only when it is a 404 (to tell a handler's
/// "not found" from the router's "no route"); an event stream is never read.
async fn probe(s: &Sift, op_method: &str, path: &str, auth: Auth<'_>) -> (u16, String) {
    let mut rb = s
        .client
        .request(method(op_method), s.url(path))
        .timeout(std::time::Duration::from_secs(10));
    rb = match auth {
        Auth::None => rb,
        Auth::Bearer(t) => rb.bearer_auth(t),
        Auth::Basic(t) => rb.basic_auth("alertmanager", Some(t)),
    };
    if op_method != "get" && op_method != "delete" {
        rb = rb.json(&json!({}));
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{op_method} {path}: {e}; log:\n{}", s.log()));
    let status = r.status().as_u16();
    let text = if status == 404 || status == 405 {
        r.text().await.unwrap_or_default()
    } else {
        String::new()
    };
    (status, text)
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str),
}

/// Every `"$ref"` in `v`, as found.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().expect("$ref is a string"));
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_served_complete_and_true() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let tokens = json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": OPERATOR, "role": "operator"},
        {"token": ADMIN, "role": "admin"},
    ])
    .to_string();
    let s = Sift::start(&db, &[("SIFT_AUTH__TOKENS", &tokens)]);

    // Served open, as JSON, and the same document the router's code collects.
    let r = s.send(s.request(Method::GET, "/api/openapi.json")).await;
    s.expect(&r, 200, "GET /api/openapi.json without a token");
    let doc = r.body;
    let built = serde_json::to_value(sift::api::openapi_document()).expect("document");
    assert_eq!(
        doc, built,
        "the served document differs from the one the router code builds"
    );

    // OpenAPI 3.1, and every $ref points at something in the document.
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "the document names no schema");
    for r in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {r} is not local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "$ref {r} resolves to nothing"
        );
    }

    let ops = operations(&doc);
    let served: BTreeSet<(String, &str)> = ops.iter().map(|o| (o.path.clone(), o.method)).collect();

    // The routes a user of sift relies on are there with their methods (a sample that
    // names each group; completeness is the probes' and the scan's job below).
    for (path, m) in [
        ("/api/v1/alerts/alertmanager", "post"),
        ("/api/v2/alerts", "post"),
        ("/api/v1/alerts/pagerduty", "post"),
        ("/api/v1/incidents", "get"),
        ("/api/v1/incidents/{id}", "get"),
        ("/api/v1/incidents/{id}", "patch"),
        ("/api/v1/incidents/{id}/merge", "post"),
        ("/api/v1/incidents/{id}/split", "post"),
        ("/api/v1/feedback", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/cmdb/cis", "put"),
        ("/api/v1/changes", "post"),
        ("/api/v1/problems/{id}", "patch"),
        ("/api/v1/subscriptions/{name}", "delete"),
        ("/api/v1/outbox/{id}/retry", "post"),
        ("/api/openapi.json", "get"),
        ("/metrics", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            served.contains(&(path.to_string(), m)),
            "{m} {path} is not in the document"
        );
    }

    // Each operation says what it answers: a success, the error shape for its errors,
    // its path parameters.
    for o in &ops {
        let op = &doc["paths"][&o.path][o.method];
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{} {}: no success response",
            o.method,
            o.path
        );
        for (code, resp) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                assert!(
                    schema.as_str().is_some_and(
                        |s| s.ends_with("/ErrorBody") || s.ends_with("/PagerDutyError")
                    ),
                    "{} {} {code}: no error shape ({resp})",
                    o.method,
                    o.path
                );
            }
        }
        assert!(
            responses.contains_key("503"),
            "{} {}: no 503",
            o.method,
            o.path
        );
        if op.get("requestBody").is_some() {
            assert!(
                responses.contains_key("413"),
                "{} {}: no 413",
                o.method,
                o.path
            );
        }
        if o.role.is_some() {
            for code in ["401", "403"] {
                assert!(
                    responses.contains_key(code),
                    "{} {}: no {code}",
                    o.method,
                    o.path
                );
            }
            let description = op["description"].as_str().unwrap_or_default();
            let role = o.role.as_deref().unwrap_or_default();
            assert!(
                description.contains(&format!("Role: {role}")),
                "{} {}: the description does not name the role {role}",
                o.method,
                o.path
            );
        }
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> = o
            .path
            .split('{')
            .skip(1)
            .filter_map(|x| x.split('}').next())
            .collect();
        assert_eq!(
            declared, in_template,
            "{} {}: path parameters",
            o.method, o.path
        );
    }

    // Every documented route is routed, behind the role it documents.
    for o in &ops {
        let path = concrete(&o.path);
        let what = format!("{} {path}", o.method.to_ascii_uppercase());
        let routed = |(status, text): &(u16, String)| {
            *status != 405 && !(*status == 404 && text.contains("no route for"))
        };
        match &o.role {
            None => {
                let got = probe(&s, o.method, &path, Auth::None).await;
                assert!(
                    routed(&got) && got.0 != 401 && got.0 != 403,
                    "{what} (open): {got:?}"
                );
            }
            Some(role) => {
                let got = probe(&s, o.method, &path, Auth::None).await;
                assert_eq!(got.0, 401, "{what} without a token: {got:?}");
                for (r, token) in ROLES {
                    let got = probe(&s, o.method, &path, Auth::Bearer(token)).await;
                    if rank(r) < rank(role) {
                        assert_eq!(got.0, 403, "{what} as {r} (needs {role}): {got:?}");
                    } else {
                        assert!(
                            routed(&got) && got.0 != 401 && got.0 != 403,
                            "{what} as {r} (needs {role}): {got:?}"
                        );
                    }
                }
                if o.basic {
                    let got = probe(&s, o.method, &path, Auth::Basic(ADMIN)).await;
                    assert!(
                        routed(&got) && got.0 != 401,
                        "{what} with basic auth: {got:?}"
                    );
                }
            }
        }
    }

    // On a documented path, a method the document does not name is not served.
    let paths: BTreeSet<&String> = ops.iter().map(|o| &o.path).collect();
    for p in paths {
        for m in METHODS {
            if served.contains(&(p.clone(), m)) {
                continue;
            }
            let got = probe(&s, m, &concrete(p), Auth::Bearer(ADMIN)).await;
            assert_eq!(
                got.0, 405,
                "{} {p} is served but not documented: {got:?}",
                m
            );
        }
    }

    // An error answer has the documented shape.
    let r = s
        .call(Method::GET, "/api/v1/incidents?limit=0", Some(VIEWER), None)
        .await;
    s.expect(&r, 400, "limit=0");
    let keys: BTreeSet<&str> = r
        .body
        .as_object()
        .expect("error object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["detail", "error"]), "{}", r.text);
}

/// A plain axum `.route(`/`.nest(` in `src/api/` would serve a route the document does
/// not show. The operator console (`src/console/`) is exempt: HTML pages, not the API,
/// merged in through `api::router_with`.
#[test]
fn no_route_in_src_api_bypasses_the_document() {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src/api") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(files.len() > 3, "src/api has only {files:?}");
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for pat in [".route(", ".nest(", ".route_service(", ".nest_service("] {
                if code.contains(pat) {
                    bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "routes added outside the OpenAPI document (use `.routes(routes!(handler))` with \
         `#[utoipa::path]`):\n{}",
        bad.join("\n")
    );
}
