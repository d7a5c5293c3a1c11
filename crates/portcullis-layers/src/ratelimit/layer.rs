use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::headers::{HeaderFormat, write};
use super::store::{Check, MemoryStore, Store};
use super::{Outcome, Rule};
use crate::clock::{Clock, SystemClock};
use crate::future::{FastOrBoxed, MapResponse, OrReject, ResponseMapper};
use crate::rejection::{Rejection, RejectionKind};
use crate::request_id::RequestId;

/// What to do when the store fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Decide with a local in-process store (limits then hold per instance).
    #[default]
    Open,
    /// Answer `503 unavailable`.
    Closed,
}

/// Applies rate-limit rules.
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer {
    inner: Arc<Limiter>,
    scope: Scope,
}

/// Which requests and rules an instance of the limiter decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Every request not counted yet, by the rules not keyed by subject.
    Requests,
    /// CORS preflights only, by the rules not keyed by subject.
    Preflights,
    /// Every request, by the rules keyed by subject (after authentication).
    Subjects,
}

impl Scope {
    fn decides(self, rule: &Rule) -> bool {
        (rule.key == super::KeyKind::Subject) == (self == Scope::Subjects)
    }
}

/// Marks a request the preflight instance already counted.
#[derive(Clone, Copy, Debug)]
struct PreflightCounted;

/// A CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::OPTIONS
        && parts.headers.contains_key(http::header::ORIGIN)
        && parts.headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

struct Limiter {
    /// Wall time for the headers' epoch values and log throttling (the
    /// store decides on its own clock).
    clock: Arc<dyn Clock>,
    rules: Vec<Rule>,
    store: Arc<dyn Store>,
    fallback: MemoryStore,
    fail: FailMode,
    format: HeaderFormat,
    legacy: bool,
    store_errors: AtomicU64,
    rejected: AtomicU64,
    last_warn_s: AtomicU64,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").field("rules", &self.inner.rules.len()).finish_non_exhaustive()
    }
}

/// Counters of a [`RateLimitLayer`], for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Requests refused with 429.
    pub rejected: u64,
    /// Store failures (each decided by the fail mode).
    pub store_errors: u64,
}

/// Builds a [`RateLimitLayer`].
#[must_use]
pub struct RateLimitBuilder {
    clock: Arc<dyn Clock>,
    rules: Vec<Rule>,
    store: Arc<dyn Store>,
    fail: FailMode,
    fallback_keys: usize,
    format: HeaderFormat,
    legacy: bool,
}

impl RateLimitBuilder {
    /// The header format (default draft 8).
    pub fn headers(mut self, format: HeaderFormat) -> Self {
        self.format = format;
        self
    }

    /// Also send `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds).
    pub fn legacy_headers(mut self, yes: bool) -> Self {
        self.legacy = yes;
        self
    }

    /// What to do when the store fails (default open); `fallback_keys`
    /// bounds the local store used when open.
    pub fn on_store_error(mut self, mode: FailMode, fallback_keys: usize) -> Self {
        self.fail = mode;
        self.fallback_keys = fallback_keys;
        self
    }

    /// The clock for epoch values in headers and log throttling (tests
    /// pass the store's [`crate::clock::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The layer.
    pub fn build(self) -> RateLimitLayer {
        RateLimitLayer {
            scope: Scope::Requests,
            inner: Arc::new(Limiter {
                clock: self.clock,
                rules: self.rules,
                store: self.store,
                fallback: MemoryStore::new(self.fallback_keys),
                fail: self.fail,
                format: self.format,
                legacy: self.legacy,
                store_errors: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                last_warn_s: AtomicU64::new(0),
            }),
        }
    }
}

impl RateLimitLayer {
    /// Rules over a store with the defaults (draft-8 headers, fail open).
    pub fn new(rules: Vec<Rule>, store: Arc<dyn Store>) -> Self {
        RateLimitLayer::builder(rules, store).build()
    }

    /// A builder.
    pub fn builder(rules: Vec<Rule>, store: Arc<dyn Store>) -> RateLimitBuilder {
        RateLimitBuilder {
            clock: Arc::new(SystemClock),
            rules,
            store,
            fail: FailMode::Open,
            fallback_keys: 100_000,
            format: HeaderFormat::Draft8,
            legacy: false,
        }
    }

    /// The same limiter (same rules, store and counters) for CORS
    /// preflights only: put it before a CORS layer that answers preflights
    /// itself, so they are counted like any request (C11). This layer then
    /// skips the preflights it already counted.
    pub fn for_preflights(&self) -> RateLimitLayer {
        RateLimitLayer { inner: self.inner.clone(), scope: Scope::Preflights }
    }

    /// The same limiter for the rules keyed by [`super::KeyKind::Subject`]:
    /// put it after the authentication layer, which finds the subject. This
    /// layer then leaves those rules out (it runs before authentication, so
    /// a flood of unauthenticated requests is still limited by IP).
    pub fn for_subjects(&self) -> RateLimitLayer {
        RateLimitLayer { inner: self.inner.clone(), scope: Scope::Subjects }
    }

