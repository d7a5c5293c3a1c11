//! Input validation through the real gateway (C16 C17 C18 C19 C20): the
//! attacks that work on the bare naive Express fixture, refused through
//! Portcullis; valid requests forwarded byte for byte; the fixture's
//! OpenAPI document as the route table.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, clippy::type_complexity, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use express_app::express;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

fn req(method: &str, path: &str, ct: Option<&str>, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path).header("host", "api.test");
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(body.into())).unwrap()
}

fn json_post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    req("POST", path, Some("application/json"), body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzipped(path: &str, data: &[u8]) -> Request<Full<Bytes>> {
    let mut r = json_post(path, gzip(data));
    r.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    r
}

fn errors(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (e["path"].as_str().unwrap().to_owned(), e["reason"].as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn polluted(app: SocketAddr) -> bool {
    let (_, body) = send(app, json_post("/api/settings", "{}")).await;
    json(&body)["polluted"] == true
}

const POLLUTE: &str = r#"{"__proto__":{"polluted":true}}"#;

#[tokio::test]
async fn c18_pollution_that_works_on_bare_express_is_refused() {
    // The bare fixture is polluted by a plain payload...
    let bare = express().await;
    let (_, body) = send(bare.addr, json_post("/api/settings", POLLUTE)).await;
    assert_eq!(
        json(&body)["polluted"],
        true,
        "the fixture must be vulnerable for this test to mean anything"
    );
    // ...and by a gzip-compressed one, which body-parser inflates.
    let bare = express().await;
    send(bare.addr, gzipped("/api/settings", POLLUTE.as_bytes())).await;
    assert!(polluted(bare.addr).await, "body-parser inflates gzip request bodies");

    let app = express().await;
    let gw = gateway(app.addr, "").await;
    let attacks: Vec<Request<Full<Bytes>>> = vec![
        json_post("/api/settings", POLLUTE),
        json_post("/api/settings", r#"{"\u005f_proto__":{"polluted":true}}"#),
        json_post("/api/settings", r#"{"theme":"dark","nested":{"__proto__":{"polluted":true}}}"#),
        json_post("/api/settings", r#"{"constructor":{"prototype":{"polluted":true}}}"#),
        json_post("/api/settings", r#"[{"__proto__":{"polluted":true}}]"#),
        req("POST", "/api/settings", Some("application/json; charset=utf-8"), POLLUTE),
        req("POST", "/api/settings", Some("Application/JSON"), POLLUTE),
        gzipped("/api/settings", POLLUTE.as_bytes()),
        req("POST", "/api/settings", Some("application/x-www-form-urlencoded"), "__proto__[polluted]=true"),
        req(
            "POST",
            "/api/settings",
            Some("application/x-www-form-urlencoded"),
            "a[constructor][prototype][polluted]=1",
        ),
        req("POST", "/api/settings?__proto__[polluted]=true", Some("application/json"), "{}"),
    ];
    for attack in attacks {
        let what = format!("{} {:?}", attack.uri(), attack.headers().get("content-type"));
        let (res, body) = send(gw.addr, attack).await;
        assert_eq!(res.status(), 400, "{what}");
        let v = json(&body);
        assert_eq!(v["code"], "prototype_pollution", "{what}");
        assert_eq!(v["request_id"], res.headers()["x-request-id"].to_str().unwrap());
        assert!(!String::from_utf8_lossy(&body).contains("polluted"), "no echo of the input: {what}");
    }
    // Chunked, split inside the key, over a raw socket.
    let raw_req = "POST /api/settings HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\n{\"__pr\r\n19\r\noto__\":{\"polluted\":true}}\r\n0\r\n\r\n";
    let out = raw(gw.addr, raw_req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 400") && out.contains("prototype_pollution"), "{out}");
    // Two gzip members: Node inflates both, so Portcullis checks both.
    let mut two = gzip(br#"{"theme":"dark","#);
    two.extend(gzip(br#""__proto__":{"polluted":true}}"#));
    let mut r = json_post("/api/settings", two);
    r.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    assert_eq!(send(gw.addr, r).await.0.status(), 400);
    assert!(!polluted(app.addr).await, "nothing reached the merge");
    // Duplicate keys: Node keeps the last one, so a checker that read the
    // first could be fooled; refused outright.
    let (res, body) = send(gw.addr, json_post("/api/settings", r#"{"theme":"light","theme":"dark"}"#)).await;
    assert_eq!(
        (res.status().as_u16(), errors(&json(&body))),
        (400, vec![("/body/theme".into(), "duplicate_key".into())])
    );
    // Unknown encodings can't carry a payload past the check.
    let mut r = json_post("/api/settings", POLLUTE);
    r.headers_mut().insert("content-encoding", "compress".parse().unwrap());
    assert_eq!(send(gw.addr, r).await.0.status(), 415);
    assert!(!polluted(app.addr).await);
    // A valid body still works.
    let (res, body) = send(gw.addr, json_post("/api/settings", r#"{"theme":"dark"}"#)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&body)["settings"]["theme"], "dark");
}

#[tokio::test]
async fn c17_query_type_confusion_is_refused() {
    let app = express().await;
    // Bare: ?q=a&q=b makes req.query.q an array, and the handler crashes.
    let (res, body) = get(app.addr, "/api/search?q=a&q=b").await;
    assert_eq!(res.status(), 500);
    assert!(String::from_utf8_lossy(&body).contains("TypeError"));
    let gw = gateway(app.addr, "").await;
    let (res, body) = get(gw.addr, "/api/search?q=abc").await;
    assert_eq!((res.status().as_u16(), json(&body)["type"].as_str()), (200, Some("string")));
    for (q, reason) in [
        ("q=a&q=b", "repeated_parameter"),
        ("q[]=a", "bracket_syntax"),
        ("q[toUpperCase]=x", "bracket_syntax"),
        ("q=%E0%A4%A", "malformed_encoding"),
    ] {
        let (res, body) = get(gw.addr, &format!("/api/search?{q}")).await;
        assert_eq!(res.status(), 400, "{q}");
        assert_eq!(errors(&json(&body))[0].1, reason, "{q}");
    }
}

#[tokio::test]
async fn c16_valid_bodies_reach_the_upstream_byte_for_byte() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    // Odd but valid spacing, escapes and number spellings survive untouched.
    let body = "{ \"name\" : \"al\\u0069ce\", \"n\":1.50e1 ,\"tags\":[ \"a\",\"b\" ]}\n";
    let (res, echoed) = send(gw.addr, json_post("/echo", body)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(echoed, body);
    assert_eq!(up.seen.recv().await.unwrap().body, body);
    // Compressed: checked decoded, forwarded as sent, with its encoding.
    let compressed = gzip(br#"{"a":1}"#);
    let (res, _) = send(gw.addr, gzipped("/echo", br#"{"a":1}"#)).await;
    assert_eq!(res.status(), 200);
    let seen = up.seen.recv().await.unwrap();
    assert_eq!(seen.body, compressed);
    assert_eq!(seen.headers["content-encoding"], "gzip");
    // Chunked (no length): read, checked, forwarded with the same bytes.
    let raw_req = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n";
    let out = raw(gw.addr, raw_req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = up.seen.recv().await.unwrap();
    assert_eq!(&seen.body[..], b"{\"a\": 1}");
    assert_eq!(seen.headers["content-length"], "8");
    assert!(seen.headers.get("transfer-encoding").is_none());
    // Form bodies and query strings likewise.
    let (res, _) = send(
        gw.addr,
        req("POST", "/echo?a=1&b=%20x", Some("application/x-www-form-urlencoded"), "x=1&y=a+b"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let seen = up.seen.recv().await.unwrap();
    assert_eq!((seen.path_and_query.as_str(), &seen.body[..]), ("/echo?a=1&b=%20x", &b"x=1&y=a+b"[..]));
}

#[tokio::test]
async fn c16_c20_route_schemas_and_injection_over_sockets() {
    let mut up = upstream().await;
    let gw = gateway(
        up.addr,
        r#"
[[route]]
path = "/users/{id}"
methods = ["PUT"]
public = true
params_schema = { type = "object", properties = { id = { type = "integer", minimum = 1 } } }
body_schema = { type = "object", required = ["email"], properties = { email = { type = "string", format = "email" }, name = { type = "string" } } }
body_required = true
injection = "block"

[[route]]
path = "/search"
public = true
query_schema = { type = "object", properties = { q = { type = "string" }, tag = { type = "array", items = { type = "string" } } } }
injection = "report"

[[route]]
path = "/**"
public = true
"#,
    )
    .await;
    let put = |path: &str, body: &'static str| req("PUT", path, Some("application/json"), body);
    let (res, _) = send(gw.addr, put("/users/7", r#"{"email":"a@example.com","name":"Ann"}"#)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.seen.recv().await.unwrap().body, r#"{"email":"a@example.com","name":"Ann"}"#);
    let cases: Vec<(Request<Full<Bytes>>, u16, &str, (&str, &str))> = vec![
        (put("/users/0", r#"{"email":"a@example.com"}"#), 400, "invalid_input", ("/params/id", "minimum")),
        (put("/users/x", r#"{"email":"a@example.com"}"#), 400, "invalid_input", ("/params/id", "type")),
        (
            put("/users/7", r#"{"email":"a@example.com","role":"admin"}"#),
            400,
            "invalid_input",
            ("/body/role", "unknown_field"),
        ),
        (put("/users/7", r#"{"email":5}"#), 400, "invalid_input", ("/body/email", "type")),
        (
            put("/users/7", r#"{"email":"a@example.com","name":"x' OR '1'='1"}"#),
            400,
            "injection_detected",
            ("/body/name", "sql_injection"),
        ),
        (
            req("PUT", "/users/7", Some("text/plain"), r#"{"email":"a@example.com"}"#),
            415,
            "unsupported_media_type",
            ("/body", "content_type"),
        ),
        (req("PUT", "/users/7", None, ""), 400, "invalid_input", ("/body", "required")),
    ];
    for (r, status, code, first) in cases {
        let what = format!("{} {:?}", r.uri(), r.headers().get("content-type"));
        let (res, body) = send(gw.addr, r).await;
        let v = json(&body);
        assert_eq!((res.status().as_u16(), v["code"].as_str().unwrap()), (status, code), "{what}");
        assert_eq!(errors(&v)[0], (first.0.to_owned(), first.1.to_owned()), "{what}");
    }
    // Report mode passes the request; the finding is logged and counted (C31).
    let (res, _) =
        send(gw.addr, req("GET", "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&tag=a&tag=b", None, ""))
            .await;
    assert_eq!(res.status(), 200);
    let (_, metrics) = get(gw.admin_addr.unwrap(), "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("portcullis_injection_reports_total{class=\"xss\"} 1"), "{metrics}");
    assert!(
        metrics.contains("portcullis_rejections_total{control=\"C20\",reason=\"injection_detected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_rejections_total{control=\"C19\",reason=\"unsupported_media_type\"} 1"),
        "{metrics}"
    );
    let (res, body) = send(gw.addr, req("GET", "/search?q=x&admin=1", None, "")).await;
    assert_eq!(
        (res.status().as_u16(), errors(&json(&body))),
        (400, vec![("/query/admin".into(), "unknown_field".into())])
    );
    // Without a query schema, repeated parameters are refused (C17).
    let (res, _) = send(gw.addr, req("GET", "/other?a=1&a=2", None, "")).await;
    assert_eq!(res.status(), 400);
}

fn fixture_spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/naive-express/openapi.yaml")
}

#[tokio::test]
async fn c16_c21_openapi_document_is_the_route_table() {
    let app = express().await;
    let gw =
        gateway(app.addr, &format!("[openapi]\nspec = {:?}\n", fixture_spec().display().to_string())).await;
    let (res, body) = get(gw.addr, "/api/hello").await;
    assert_eq!((res.status().as_u16(), json(&body)["hello"].as_str()), (200, Some("world")));
    // Operations the document doesn't list are refused (deny by default).
    for (method, path) in
        [("GET", "/api/crash"), ("GET", "/api/headers"), ("GET", "/admin"), ("GET", "/API/HELLO/x")]
    {
        let (res, body) = send(gw.addr, req(method, path, None, "")).await;
        assert_eq!(
            (res.status().as_u16(), json(&body)["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    // A listed path with an unlisted method: 405 with the methods it has.
    for method in ["DELETE", "TRACE", "POST"] {
        let (res, body) = send(gw.addr, req(method, "/api/hello", None, "")).await;
        let code = json(&body)["code"].as_str().map(str::to_owned);
        assert_eq!((res.status().as_u16(), code.as_deref()), (405, Some("method_not_allowed")), "{method}");
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }
    let (res, body) = get(gw.addr, "/api/users/42").await;
    assert_eq!((res.status().as_u16(), json(&body)["id"].as_str()), (200, Some("42")));
    let cases: Vec<(Request<Full<Bytes>>, u16, (&str, &str))> = vec![
        (req("GET", "/api/users/abc", None, ""), 400, ("/params/id", "type")),
        (req("GET", "/api/users/0", None, ""), 400, ("/params/id", "minimum")),
        (req("GET", "/api/search", None, ""), 400, ("/query/q", "required")),
        (req("GET", "/api/search?q=a&debug=1", None, ""), 400, ("/query/debug", "unknown_field")),
        (req("GET", "/api/search?q=a&q=b", None, ""), 400, ("/query/q", "repeated_parameter")),
        (json_post("/api/echo", r#"{"name":"a","isAdmin":true}"#), 400, ("/body/isAdmin", "unknown_field")),
        (json_post("/api/echo", r#"{"name":"a","n":"1"}"#), 400, ("/body/n", "type")),
        (json_post("/api/echo", r#"{"tags":["x"]}"#), 400, ("/body/name", "required")),
        (req("POST", "/api/echo", Some("text/plain"), r#"{"name":"a"}"#), 415, ("/body", "content_type")),
        (req("POST", "/api/echo", None, ""), 400, ("/body", "required")),
        (json_post("/api/settings", r#"{"theme":"neon"}"#), 400, ("/body/theme", "enum")),
        (req("GET", "/api/hello", Some("application/json"), "{}"), 415, ("/body", "content_type")),
    ];
    for (r, status, first) in cases {
        let what = format!("{} {}", r.method(), r.uri());
        let (res, body) = send(gw.addr, r).await;
        assert_eq!(res.status(), status, "{what}");
        assert_eq!(errors(&json(&body))[0], (first.0.to_owned(), first.1.to_owned()), "{what}");
    }
    // nullable (OpenAPI 3.0) and valid bodies pass, echoed by Express.
    let (res, body) = send(gw.addr, json_post("/api/echo", r#"{"name":"a","n":null,"tags":["x"]}"#)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&body), serde_json::json!({"name": "a", "n": null, "tags": ["x"]}));
}

#[test]
fn check_reports_schema_and_openapi_problems_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"type": "object", "properties": {"a": {"$ref": "https://evil.test/s.json"}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      security: [{key: []}]\n      responses: {'200': {description: ok}}\ncomponents:\n  securitySchemes:\n    key: {type: apiKey, in: header, name: X-Key}\n",
    )
    .unwrap();
    let text = r#"
[upstream]
url = "http://127.0.0.1:3000"
[input]
injection = "sometimes"
max_depth = 0
[openapi]
spec = "api.yaml"
[[route]]
path = "/x"
public = true
body_schema = "bad.json"
content_types = ["json"]
[[route]]
path = "/y"
public = true
query_schema = "missing.json"
"#;
    let problems = portcullis_gateway::config::from_str(text, dir.path(), &|_| None).unwrap_err();
    let at: Vec<&str> = problems.0.iter().map(|p| p.at.as_str()).collect();
    for want in [
        "input.injection",
        "input.max_depth",
        "route[0].body_schema: /properties/a/$ref",
        "route[0].content_types[0]",
        "route[1].query_schema",
        "openapi.spec: paths./a.get.security",
    ] {
        assert!(at.contains(&want), "no problem at {want}: {problems}");
    }
    // The messages name files and rules, never a secret or the schema text.
    assert!(!problems.to_string().contains("evil.test"), "{problems}");
}

#[tokio::test]
async fn worked_example_of_docs_input_md_against_express() {
    let app = express().await;
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/input.md"))
        .unwrap();
    let worked = doc.split("## Worked example").nth(1).unwrap();
    let example = worked.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    let text = format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n{}",
        example.replace("http://127.0.0.1:3000", &format!("http://{}", app.addr))
    );
    let cfg = portcullis_gateway::config::from_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let rows: Vec<(Request<Full<Bytes>>, u16, Option<(&str, &str)>)> = vec![
        (json_post("/api/settings", r#"{"theme":"dark"}"#), 200, None),
        (json_post("/api/settings", POLLUTE), 400, Some(("/body/__proto__", "prototype_key"))),
        (gzipped("/api/settings", POLLUTE.as_bytes()), 400, Some(("/body/__proto__", "prototype_key"))),
        (
            json_post("/api/settings", r#"{"\u005f_proto__":{"polluted":true}}"#),
            400,
            Some(("/body/__proto__", "prototype_key")),
        ),
        (
            json_post("/api/settings", r#"{"theme":"dark","isAdmin":true}"#),
            400,
            Some(("/body/isAdmin", "unknown_field")),
        ),
        (req("POST", "/api/settings", Some("text/plain"), "{}"), 415, Some(("/body", "content_type"))),
        (req("GET", "/api/search?q=a&q=b", None, ""), 400, Some(("/query/q", "repeated_parameter"))),
        (req("GET", "/api/search?q='%20OR%20'1'='1", None, ""), 400, Some(("/query/q", "sql_injection"))),
        (req("GET", "/api/search?q=portcullis", None, ""), 200, None),
        (req("GET", "/api/hello?a=1&a=2", None, ""), 400, Some(("/query/a", "repeated_parameter"))),
    ];
    for (r, status, first) in rows {
        let what = format!("{} {}", r.method(), r.uri());
        let (res, body) = send(gw.addr, r).await;
        assert_eq!(res.status(), status, "{what}");
        if let Some((path, reason)) = first {
            assert_eq!(errors(&json(&body))[0], (path.to_owned(), reason.to_owned()), "{what}");
        }
    }
    let (_, body) = get(gw.addr, "/api/search?q=portcullis").await;
    assert_eq!(json(&body), serde_json::json!({"type": "string", "upper": "PORTCULLIS"}));
    assert!(!polluted(app.addr).await);
}

#[tokio::test]
async fn c21_c22_openapi_security_is_enforced_with_jwt() {
    use portcullis_layers::auth::Algorithm;
    use portcullis_layers::auth::testing::TestKey;
    let mut up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::generate(Algorithm::EdDSA, "k1");
    std::fs::write(dir.path().join("idp.pem"), &k.public_pem).unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        r#"
openapi: 3.1.0
info: {title: t, version: "1"}
security: [{bearer: []}]
paths:
  /things:
    get:
      security: []
      responses: {"200": {description: ok}}
    post:
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, properties: {name: {type: string}}, required: [name]}}}
      responses: {"200": {description: ok}}
  /admin/stats:
    get:
      security: [{oauth: [admin]}]
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    oauth: {type: oauth2, flows: {}}
"#,
    )
    .unwrap();
    let text = format!(
        r#"[admin]
enabled = false
[server]
listen = "127.0.0.1:0"
[upstream]
url = "http://{}"
[auth.jwt]
issuer = "https://idp.test/"
audience = "api"
keys = [{{ file = "idp.pem", alg = "EdDSA", kid = "k1" }}]
[openapi]
spec = "api.yaml"
"#,
        up.addr
    );
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let token = |roles: &[&str]| {
        let claims = serde_json::json!({"sub": "alice", "roles": roles, "iss": "https://idp.test/", "aud": "api", "exp": exp});
        format!("Bearer {}", k.sign(&claims))
    };
    let with = |mut r: Request<Full<Bytes>>, auth: Option<&str>| {
        if let Some(a) = auth {
            r.headers_mut().insert("authorization", a.parse().unwrap());
        }
        r
    };
    let user = token(&["user"]);
    let admin = token(&["admin"]);
    // security: [] is public; the document-wide bearer requirement protects the rest.
    assert_eq!(send(gw.addr, req("GET", "/things", None, "")).await.0.status(), 200);
    assert_eq!(send(gw.addr, json_post("/things", r#"{"name":"a"}"#)).await.0.status(), 401);
    // Authentication comes first: an unauthenticated client's invalid body is never read.
    let (res, body) = send(gw.addr, json_post("/things", r#"{"__proto__":{}}"#)).await;
    assert_eq!((res.status().as_u16(), json(&body)["code"].as_str()), (401, Some("unauthenticated")));
    let (res, body) = send(gw.addr, with(json_post("/things", r#"{"nom":"a"}"#), Some(&user))).await;
    assert_eq!((res.status().as_u16(), errors(&json(&body))[0].1.as_str()), (400, "unknown_field"));
    assert_eq!(
        send(gw.addr, with(json_post("/things", r#"{"name":"a"}"#), Some(&user))).await.0.status(),
        200
    );
    assert_eq!(up.seen.recv().await.unwrap().path_and_query, "/things");
    // OAuth scopes are the roles that admit.
    assert_eq!(send(gw.addr, with(req("GET", "/admin/stats", None, ""), Some(&user))).await.0.status(), 403);
    assert_eq!(send(gw.addr, with(req("GET", "/admin/stats", None, ""), Some(&admin))).await.0.status(), 200);
}

#[tokio::test]
async fn c18_insecure_allow_prototype_keys_is_per_route() {
    let up = upstream().await;
    let gw = gateway(
        up.addr,
        "[[route]]\npath = \"/f1/**\"\npublic = true\ninsecure_allow_prototype_keys = true\n[[route]]\npath = \"/**\"\npublic = true\n",
    )
    .await;
    let body = r#"{"driver":"Albon","constructor":"Williams"}"#;
    assert_eq!(send(gw.addr, json_post("/f1/results", body)).await.0.status(), 200);
    let (res, b) = send(gw.addr, json_post("/other", body)).await;
    assert_eq!((res.status().as_u16(), json(&b)["code"].as_str()), (400, Some("prototype_pollution")));
}
