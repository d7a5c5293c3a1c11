//! The proxy core over real sockets: headers (C5 C6 C2), forwarding (C3),
//! framing and paths (C28), limits (C13 C14), errors (C29).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn c5_c6_exact_helmet_set_on_every_kind_of_response() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    // success, upstream 5xx, upstream HTML 404, upstream JSON 404, 304, our own 400, our own 413
    for path in ["/ok", "/crash", "/sql", "/notfound-html", "/notfound-json", "/not-modified", "/%2e%2e/x"] {
        let (res, _) = get(gw.addr, path).await;
        assert_helmet(&res, false);
    }
    let req = Request::post("/echo")
        .header("host", "gw.test")
        .header("content-length", "2000000")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let tcp_res = raw(gw.addr, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n").await;
    assert!(tcp_res.starts_with("HTTP/1.1 413"), "{tcp_res}");
    drop(req);
    let (res, body) = get(gw.addr, "/ok").await;
    assert_eq!(res.status(), 200);
    assert_eq!(body, "{\"ok\":true}");
    // Exactly the helmet set plus what the response itself needs.
    let mut expected: Vec<String> = HELMET.iter().map(|(n, _)| (*n).to_owned()).collect();
    expected.extend(["content-length", "content-type", "date", "x-request-id"].map(String::from));
    expected.sort();
    assert_eq!(names(&res), expected);
}

#[tokio::test]
async fn c2_c9_upstream_hsts_dropped_over_http_and_cookies_hardened_by_default() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let (res, _) = get(gw.addr, "/set-cookie").await;
    assert!(res.headers().get("strict-transport-security").is_none());
    // [cookies] is on by default; no Secure over plain HTTP.
    assert_eq!(res.headers()["set-cookie"], "sid=abc; Path=/; HttpOnly; SameSite=Lax");
}

#[tokio::test]
async fn c29_upstream_errors_replaced_status_kept() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    for (path, status, message) in [
        ("/crash", 500, "Internal Server Error"),
        ("/sql", 503, "Service Unavailable"),
        ("/notfound-html", 404, "Not Found"),
    ] {
        let (res, body) = get(gw.addr, path).await;
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_no_leak(&body);
        let v = json(&body);
        assert_eq!(v["error"], message);
        assert_eq!(v["code"], "upstream_error");
        assert_eq!(v["request_id"], res.headers()["x-request-id"].to_str().unwrap());
    }
    // A JSON 4xx from the API is the API's answer and passes unchanged.
    let (res, body) = get(gw.addr, "/notfound-json").await;
    assert_eq!(res.status(), 404);
    assert_eq!(body, "{\"error\":\"no such thing\"}");
}

#[tokio::test]
async fn c29_upstream_down_is_502_and_slow_is_504() {
    // A port with nothing listening: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = gateway(dead, "").await;
    let (res, body) = get(gw.addr, "/x").await;
    assert_eq!(res.status(), 502);
    assert_eq!(json(&body)["code"], "upstream_unavailable");

    let up = upstream().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[upstream]\nurl = \"http://{}\"\ntimeout = \"300ms\"\n{PUBLIC_CATCH_ALL}",
        up.addr
    );
    let gw = portcullis_gateway::server::start(&config_from(&text)).await.unwrap();
    let (res, body) = get(gw.addr, "/hold").await;
    assert_eq!(res.status(), 504);
    assert_eq!(json(&body)["code"], "upstream_timeout");
}

#[tokio::test]
async fn c3_forwarded_headers_overwritten_from_untrusted_peer() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let req = Request::get("/ok")
        .header("host", "api.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.test")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-request-id", "attacker-chosen")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (res, _) = send(gw.addr, req).await;
    let seen = up.seen.recv().await.unwrap();
    let h = &seen.headers;
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http;host=\"api.example.com\"");
    assert_eq!(h["host"], "api.example.com");
    assert_ne!(h["x-request-id"], "attacker-chosen");
    assert_eq!(h["x-request-id"], res.headers()["x-request-id"]);
}

