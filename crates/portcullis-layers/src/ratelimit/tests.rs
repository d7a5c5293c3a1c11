use super::*;
use crate::Body;
use crate::client::ClientInfo;
use crate::clock::ManualClock;
use http::{Request, Response};
use std::sync::Arc;
use tower::{Layer, ServiceExt};

fn req(ip: &str, path: &str) -> Request<Body> {
    let mut r = Request::builder().uri(path).body(Body::empty()).unwrap();
    r.extensions_mut().insert(ClientInfo { ip: ip.parse().unwrap(), https: false, peer_trusted: false });
    r
}

async fn ok(_r: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(Response::new(Body::from("ok")))
}

fn layer(rules: Vec<Rule>, clock: &ManualClock, format: HeaderFormat) -> RateLimitLayer {
    RateLimitLayer::builder(rules, Arc::new(MemoryStore::with_clock(10_000, clock.clone())))
        .clock(Arc::new(clock.clone()))
        .headers(format)
        .legacy_headers(true)
        .build()
}

fn login() -> Rule {
    Rule::new("login", 2, Duration::from_secs(60)).paths(vec![PathPattern::parse("/auth/**").unwrap()])
}

#[tokio::test]
async fn c11_429_with_retry_after_and_json_body() {
    let clock = ManualClock::starting_at(1_000_000_000);
    let l = layer(vec![login()], &clock, HeaderFormat::Draft8);
    let svc = l.layer(tower::service_fn(ok));
    for _ in 0..2 {
        assert_eq!(svc.clone().oneshot(req("198.51.100.1", "/auth/login")).await.unwrap().status(), 200);
    }
    let res = svc.clone().oneshot(req("198.51.100.1", "/AUTH/login/")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.extensions().get::<crate::rejection::Rejection>().unwrap().kind,
        crate::rejection::RejectionKind::RateLimited
    );
    // Another client, and another path, are unaffected.
    assert_eq!(svc.clone().oneshot(req("198.51.100.2", "/auth/login")).await.unwrap().status(), 200);
    let other = svc.clone().oneshot(req("198.51.100.1", "/api/x")).await.unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.headers().get("ratelimit").is_none(), "unlimited responses get no headers");
    // Time, not a sleep, restores the quota.
    clock.advance(Duration::from_secs(30));
    assert_eq!(svc.oneshot(req("198.51.100.1", "/auth/login")).await.unwrap().status(), 200);
    assert_eq!(l.stats().rejected, 1);
}

#[tokio::test]
async fn c11_header_formats() {
    let clock = ManualClock::starting_at(1_000_000_000);
    let rules = || vec![Rule::new("api", 100, Duration::from_secs(60)), login()];
    let cases = [
        (
            HeaderFormat::Draft6,
            vec![
                ("ratelimit-policy", "2;w=60"),
                ("ratelimit-limit", "2"),
                ("ratelimit-remaining", "1"),
                ("ratelimit-reset", "30"),
            ],
        ),
        (
            HeaderFormat::Draft7,
            vec![("ratelimit-policy", "2;w=60"), ("ratelimit", "limit=2, remaining=1, reset=30")],
        ),
        (
            HeaderFormat::Draft8,
            vec![
                ("ratelimit-policy", "\"api\";q=100;w=60, \"login\";q=2;w=60"),
                ("ratelimit", "\"api\";r=99;t=1, \"login\";r=1;t=30"),
            ],
        ),
    ];
    for (format, want) in cases {
        let svc = layer(rules(), &clock, format).layer(tower::service_fn(ok));
        let res = svc.oneshot(req("203.0.113.5", "/auth/login")).await.unwrap();
        for (name, value) in want {
            assert_eq!(
                res.headers().get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{format:?} {name}"
            );
        }
        assert_eq!(res.headers()["x-ratelimit-limit"], "2");
        assert_eq!(res.headers()["x-ratelimit-remaining"], "1");
        // Epoch seconds on the injected clock: started at 1000 s, resets in 30 s.
        assert_eq!(res.headers()["x-ratelimit-reset"], "1030", "legacy reset is epoch seconds");
    }
    let svc = RateLimitLayer::builder(vec![login()], Arc::new(MemoryStore::new(10)))
        .headers(HeaderFormat::Off)
        .build()
        .layer(tower::service_fn(ok));
    let res = svc.oneshot(req("203.0.113.5", "/auth/login")).await.unwrap();
    assert!(res.headers().keys().all(|k| !k.as_str().contains("ratelimit")));
}

#[test]
fn c11_keys() {
    let parts = |ip: &str, header: Option<&str>| {
        let mut b = Request::builder().uri("/x");
        if let Some(h) = header {
            b = b.header("x-api-key", h);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(ClientInfo { ip: ip.parse().unwrap(), https: false, peer_trusted: false });
        r.into_parts().0
    };
    let ip_rule = Rule::new("r", 1, Duration::from_secs(1));
    assert_eq!(ip_rule.store_key(&parts("203.0.113.5", None)), "rl:r:ip:203.0.113.5");
    // IPv6: one /56 is one client.
    let a = ip_rule.store_key(&parts("2001:db8:1:ff00::1", None));
    let b = ip_rule.store_key(&parts("2001:db8:1:ffaa:1234::9", None));
    let c = ip_rule.store_key(&parts("2001:db8:1:100::1", None));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a, "rl:r:ip:2001:db8:1:ff00::/56");
    // IPv4-mapped IPv6 is the IPv4 client.
    assert_eq!(ip_rule.store_key(&parts("::ffff:203.0.113.5", None)), "rl:r:ip:203.0.113.5");
    let h = Rule::new("r", 1, Duration::from_secs(1))
        .key(KeyKind::Header(http::HeaderName::from_static("x-api-key")));
    let k = h.store_key(&parts("203.0.113.5", Some("sk_live_secret")));
    assert!(k.starts_with("rl:r:h:") && !k.contains("sk_live_secret"));
    assert_eq!(k, h.store_key(&parts("198.51.100.1", Some("sk_live_secret"))));
    assert_eq!(h.store_key(&parts("203.0.113.5", None)), "rl:r:ip:203.0.113.5");
    let g = Rule::new("r", 1, Duration::from_secs(1)).key(KeyKind::Global);
    assert_eq!(g.store_key(&parts("203.0.113.5", None)), "rl:r:global");
}

struct Down;
impl Store for Down {
    fn decide<'a>(&'a self, _checks: &'a [Check]) -> StoreFuture<'a> {
        Box::pin(async { Err(StoreError("connection refused".into())) })
    }
    fn name(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn c12_store_failure_modes() {
    let open =
        RateLimitLayer::builder(vec![login()], Arc::new(Down)).on_store_error(FailMode::Open, 100).build();
    let svc = open.clone().layer(tower::service_fn(ok));
    // Open: the local limiter still limits.
    assert_eq!(svc.clone().oneshot(req("198.51.100.1", "/auth/x")).await.unwrap().status(), 200);
    assert_eq!(svc.clone().oneshot(req("198.51.100.1", "/auth/x")).await.unwrap().status(), 200);
    assert_eq!(svc.oneshot(req("198.51.100.1", "/auth/x")).await.unwrap().status(), 429);
    assert_eq!(open.stats().store_errors, 3);
    let closed =
        RateLimitLayer::builder(vec![login()], Arc::new(Down)).on_store_error(FailMode::Closed, 100).build();
    let res = closed.layer(tower::service_fn(ok)).oneshot(req("198.51.100.1", "/auth/x")).await.unwrap();
    assert_eq!(res.status(), 503);
}
