//! Rate-limit decision cost, memory and Redis stores (C11, C12).
//!
//!     cargo bench -p portcullis-gateway --bench ratelimit
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`); skipped with a
//! message when unreachable. Prints decisions per second and, for Redis,
//! the latency a decision adds to a request (p50/p99) on loopback.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_gateway::redis_store::RedisStore;
use portcullis_layers::ratelimit::{Check, MemoryStore, Rate, Store};

fn checks(key: &str, rules: usize) -> Vec<Check> {
    (0..rules)
        .map(|i| Check {
            key: format!("rl:bench{i}:ip:{key}"),
            rate: Rate::new(1_000_000_000, Duration::from_secs(1)),
        })
        .collect()
}

fn per_sec(n: u64, d: Duration) -> String {
    let v = n as f64 / d.as_secs_f64();
    if v > 1e6 { format!("{:.2} M/s", v / 1e6) } else { format!("{:.0} k/s", v / 1e3) }
}

fn memory() {
    let store = MemoryStore::new(100_000);
    // One hot key, one rule.
    let c = checks("203.0.113.7", 1);
    let n = 2_000_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(store.decide_now(&c));
    }
    let d = t.elapsed();
    println!(
        "memory  1 rule, hot key        {:>12}  {:>7.0} ns/decision",
        per_sec(n, d),
        d.as_nanos() as f64 / n as f64
    );
    // Three rules per request, 50k distinct clients (realistic spread).
    let keys: Vec<Vec<Check>> =
        (0..50_000).map(|i| checks(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), 3)).collect();
    let n = 1_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(store.decide_now(&keys[(i % 50_000) as usize]));
    }
    let d = t.elapsed();
    println!(
        "memory  3 rules, 50k clients   {:>12}  {:>7.0} ns/decision",
        per_sec(n, d),
        d.as_nanos() as f64 / n as f64
    );
    // Contended: 2 threads on the same shards.
    let store = Arc::new(MemoryStore::new(100_000));
    let n = 1_000_000u64;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|th| {
            let store = store.clone();
            let keys: Vec<Vec<Check>> = (0..1000).map(|i| checks(&format!("t{th}-{i}"), 1)).collect();
            std::thread::spawn(move || {
                for i in 0..n / 2 {
                    std::hint::black_box(store.decide_now(&keys[(i % 1000) as usize]));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let d = t.elapsed();
    println!("memory  1 rule, 2 threads      {:>12}", per_sec(n, d));
}

async fn redis() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = Arc::new(RedisStore::standalone(&url, Duration::from_secs(1)).unwrap());
    if store.decide(&checks("probe", 1)).await.is_err() {
        println!("redis   skipped: no Redis at REDIS_URL ({url})");
        return;
    }
    // Sequential: the latency one decision adds to a request.
    let c = checks("198.51.100.9", 1);
    let mut lat = Vec::with_capacity(20_000);
    for _ in 0..1_000 {
        store.decide(&c).await.unwrap();
    }
    let t = Instant::now();
    for _ in 0..20_000 {
        let s = Instant::now();
        store.decide(&c).await.unwrap();
        lat.push(s.elapsed());
    }
    let d = t.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "redis   1 rule, sequential     {:>12}  added latency p50 {:?} p99 {:?}",
        per_sec(20_000, d),
        pct(0.50),
        pct(0.99)
    );
    let c3 = checks("198.51.100.9", 3);
    let t = Instant::now();
    for _ in 0..10_000 {
        store.decide(&c3).await.unwrap();
    }
    println!("redis   3 rules, sequential    {:>12}", per_sec(10_000, t.elapsed()));
    // Concurrent: 64 in flight over the one multiplexed connection.
    let n = 100_000u64;
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let c = checks(&format!("w{w}"), 1);
                for _ in 0..n / 64 {
                    store.decide(&c).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    println!("redis   1 rule, 64 concurrent  {:>12}", per_sec(n / 64 * 64, t.elapsed()));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benches; nothing to list here.
        return;
    }
    println!(
        "rate-limit decision benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    memory();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(redis());
}
