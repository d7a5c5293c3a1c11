//! Request body limits and body read timeouts (C13, C14).
//!
//! # Decision rules
//! - A declared `Content-Length` over the limit is refused (413
//!   `body_too_large`) before a byte of the body is read.
//! - Streamed (chunked) bodies are counted as they pass; the frame that
//!   crosses the limit is never forwarded, the body ends with an error, and
//!   the outcome is recorded in [`BodyOutcome`] so the proxy answers 413.
//! - A body that stalls longer than the idle timeout between frames ends with
//!   an error too (408 `request_timeout`).
//!
//! # Example
//! ```
//! use portcullis_layers::limit::BodyLimitLayer;
//! let layer = BodyLimitLayer::new(1024 * 1024).idle_timeout(std::time::Duration::from_secs(30));
//! # let _ = layer;
//! ```

mod body;

pub use body::{BodyLimitError, BodyOutcome, LimitedBody};

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use tower::{Layer, Service};

use crate::future::OrReject;
use crate::rejection::{RejectionKind, reject};

/// Limits request bodies.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct BodyLimitLayer {
    max: u64,
    idle: Option<Duration>,
}

impl BodyLimitLayer {
    /// At most `max` bytes per request body.
    pub fn new(max: u64) -> Self {
        BodyLimitLayer { max, idle: None }
    }

    /// Ends a body that sends nothing for this long.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimitService { inner, max: self.max, idle: self.idle }
    }
}

/// The service of [`BodyLimitLayer`].
#[derive(Clone, Debug)]
pub struct BodyLimitService<S> {
    inner: S,
    max: u64,
    idle: Option<Duration>,
}

impl<S, B, ResBody> Service<Request<B>> for BodyLimitService<S>
where
    S: Service<Request<LimitedBody<B>>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OrReject<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max) {
            return OrReject::Rejected { res: Some(reject(&req, RejectionKind::BodyTooLarge)) };
        }
        let outcome = BodyOutcome::default();
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(outcome.clone());
        let body = LimitedBody::new(body, self.max, self.idle, outcome);
        OrReject::Inner { fut: self.inner.call(Request::from_parts(parts, body)) }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;
