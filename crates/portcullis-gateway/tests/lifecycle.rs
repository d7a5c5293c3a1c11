//! Graceful shutdown, connection caps, idle connections, admin endpoints (C14).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[tokio::test]
async fn graceful_drain_finishes_in_flight_and_refuses_new() {
    let mut up = upstream().await;
    let mut gw = gateway(up.addr, "").await;
    let addr = gw.addr;
    let admin = gw.admin_addr.unwrap();
    assert_eq!(get(admin, "/readyz").await.0.status(), 200);

    let in_flight = tokio::spawn(async move { get(addr, "/hold").await });
    // The upstream has the request: it is in flight.
    assert_eq!(up.seen.recv().await.unwrap().path_and_query, "/hold");

    gw.shutdown();
    gw.stopped_accepting().await;
    assert!(TcpStream::connect(addr).await.is_err(), "new connections must be refused while draining");
    // The admin listener keeps answering, and says not ready.
    let (res, body) = get(admin, "/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(&body)["status"], "draining");
    assert_eq!(gw.open_connections(), 1);

    up.release.notify_one();
    let (res, body) = in_flight.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body, "released");
    assert!(gw.drain().await, "drain did not complete");
}

#[tokio::test]
async fn drain_gives_up_after_the_grace_period() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nshutdown_grace = \"200ms\"").await;
    let addr = gw.addr;
    let _held = tokio::spawn(async move { get(addr, "/hold").await });
    up.seen.recv().await.unwrap();
    assert!(!gw.drain().await, "a request that never finishes can't drain");
}

#[tokio::test]
async fn c14_connection_cap_holds_extra_connections_back() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nmax_connections = 1").await;
    // First connection occupies the only slot (a held request).
    let addr = gw.addr;
    let first = tokio::spawn(async move { get(addr, "/hold").await });
    up.seen.recv().await.unwrap();
    // The second connection is not served while the first is open.
    let second = tokio::spawn(async move { get(addr, "/ok").await });
    let early = tokio::time::timeout(Duration::from_millis(300), async { up.seen.recv().await }).await;
    assert!(early.is_err(), "a second connection was served above the cap");
    up.release.notify_one();
    assert_eq!(first.await.unwrap().0.status(), 200);
    // The first connection closes (the client helper drops it), the slot frees.
    assert_eq!(second.await.unwrap().0.status(), 200);
}

#[tokio::test]
async fn c14_idle_keep_alive_connections_are_closed() {
    let up = upstream().await;
    let gw = gateway(up.addr, "[limits]\nidle_timeout = \"300ms\"").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let res = sender
        .send_request(Request::get("/ok").header("host", "a").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;
    // The server closes the idle connection; the client's connection task ends.
    let done = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(done.is_ok(), "idle connection was not closed");
}

#[tokio::test]
async fn admin_endpoints() {
    let up = upstream().await;
    let gw = gateway(up.addr, "").await;
    let admin = gw.admin_addr.unwrap();
    assert!(admin.ip().is_loopback());
    let (res, body) = get(admin, "/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&body)["status"], "ok");
    assert_eq!(get(admin, "/nope").await.0.status(), 404);
    // On the main listener /healthz is just a path of the upstream.
    let (_, body) = get(gw.addr, "/healthz").await;
    assert_eq!(json(&body), serde_json::json!({"ok": true}));
}
