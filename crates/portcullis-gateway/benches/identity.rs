//! Login and refresh throughput of the built-in identity provider (C24),
//! through the real gateway on loopback:
//!
//!     cargo bench -p portcullis-gateway --bench identity
//!
//! Logins cost one argon2id verification each, so their figure is the
//! hash parameters' figure: it prints them beside it (the defaults, OWASP's
//! m=19 MiB, t=2, p=1, unless `ARGON2_MEMORY_KIB` / `ARGON2_ITERATIONS` say
//! otherwise). Refreshes cost one database transaction and one signature.
//! `CONCURRENCY` clients (default 8) each send `LOGINS` (default 64) logins
//! and `REFRESHES` (default 2000) refreshes in all, one request per
//! connection; SQLite always, PostgreSQL too when `PG_URL` names a
//! database (Portcullis' tables are created there if missing; the bench's
//! users are removed at the end).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_gateway::identity::keys::{KeyAlg, generate};
use portcullis_gateway::identity::password::{Cost, Hasher};
use portcullis_gateway::identity::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    (out[9..12].parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

fn report(what: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "  {what:<9} {:>6} in {:>6.2} s  {:>8.1}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        q(0.5),
        q(0.99)
    );
}

async fn run(label: &str, database: &str, cost: Cost, clients: u64, logins: u64, refreshes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, generate(KeyAlg::EdDsa).unwrap()).unwrap();
    let store = Store::open(database).await.unwrap();
    let hasher = Hasher::new(cost, 2).unwrap();
    let hash = hasher.hash("bench-password-1").await.unwrap();
    for i in 0..clients {
        let _ = store.remove_user(&format!("bench{i}")).await;
        store.add_user(&format!("bench{i}"), &hash, &["user".to_owned()]).await.unwrap();
    }
    let text = format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\
         [state]\ndatabase = \"${{BENCH_DATABASE}}\"\n[identity]\nsigning_key = \"file:{}\"\n\
         argon2_memory_kib = {}\nargon2_iterations = {}\nargon2_parallelism = {}\nlockout_client_failures = 100000\n\
         [[route]]\npath = \"/api/**\"\n",
        key.display(),
        cost.memory_kib,
        cost.iterations,
        cost.parallelism
    );
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|n| {
        (n == "BENCH_DATABASE").then(|| database.to_owned())
    })
    .unwrap();
    let hash_concurrency = cfg.identity.as_ref().unwrap().hash_concurrency;
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let addr = gw.addr;
    println!(
        "{label}: argon2id m={} KiB t={} p={}, hash_concurrency {hash_concurrency}, {clients} clients",
        cost.memory_kib, cost.iterations, cost.parallelism
    );

    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(async move {
                let body = format!("{{\"username\":\"bench{i}\",\"password\":\"bench-password-1\"}}");
                let mut lat = Vec::new();
                for _ in 0..logins / clients {
                    let s = Instant::now();
                    let (status, v) = post(addr, "/auth/login", &body).await;
                    assert_eq!(status, 200, "{v}");
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    report("logins", lat, t.elapsed());

    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(async move {
                let body = format!("{{\"username\":\"bench{i}\",\"password\":\"bench-password-1\"}}");
                let (_, v) = post(addr, "/auth/login", &body).await;
                let mut token = v["refresh_token"].as_str().unwrap().to_owned();
                let mut lat = Vec::new();
                for _ in 0..refreshes / clients {
                    let s = Instant::now();
                    let (status, v) =
                        post(addr, "/auth/refresh", &format!("{{\"refresh_token\":\"{token}\"}}")).await;
                    assert_eq!(status, 200, "{v}");
                    token = v["refresh_token"].as_str().unwrap().to_owned();
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await.unwrap());
    }
    report("refreshes", lat, t.elapsed());
    for i in 0..clients {
        let _ = store.remove_user(&format!("bench{i}")).await;
    }
    drop(gw);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let d = Cost::default();
    let cost = Cost {
        memory_kib: u32::try_from(env_or("ARGON2_MEMORY_KIB", u64::from(d.memory_kib))).unwrap(),
        iterations: u32::try_from(env_or("ARGON2_ITERATIONS", u64::from(d.iterations))).unwrap(),
        parallelism: 1,
    };
    let clients = env_or("CONCURRENCY", 8).max(1);
    let logins = env_or("LOGINS", 64).max(clients);
    let refreshes = env_or("REFRESHES", 2000).max(clients);
    println!(
        "identity throughput, {} CPUs, one request per connection on loopback",
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("SQLite", &sqlite, cost, clients, logins, refreshes).await;
        if let Ok(pg) = std::env::var("PG_URL") {
            run("PostgreSQL", &pg, cost, clients, logins, refreshes).await;
        }
    });
}
