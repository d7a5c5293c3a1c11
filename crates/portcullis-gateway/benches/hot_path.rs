//! Criterion micro-benchmarks of the request path's pieces (issue 6): the
//! security headers (C2 C5-C7), path canonicalisation (C28), route matching
//! (C21), a rate-limit decision in the memory store (C11), JWT verification
//! with and without the token cache (C22), and JSON Schema validation of a
//! 1 KB body (C16).
//!
//!     cargo bench -p portcullis-gateway --bench hot_path
//!     cargo bench -p portcullis-gateway --bench hot_path -- jwt   # one group
//!
//! Figures for the whole request path are `bench/run`'s (docs/performance.md).

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use portcullis_layers::auth::testing::TestKey;
use portcullis_layers::auth::{Algorithm, JwtPolicy, KeySet, Verifier};
use portcullis_layers::headers::SecurityHeaders;
use portcullis_layers::input::{Dialect, Schema, UnknownFields};
use portcullis_layers::json::{JsonLimits, parse_strict};
use portcullis_layers::path::{PathPolicy, canonicalize};
use portcullis_layers::pattern::PathPattern;
use portcullis_layers::ratelimit::{Check, MemoryStore, Rate};
use portcullis_layers::route::{Access, Authz, Route, RouteTable};
use serde_json::json;

fn headers(c: &mut Criterion) {
    let helmet = SecurityHeaders::helmet();
    let mut g = c.benchmark_group("headers");
    g.bench_function("helmet set on a 3-header response (https)", |b| {
        b.iter(|| {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert("content-length", HeaderValue::from_static("17"));
            h.insert("x-powered-by", HeaderValue::from_static("Express"));
            helmet.apply(&mut h, true);
            black_box(h)
        });
    });
    g.finish();
}

fn paths(c: &mut Criterion) {
    let policy = PathPolicy::default();
    let mut g = c.benchmark_group("canonical path");
    for (name, path) in [
        ("clean", "/api/users/42/orders"),
        ("dot segments and escapes", "/api/./users/%34%32/../42//orders"),
        ("refused (encoded slash)", "/api/users%2f42"),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(canonicalize(black_box(path), &policy).is_ok())));
    }
    g.finish();
}

fn routes(c: &mut Criterion) {
    let protected = || Access::Protected(Authz::default());
    let mut table: Vec<Route> = (0..20)
        .map(|i| Route::new(PathPattern::parse(&format!("/api/r{i}/{{id}}")).unwrap(), protected()))
        .collect();
    table.push(Route::new(PathPattern::parse("/api/users/{id}/orders").unwrap(), protected()));
    table.push(Route::new(PathPattern::parse("/assets/**").unwrap(), Access::Public));
    let table = RouteTable::new(table);
    let mut g = c.benchmark_group("route match (22 routes)");
    g.bench_function("21st route, one parameter", |b| {
        b.iter(|| black_box(table.find(&Method::GET, black_box("/api/users/42/orders")).is_some()))
    });
    g.bench_function("unmatched (deny by default)", |b| {
        b.iter(|| black_box(table.find(&Method::GET, black_box("/nope")).is_none()))
    });
    g.finish();
}

fn rate_limit(c: &mut Criterion) {
    let store = MemoryStore::new(100_000);
    let rate = Rate::new(1_000_000_000, Duration::from_secs(60));
    let one = vec![Check { key: "rl:api:ip:203.0.113.7".into(), rate }];
    let two = vec![
        Check { key: "rl:api:ip:203.0.113.7".into(), rate },
        Check { key: "rl:login:sub:alice".into(), rate: Rate::new(1_000_000_000, Duration::from_secs(1)) },
    ];
    let mut g = c.benchmark_group("rate-limit decision (memory store)");
    g.bench_function("one rule", |b| b.iter(|| black_box(store.decide_now(black_box(&one)))));
    g.bench_function("two rules", |b| b.iter(|| black_box(store.decide_now(black_box(&two)))));
    g.finish();
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let policy = JwtPolicy {
        issuers: vec!["https://idp.example.com".into()],
        audiences: vec!["api".into()],
        ..JwtPolicy::default()
    };
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 86_400;
    let claims = json!({"iss": "https://idp.example.com", "aud": "api", "sub": "alice", "roles": ["user"], "exp": exp});
    let mut g = c.benchmark_group("jwt verify");
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let key = TestKey::generate(alg, "k1");
        let token = key.sign(&claims);
        let set = || KeySet::new(vec![KeySet::from_pem(key.public_pem.as_bytes(), alg, None).unwrap()]);
        let cached = Arc::new(Verifier::new(policy.clone(), set(), None));
        let uncached = Arc::new(Verifier::new(policy.clone(), set(), None).cache_capacity(0));
        rt.block_on(cached.verify(&token)).unwrap();
        g.bench_function(format!("{alg:?} cached"), |b| {
            b.iter(|| black_box(rt.block_on(cached.verify(black_box(&token))).is_ok()))
        });
        g.bench_function(format!("{alg:?} signature checked"), |b| {
            b.iter(|| black_box(rt.block_on(uncached.verify(black_box(&token))).is_ok()))
        });
    }
    g.finish();
}

fn schema(c: &mut Criterion) {
    let s = json!({
        "type": "object",
        "required": ["name", "email"],
        "properties": {
            "name": {"type": "string", "maxLength": 2000},
            "email": {"type": "string", "format": "email"},
            "n": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 32}}
        }
    });
    let compiled = Schema::compile(&s, Dialect::Auto, UnknownFields::Reject).unwrap();
    let body = serde_json::to_vec(&json!({
        "name": "x".repeat(900), "email": "ada@example.com", "n": 1, "tags": ["a", "b", "c"]
    }))
    .unwrap();
    let mut g = c.benchmark_group("json body (1 KB)");
    g.bench_function("strict parse", |b| {
        b.iter(|| black_box(parse_strict(black_box(&body), &JsonLimits::default()).is_ok()))
    });
    let doc = parse_strict(&body, &JsonLimits::default()).unwrap();
    g.bench_function("schema validation", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            black_box(compiled.check(black_box(&doc), "/body", &mut out))
        })
    });
    g.finish();
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = headers, paths, routes, rate_limit, jwt, schema
}
criterion_main!(hot_path);
