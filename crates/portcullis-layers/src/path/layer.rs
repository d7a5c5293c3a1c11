use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, Uri};
use tower::{Layer, Service};

use super::{PathPolicy, canonicalize};
use crate::future::OrReject;
use crate::rejection::{RejectionKind, reject};

/// Canonicalises every request path or refuses the request (400 `invalid_path`).
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct CanonicalPathLayer {
    policy: PathPolicy,
}

impl CanonicalPathLayer {
    /// With this policy.
    pub fn new(policy: PathPolicy) -> Self {
        CanonicalPathLayer { policy }
    }
}

impl<S> Layer<S> for CanonicalPathLayer {
    type Service = CanonicalPathService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CanonicalPathService { inner, policy: self.policy }
    }
}

/// The service of [`CanonicalPathLayer`].
#[derive(Clone, Debug)]
pub struct CanonicalPathService<S> {
    inner: S,
    policy: PathPolicy,
}

fn rebuild(uri: &Uri, path: &str) -> Option<Uri> {
    let mut parts = uri.clone().into_parts();
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

impl<S, B, ResBody> Service<Request<B>> for CanonicalPathService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OrReject<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Raw bytes outside printable ASCII in the query (hyper lets them
        // through): parsers disagree on their meaning (C28).
        if req.uri().query().is_some_and(|q| !q.bytes().all(|b| b.is_ascii_graphic())) {
            tracing::debug!(reason = "raw_query_byte", "target refused");
            return OrReject::Rejected { res: Some(reject(&req, RejectionKind::InvalidPath)) };
        }
        let new_uri = match canonicalize(req.uri().path(), &self.policy) {
            Ok(std::borrow::Cow::Borrowed(_)) => None,
            Ok(std::borrow::Cow::Owned(p)) => match rebuild(req.uri(), &p) {
                Some(u) => Some(u),
                None => {
                    return OrReject::Rejected { res: Some(reject(&req, RejectionKind::InvalidPath)) };
                }
            },
            Err(e) => {
                tracing::debug!(reason = e.as_str(), "path refused");
                return OrReject::Rejected { res: Some(reject(&req, RejectionKind::InvalidPath)) };
            }
        };
        if let Some(u) = new_uri {
            *req.uri_mut() = u;
        }
        OrReject::Inner { fut: self.inner.call(req) }
    }
}