#[tokio::test]
async fn c3_forwarded_headers_honoured_from_trusted_peer() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "trusted_proxies = [\"127.0.0.0/8\"]").await;
    let req = Request::get("/ok")
        .header("host", "internal")
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "lb-1234")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (res, _) = send(gw.addr, req).await;
    let seen = up.seen.recv().await.unwrap();
    let h = &seen.headers;
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 198.51.100.7, 127.0.0.1");
    assert_eq!(h["x-real-ip"], "198.51.100.7");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-request-id"], "lb-1234");
    assert_eq!(res.headers()["x-request-id"], "lb-1234");
    // HTTPS at the trusted proxy means HSTS is sent.
    assert_helmet(&res, true);
}

#[tokio::test]
async fn c3_hop_by_hop_removed_and_connection_cannot_strip_forwarding() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let out = raw(
        gw.addr,
        b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close, X-Forwarded-For, X-Real-IP, X-Debug\r\nX-Debug: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let h = up.seen.recv().await.unwrap().headers;
    assert!(h.get("x-debug").is_none());
    assert!(h.get("keep-alive").is_none());
    assert!(h.get("proxy-authorization").is_none());
    assert!(h.get("te").is_none());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
}

// C28: the path the upstream sees is byte for byte the canonical path.
#[tokio::test]
async fn c28_canonical_path_is_what_is_forwarded() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let table = [
        ("/api/./users", "/api/users"),
        ("//api//users", "/api/users"),
        ("/api/public/../admin", "/api/admin"),
        ("/%61pi/%7Eme", "/api/~me"),
        ("/api/caf%c3%a9?q=%2e%2e&x=1", "/api/caf%C3%A9?q=%2e%2e&x=1"),
    ];
    for (sent, forwarded) in table {
        let (res, _) = get(gw.addr, sent).await;
        assert_eq!(res.status(), 200, "{sent}");
        assert_eq!(up.seen.recv().await.unwrap().path_and_query, forwarded, "{sent}");
    }
}

#[tokio::test]
async fn c28_unresolvable_paths_refused_and_never_forwarded() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    for path in [
        "/api/%2e%2e/admin",
        "/api/..%2fadmin",
        "/api%2fadmin",
        "/api/%5c..%5cadmin",
        "/admin%00",
        "/%252e%252e/admin",
        "/admin;x=1",
        "/public/..;/admin",
        "/..",
        "/a/../../admin",
    ] {
        let (res, body) = get(gw.addr, path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert_eq!(json(&body)["code"], "invalid_path");
        assert!(!String::from_utf8_lossy(&body).contains("admin"), "echo of input");
    }
    // Raw bytes hyper's client would not send: backslashes.
    let out = raw(gw.addr, b"GET /public\\..\\admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // The strict policy refuses what the default resolves.
    let strict = gateway(up.addr, "[paths]\nmerge_slashes = false\nresolve_dot_segments = false").await;
    assert_eq!(get(strict.addr, "//api").await.0.status(), 400);
    assert_eq!(get(strict.addr, "/a/./b").await.0.status(), 400);
    assert!(up.seen.try_recv().is_err(), "a refused request reached the upstream");
}

// C28: CL.TE smuggling: 400 and the connection closes, nothing is forwarded.
#[tokio::test]
async fn c28_cl_te_refused_and_connection_closed() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    for attack in [
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
    ] {
        // read_to_end returns only when the server closes the connection.
        let out = raw(gw.addr, attack).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert!(out.contains("ambiguous_framing"));
        assert!(out.to_ascii_lowercase().contains("connection: close"));
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "smuggled request answered: {out}");
    }
    for attack in [
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"[..],
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"[..],
        &b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"[..],
    ] {
        let out = raw(gw.addr, attack).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }
    assert!(up.seen.try_recv().is_err(), "an ambiguous request reached the upstream");
}

#[tokio::test]
async fn keep_alive_across_bodies_still_works() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let out = raw(
        gw.addr,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    assert_eq!(up.seen.recv().await.unwrap().body, "hello");
    assert_eq!(up.seen.recv().await.unwrap().body, "abc");
}

#[tokio::test]
async fn c13_body_limits_declared_and_chunked() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nbody = \"1kb\"").await;
    let out =
        raw(gw.addr, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\nConnection: close\r\n\r\n")
            .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("body_too_large"));
    // Chunked, no Content-Length: 3 x 512 bytes.
    let mut req =
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'x'; 512]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let out = raw(gw.addr, &req).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // Exactly at the limit passes, byte for byte.
    let body = vec![b'y'; 1024];
    let res = send(
        gw.addr,
        Request::post("/echo").header("host", "a").body(Full::new(Bytes::from(body.clone()))).unwrap(),
    )
    .await;
    assert_eq!(res.0.status(), 200);
    assert_eq!(res.1, body);
    // The upstream never saw more than the limit.
    while let Ok(seen) = up.seen.try_recv() {
        assert!(seen.body.len() <= 1024);
    }
}

