//! Shared state across real `portcullis serve` processes: C12 rate limits
//! through one real Redis; C24/C15 identity through one real PostgreSQL and
//! a real Redis Cluster.

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
    // A generous store timeout: this test is about one shared count, not
    // timeouts (tests/ratelimit.rs has those). In a debug build beside a
    // test hashing passwords, the first connect and script load once took
    // longer than the 100 ms default, and fail_closed answered 503.
    std::fs::write(
        &config,
        format!(
            "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\n\
             [state]\nredis = \"{}\"\nredis_timeout = \"5s\"\n[rate_limit_options]\non_store_error = \"fail_closed\"\n\
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

/// The PostgreSQL server the tests use (scripts/test starts one when the
/// machine has none).
fn pg_admin_url() -> String {
    std::env::var("PORTCULLIS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".to_owned())
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    (out[9..12].parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// C24 C15 across processes: two `serve` processes share users and
/// refresh-token families in PostgreSQL and lockout counters in a Redis
/// Cluster. A refresh token issued by one rotates on the other; reuse seen
/// by the second revokes the family for the first; failures counted by
/// one lock the account on the other.
#[tokio::test(flavor = "multi_thread")]
async fn c24_c15_two_processes_share_postgres_and_a_redis_cluster() {
    use sqlx::Connection;
    let cluster = redis_server::RedisCluster::start().await;
    let admin = pg_admin_url();
    let db_name = format!("portcullis_cli{}", std::process::id());
    let mut pg = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin} ({e}); scripts/test starts one"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
        .execute(&mut pg)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(&mut pg).await.unwrap();
    let db = format!("{}/{db_name}", admin.rsplit_once('/').unwrap().0);

    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(
        &key,
        portcullis_gateway::identity::keys::generate(portcullis_gateway::identity::keys::KeyAlg::EdDsa)
            .unwrap(),
    )
    .unwrap();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config = dir.path().join("portcullis.toml");
    // A generous store timeout: this test is about one shared count, not
    // timeouts (tests/ratelimit.rs has those). In a debug build beside a
    // test hashing passwords, the first connect and script load once took
    // longer than the 100 ms default, and fail_closed answered 503.
    std::fs::write(
        &config,
        format!(
            "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\n\
             [state]\ndatabase = \"${{PG_URL}}\"\nredis_cluster = [{}]\n\
             [identity]\nsigning_key = \"file:signing.pem\"\nargon2_memory_kib = 256\nargon2_iterations = 1\nlockout_failures = 3\n\
             [[route]]\npath = \"/api/**\"\n",
            nodes.join(", ")
        ),
    )
    .unwrap();
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["users", "add", "alice", "--config", config.to_str().unwrap()])
        .env("PG_URL", &db)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"alice-password\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (_a, a, _, mut out_a) = common::serve(&config, &[("PG_URL", &db)]).await;
    let (_b, b, _, mut out_b) = common::serve(&config, &[("PG_URL", &db)]).await;
    tokio::spawn(async move {
        while let Ok(Some(l)) = out_a.next_line().await {
            if l.contains("ERROR") || l.contains("error") {
                eprintln!("A {l}");
            }
        }
    });
    tokio::spawn(async move { while let Ok(Some(_)) = out_b.next_line().await {} });

    let login = r#"{"username":"alice","password":"alice-password"}"#;
    let (s, v) = post(a, "/auth/login", login).await;
    assert_eq!(s, 200, "{v}");
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, v) = post(b, "/auth/refresh", &format!("{{\"refresh_token\":\"{r1}\"}}")).await;
    assert_eq!(s, 200, "issued by one, rotated on the other: {v}");
    let r2 = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, v) = post(b, "/auth/refresh", &format!("{{\"refresh_token\":\"{r1}\"}}")).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_grant")), "reuse");
    let (s, _) = post(a, "/auth/refresh", &format!("{{\"refresh_token\":\"{r2}\"}}")).await;
    assert_eq!(s, 401, "the family revoked on the second is revoked on the first");

    let wrong = r#"{"username":"alice","password":"wrong"}"#;
    for _ in 0..3 {
        assert_eq!(post(a, "/auth/login", wrong).await.0, 401);
    }
    let (s, v) = post(b, "/auth/login", login).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("login_locked")),
        "the lock set through one holds on the other"
    );
    drop((_a, _b));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
        .execute(&mut pg)
        .await
        .unwrap();
}
