use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::SecurityHeaders;
use crate::client::ClientInfo;
use crate::future::{MapResponse, ResponseMapper};

/// Applies [`SecurityHeaders`] to every response of the inner service.
#[derive(Clone, Debug)]
#[must_use]
pub struct SecurityHeadersLayer {
    headers: Arc<SecurityHeaders>,
}

impl SecurityHeadersLayer {
    /// With this header set.
    pub fn new(headers: SecurityHeaders) -> Self {
        SecurityHeadersLayer { headers: Arc::new(headers) }
    }
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        SecurityHeadersLayer::new(SecurityHeaders::helmet())
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService { inner, headers: self.headers.clone() }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeadersService<S> {
    inner: S,
    headers: Arc<SecurityHeaders>,
}

/// Pending application of the header set to one response.
#[derive(Debug)]
pub struct Apply {
    headers: Arc<SecurityHeaders>,
    https: bool,
}

impl<B> ResponseMapper<B> for Apply {
    fn map(self, res: &mut Response<B>) {
        self.headers.apply(res.headers_mut(), self.https);
    }
}

impl<S, B, ResBody> Service<Request<B>> for SecurityHeadersService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MapResponse<S::Future, Apply>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let https = match req.extensions().get::<ClientInfo>() {
            Some(c) => c.https,
            None => req.uri().scheme() == Some(&http::uri::Scheme::HTTPS),
        };
        let apply = Apply { headers: self.headers.clone(), https };
        MapResponse::new(self.inner.call(req), apply)
    }
}