#[tokio::test]
async fn c14_header_caps_give_431() {
    let up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nheader_bytes = \"8kb\"\nmax_headers = 20").await;
    let mut big = b"GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend_from_slice(&[b'a'; 10_000]);
    big.extend_from_slice(b"\r\n\r\n");
    let out = raw(gw.addr, &big).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let mut many = b"GET /ok HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..30 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let out = raw(gw.addr, &many).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

// C14: a client that never finishes its head is cut off (slowloris).
#[tokio::test]
async fn c14_slowloris_head_is_cut_off() {
    let up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nheader_read_timeout = \"300ms\"").await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    // Returns when the server closes; a hang here fails the test by timeout.
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "connection was not closed");
    assert!(!String::from_utf8_lossy(&buf).contains("200"));
}

#[tokio::test]
async fn c14_stalled_body_is_408() {
    let up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nbody_read_timeout = \"300ms\"").await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-a-part").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    let out = String::from_utf8_lossy(&buf);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

#[tokio::test]
async fn websocket_upgrade_passthrough() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[[route]]\npath = \"/ws\"\npublic = true\nwebsocket = true\n").await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"));
    let seen = up.seen.recv().await.unwrap();
    assert_eq!(seen.headers["upgrade"], "websocket");
    tcp.write_all(b"ping-frame").await.unwrap();
    let mut echo = [0u8; 10];
    tcp.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping-frame");
}

#[tokio::test]
async fn invalid_host_refused() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nHost: a b<script>\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains("<script>"));
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn upstream_headers_from_secrets_are_sent() {
    let mut up = upstream().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n[upstream]\nurl = \"http://{}\"\nheaders = {{ \"X-Api-Key\" = \"${{PORTCULLIS_TEST_KEY}}\" }}\n{PUBLIC_CATCH_ALL}",
        up.addr
    );
    let cfg = portcullis_gateway::config::from_str(&text, std::path::Path::new("."), &|n| {
        (n == "PORTCULLIS_TEST_KEY").then(|| "k-123".to_owned())
    })
    .unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let req = Request::get("/ok")
        .header("host", "a")
        .header("x-api-key", "client-forged")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let _ = send(gw.addr, req).await;
    let seen = up.seen.recv().await.unwrap();
    assert_eq!(seen.headers["x-api-key"], "k-123");
    assert_eq!(seen.headers.get_all("x-api-key").iter().count(), 1);
}

/// An upstream that answers 200 to everything and counts the connections
/// it accepted.
async fn counting_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// Issue 16 item 5: upstream connections are kept alive and reused by
/// default, and `upstream.max_idle_connections = 0` keeps none (a new
/// connection for every request).
#[tokio::test]
async fn c14_upstream_keep_alive_is_reused_and_can_be_capped_to_none() {
    for (extra, expect_new_each_time) in [("", false), ("max_idle_connections = 0\n", true)] {
        let (up, accepted) = counting_upstream().await;
        // The pool keys belong to [upstream], which `gateway` writes last.
        // Two workers: a pool each (the test below), so at most two.
        let text = format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n[upstream]\nurl = \"http://{up}\"\n{extra}{PUBLIC_CATCH_ALL}"
        );
        let gw = portcullis_gateway::server::start(&config_from(&text)).await.unwrap();
        for _ in 0..6 {
            let (res, _) = get(gw.addr, "/x").await;
            assert_eq!(res.status(), 200);
        }
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        if expect_new_each_time {
            assert_eq!(n, 6, "{extra}: one upstream connection per request");
        } else {
            assert!(n <= 2, "{extra}: {n} upstream connections for 6 sequential requests");
        }
    }
}

