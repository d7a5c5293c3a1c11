//! C12 with two real `portcullis serve` processes sharing one real Redis.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

#[path = "../../portcullis-gateway/tests/common/redis.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

async fn serve(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("serve exited");
        if line.contains("portcullis started") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["listen"].as_str().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

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
             [[rate_limit]]\nname = \"api\"\nroutes = [\"/api/**\"]\nkey = \"global\"\nlimit = 25\nwindow = \"1h\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let (_a, a) = serve(&config).await;
    let (_b, b) = serve(&config).await;
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