    /// Counters.
    pub fn stats(&self) -> RateLimitStats {
        RateLimitStats {
            rejected: self.inner.rejected.load(Ordering::Relaxed),
            store_errors: self.inner.store_errors.load(Ordering::Relaxed),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, limiter: self.inner.clone(), scope: self.scope }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Arc<Limiter>,
    scope: Scope,
}

impl Limiter {
    async fn decide(&self, checks: &[Check]) -> Result<Vec<Outcome>, RejectionKind> {
        match self.store.decide(checks).await {
            Ok(o) => Ok(o),
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                let now_s = self.clock.now_us() / 1_000_000;
                // At most one warning per 10 s while the store is down.
                let last = self.last_warn_s.load(Ordering::Relaxed);
                if now_s >= last + 10
                    && self
                        .last_warn_s
                        .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        target: "portcullis::ratelimit",
                        store = self.store.name(),
                        error = %e,
                        mode = ?self.fail,
                        errors_total = self.store_errors.load(Ordering::Relaxed),
                        "rate-limit store unavailable"
                    );
                }
                match self.fail {
                    FailMode::Open => Ok(self.fallback.decide_now(checks)),
                    FailMode::Closed => Err(RejectionKind::Unavailable),
                }
            }
        }
    }
}

/// Writes the rate-limit headers of an admitted request on its response.
pub struct RateHeaders {
    limiter: Arc<Limiter>,
    applicable: Vec<usize>,
    outcomes: Vec<Outcome>,
    epoch_s: u64,
}

impl<B> ResponseMapper<B> for RateHeaders {
    fn map(self, res: &mut Response<B>) {
        self.limiter.write_headers(res.headers_mut(), &self.applicable, &self.outcomes, self.epoch_s);
    }
}

impl Limiter {
    /// The rate-limit headers of a decision (`applicable` rules, their
    /// `outcomes` in the same order).
    fn write_headers(
        &self,
        h: &mut http::HeaderMap,
        applicable: &[usize],
        outcomes: &[Outcome],
        epoch_s: u64,
    ) {
        let results: Vec<(&Rule, Outcome)> =
            applicable.iter().map(|&i| &self.rules[i]).zip(outcomes.iter().copied()).collect();
        write(h, self.format, self.legacy, &results, epoch_s);
    }

    /// The response for a decided request: refused (429 with the headers)
    /// or `None` (admitted).
    fn refusal<B: From<Bytes>>(
        &self,
        applicable: &[usize],
        outcomes: &[Outcome],
        id: Option<&RequestId>,
        epoch_s: u64,
    ) -> Option<Response<B>> {
        if outcomes.iter().all(|o| o.allowed) {
            return None;
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let mut res: Response<B> = Rejection::new(RejectionKind::RateLimited).into_response(id);
        self.write_headers(res.headers_mut(), applicable, outcomes, epoch_s);
        Some(res)
    }
}

type Decided<F, B> = OrReject<MapResponse<F, Option<RateHeaders>>, B>;

impl<S, B, ResBody> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = FastOrBoxed<Decided<S::Future, ResBody>, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let skip = match self.scope {
            Scope::Preflights => {
                let skip = !is_preflight(&parts);
                if !skip {
                    parts.extensions.insert(PreflightCounted);
                }
                skip
            }
            Scope::Requests => parts.extensions.get::<PreflightCounted>().is_some(),
            Scope::Subjects => false,
        };
        let rules = &self.limiter.rules;
        let applicable: Vec<usize> = if skip {
            Vec::new()
        } else {
            (0..rules.len()).filter(|&i| self.scope.decides(&rules[i]) && rules[i].applies(&parts)).collect()
        };
        if applicable.is_empty() {
            let fut = MapResponse::new(self.inner.call(Request::from_parts(parts, body)), None);
            return FastOrBoxed::Fast { fut: OrReject::Inner { fut } };
        }
        let checks: Vec<Check> = applicable
            .iter()
            .map(|&i| {
                let r = &self.limiter.rules[i];
                Check { key: r.store_key(&parts), rate: r.rate }
            })
            .collect();
        // An in-process store decides now: no future to box.
        if let Some(outcomes) = self.limiter.store.decide_local(&checks) {
            let epoch_s = self.limiter.clock.now_us() / 1_000_000;
            let id = parts.extensions.get::<RequestId>();
            if let Some(res) = self.limiter.refusal(&applicable, &outcomes, id, epoch_s) {
                return FastOrBoxed::Fast { fut: OrReject::Rejected { res: Some(res) } };
            }
            let headers = RateHeaders { limiter: self.limiter.clone(), applicable, outcomes, epoch_s };
            let fut = MapResponse::new(self.inner.call(Request::from_parts(parts, body)), Some(headers));
            return FastOrBoxed::Fast { fut: OrReject::Inner { fut } };
        }
        // Take the ready inner service; leave a clone for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        FastOrBoxed::Boxed {
            fut: Box::pin(async move {
                let id = parts.extensions.get::<RequestId>().cloned();
                let outcomes = match limiter.decide(&checks).await {
                    Ok(o) => o,
                    Err(kind) => return Ok(Rejection::new(kind).into_response(id.as_ref())),
                };
                let epoch_s = limiter.clock.now_us() / 1_000_000;
                if let Some(res) = limiter.refusal(&applicable, &outcomes, id.as_ref(), epoch_s) {
                    return Ok(res);
                }
                let mut res = inner.call(Request::from_parts(parts, body)).await?;
                RateHeaders { limiter, applicable, outcomes, epoch_s }.map(&mut res);
                Ok(res)
            }),
        }
    }
}
