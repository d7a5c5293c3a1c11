//! C11, C12 through the gateway: memory and Redis stores, spoofing, store
//! failure and recovery.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use redis_server::{RedisCluster, RedisServer};

fn get_from(path: &str, xff: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path).header("host", "api.test");
    if let Some(x) = xff {
        b = b.header("x-forwarded-for", x);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

const LOGIN_RULE: &str = "[[rate_limit]]\nname = \"login\"\nroutes = [\"/auth/**\"]\nmethods = [\"GET\"]\nkey = \"ip\"\nlimit = 3\nwindow = \"1h\"\n";

#[tokio::test]
async fn c11_limits_through_the_gateway_and_spoofing_does_not_help() {
    let up = upstream().await;
    let gw = gateway(up.addr, LOGIN_RULE).await;
    for i in 0..3 {
        // Each attempt claims another client: an untrusted peer's XFF is ignored.
        let (res, _) = send(gw.addr, get_from("/auth/login", Some(&format!("10.0.0.{i}")))).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-policy"], "\"login\";q=3;w=3600");
    }
    let (res, body) = send(gw.addr, get_from("/Auth/Login/", Some("10.9.9.9"))).await;
    assert_eq!(res.status(), 429);
    assert_eq!(json(&body)["code"], "rate_limited");
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert_helmet(&res, false);
    // Other routes are not limited by the login rule.
    assert_eq!(send(gw.addr, get_from("/api/x", None)).await.0.status(), 200);
}

#[tokio::test]
async fn c11_trusted_proxy_clients_are_keyed_separately() {
    let up = upstream().await;
    let gw = gateway(up.addr, &format!("trusted_proxies = [\"127.0.0.1/32\"]\n{LOGIN_RULE}")).await;
    for _ in 0..3 {
        assert_eq!(send(gw.addr, get_from("/auth/login", Some("198.51.100.1"))).await.0.status(), 200);
    }
    assert_eq!(send(gw.addr, get_from("/auth/login", Some("198.51.100.1"))).await.0.status(), 429);
    // A different client behind the same proxy has its own budget.
    assert_eq!(send(gw.addr, get_from("/auth/login", Some("198.51.100.2"))).await.0.status(), 200);
}

async fn redis_gateway(
    up: std::net::SocketAddr,
    redis: &str,
    mode: &str,
) -> portcullis_gateway::server::Running {
    gateway(
        up,
        &format!(
            "[state]\nredis = \"{redis}\"\nredis_timeout = \"200ms\"\n[rate_limit_options]\non_store_error = \"{mode}\"\n{LOGIN_RULE}"
        ),
    )
    .await
}

// C12: two gateways (own stores, own connections) share one Redis limit.
#[tokio::test(flavor = "multi_thread")]
async fn c12_two_gateways_one_limit_exactly() {
    let redis = RedisServer::start().await;
    let up = upstream().await;
    let a = redis_gateway(up.addr, &redis.url(), "fail_closed").await;
    let b = redis_gateway(up.addr, &redis.url(), "fail_closed").await;
    let mut ok = 0;
    for i in 0..10 {
        let gw = if i % 2 == 0 { a.addr } else { b.addr };
        if send(gw, get_from("/auth/login", None)).await.0.status() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 3, "the combined limit is exact: one atomic script per decision");
    let ttl: i64 = redis.cli(&["PTTL", "portcullis:rl:login:ip:127.0.0.1"]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 3_601_000, "state expires with the window: {ttl}");
}

#[tokio::test(flavor = "multi_thread")]
async fn c12_redis_down_fail_closed_is_503_then_recovers() {
    let mut redis = RedisServer::start().await;
    let up = upstream().await;
    let gw = redis_gateway(up.addr, &redis.url(), "fail_closed").await;
    assert_eq!(send(gw.addr, get_from("/auth/login", None)).await.0.status(), 200);
    redis.stop().await;
    let (res, body) = send(gw.addr, get_from("/auth/login", None)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(&body)["code"], "unavailable");
    // Unlimited routes don't depend on Redis.
    assert_eq!(send(gw.addr, get_from("/api/x", None)).await.0.status(), 200);
    redis.restart().await;
    // The connection manager reconnects by itself: the first calls after the
    // restart may still see the dead connection (each bounded by the 200 ms
    // store timeout), then decisions are made on Redis again.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let s = send(gw.addr, get_from("/auth/login", None)).await.0.status().as_u16();
        statuses.push(s);
        if s == 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&200), "no recovery after restart: {statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 503), "{statuses:?}");
    assert_eq!(redis.cli(&["EXISTS", "portcullis:rl:login:ip:127.0.0.1"]), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn c12_redis_down_fail_open_uses_the_local_limiter() {
    let mut redis = RedisServer::start().await;
    let up = upstream().await;
    let gw = redis_gateway(up.addr, &redis.url(), "fail_open").await;
    redis.stop().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(gw.addr, get_from("/auth/login", None)).await.0.status().as_u16());
    }
    // Still limited, by the in-process store, and never hanging.
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    // The failures are counted for monitoring (C31).
    let (res, body) = get(gw.admin_addr.unwrap(), "/metrics").await;
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("portcullis_store_errors_total{store=\"rate_limit\"} 4"), "{text}");
    assert!(text.contains("portcullis_ratelimit_rejected_total 1"), "{text}");
    assert!(
        text.contains("portcullis_rejections_total{control=\"C11\",reason=\"rate_limited\"} 1"),
        "{text}"
    );
    let route = "route=\"/**\",method=\"GET\"";
    assert!(text.contains(&format!("portcullis_requests_total{{{route},status_class=\"2xx\"}} 3")), "{text}");
    assert!(text.contains(&format!("portcullis_requests_total{{{route},status_class=\"4xx\"}} 1")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn c12_redis_unreachable_at_startup_does_not_block_startup() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let up = upstream().await;
    let gw = redis_gateway(up.addr, &format!("redis://{dead}"), "fail_closed").await;
    assert_eq!(send(gw.addr, get_from("/auth/login", None)).await.0.status(), 503);
    assert_eq!(send(gw.addr, get_from("/api/x", None)).await.0.status(), 200);
}

// C12 on a real three-master Redis Cluster: keys of several rules in
// different slots, each decided atomically on its node.
#[tokio::test(flavor = "multi_thread")]
async fn c12_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let up = upstream().await;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let extra = format!(
        "[state]\nredis_cluster = [{}]\nredis_timeout = \"2s\"\n[rate_limit_options]\non_store_error = \"fail_closed\"\n{LOGIN_RULE}\
         [[rate_limit]]\nname = \"all\"\nkey = \"global\"\nlimit = 100\nwindow = \"1h\"\n",
        nodes.join(", ")
    );
    let a = gateway(up.addr, &extra).await;
    let b = gateway(up.addr, &extra).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let gw = if i % 2 == 0 { a.addr } else { b.addr };
        let (res, _) = send(gw, get_from("/auth/login", None)).await;
        statuses.push(res.status().as_u16());
        if res.status() == 200 {
            assert!(res.headers()["ratelimit"].to_str().unwrap().contains("\"all\";r="));
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    // The keys live in the cluster (redis-cli -c follows redirections).
    let port = cluster.nodes[0].addr.port().to_string();
    let out = std::process::Command::new("redis-cli")
        .args(["-c", "-p", &port, "EXISTS", "portcullis:rl:login:ip:127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
