//! Reload (issue 17): a new configuration swapped in under load drops no
//! connection and no request; state whose sections did not change (rate
//! limit counters) carries over; what needs a restart is named. The signal,
//! `portcullis reload`, `--watch` and a refused file are tested with the
//! real binary (`crates/portcullis/tests/cli.rs`), certificate rotation in
//! `tests/tls.rs`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis_gateway::server;
use tokio::net::TcpStream;

/// Two configurations: `/v2/**` exists only in the second, whose header
/// also differs, so each request shows which one answered it.
fn config(upstream: std::net::SocketAddr, second: bool, extra: &str) -> portcullis_gateway::config::Config {
    let (v2, frame) =
        if second { ("[[route]]\npath = \"/v2/**\"\npublic = true\n", "DENY") } else { ("", "SAMEORIGIN") };
    config_from(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[headers]\nx_frame_options = \"{frame}\"\n{extra}\n[upstream]\nurl = \"http://{upstream}\"\n[[route]]\npath = \"/v1/**\"\npublic = true\n[[route]]\npath = \"/hold\"\npublic = true\n{v2}"
    ))
}

/// One keep-alive connection sending requests until `stop`; every answer
/// must be a 200 from either configuration. Returns how many it sent.
async fn keep_alive_client(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
) -> usize {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let req =
            Request::builder().uri("/v1/x").header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
        match sender.send_request(req).await {
            Ok(res) => {
                let status = res.status();
                let framed = res.headers().get("x-frame-options").cloned();
                let body = res.into_body().collect().await;
                let ok =
                    status == 200 && body.is_ok() && framed.is_some_and(|v| v == "DENY" || v == "SAMEORIGIN");
                if !ok {
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
        n += 1;
    }
    n
}

/// A new connection per request.
async fn new_connection_client(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
) -> usize {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (res, _) = get(addr, "/v1/y").await;
        if res.status() != 200 {
            errors.fetch_add(1, Ordering::SeqCst);
        }
        n += 1;
    }
    n
}

// C4 C31: twenty reloads during a bounded load: zero errors, each reload
// in force for the next request, and a request in flight across all of
// them answered by the configuration it started on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_no_connection_and_no_request() {
    let mut up = upstream().await;
    let gw = server::start(&config(up.addr, false, "")).await.unwrap();
    let addr = gw.addr;

    let held = tokio::spawn(async move { get(addr, "/hold").await });
    up.seen.recv().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::spawn(keep_alive_client(addr, stop.clone(), errors.clone())));
    }
    clients.push(tokio::spawn(new_connection_client(addr, stop.clone(), errors.clone())));
    // Drain what the upstream saw, so its channel does not grow unbounded.
    let seen = tokio::spawn(async move { while up.seen.recv().await.is_some() {} });

    for i in 0..20 {
        let second = i % 2 == 0;
        let r = gw.reload(&config(up.addr, second, "")).await.unwrap();
        assert!(r.needs_restart.is_empty(), "{:?}", r.needs_restart);
        // The next request, on a new connection, sees the new table.
        let (res, _) = get(addr, "/v2/x").await;
        assert_eq!(res.status(), if second { 200 } else { 404 }, "after reload {i}");
    }
    stop.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for c in clients {
        sent += c.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::SeqCst), 0, "errors during reloads ({sent} requests)");
    assert!(sent >= 20, "the load ran alongside the reloads: {sent} requests");

    up.release.notify_one();
    let (res, body) = held.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body, "released");
    // Started under the first configuration: its header.
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");

    let (_, metrics) = get(gw.admin_addr.unwrap(), "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("portcullis_reloads_total{result=\"ok\"} 20"), "{metrics}");
    seen.abort();
    assert!(gw.drain().await);
}

// C11: counters live in the store; a reload that leaves `[state]` and
// `[rate_limit_options]` alone keeps them (a reload is no way around a
// limit), and a new store starts afresh.
#[tokio::test]
async fn c11_reload_keeps_rate_limit_counters_while_the_store_is_unchanged() {
    let up = upstream().await;
    let limit = "[[rate_limit]]\nname = \"all\"\nlimit = 3\nwindow = \"1m\"\n";
    let gw = server::start(&config(up.addr, false, limit)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/v1/a").await.0.status(), 200);
    }
    // Routes and headers change; the store does not.
    gw.reload(&config(up.addr, true, limit)).await.unwrap();
    let (res, _) = get(gw.addr, "/v1/a").await;
    assert_eq!(res.status(), 429, "the reload reset the counters");
    assert_eq!(res.headers()["x-frame-options"], "DENY");

    // A different store (a new bound on keys): counted from zero.
    let other = format!("[rate_limit_options]\nmax_keys = 5000\n{limit}");
    gw.reload(&config(up.addr, true, &other)).await.unwrap();
    assert_eq!(get(gw.addr, "/v1/a").await.0.status(), 200);
}

// C14: listeners are bound once; a reload that moves one says so and keeps
// serving where it is.
#[tokio::test]
async fn a_reload_names_what_waits_for_a_restart() {
    let up = upstream().await;
    let gw = server::start(&config(up.addr, false, "")).await.unwrap();
    let moved = config_from(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.2:0\"\nworkers = 7\n[limits]\nmax_connections = 7\n[upstream]\nurl = \"http://{}\"\n[[route]]\npath = \"/v1/**\"\npublic = true\n",
        up.addr
    ));
    let r = gw.reload(&moved).await.unwrap();
    assert_eq!(r.needs_restart, ["server.listen", "limits.max_connections", "server.workers"]);
    assert_eq!(get(gw.addr, "/v1/a").await.0.status(), 200);
}

// docs/operations.md's worked example: valid, and it proxies.
#[tokio::test]
async fn the_operations_example_runs() {
    let up = upstream().await;
    let gw = server::start(&config_from(&docs_example_config("operations.md", up.addr))).await.unwrap();
    assert_eq!(get(gw.addr, "/api/x").await.0.status(), 200);
    assert_eq!(get(gw.addr, "/other").await.0.status(), 404);
}
