use super::*;
use crate::Body;
use http::{Request, Response};
use tower::{Layer, ServiceExt};

fn policy(creds: bool) -> Cors {
    Cors::builder()
        .allow_origin("https://app.example.com")
        .unwrap()
        .allow_origin("https://*.example.org")
        .unwrap()
        .credentials(creds)
        .expose_headers(["ratelimit", "x-request-id"])
        .unwrap()
        .build()
        .unwrap()
}

/// An upstream that sends its own, permissive CORS headers.
async fn sloppy_upstream(_req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    let mut r = Response::new(Body::from("{}"));
    r.headers_mut().insert("access-control-allow-origin", "*".parse().unwrap());
    r.headers_mut().insert("access-control-allow-credentials", "true".parse().unwrap());
    r.headers_mut().insert("vary", "Accept-Encoding".parse().unwrap());
    Ok(r)
}

async fn call(layer: &CorsLayer, req: Request<Body>) -> Response<Body> {
    layer.clone().layer(tower::service_fn(sloppy_upstream)).oneshot(req).await.unwrap()
}

fn preflight(origin: &str, method: &str, headers: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method("OPTIONS")
        .uri("/api/x")
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(h) = headers {
        b = b.header("access-control-request-headers", h);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn c8_preflight_answered_not_forwarded() {
    let layer = CorsLayer::new(Some(policy(true)));
    let res =
        call(&layer, preflight("https://app.example.com", "PUT", Some("Content-Type, Authorization"))).await;
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET, HEAD, POST, PUT, PATCH, DELETE");
    assert_eq!(h["access-control-allow-headers"], "content-type, authorization");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "origin, access-control-request-method, access-control-request-headers");
}

#[tokio::test]
async fn c8_preflight_refusals() {
    let layer = CorsLayer::new(Some(policy(true)));
    for req in [
        preflight("https://evil.test", "GET", None),
        preflight("https://app.example.com.evil.test", "GET", None),
        preflight("null", "GET", None),
        preflight("https://app.example.com", "TRACE", None),
        preflight("https://app.example.com", "GET", Some("x-admin")),
        preflight("https://app.example.com", "GET", Some("content-type, x-admin")),
    ] {
        let res = call(&layer, req).await;
        assert_eq!(res.status(), 403);
        assert!(res.headers().get("access-control-allow-origin").is_none());
        assert!(res.extensions().get::<crate::rejection::Rejection>().is_some());
    }
}

#[tokio::test]
async fn c8_actual_requests() {
    let layer = CorsLayer::new(Some(policy(true)));
    let get = |origin: Option<&str>| {
        let mut b = Request::builder().uri("/api/x");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(Body::empty()).unwrap()
    };
    let res = call(&layer, get(Some("https://a.example.org"))).await;
    assert_eq!(res.headers()["access-control-allow-origin"], "https://a.example.org");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    assert_eq!(res.headers()["access-control-expose-headers"], "ratelimit, x-request-id");
    assert_eq!(res.headers()["vary"], "Accept-Encoding, origin");
    for bad in [Some("https://evil.test"), Some("null"), Some("https://APP.example.com"), None] {
        let res = call(&layer, get(bad)).await;
        // The upstream's permissive headers are gone, none of ours are set.
        assert!(res.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{bad:?}");
        assert_eq!(res.headers()["vary"], "Accept-Encoding, origin");
    }
}

#[tokio::test]
async fn c8_any_origin_without_credentials_and_route_overrides() {
    let public = Cors::builder().allow_any_origin().build().unwrap();
    let layer = CorsLayer::new(Some(policy(true)))
        .route(vec![crate::pattern::PathPattern::parse("/public/**").unwrap()], Some(public));
    let req = Request::builder()
        .uri("/PUBLIC/feed")
        .header("origin", "https://anyone.test")
        .body(Body::empty())
        .unwrap();
    let res = call(&layer, req).await;
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    let off = CorsLayer::new(Some(policy(true)))
        .route(vec![crate::pattern::PathPattern::parse("/internal/**").unwrap()], None);
    let req = Request::builder()
        .uri("/internal/x")
        .header("origin", "https://app.example.com")
        .body(Body::empty())
        .unwrap();
    let res = call(&off, req).await;
    assert!(res.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
}

#[test]
fn c8_builder_refusals() {
    assert!(Cors::builder().allow_any_origin().credentials(true).build().is_err());
    assert!(Cors::builder().build().is_err());
    assert!(Cors::builder().allow_origin("null").is_err());
    assert!(
        Cors::builder()
            .allow_origin("*")
            .unwrap()
            .allow_origin("https://a.example.com")
            .unwrap()
            .build()
            .is_err()
    );
    assert!(Cors::builder().headers(["*"]).is_err());
    assert!(Cors::builder().methods(["TRACE"]).is_err());
}
