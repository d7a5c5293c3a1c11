//! The outside attack run of issue 12, written as tests from the attacker's
//! side, one per finding, named after the control it breaks: upgrade
//! smuggling (C21 C28), silent connections (C14), client-address and URL
//! override headers (C3 C23), malformed chunked bodies (C19 C28), a missing
//! `Host` (C28), raw bytes in the query (C28), uncounted preflights (C11),
//! and replaced upstream errors that lost their policy headers (C8 C11 C29).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds a step that the fix makes immediate and the bug makes wait for a
/// 60 s timeout (or forever, for a tunnel); no passing test waits for it.
const HANG: Duration = Duration::from_secs(20);

/// [`raw`], failing instead of hanging when the connection stays open.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    tokio::time::timeout(HANG, common::raw(addr, bytes)).await.expect("the connection was held open")
}

/// Every byte each upstream connection received, in accept order.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// A raw upstream that records every byte. It answers each request head
/// with `101 Switching Protocols` when the head asks for h2c (or always,
/// with `always_101`: a hostile or buggy upstream), else with a small 200;
/// after a 101 it goes on reading (and recording) whatever is relayed.
async fn recording_upstream(always_101: bool) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let rec = received.clone();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let idx = {
                let mut r = rec.lock().unwrap();
                r.push(Vec::new());
                r.len() - 1
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut answered = 0;
                let mut switched = false;
                loop {
                    let n = match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let all = {
                        let mut r = rec.lock().unwrap();
                        r[idx].extend_from_slice(&buf[..n]);
                        r[idx].clone()
                    };
                    if switched {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
                    let heads: Vec<&str> = text.split("\r\n\r\n").collect();
                    while answered + 1 < heads.len() {
                        let head = heads[answered];
                        answered += 1;
                        let reply: &[u8] = if always_101 || head.contains("upgrade: h2c") {
                            switched = true;
                            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
                        };
                        if tcp.write_all(reply).await.is_err() {
                            return;
                        }
                        if switched {
                            break;
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

const H2C_ATTACK: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /admin HTTP/1.1\r\nHost: gw.test\r\n\r\n";

/// What all upstream connections received, as text.
fn upstream_text(received: &Received) -> String {
    let r = received.lock().unwrap();
    r.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\n--\n")
}

/// A request through the gateway on a fresh connection: the upstream sees
/// it after everything the attack could have relayed before.
async fn marker(gw: SocketAddr) {
    let (res, _) = get(gw, "/api/marker").await;
    assert_eq!(res.status(), 200);
}

const HEALTH_ONLY: &str = "[[route]]\npath = \"/api/health\"\nmethods = [\"GET\"]\npublic = true\n[[route]]\npath = \"/api/marker\"\npublic = true\n";

// C21 C28 (item 1, high): `Upgrade: h2c` on an anonymous public route must
// not open a raw channel to the upstream past routes, auth and limits.
#[tokio::test]
async fn c21_h2c_upgrade_never_reaches_the_upstream() {
    let (up, received) = recording_upstream(false).await;
    let gw = gateway(up, HEALTH_ONLY).await;
    let out = raw(gw.addr, H2C_ATTACK).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(!out.contains("101"), "{out}");
    assert!(out.to_ascii_lowercase().contains("connection: close"), "{out}");
    marker(gw.addr).await;
    let seen = upstream_text(&received).to_ascii_lowercase();
    assert_eq!(seen.matches("get /api/health").count(), 1, "{seen}");
    for needle in ["upgrade", "http2-settings", "pri * http/2.0", "/admin"] {
        assert!(!seen.contains(needle), "the upstream received {needle:?}:\n{seen}");
    }
}

// C21 C28: an upstream that switches protocols unasked gets no tunnel:
// the client gets a 502 and no byte after the request reaches the upstream.
#[tokio::test]
async fn c21_unasked_101_from_the_upstream_is_refused_and_nothing_relayed() {
    let (up, received) = recording_upstream(true).await;
    let gw = gateway(up, HEALTH_ONLY).await;
    let out = raw(gw.addr, H2C_ATTACK).await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    assert!(out.contains("upstream_unavailable"), "{out}");
    // A plain WebSocket handshake on a route that did not opt in is no better.
    let ws = b"GET /api/health HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET /admin HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let out = raw(gw.addr, ws).await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    let seen = upstream_text(&received).to_ascii_lowercase();
    for needle in ["upgrade", "pri * http/2.0", "/admin"] {
        assert!(!seen.contains(needle), "the upstream received {needle:?}:\n{seen}");
    }
}

// C21: a WebSocket upgrade passes only on a route with `websocket = true`,
// and only after the route's policy: unauthenticated, nothing is forwarded.
#[tokio::test]
async fn c21_websocket_only_where_the_route_opts_in_and_after_its_policy() {
    let mut up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let key =
        portcullis_layers::auth::testing::TestKey::generate(portcullis_layers::auth::Algorithm::EdDSA, "k");
    std::fs::write(dir.path().join("k.pem"), &key.public_pem).unwrap();
    let text = format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{}\"\n[auth.jwt]\nissuer = \"https://idp.test/\"\naudience = \"api\"\nkeys = [{{ file = \"k.pem\", alg = \"EdDSA\", kid = \"k\" }}]\n[[route]]\npath = \"/ws\"\nwebsocket = true\n[[route]]\npath = \"/plain\"\npublic = true\n",
        up.addr
    );
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let handshake = |path: &str, auth: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: gw.test\r\n{auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    // No token: 401 before anything is forwarded.
    let out = raw(gw.addr, handshake("/ws", "").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(up.seen.try_recv().is_err(), "the upstream saw an unauthenticated upgrade");
    // A valid token: the tunnel opens and echoes.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims =
        serde_json::json!({"sub": "alice", "iss": "https://idp.test/", "aud": "api", "exp": now + 300});
    let auth = format!("Authorization: Bearer {}\r\n", key.sign(&claims));
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(handshake("/ws", &auth).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    tcp.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tcp.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    assert_eq!(up.seen.recv().await.unwrap().headers["upgrade"], "websocket");
    // The same handshake on a route without `websocket = true` is a plain
    // GET upstream: no Upgrade, no Connection: upgrade.
    let out = raw(gw.addr, handshake("/plain", "").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = up.seen.recv().await.unwrap();
    assert!(seen.headers.get("upgrade").is_none(), "{:?}", seen.headers);
    assert!(seen.headers.get("connection").is_none(), "{:?}", seen.headers);
}

fn limits_config(upstream: SocketAddr, limits: &str) -> portcullis_gateway::config::Config {
    config_from(&format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[limits]\n{limits}\n[upstream]\nurl = \"http://{upstream}\"\n{PUBLIC_CATCH_ALL}"
    ))
}

// C14 (item 2): silent connections can't hold the connection cap until the
// idle timeout; a new request is served at once.
#[tokio::test]
async fn c14_silent_connections_do_not_starve_new_requests() {
    let up = upstream().await;
    let cfg =
        limits_config(up.addr, "max_connections = 3\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"");
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    let (res, _) =
        tokio::time::timeout(HANG, get(gw.addr, "/ok")).await.expect("starved by silent connections");
    assert_eq!(res.status(), 200);
    // Idle keep-alive connections at the cap give way too.
    let mut kept = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect(gw.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/ok").header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        kept.push(sender);
    }
    let (res, _) = tokio::time::timeout(HANG, get(gw.addr, "/ok")).await.expect("starved by idle keep-alive");
    assert_eq!(res.status(), 200);
}

// C14: the first request head must arrive within header_read_timeout of the
// accept, also when nothing at all is sent.
#[tokio::test]
async fn c14_first_head_within_header_read_timeout() {
    let up = upstream().await;
    let cfg = limits_config(up.addr, "header_read_timeout = \"200ms\"\nidle_timeout = \"60s\"");
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    for prefix in [&b""[..], b"GET /ok HTTP/1.1\r\nHost: a\r\n"] {
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(prefix).await.unwrap();
        let mut out = Vec::new();
        let closed = tokio::time::timeout(HANG, tcp.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "a silent connection was held open");
        assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    }
    assert_eq!(get(gw.addr, "/ok").await.0.status(), 200);
}

// C3 C23 (item 4): the client-address family and URL overrides never reach
// the upstream from an untrusted peer, in any spelling.
#[tokio::test]
async fn c3_client_address_and_url_override_headers_are_stripped() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let attack = b"GET /ok HTTP/1.1\r\nHost: gw.test\r\nX-Client-IP: 127.0.0.1\r\nTrue-Client-IP: 127.0.0.1\r\nCF-Connecting-IP: 127.0.0.1\r\nX-Cluster-Client-IP: 127.0.0.1\r\nX-Original-Forwarded-For: 127.0.0.1\r\nX_Client_IP: 127.0.0.1\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Server: internal\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Uri: /admin\r\nX-Forwarded-Prefix: /admin\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX_Original_URL: /admin\r\nX_Forwarded_For: 127.0.0.1\r\nX-HTTP-Method-Override: DELETE\r\nConnection: close\r\n\r\n";
    let out = raw(gw.addr, attack).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = up.seen.recv().await.unwrap();
    let mut names: Vec<&str> = seen.headers.keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "forwarded",
            "host",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-real-ip",
            "x-request-id"
        ]
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

// C19 C28 (item 5): a malformed chunked body on a streamed route is the
// client's fault: 400 with the JSON error and helmet headers, connection
// closed, never a 502.
#[tokio::test]
async fn c19_malformed_chunked_bodies_are_400_not_502() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let bodies: &[&[u8]] = &[
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let mut req = b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let out = raw(gw.addr, &req).await;
        let shown = String::from_utf8_lossy(body);
        assert!(out.starts_with("HTTP/1.1 400"), "{shown:?}: {out}");
        assert!(out.contains("\"code\":\"malformed_request\""), "{shown:?}: {out}");
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("connection: close"), "{shown:?}: {out}");
        assert!(lower.contains("x-content-type-options: nosniff"), "{shown:?}: {out}");
    }
}

// C28 (item 8): RFC 9112 section 3.2, an HTTP/1.1 request without Host.
#[tokio::test]
async fn c28_http11_without_host_is_400() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("invalid_host"), "{out}");
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(up.seen.try_recv().is_err(), "the upstream saw a request without a valid Host");
    // HTTP/1.0 needs none.
    let out = raw(gw.addr, b"GET /ok HTTP/1.0\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"), "{out}");
}

// C28 (item 9): raw bytes outside printable ASCII in the query are refused
// like any other invalid target.
#[tokio::test]
async fn c28_raw_non_ascii_query_bytes_are_400() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    for target in [&b"/ok?q=\xff"[..], b"/ok?q=caf\xc3\xa9", b"/ok?q=\x7f"] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
        let out = raw(gw.addr, &req).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{:?}: {out}", String::from_utf8_lossy(target));
    }
    assert!(up.seen.try_recv().is_err());
    let (res, _) = get(gw.addr, "/ok?q=caf%C3%A9").await;
    assert_eq!(res.status(), 200);
}

