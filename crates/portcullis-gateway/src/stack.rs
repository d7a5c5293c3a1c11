//! Stage 3 of the configuration: the validated [`Config`] built into one
//! tower service, outermost layer first, as in the design's request path.

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use portcullis_layers::Body;
use portcullis_layers::client::{ClientInfoLayer, TrustedProxies};
use portcullis_layers::errors::UpstreamErrorsLayer;
use portcullis_layers::framing::FramingLayer;
use portcullis_layers::headers::SecurityHeadersLayer;
use portcullis_layers::limit::BodyLimitLayer;
use portcullis_layers::path::CanonicalPathLayer;
use portcullis_layers::request_id::RequestIdLayer;
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

use crate::access_log::{AccessLogLayer, RecordPathLayer};
use crate::config::Config;
use crate::proxy::Proxy;

/// The gateway's request service.
pub type GatewayService = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

/// Builds the request path for a configuration.
pub fn build(cfg: &Config) -> GatewayService {
    let stack = ServiceBuilder::new()
        .layer(ClientInfoLayer::new(TrustedProxies::new(cfg.server.trusted_proxies.iter().copied()))) // C3
        .layer(RequestIdLayer) // C30
        .layer(AccessLogLayer) // C30
        .layer(SecurityHeadersLayer::new(cfg.headers.clone())) // C2 C5 C6 C7
        .layer(
            UpstreamErrorsLayer::new()
                .replace_html_4xx(cfg.errors.replace_html_4xx)
                .log_limit(cfg.errors.log_body_bytes),
        ) // C29
        .layer(FramingLayer) // C28
        .layer(CanonicalPathLayer::new(cfg.paths)) // C28
        .layer(RecordPathLayer)
        .layer(cfg.cors.layer.clone()) // C8
        .layer(BodyLimitLayer::new(cfg.limits.body).idle_timeout(cfg.limits.body_read_timeout)) // C13 C14
        .service(Proxy::new(&cfg.upstream, cfg.limits.request_timeout)); // C14
    BoxCloneService::new(stack)
}
