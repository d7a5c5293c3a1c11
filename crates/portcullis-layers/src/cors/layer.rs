use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use super::{Cors, Decision, add_vary};
use crate::future::{MapResponse, OrReject, ResponseMapper};
use crate::pattern::PathPattern;
use crate::rejection::{RejectionKind, reject};
use crate::request_id::{REQUEST_ID_HEADER, RequestId};

/// Applies a default [`Cors`] policy, with per-route overrides.
#[derive(Clone, Debug)]
#[must_use]
pub struct CorsLayer {
    inner: Arc<Policies>,
}

#[derive(Clone, Debug)]
struct Policies {
    default: Option<Cors>,
    routes: Vec<(Vec<PathPattern>, Option<Cors>)>,
}

impl CorsLayer {
    /// With a default policy (`None`: no CORS headers at all unless a route
    /// override applies; upstream CORS headers are still dropped).
    pub fn new(default: Option<Cors>) -> Self {
        CorsLayer { inner: Arc::new(Policies { default, routes: Vec::new() }) }
    }

    /// Adds a per-route override; the first matching route wins. `None`
    /// turns CORS off on those routes.
    pub fn route(mut self, patterns: Vec<PathPattern>, cors: Option<Cors>) -> Self {
        Arc::make_mut(&mut self.inner).routes.push((patterns, cors));
        self
    }
}

impl Policies {
    fn for_path(&self, path: &str) -> Option<&Cors> {
        for (patterns, cors) in &self.routes {
            if patterns.iter().any(|p| p.matches(path)) {
                return cors.as_ref();
            }
        }
        self.default.as_ref()
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = CorsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorsService { inner, policies: self.inner.clone() }
    }
}

/// The service of [`CorsLayer`].
#[derive(Clone, Debug)]
pub struct CorsService<S> {
    inner: S,
    policies: Arc<Policies>,
}

/// Pending application of the policy to a forwarded response.
#[derive(Debug)]
pub struct ApplyCors {
    policies: Arc<Policies>,
    path: String,
    origin: Option<HeaderValue>,
}

impl<B> ResponseMapper<B> for ApplyCors {
    fn map(self, res: &mut Response<B>) {
        match self.policies.for_path(&self.path) {
            Some(cors) => cors.apply(self.origin.as_ref(), res.headers_mut()),
            None => super::strip_cors(res.headers_mut()),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for CorsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OrReject<MapResponse<S::Future, ApplyCors>, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        if let Some(cors) = self.policies.for_path(&path) {
            let (parts, body) = req.into_parts();
            let decision = cors.decide(&parts);
            let req = Request::from_parts(parts, body);
            match decision {
                Decision::PreflightAllowed(headers) => {
                    let mut res = Response::new(ResBody::from(Bytes::new()));
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    *res.headers_mut() = headers;
                    if let Some(id) = req.extensions().get::<RequestId>() {
                        res.headers_mut().insert(REQUEST_ID_HEADER, id.header_value().clone());
                    }
                    add_vary(res.headers_mut(), Cors::PREFLIGHT_VARY);
                    return OrReject::Rejected { res: Some(res) };
                }
                Decision::PreflightRefused => {
                    let mut res: Response<ResBody> = reject(&req, RejectionKind::CorsForbidden);
                    add_vary(res.headers_mut(), Cors::PREFLIGHT_VARY);
                    return OrReject::Rejected { res: Some(res) };
                }
                Decision::Forward => {
                    let origin = req.headers().get(header::ORIGIN).cloned();
                    let apply = ApplyCors { policies: self.policies.clone(), path, origin };
                    return OrReject::Inner { fut: MapResponse::new(self.inner.call(req), apply) };
                }
            }
        }
        let apply = ApplyCors { policies: self.policies.clone(), path, origin: None };
        OrReject::Inner { fut: MapResponse::new(self.inner.call(req), apply) }
    }
}
