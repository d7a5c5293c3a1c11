//! Leak-proof upstream errors (C29).
//!
//! # What it stops
//! Stack traces, SQL errors, file paths and framework banners in upstream
//! error responses (Express's default error handler prints the stack in
//! development mode; its 404 page names the framework).
//!
//! # Decision rules
//! - An upstream response with a 5xx status, or a 4xx status with an HTML
//!   body, is replaced by the JSON error body
//!   `{"error", "code": "upstream_error", "request_id"}` with the upstream's
//!   status kept.
//! - The original body, read up to a bound and redacted
//!   ([`crate::redact`]), goes to the server log with the request id.
//! - Responses Portcullis wrote itself (they carry a
//!   [`Rejection`]) are left alone.
//!
//! # Example
//! ```
//! use portcullis_layers::errors::UpstreamErrorsLayer;
//! let layer = UpstreamErrorsLayer::new().log_limit(2048).replace_html_4xx(true);
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use crate::BoxError;
use crate::future::BoxResponseFuture;
use crate::redact::redact_text;
use crate::rejection::{Rejection, RejectionKind};
use crate::request_id::RequestId;

/// How long the original error body may take to read for the log.
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Replaces upstream error responses.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct UpstreamErrorsLayer {
    log_limit: usize,
    html_4xx: bool,
}

impl UpstreamErrorsLayer {
    /// Defaults: 5xx and HTML 4xx replaced, 2 KiB of the original logged.
    pub fn new() -> Self {
        UpstreamErrorsLayer { log_limit: 2048, html_4xx: true }
    }

    /// How many bytes of the original body to log (0: none).
    pub fn log_limit(mut self, n: usize) -> Self {
        self.log_limit = n;
        self
    }

    /// Whether 4xx responses with an HTML body are replaced too.
    pub fn replace_html_4xx(mut self, yes: bool) -> Self {
        self.html_4xx = yes;
        self
    }

    /// Whether a response is replaced.
    pub fn should_replace<B>(&self, res: &Response<B>) -> bool {
        if res.extensions().get::<Rejection>().is_some() {
            return false;
        }
        let status = res.status();
        status.is_server_error() || (self.html_4xx && status.is_client_error() && is_html(res.headers()))
    }
}

impl Default for UpstreamErrorsLayer {
    fn default() -> Self {
        UpstreamErrorsLayer::new()
    }
}

fn is_html(h: &http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let mt = ct.split(';').next().unwrap_or("").trim();
        mt.eq_ignore_ascii_case("text/html") || mt.eq_ignore_ascii_case("application/xhtml+xml")
    })
}

impl<S> Layer<S> for UpstreamErrorsLayer {
    type Service = UpstreamErrorsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UpstreamErrorsService { inner, cfg: *self }
    }
}

/// The service of [`UpstreamErrorsLayer`].
#[derive(Clone, Debug)]
pub struct UpstreamErrorsService<S> {
    inner: S,
    cfg: UpstreamErrorsLayer,
}