/// Issue 16 item 7: `server.workers = 4` serves the main listener from four
/// threads, each accepting on its own `SO_REUSEPORT` socket and keeping its
/// own upstream pool. Forty connections in turn (one request each) are
/// spread by the kernel over the sockets by their source ports: the
/// upstream sees one connection per worker that got any, so more than one
/// (the pools are not shared: one shared pool would reuse a single
/// connection) and at most four (each worker reuses its own). A second
/// gateway on the same port is refused, and the drain covers every worker.
#[tokio::test]
async fn c14_workers_share_the_port_and_each_keeps_its_own_upstream_pool() {
    let (up, accepted) = counting_upstream().await;
    let text = |listen: &str| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"{listen}\"\nworkers = 4\n[upstream]\nurl = \"http://{up}\"\n{PUBLIC_CATCH_ALL}"
        )
    };
    let cfg = config_from(&text("127.0.0.1:0"));
    assert_eq!(cfg.server.workers, 4);
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    for i in 0..40 {
        let (res, _) = get(gw.addr, "/x").await;
        assert_eq!(res.status(), 200, "request {i}");
    }
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=4).contains(&n), "{n} upstream connections for 40 requests over 4 workers");

    let again = portcullis_gateway::server::start(&config_from(&text(&gw.addr.to_string()))).await;
    let err = again.err().expect("a second gateway joined the port");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().starts_with(&format!("server.listen = \"{}\"", gw.addr)), "{err}");
    assert_eq!(get(gw.addr, "/x").await.0.status(), 200, "still served after the refused start");

    let addr = gw.addr;
    assert!(gw.drain().await);
    if let Ok(c) = tokio::net::TcpStream::connect(addr).await {
        panic!("a worker still accepts after the drain: {:?} -> {:?}", c.local_addr(), c.peer_addr());
    }
}

/// An upstream that answers 200 with keep-alive but closes each connection
/// once it has answered `per_connection` requests and then been told to
/// (`close`: its keep-alive timeout in effect), and reports each close.
async fn closing_upstream(
    per_connection: usize,
    close: Arc<tokio::sync::Notify>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let closed_tx = closed_tx.clone();
            let close = close.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                while answered < per_connection {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = tcp.read(&mut chunk).await else { break };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        answered += 1;
                        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    }
                }
                // Told to close; unless the gateway closed first.
                if answered >= per_connection {
                    close.notified().await;
                }
                drop(tcp);
                let _ = closed_tx.send(());
            });
        }
    });
    (addr, closed)
}

fn pool_config(up: SocketAddr, server: &str, upstream: &str) -> portcullis_gateway::config::Config {
    config_from(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n{server}[upstream]\nurl = \"http://{up}\"\n{upstream}{PUBLIC_CATCH_ALL}"
    ))
}

/// Issue 16 (the pool of our own): a pooled connection the upstream has
/// closed since (its keep-alive timeout) costs no request: each request
/// here is answered on a connection the upstream closes once it is back in
/// the pool, and every next request is answered (the pool skips a closed
/// connection, or gets the unsent request back and sends it on a new one).
#[tokio::test]
async fn c14_a_connection_the_upstream_closed_is_not_reused() {
    let close = Arc::new(tokio::sync::Notify::new());
    let (up, mut closed) = closing_upstream(1, close.clone()).await;
    let gw = portcullis_gateway::server::start(&pool_config(up, "workers = 1\n", "")).await.unwrap();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    for i in 0..20 {
        let req = Request::get("/x").header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200, "request {i} on a closed upstream connection");
        let _ = http_body_util::BodyExt::collect(res.into_body()).await;
        close.notify_one();
        closed.recv().await.unwrap();
    }
}

/// `upstream.idle_connection_timeout` (issue 16 item 5): an idle upstream
/// connection is closed once idle that long, not before, and not much
/// after (the pool looks every half timeout). Paused clock, one worker:
/// the gateway runs on this runtime.
#[tokio::test(start_paused = true)]
async fn c14_idle_upstream_connections_close_after_the_idle_timeout() {
    let (up, mut closed) = closing_upstream(usize::MAX, Arc::default()).await;
    let cfg = pool_config(up, "workers = 1\n", "idle_connection_timeout = \"2s\"\n");
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let (res, _) = get(gw.addr, "/x").await;
    assert_eq!(res.status(), 200);
    let idle_since = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("never closed").unwrap();
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_secs(2) && idle <= Duration::from_secs(3) + Duration::from_millis(100),
        "closed after {idle:?}"
    );
}
