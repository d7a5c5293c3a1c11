//! One JSON access-log line per request (C30), written when the response
//! body ends (or is abandoned), with the canonical path (no query string,
//! token-like segments redacted), the matched route, status, latency,
//! bytes, client IP, user agent, the authenticated subject (when there is
//! one), request id and the rejection reason (only on a rejection). No
//! other header is logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Buf;
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use portcullis_layers::Body;
use portcullis_layers::client::ClientInfo;
use portcullis_layers::redact::redact_path;
use portcullis_layers::rejection::Rejection;
use portcullis_layers::request_id::RequestId;
use portcullis_layers::route::{MatchedRoute, Route};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The path that was matched and forwarded; set on the response by the
/// layer right outside the proxy, so the log shows the canonical form.
#[derive(Clone, Debug)]
pub struct ForwardedPath(pub String);

/// Writes access-log lines and counts requests.
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    metrics: Arc<Metrics>,
}

impl AccessLogLayer {
    /// Counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AccessLogLayer { metrics }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService { inner, metrics: self.metrics.clone() }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

struct Record {
    start: Instant,
    /// `None` for a request refused before its head could be parsed.
    method: Option<Method>,
    // Kept as values (an address, a reference-counted id), formatted only
    // when the line is written: nothing is allocated for a filtered log.
    client_ip: Option<std::net::IpAddr>,
    request_id: Option<RequestId>,
    version: http::Version,
    status: u16,
    path: Option<String>,
    route: Option<Arc<Route>>,
    user_agent: Option<http::HeaderValue>,
    subject: Option<Arc<str>>,
    reason: Option<&'static str>,
    bytes: u64,
    completed: std::cell::Cell<bool>,
}

/// The access-log line of a request refused before its head could be parsed
/// (the framing tracker's early answers): the same fields as every line,
/// with `-` for the method and path it never had.
pub(crate) fn log_unparsed(
    client_ip: std::net::IpAddr,
    request_id: RequestId,
    status: u16,
    reason: &'static str,
    bytes: u64,
) {
    drop(Record {
        start: Instant::now(),
        method: None,
        client_ip: Some(client_ip),
        request_id: Some(request_id),
        version: http::Version::HTTP_11,
        status,
        path: None,
        route: None,
        user_agent: None,
        subject: None,
        reason: Some(reason),
        bytes,
        completed: std::cell::Cell::new(true),
    });
}

impl Drop for Record {
    fn drop(&mut self) {
        // Filtered out (e.g. RUST_LOG=warn): skip the redaction and formatting.
        if !tracing::enabled!(target: "portcullis::access", tracing::Level::INFO) {
            return;
        }
        let latency_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let path = self.path.as_deref().map(redact_path);
        // Control characters and quotes are escaped by the JSON writer; a
        // non-UTF-8 agent is logged as absent, and a huge one is cut.
        let agent = self.user_agent.as_ref().and_then(|v| v.to_str().ok()).map(|a| cut(a, 256));
        tracing::info!(
            target: "portcullis::access",
            method = self.method.as_ref().map_or("-", Method::as_str),
            path = path.as_deref().unwrap_or("-"),
            route = self.route.as_ref().map(|r| r.pattern.as_str()),
            status = self.status,
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            bytes = self.bytes,
            client_ip = %self.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent = agent,
            subject = self.subject.as_deref(),
            request_id = self.request_id.as_ref().map_or("", RequestId::as_str),
            version = ?self.version,
            reason = self.reason,
            completed = self.completed.get(),
            "request"
        );
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<S, B> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let record = Record {
            start: Instant::now(),
            method: Some(req.method().clone()),
            client_ip: req.extensions().get::<ClientInfo>().map(|c| c.ip),
            request_id: req.extensions().get::<RequestId>().cloned(),
            version: req.version(),
            status: 0,
            path: None,
            route: None,
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            subject: None,
            reason: None,
            bytes: 0,
            completed: std::cell::Cell::new(false),
        };
        AccessLogFuture { inner: self.inner.call(req), record: Some(record), metrics: self.metrics.clone() }
    }
}

pin_project! {
    /// The response future of [`AccessLogService`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
        metrics: Arc<Metrics>,
    }
}

impl<F, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let Some(mut record) = this.record.take() else { return Poll::Ready(Ok(res)) };
        record.status = res.status().as_u16();
        let rejection = res.extensions().get::<Rejection>().map(|r| r.kind);
        record.route = res.extensions_mut().remove::<RouteOf>().map(|r| r.0);
        record.subject = res.extensions_mut().remove::<SubjectOf>().map(|s| s.0);
        let route = record.route.as_ref().map_or(crate::metrics::NO_ROUTE, |r| r.pattern.as_str());
        this.metrics.record(route, record.method.as_ref(), record.status, record.start.elapsed(), rejection);
        if let Some(report) = res.extensions().get::<portcullis_layers::input::InputReport>() {
            this.metrics.record_injection_reports(report);
        }
        record.reason = rejection.map(|k| k.code());
        record.path = res.extensions().get::<ForwardedPath>().map(|p| p.0.clone());
        let (parts, body) = res.into_parts();
        let body = CountingBody { inner: body, record };
        Poll::Ready(Ok(Response::from_parts(parts, Body::new(body))))
    }
}

