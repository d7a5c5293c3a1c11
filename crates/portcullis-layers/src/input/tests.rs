//! Layer black-box tests: requests through `InputLayer` to an echo service.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, clippy::type_complexity)]

use std::io::Write;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::pattern::PathPattern;
use crate::route::{Access, Route, RouteTable};

type Res = Response<Full<Bytes>>;

/// Echoes the request body it received.
async fn echo(req: Request<crate::Body>) -> Result<Res, std::convert::Infallible> {
    let bytes = Limited::new(req.into_body(), 1 << 24).collect().await.unwrap().to_bytes();
    Ok(Response::new(Full::new(bytes)))
}

/// `/users/{id}` (carrying `policy` when given), then everything else.
fn table_with(policy: Option<InputPolicy>) -> RouteTable {
    let users = Route::new(PathPattern::parse("/users/{id}").unwrap(), Access::Public);
    RouteTable::new(vec![
        match policy {
            Some(p) => InputLayer::policy_of(users, p),
            None => users,
        },
        Route::new(PathPattern::parse("/**").unwrap(), Access::Public),
    ])
}

async fn call(
    layer: &InputLayer,
    req: Request<Full<Bytes>>,
) -> (StatusCode, Value, Bytes, Option<InputReport>) {
    call_with(&table_with(None), layer, req).await
}

async fn call_with(
    table: &RouteTable,
    layer: &InputLayer,
    mut req: Request<Full<Bytes>>,
) -> (StatusCode, Value, Bytes, Option<InputReport>) {
    if let Some(m) = table.find(req.method(), req.uri().path()) {
        req.extensions_mut().insert(m);
    }
    let mut svc = layer.clone().layer(service_fn(echo));
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc).await.unwrap().call(req).await.unwrap();
    let status = res.status();
    let report = res.extensions().get::<InputReport>().cloned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = if status.is_success() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, v, bytes, report)
}

fn post(uri: &str, ct: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri).header("content-type", ct).body(Full::new(body.into())).unwrap()
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
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

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn user_schema() -> Schema {
    Schema::compile(
        &json!({
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string", "format": "email"}, "age": {"type": "integer"}}
        }),
        Dialect::Auto,
        UnknownFields::Reject,
    )
    .unwrap()
}

