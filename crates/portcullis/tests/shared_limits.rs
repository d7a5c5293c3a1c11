//! C12 with two real `portcullis serve` processes sharing one real Redis.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "../../portcullis-gateway/tests/common/redis.rs"]
mod redis_server;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn status(addr: SocketAddr, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn c12_two_processes_share_one_limit() {
    let redis = redis_server::RedisServer::start().await;
    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\n\
             [state]\nredis = \"{}\"\n[rate_limit_options]\non_store_error = \"fail_closed\"\n\
             [[rate_limit]]\nname = \"api\"\nroutes = [\"/api/**\"]\nkey = \"global\"\nlimit = 25\nwindow = \"1h\"\n\
             [[route]]\npath = \"/**\"\npublic = true\n",
            redis.url()
        ),
    )
    .unwrap();
    let (_a, a, _, mut out_a) = common::serve(&config, &[]).await;
    let (_b, b, _, mut out_b) = common::serve(&config, &[]).await;
    tokio::spawn(async move { while let Ok(Some(_)) = out_a.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = out_b.next_line().await {} });
    // 40 requests, concurrently, spread over both processes.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let gw = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move { status(gw, "/api/hello").await }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    // Tolerance: none. Each decision is one atomic script on Redis.
    assert_eq!((ok, limited), (25, 15));
}