pin_project! {
    struct CountingBody {
        #[pin]
        inner: Body,
        record: Record,
    }
}

impl http_body::Body for CountingBody {
    type Data = bytes::Bytes;
    type Error = portcullis_layers::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = ready!(inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    this.record.bytes += d.remaining() as u64;
                }
            }
            None => this.record.completed.set(true),
            Some(Err(_)) => {}
        }
        if inner.is_end_stream() {
            this.record.completed.set(true);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.record.completed.set(true);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Records the request path on the response (placed right after path
/// canonicalisation, so the path is the canonical one).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordPathLayer;

impl<S> Layer<S> for RecordPathLayer {
    type Service = RecordPathService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RecordPathService { inner }
    }
}

/// The service of [`RecordPathLayer`].
#[derive(Clone, Debug)]
pub struct RecordPathService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RecordPathService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = portcullis_layers::future::MapResponse<S::Future, ForwardedPath>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = ForwardedPath(req.uri().path().to_owned());
        portcullis_layers::future::MapResponse::new(self.inner.call(req), path)
    }
}

impl<B> portcullis_layers::future::ResponseMapper<B> for ForwardedPath {
    fn map(self, res: &mut Response<B>) {
        res.extensions_mut().insert(self);
    }
}

/// The route a request matched, carried out on its response for the log
/// and the per-route metrics.
#[derive(Clone, Debug)]
pub struct RouteOf(Arc<Route>);

/// The verified subject of a request, carried out on its response.
#[derive(Clone, Debug)]
pub struct SubjectOf(Arc<str>);

impl<B> portcullis_layers::future::ResponseMapper<B> for RouteOf {
    fn map(self, res: &mut Response<B>) {
        res.extensions_mut().insert(self);
    }
}

impl<B> portcullis_layers::future::ResponseMapper<B> for SubjectOf {
    fn map(self, res: &mut Response<B>) {
        res.extensions_mut().insert(self);
    }
}

/// Records the matched route on the response (placed right inside the
/// route layer, so every response below it carries its route).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordRouteLayer;

/// Records the authenticated subject on the response (placed right inside
/// the authentication layer).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordSubjectLayer;

impl<S> Layer<S> for RecordRouteLayer {
    type Service = Stamp<S, RouteOf>;
    fn layer(&self, inner: S) -> Self::Service {
        Stamp { inner, _of: std::marker::PhantomData }
    }
}

impl<S> Layer<S> for RecordSubjectLayer {
    type Service = Stamp<S, SubjectOf>;
    fn layer(&self, inner: S) -> Self::Service {
        Stamp { inner, _of: std::marker::PhantomData }
    }
}

/// What a [`Stamp`] reads off the request.
pub trait FromRequest: Sized {
    /// The fact, if the request has it.
    fn from_request<B>(req: &Request<B>) -> Option<Self>;
}

impl FromRequest for RouteOf {
    fn from_request<B>(req: &Request<B>) -> Option<Self> {
        req.extensions().get::<MatchedRoute>().and_then(|m| m.route.clone()).map(RouteOf)
    }
}

impl FromRequest for SubjectOf {
    fn from_request<B>(req: &Request<B>) -> Option<Self> {
        req.extensions()
            .get::<Arc<portcullis_layers::auth::Identity>>()
            .map(|i| SubjectOf(Arc::from(i.subject.as_str())))
    }
}

/// The service of [`RecordRouteLayer`] and [`RecordSubjectLayer`]: copies
/// one fact from the request onto its response.
#[derive(Debug)]
pub struct Stamp<S, T> {
    inner: S,
    _of: std::marker::PhantomData<fn() -> T>,
}

impl<S: Clone, T> Clone for Stamp<S, T> {
    fn clone(&self) -> Self {
        Stamp { inner: self.inner.clone(), _of: std::marker::PhantomData }
    }
}

impl<S, B, RB, T> Service<Request<B>> for Stamp<S, T>
where
    S: Service<Request<B>, Response = Response<RB>>,
    T: FromRequest + portcullis_layers::future::ResponseMapper<RB>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = portcullis_layers::future::MapResponse<S::Future, Option<T>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let stamp = T::from_request(&req);
        portcullis_layers::future::MapResponse::new(self.inner.call(req), stamp)
    }
}