const CORS_AND_LIMIT: &str = "[cors]\norigins = [\"https://app.example.com\"]\ncredentials = true\n[[rate_limit]]\nname = \"api\"\nlimit = 2\nwindow = \"1m\"\n";

fn preflight() -> Request<Full<Bytes>> {
    Request::options("/api/whoami")
        .header("host", "gw.test")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

// C11 (item 9): preflights are counted by the rate limiter like any request.
#[tokio::test]
async fn c11_cors_preflights_are_rate_limited() {
    let up = upstream().await;
    let gw = gateway(up.addr, CORS_AND_LIMIT).await;
    for _ in 0..2 {
        let (res, _) = send(gw.addr, preflight()).await;
        assert_eq!(res.status(), 204);
        assert!(res.headers().contains_key("ratelimit"), "{:?}", res.headers());
    }
    let (res, body) = send(gw.addr, preflight()).await;
    assert_eq!(res.status(), 429);
    assert_eq!(json(&body)["code"], "rate_limited");
    // The same budget: the next plain request is refused too, and counted once.
    let (res, _) = get(gw.addr, "/api/whoami").await;
    assert_eq!(res.status(), 429);
}

// C8 C11 C29 (item 10): a replaced upstream error keeps the CORS and
// RateLimit headers its route earned, so a browser app can read it.
#[tokio::test]
async fn c29_replaced_upstream_errors_keep_cors_and_ratelimit_headers() {
    let up = upstream().await;
    let gw = gateway(up.addr, CORS_AND_LIMIT).await;
    let req = Request::get("/crash")
        .header("host", "gw.test")
        .header("origin", "https://app.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (res, body) = send(gw.addr, req).await;
    assert_eq!(res.status(), 500);
    assert_no_leak(&body);
    assert_eq!(json(&body)["code"], "upstream_error");
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h.get_all("vary").iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin")));
    assert!(h.contains_key("ratelimit") && h.contains_key("ratelimit-policy"), "{h:?}");
    assert_helmet(&res, false);
    // Without an Origin: still Vary: Origin, no Access-Control-*.
    let (res, _) = get(gw.addr, "/sql").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(
        res.headers().get_all("vary").iter().any(|v| v
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin"))
    );
}

// C5 C19 C29 (item 6): heads hyper's parser refuses got a bare status line.
// Now every one gets the security headers, the JSON body with a request id,
// the right status (414 for a long request line), and the connection closes.
#[tokio::test]
async fn c19_parser_level_refusals_carry_headers_and_json() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_header = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"GET /{x}|<y> HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400, "malformed_request"),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_vec(), 400, "ambiguous_framing"),
        (
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx".to_vec(),
            400,
            "ambiguous_framing",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (format!("GET / HTTP/1.1\r\nHost: a\r\n{long_header}\r\n").into_bytes(), 431, "headers_too_large"),
        (format!("GET / HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n").into_bytes(), 431, "headers_too_large"),
    ];
    for (req, status, code) in cases {
        let out = raw(gw.addr, &req).await;
        let shown = String::from_utf8_lossy(&req[..req.len().min(60)]).into_owned();
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{shown:?}: {out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        for (name, value) in HELMET {
            assert!(
                head.contains(&format!("\r\n{name}: {}", value.to_ascii_lowercase())),
                "{shown:?} lacks {name}: {head}"
            );
        }
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(!head.contains("strict-transport-security"), "HSTS over plain HTTP");
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{shown:?}: {body}"));
        assert_eq!(v["code"], code, "{shown:?}");
        let id = head.split("\r\nx-request-id: ").nth(1).unwrap().split("\r\n").next().unwrap();
        assert_eq!(v["request_id"], id);
    }
    assert!(up.seen.try_recv().is_err(), "the upstream saw a refused head");
    // The gateway goes on serving.
    assert_eq!(get(gw.addr, "/ok").await.0.status(), 200);
}

// C28 (issue 13): a malformed Host is refused at the start of the onion,
// before CORS, rate limiting, authentication and the body read: requests
// with it don't use up a client's rate limit, and the gateway doesn't wait
// for a body it announced but never sends.
#[tokio::test]
async fn c28_malformed_host_is_refused_before_rate_limits_and_the_body() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[[rate_limit]]\nroutes = [\"/**\"]\nlimit = 1\nwindow = \"1h\"\n").await;
    for host in ["gw.test/admin", "user@gw.test", "gw.test:80@evil.test", "\"gw\""] {
        let req =
            format!("POST /ok HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
        let out = raw(gw.addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{host}: {out}");
        assert!(out.contains("\"code\":\"invalid_host\""), "{host}: {out}");
        assert!(
            !out.to_ascii_lowercase().contains("ratelimit"),
            "{host}: counted by the rate limiter: {out}"
        );
    }
    assert!(up.seen.try_recv().is_err(), "the upstream saw a request with a malformed Host");
    // The one request the limit allows is still there.
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

// C28 (Host header attacks): with `server.names`, the main listener serves
// only those hosts; a request for any other (reset-link and cache
// poisoning) is refused before the upstream sees it, like the redirect
// listener refuses to redirect it.
#[tokio::test]
async fn c28_main_listener_serves_only_server_names() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "names = [\"api.example.com\"]\n").await;
    for host in ["api.example.com", "API.example.com:8080"] {
        let out =
            raw(gw.addr, format!("GET /ok HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
                .await;
        assert!(out.starts_with("HTTP/1.1 200"), "{host}: {out}");
        assert_eq!(up.seen.recv().await.unwrap().headers["host"], host);
    }
    for target in [
        "GET /ok HTTP/1.1\r\nHost: evil.test",
        "GET /ok HTTP/1.1\r\nHost: api.example.com.evil.test",
        "GET http://evil.test/ok HTTP/1.1\r\nHost: evil.test",
    ] {
        let out = raw(gw.addr, format!("{target}\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{target}: {out}");
        assert!(out.contains("\"code\":\"invalid_host\""), "{target}: {out}");
    }
    assert!(up.seen.try_recv().is_err(), "the upstream saw a request for another host");
}

// C28: an absolute-form target whose host differs from Host is refused (a
// back end that reads one and a policy that reads the other disagree).
#[tokio::test]
async fn c28_absolute_form_host_must_match_host_header() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let out =
        raw(gw.addr, b"GET http://other.test/ok HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("invalid_host"), "{out}");
    assert!(up.seen.try_recv().is_err());
    let out =
        raw(gw.addr, b"GET http://gw.test/ok HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(up.seen.recv().await.unwrap().headers["host"], "gw.test");
}