#[tokio::test]
async fn c17_c18_always_on_json_rules() {
    let layer = InputLayer::new(InputPolicy::default());
    let body = r#"{"name":"alice","tags":["a","b"],"n":1}"#;
    let (status, _, bytes, _) = call(&layer, post("/x", "application/json", body)).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, body, "forwarded byte for byte");
    let cases: &[(&str, u16, &str, (&str, &str))] = &[
        (
            r#"{"__proto__":{"isAdmin":true}}"#,
            400,
            "prototype_pollution",
            ("/body/__proto__", "prototype_key"),
        ),
        (
            r#"{"a":{"constructor":{"prototype":{"x":1}}}}"#,
            400,
            "prototype_pollution",
            ("/body/a/constructor", "prototype_key"),
        ),
        (r#"{"\u005f_proto__":{"x":1}}"#, 400, "prototype_pollution", ("/body/__proto__", "prototype_key")),
        (r#"{"role":"user","role":"admin"}"#, 400, "malformed_input", ("/body/role", "duplicate_key")),
        (r#"{"a":1} trailing"#, 400, "malformed_input", ("/body", "malformed_json")),
        (r#"{"a":"\ud800"}"#, 400, "malformed_input", ("/body", "malformed_json")),
        (r#"{"a":"#, 400, "malformed_input", ("/body", "malformed_json")),
    ];
    for (body, status, code, first) in cases {
        let (s, v, _, _) = call(&layer, post("/x", "application/json", *body)).await;
        assert_eq!(s.as_u16(), *status, "{body}");
        assert_eq!(v["code"], *code, "{body}");
        assert_eq!(errors(&v)[0], (first.0.to_owned(), first.1.to_owned()), "{body}");
        assert!(!v.to_string().contains("isAdmin"), "no echo of the input");
    }
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let (s, v, _, _) = call(&layer, post("/x", "application/vnd.api+json", deep)).await;
    assert_eq!((s.as_u16(), errors(&v)[0].1.as_str()), (400, "too_deep"));
}

#[tokio::test]
async fn c19_content_type_and_encoding() {
    let layer = InputLayer::new(InputPolicy::default());
    let evil = br#"{"__proto__":{"polluted":true}}"#;
    // A compressed payload is decoded and checked; the original bytes go on.
    let mut req = post("/x", "application/json", gzip(evil));
    req.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    let (s, v, _, _) = call(&layer, req).await;
    assert_eq!((s.as_u16(), v["code"].as_str().unwrap()), (400, "prototype_pollution"));
    let good = gzip(br#"{"a":1}"#);
    let mut req = post("/x", "application/json", good.clone());
    req.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    let (s, _, bytes, _) = call(&layer, req).await;
    assert_eq!((s.as_u16(), &bytes[..]), (200, &good[..]));
    // Bomb: the decoded size is limited.
    let mut req = post("/x", "application/json", gzip(&vec![b' '; 4 * 1024 * 1024]));
    req.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    assert_eq!(call(&layer, req).await.0, 413);
    for enc in ["zstd", "gzip, br", "x-compress"] {
        let mut req = post("/x", "application/octet-stream", "abc");
        req.headers_mut().insert("content-encoding", enc.parse().unwrap());
        let (s, v, _, _) = call(&layer, req).await;
        assert_eq!((s.as_u16(), v["code"].as_str().unwrap()), (415, "unsupported_media_type"), "{enc}");
        assert_eq!(errors(&v)[0].1, "content_encoding");
    }
    let (s, v, _, _) = call(&layer, post("/x", "application/json; charset=utf-16", "{}")).await;
    assert_eq!((s.as_u16(), errors(&v)[0].1.as_str()), (415, "charset"));
    // Other types pass untouched when the route doesn't restrict them.
    let (s, _, bytes, _) = call(&layer, post("/x", "text/plain", "{\"__proto__\":1}")).await;
    assert_eq!((s.as_u16(), &bytes[..]), (200, &b"{\"__proto__\":1}"[..]));
    // A route that takes JSON only refuses text/plain the upstream might parse anyway.
    let json_only = InputLayer::new(InputPolicy::default().content_types(vec!["application/json".into()]));
    let (s, v, _, _) = call(&json_only, post("/x", "text/plain", "{}")).await;
    assert_eq!((s.as_u16(), errors(&v)[0].1.as_str()), (415, "content_type"));
    let no_type = Request::post("/x").body(Full::new(Bytes::from("{}"))).unwrap();
    assert_eq!(call(&json_only, no_type).await.0, 415);
    assert_eq!(call(&json_only, get("/x")).await.0, 200, "no body, nothing to refuse");
}

#[tokio::test]
async fn c17_c18_query_and_form_rules() {
    let layer = InputLayer::new(InputPolicy::default());
    assert_eq!(call(&layer, get("/x?a=1&b=two")).await.0, 200);
    let cases = [
        ("/x?a=1&a=2", "invalid_input", "repeated_parameter"),
        ("/x?a[]=1", "invalid_input", "bracket_syntax"),
        ("/x?user[role]=admin", "invalid_input", "bracket_syntax"),
        ("/x?__proto__[admin]=1", "prototype_pollution", "prototype_key"),
        ("/x?a[constructor][prototype][x]=1", "prototype_pollution", "prototype_key"),
        ("/x?%5F%5Fproto%5F%5F=1", "prototype_pollution", "prototype_key"),
        ("/x?a=%zz", "malformed_input", "malformed_encoding"),
    ];
    for (uri, code, reason) in cases {
        let (s, v, _, _) = call(&layer, get(uri)).await;
        assert_eq!(
            (s.as_u16(), v["code"].as_str().unwrap(), errors(&v)[0].1.as_str()),
            (400, code, reason),
            "{uri}"
        );
    }
    let form = "application/x-www-form-urlencoded";
    assert_eq!(call(&layer, post("/x", form, "a=1&b=2")).await.0, 200);
    let (s, v, _, _) = call(&layer, post("/x", form, "a[__proto__][x]=1")).await;
    assert_eq!((s.as_u16(), v["code"].as_str().unwrap()), (400, "prototype_pollution"));
    let (s, v, _, _) = call(&layer, post("/x", form, "a=1&a=2")).await;
    assert_eq!(
        (s.as_u16(), errors(&v)[0].clone()),
        (400, ("/body/a".to_owned(), "repeated_parameter".to_owned()))
    );
}

#[tokio::test]
async fn c16_per_route_schemas() {
    let query = Schema::compile(
        &json!({"type": "object", "properties": {"page": {"type": "integer", "minimum": 1}, "tag": {"type": "array", "items": {"type": "string"}}}}),
        Dialect::Auto,
        UnknownFields::Reject,
    )
    .unwrap();
    let params = Schema::compile(
        &json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
        Dialect::Auto,
        UnknownFields::Reject,
    )
    .unwrap();
    let headers = Schema::compile(
        &json!({"type": "object", "required": ["X-Tenant"], "properties": {"X-Tenant": {"type": "string", "pattern": "^[a-z]+$"}}}),
        Dialect::Auto,
        UnknownFields::Reject,
    )
    .unwrap();
    let policy = InputPolicy::default()
        .content_types(vec!["application/json".into()])
        .body_schema(user_schema(), true)
        .query_schema(ParamSchema::new(query))
        .params_schema(ParamSchema::new(params))
        .headers_schema(ParamSchema::headers(headers));
    let layer = InputLayer::new(InputPolicy::default());
    let table = table_with(Some(policy));
    let req = |uri: &str, tenant: Option<&str>, body: &'static str| {
        let mut r = post(uri, "application/json", body);
        *r.method_mut() = Method::PUT;
        if let Some(t) = tenant {
            r.headers_mut().insert("x-tenant", t.parse().unwrap());
        }
        r
    };
    let ok = r#"{"email":"a@example.com","age":3}"#;
    let (s, _, bytes, _) =
        call_with(&table, &layer, req("/users/7?page=2&tag=a&tag=b", Some("acme"), ok)).await;
    assert_eq!((s.as_u16(), &bytes[..]), (200, ok.as_bytes()));
    let cases: Vec<(&str, Option<&str>, &'static str, (&str, &str))> = vec![
        ("/users/x", Some("acme"), ok, ("/params/id", "type")),
        ("/users/7?page=0", Some("acme"), ok, ("/query/page", "minimum")),
        ("/users/7?page=1&page=2", Some("acme"), ok, ("/query/page", "repeated_parameter")),
        ("/users/7?debug=1", Some("acme"), ok, ("/query/debug", "unknown_field")),
        ("/users/7", None, ok, ("/headers/X-Tenant", "required")),
        ("/users/7", Some("ACME1"), ok, ("/headers/X-Tenant", "pattern")),
        (
            "/users/7",
            Some("acme"),
            r#"{"email":"a@example.com","isAdmin":true}"#,
            ("/body/isAdmin", "unknown_field"),
        ),
        ("/users/7", Some("acme"), r#"{"email":"a@example.com","age":"3"}"#, ("/body/age", "type")),
        ("/users/7", Some("acme"), r#"{"age":3}"#, ("/body/email", "required")),
    ];
    for (uri, tenant, body, want) in cases {
        let (s, v, _, _) = call_with(&table, &layer, req(uri, tenant, body)).await;
        assert_eq!(s, 400, "{uri} {body}");
        assert_eq!(v["code"], "invalid_input", "{uri} {body}");
        assert_eq!(errors(&v), vec![(want.0.to_owned(), want.1.to_owned())], "{uri} {body}");
    }
    // The body is required on this route.
    let mut empty = get("/users/7");
    empty.headers_mut().insert("x-tenant", "acme".parse().unwrap());
    let (s, v, _, _) = call_with(&table, &layer, empty).await;
    assert_eq!((s.as_u16(), errors(&v)), (400, vec![("/body".to_owned(), "required".to_owned())]));
    // Other routes keep the default policy.
    assert_eq!(call_with(&table, &layer, post("/other", "application/json", r#"{"any":1}"#)).await.0, 200);
}

#[tokio::test]
async fn c20_injection_report_and_block() {
    let sqli = r#"{"name":"x' OR '1'='1"}"#;
    let report = InputLayer::new(InputPolicy::default().injection(InjectionMode::Report));
    let (s, _, bytes, rep) = call(&report, post("/x", "application/json", sqli)).await;
    assert_eq!((s.as_u16(), &bytes[..]), (200, sqli.as_bytes()));
    assert_eq!(rep.unwrap().findings, vec![("/body/name".to_owned(), InjectionClass::Sql)]);
    let (_, _, _, rep) = call(&report, get("/x?q=%3Cscript%3Ealert(1)%3C/script%3E")).await;
    assert_eq!(rep.unwrap().findings, vec![("/query/q".to_owned(), InjectionClass::Xss)]);

    let block = InputLayer::new(InputPolicy::default().injection(InjectionMode::Block));
    let (s, v, _, _) = call(&block, post("/x", "application/json", sqli)).await;
    assert_eq!((s.as_u16(), v["code"].as_str().unwrap()), (400, "injection_detected"));
    assert_eq!(errors(&v), vec![("/body/name".to_owned(), "sql_injection".to_owned())]);
    assert!(!v.to_string().contains("OR"), "no echo");
    let (s, v, _, _) = call(&block, get("/users/%3Cscript%3E")).await;
    assert_eq!((s.as_u16(), errors(&v)), (400, vec![("/params/id".to_owned(), "xss".to_owned())]));
    assert_eq!(call(&block, post("/x", "application/json", r#"{"name":"O'Brien"}"#)).await.0, 200);
    let off = InputLayer::new(InputPolicy::default());
    let (s, _, _, rep) = call(&off, post("/x", "application/json", sqli)).await;
    assert_eq!((s.as_u16(), rep), (200, None));
}

#[tokio::test]
async fn c13_streamed_bodies_are_bounded() {
    use http_body_util::StreamBody;
    let layer = InputLayer::new(InputPolicy::default().max_body(16));
    // A chunked body (no exact size) is still read and checked, and bounded.
    let first = || Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(b"{\"a\":")));
    let chunks = vec![first()];
    let chunks2 = vec![first()];
    type Stream = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;
    let mut svc = layer.clone().layer(service_fn(echo));
    let mut body_chunks = chunks;
    body_chunks.push(Ok(http_body::Frame::data(Bytes::from_static(b"\"0123456789abcdef\"}"))));
    let req = Request::post("/x")
        .header("content-type", "application/json")
        .body(StreamBody::new(futures_util::stream::iter(body_chunks)))
        .unwrap();
    let res = ServiceExt::<Request<Stream>>::ready(&mut svc).await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 413);
    let mut ok_chunks = chunks2;
    ok_chunks.push(Ok(http_body::Frame::data(Bytes::from_static(b"1}"))));
    let req = Request::post("/x")
        .header("content-type", "application/json")
        .body(StreamBody::new(futures_util::stream::iter(ok_chunks)))
        .unwrap();
    let res = ServiceExt::<Request<Stream>>::ready(&mut svc).await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "{\"a\":1}");
}

#[tokio::test]
async fn c16_cookie_schema() {
    let cookies = Schema::compile(
        &json!({
            "type": "object",
            "required": ["sid"],
            "properties": {"sid": {"type": "string", "pattern": "^[a-f0-9]{8}$"}, "n": {"type": "integer"}}
        }),
        Dialect::Auto,
        UnknownFields::Allow,
    )
    .unwrap();
    let layer = InputLayer::new(InputPolicy::default().cookies_schema(ParamSchema::new(cookies)));
    let with = |c: &'static str| {
        let mut r = get("/x");
        r.headers_mut().append("cookie", c.parse().unwrap());
        r
    };
    assert_eq!(call(&layer, with("sid=deadbeef; other=<anything>; n=\"3\"")).await.0, 200);
    let cases = [
        ("other=1", ("/cookies/sid", "required")),
        ("sid=DEADBEEF", ("/cookies/sid", "pattern")),
        ("sid=deadbeef; n=x", ("/cookies/n", "type")),
        ("sid=deadbeef; sid=00000000", ("/cookies/sid", "repeated_parameter")),
    ];
    for (c, want) in cases {
        let (s, v, _, _) = call(&layer, with(c)).await;
        assert_eq!(s, 400, "{c}");
        assert_eq!(errors(&v)[0], (want.0.to_owned(), want.1.to_owned()), "{c}");
    }
    // Two Cookie fields (HTTP/2 splits them) are read together.
    let mut r = with("n=1");
    r.headers_mut().append("cookie", "sid=deadbeef".parse().unwrap());
    assert_eq!(call(&layer, r).await.0, 200);
}

#[tokio::test]
async fn c18_prototype_keys_can_be_allowed_insecurely_per_policy() {
    let open = InputLayer::new(InputPolicy::default().insecure_allow_prototype_keys());
    let body = r#"{"constructor":"Williams","team":{"prototype":"FW47"}}"#;
    let (s, _, bytes, _) = call(&open, post("/x", "application/json", body)).await;
    assert_eq!((s.as_u16(), &bytes[..]), (200, body.as_bytes()));
    assert_eq!(call(&open, get("/x?constructor=Williams")).await.0, 200);
    // Everything else still holds.
    assert_eq!(call(&open, post("/x", "application/json", r#"{"a":1,"a":2}"#)).await.0, 400);
    assert_eq!(call(&open, get("/x?a=1&a=2")).await.0, 400);
    let closed = InputLayer::new(InputPolicy::default());
    assert_eq!(call(&closed, post("/x", "application/json", body)).await.0, 400);
}