pin_project_lite::pin_project! {
    /// The response future of [`UpstreamErrorsService`]: the inner future as is
    /// while waiting (no allocation), a boxed one only to replace an error
    /// response (which reads a prefix of its body for the log).
    #[project = ResponseFutureProj]
    #[allow(missing_docs)]
    pub enum ResponseFuture<F, B, E> {
        Waiting { #[pin] fut: F, id: Option<RequestId>, cfg: UpstreamErrorsLayer },
        Replacing { fut: BoxResponseFuture<B, E> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + From<Bytes> + Send + Unpin + 'static,
    E: Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                ResponseFutureProj::Waiting { fut, id, cfg } => {
                    let res = ready!(fut.poll(cx))?;
                    if !cfg.should_replace(&res) {
                        return Poll::Ready(Ok(res));
                    }
                    let replacing: BoxResponseFuture<B, E> = Box::pin(replace(res, id.take(), *cfg));
                    self.set(ResponseFuture::Replacing { fut: replacing });
                }
                ResponseFutureProj::Replacing { fut } => return fut.as_mut().poll(cx),
            }
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for UpstreamErrorsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + From<Bytes> + Send + Unpin + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        ResponseFuture::Waiting { fut: self.inner.call(req), id, cfg: self.cfg }
    }
}

/// The fixed error response that replaces an upstream error (C29); the
/// original's prefix is logged, redacted.
async fn replace<ResBody, E>(
    res: Response<ResBody>,
    id: Option<RequestId>,
    cfg: UpstreamErrorsLayer,
) -> Result<Response<ResBody>, E>
where
    ResBody: http_body::Body<Data = Bytes> + From<Bytes> + Send + Unpin + 'static,
{
    let status = res.status();
    let (parts, body) = res.into_parts();
    let original = if cfg.log_limit > 0 { read_prefix(body, cfg.log_limit).await } else { String::new() };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::warn!(
        target: "portcullis::upstream",
        request_id = id.as_ref().map(RequestId::as_str).unwrap_or(""),
        status = status.as_u16(),
        content_type = %redact_text(content_type),
        body = %redact_text(&original),
        "upstream error response replaced"
    );
    let kind = RejectionKind::UpstreamError;
    let status =
        if status.is_client_error() || status.is_server_error() { status } else { StatusCode::BAD_GATEWAY };
    let mut replaced: Response<ResBody> = Rejection::with_status(kind, status).into_response(id.as_ref());
    // Keep what inner layers recorded (the forwarded path, ...); the new
    // response's own Rejection wins.
    let rejection = replaced.extensions_mut().remove::<Rejection>();
    replaced.extensions_mut().extend(parts.extensions);
    if let Some(r) = rejection {
        replaced.extensions_mut().insert(r);
    }
    Ok(replaced)
}

/// Reads up to `limit` bytes of a body (bounded in time), lossily as text.
async fn read_prefix<B>(mut body: B, limit: usize) -> String
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let read = async {
        while buf.len() < limit && !body.is_end_stream() {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let take = data.len().min(limit - buf.len());
                        buf.extend_from_slice(&data[..take]);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LOG_READ_TIMEOUT, read).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::Body;
    use tower::ServiceExt;

    fn upstream(
        status: u16,
        ct: &'static str,
        body: &'static str,
    ) -> impl Service<Request<()>, Response = Response<Body>, Error = std::convert::Infallible, Future: Send> + Clone
    {
        tower::service_fn(move |_req: Request<()>| async move {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut().insert(header::CONTENT_TYPE, ct.parse().unwrap());
            Ok::<_, std::convert::Infallible>(r)
        })
    }

    async fn run(status: u16, ct: &'static str, body: &'static str) -> (StatusCode, String) {
        let svc = UpstreamErrorsLayer::new().layer(upstream(status, ct, body));
        let mut req = Request::new(());
        req.extensions_mut().insert(RequestId::new_random());
        let res = svc.oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    // C29: a stack trace never reaches the client; the status is kept.
    #[tokio::test]
    async fn c29_stack_trace_replaced() {
        let (s, b) = run(500, "text/html", "<pre>Error: boom<br> at /srv/app/index.js:12:5</pre>").await;
        assert_eq!(s, 500);
        assert!(!b.contains("index.js") && !b.contains("boom"), "{b}");
        assert!(b.contains("\"code\":\"upstream_error\""));
        let (s, b) = run(503, "application/json", "{\"sql\":\"SELECT * FROM users\"}").await;
        assert_eq!(s, 503);
        assert!(!b.contains("SELECT"));
        assert!(b.contains("Service Unavailable"));
    }

    #[tokio::test]
    async fn c29_html_4xx_replaced_json_4xx_kept() {
        let (s, b) = run(404, "text/html; charset=utf-8", "<pre>Cannot GET /x</pre>").await;
        assert_eq!(s, 404);
        assert!(!b.contains("Cannot GET"));
        let (s, b) = run(404, "application/json", "{\"error\":\"no such user\"}").await;
        assert_eq!(s, 404);
        assert_eq!(b, "{\"error\":\"no such user\"}");
        let (s, b) = run(200, "text/html", "<h1>hi</h1>").await;
        assert_eq!((s.as_u16(), b.as_str()), (200, "<h1>hi</h1>"));
    }
}
