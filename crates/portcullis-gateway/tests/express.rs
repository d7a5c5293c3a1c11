//! The naive Express 5 fixture (tests/fixtures/naive-express), a real Node
//! process, bare and behind Portcullis: C5 C6 C29 C13 C3 and C28 against the
//! upstream the gateway exists for.
//!
//! The fixture's dependencies are installed by the README's test command
//! (`npm ci` in the fixture directory).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;

use express_app::express;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;

fn post_json(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "api.test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn the_bare_fixture_is_as_naive_as_intended() {
    let app = express().await;
    let (res, body) = get(app.addr, "/api/crash").await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-powered-by"], "Express");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("TypeError") && text.contains("app.js"), "{text}");
    let (_, body) = get(app.addr, "/nope").await;
    assert!(String::from_utf8_lossy(&body).contains("Cannot GET /nope"));
}

#[tokio::test]
async fn c29_c5_c6_nothing_leaks_through_portcullis() {
    let app = express().await;
    let gw = gateway(app.addr, "").await;
    let cases: Vec<(Request<Full<Bytes>>, u16, &str)> = vec![
        (
            Request::get("/api/crash").header("host", "api.test").body(Full::new(Bytes::new())).unwrap(),
            500,
            "upstream_error",
        ),
        (
            Request::get("/nope").header("host", "api.test").body(Full::new(Bytes::new())).unwrap(),
            404,
            "upstream_error",
        ),
        // body-parser would answer its SyntaxError page with a stack trace;
        // the strict JSON check (C19) refuses it before it gets there.
        (post_json("/api/echo", "{\"a\": "), 400, "malformed_input"),
        (post_json("/api/echo", "{\"a\": 1}"), 200, ""),
    ];
    for (req, status, code) in cases {
        let path = req.uri().path().to_owned();
        let (res, body) = send(gw.addr, req).await;
        assert_eq!(res.status(), status, "{path}");
        assert_helmet(&res, false);
        assert_no_leak(&body);
        let text = String::from_utf8_lossy(&body);
        for needle in ["SyntaxError", "body-parser", "Express", "express"] {
            assert!(!text.contains(needle), "{path} leaked {needle}: {text}");
        }
        if status != 200 {
            let v = json(&body);
            assert_eq!(v["code"], code);
            assert_eq!(v["request_id"], res.headers()["x-request-id"].to_str().unwrap());
        }
    }
}

#[tokio::test]
async fn valid_requests_pass_unchanged() {
    let app = express().await;
    let gw = gateway(app.addr, "").await;
    let (res, body) =
        send(gw.addr, post_json("/api/echo", "{\"name\":\"alice\",\"tags\":[\"a\",\"b\"],\"n\":1}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body, "{\"name\":\"alice\",\"tags\":[\"a\",\"b\"],\"n\":1}");
    let (res, body) = get(gw.addr, "/api/users/42").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&body)["id"], "42");
}

#[tokio::test]
async fn c3_express_sees_portcullis_forwarding_not_the_clients() {
    let app = express().await;
    let gw = gateway(app.addr, "").await;
    let req = Request::get("/api/headers")
        .header("host", "api.test")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, body) = send(gw.addr, req).await;
    let v = json(&body);
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(v["headers"]["x-forwarded-proto"], "http");
    assert_eq!(v["headers"]["host"], "api.test");
}

#[tokio::test]
async fn c28_express_receives_the_canonical_path() {
    let app = express().await;
    let gw = gateway(app.addr, "").await;
    let (res, body) = get(gw.addr, "/api/public/..//./%68eaders?x=1").await;
    assert_eq!(res.status(), 200);
    let v = json(&body);
    assert_eq!(v["path"], "/api/headers");
    assert_eq!(v["url"], "/api/headers?x=1");
    // Spellings Express would decode differently than a policy: refused.
    for path in ["/api/%2e%2e/admin", "/%61dmin%2f", "/api/..%5cadmin", "/admin;.json"] {
        assert_eq!(get(gw.addr, path).await.0.status(), 400, "{path}");
    }
}

#[tokio::test]
async fn c13_body_limit_protects_the_50mb_parser() {
    let app = express().await;
    let gw = gateway(app.addr, "[limits]\nbody = \"64kb\"").await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000));
    // Bare Express accepts it.
    let req = Request::post("/api/echo")
        .header("host", "a")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    assert_eq!(send(app.addr, req).await.0.status(), 200);
    // Declared length: refused before reading.
    let req = Request::post("/api/echo")
        .header("host", "a")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    let (res, body) = send(gw.addr, req).await;
    assert_eq!(res.status(), 413);
    assert_eq!(json(&body)["code"], "body_too_large");
    // Chunked with no length: cut off while streaming.
    let mut raw_req = b"POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in big.as_bytes().chunks(8192) {
        raw_req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw_req.extend_from_slice(chunk);
        raw_req.extend_from_slice(b"\r\n");
    }
    raw_req.extend_from_slice(b"0\r\n\r\n");
    let out = raw(gw.addr, &raw_req).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{}", &out[..out.len().min(300)]);
}
