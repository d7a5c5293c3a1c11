//! The layers on an axum router, as an axum user writes them: the same
//! builders the gateway's config drives, no TOML, no sockets. Compiled and
//! run in CI (issue 13), so the library's tower bounds keep fitting axum.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_layers::client::{ClientInfoLayer, PeerAddr, TrustedProxies};
use portcullis_layers::headers::{SecurityHeaders, SecurityHeadersLayer};
use portcullis_layers::path::CanonicalPathLayer;
use portcullis_layers::pattern::PathPattern;
use portcullis_layers::ratelimit::{MemoryStore, RateLimitLayer, Rule};
use portcullis_layers::request_id::RequestIdLayer;
use portcullis_layers::route::{Access, Route, RouteLayer, RouteTable};
use tower::{ServiceBuilder, ServiceExt};

fn app() -> Router {
    let routes = RouteTable::new(vec![
        Route::new(PathPattern::parse("/api/hello").unwrap(), Access::Public)
            .methods(vec![http::Method::GET]),
    ]);
    let limit = Rule::new("api", 2, Duration::from_secs(60));
    // The handler tells whether a spoofable address header reached it.
    let hello = get(|h: http::HeaderMap| async move {
        if h.contains_key("x-client-ip") { "spoofed" } else { "hello" }
    });
    Router::new().route("/api/hello", hello).layer(
        ServiceBuilder::new()
            .layer(ClientInfoLayer::new(TrustedProxies::none())) // C3
            .layer(RequestIdLayer) // C30
            .layer(SecurityHeadersLayer::new(SecurityHeaders::helmet())) // C5
            .layer(CanonicalPathLayer::default()) // C28
            .layer(RouteLayer::new(routes)) // C21
            .layer(RateLimitLayer::new(vec![limit], Arc::new(MemoryStore::new(1000)))), // C11
    )
}

/// A request as a server hands it on: with the peer address the client
/// resolver needs (axum users insert it from `ConnectInfo`).
fn request(path: &str) -> Request<Body> {
    let mut req = Request::get(path).header("host", "api.test").body(Body::empty()).unwrap();
    req.extensions_mut().insert(PeerAddr { addr: SocketAddr::from(([203, 0, 113, 7], 4000)), https: false });
    req
}

#[tokio::test]
async fn layers_stack_on_an_axum_router() {
    let app = app();
    let mut req = request("/api/hello");
    req.headers_mut().insert("x-client-ip", "127.0.0.1".parse().unwrap());
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers().contains_key("x-request-id"));
    assert!(res.headers().contains_key("ratelimit"));
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");

    // Deny by default and one canonical path, before axum's router sees it.
    let res = app.clone().oneshot(request("/api/other")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.clone().oneshot(request("/api/%2e%2e/admin")).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    // POST on the GET-only route: 405, never the handler.
    let mut post = request("/api/hello");
    *post.method_mut() = http::Method::POST;
    assert_eq!(app.clone().oneshot(post).await.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);

    // The limit (2 per minute, counting only what reached the limiter).
    let res = app.clone().oneshot(request("/api/hello")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.clone().oneshot(request("/api/hello")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // Without the peer address the client can't be resolved: refused, not
    // counted in a shared 0.0.0.0 bucket.
    let bare = Request::get("/api/hello").header("host", "api.test").body(Body::empty()).unwrap();
    assert_eq!(app.oneshot(bare).await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
}
