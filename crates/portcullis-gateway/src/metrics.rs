//! The admin listener's `GET /metrics` (C31), in the Prometheus text
//! format: series registered through the `metrics` facade on a recorder of
//! the gateway's own (not the process-global one: tests run several
//! gateways in one process), rendered by `metrics-exporter-prometheus`.
//!
//! Counted on the request path: requests by route, method and status
//! class, their latency per route, Portcullis' own answers by control and
//! reason (auth failures and upstream failures also on their own), and
//! injection findings passed in report mode. Copied in when rendered, from
//! the parts that count for themselves: the rate limiter, the JWKS cache,
//! the identity provider and sessions, open connections and reloads.
//! `docs/operations.md` lists every series with example alert rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use http::Method;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use portcullis_layers::auth::Jwks;
use portcullis_layers::input::{InjectionClass, InputReport};
use portcullis_layers::ratelimit::RateLimitLayer;
use portcullis_layers::rejection::RejectionKind;

const REQUESTS: &str = "portcullis_requests_total";
const DURATION: &str = "portcullis_request_duration_seconds";
/// Latency buckets in seconds: 1 ms to 30 s (the default upstream timeout).
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// The `method` label: the registered methods, everything else `OTHER`
/// (a client chooses the method; the series count stays bounded).
const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The `route` label of a request that matched no route (refused before
/// routing, or unmatched).
pub const NO_ROUTE: &str = "(none)";

/// The checklist control a rejection enforces (the `control` label).
pub fn control(kind: RejectionKind) -> &'static str {
    use RejectionKind::*;
    match kind {
        AmbiguousFraming | InvalidPath | InvalidHost | MalformedRequest => "C28",
        UriTooLong | BodyTooLarge | HeadersTooLarge => "C13",
        RequestTimeout | UpstreamTimeout => "C14",
        NotFound | MethodNotAllowed => "C21",
        Unauthenticated | InvalidToken => "C22",
        Forbidden => "C27",
        CorsForbidden => "C8",
        MalformedInput | UnsupportedMediaType => "C19",
        InvalidInput => "C16",
        PrototypePollution => "C18",
        InjectionDetected => "C20",
        RateLimited => "C11",
        InvalidCredentials | InvalidGrant => "C24",
        LoginLocked => "C15",
        CsrfFailed => "C10",
        Unavailable => "C12",
        UpstreamUnavailable | UpstreamError | Internal => "C29",
        _ => "-",
    }
}

/// Rejections that are an authentication or authorization failure (also
/// counted in `portcullis_auth_failures_total`).
fn is_auth_failure(kind: RejectionKind) -> bool {
    use RejectionKind::*;
    matches!(
        kind,
        Unauthenticated
            | InvalidToken
            | Forbidden
            | CsrfFailed
            | InvalidCredentials
            | LoginLocked
            | InvalidGrant
    )
}

/// Rejections that stand for an upstream failure (also counted in
/// `portcullis_upstream_errors_total`).
fn upstream_failure(kind: RejectionKind) -> Option<&'static str> {
    match kind {
        RejectionKind::UpstreamTimeout => Some("timeout"),
        RejectionKind::UpstreamUnavailable => Some("unreachable"),
        RejectionKind::UpstreamError => Some("error_response"),
        _ => None,
    }
}

/// The series of one route, registered on first use.
struct RouteSeries {
    requests: [[OnceLock<Counter>; 5]; 10],
    duration: Histogram,
}

/// Series of one rejection kind.
struct Rejected {
    total: Counter,
    auth: Option<Counter>,
    upstream: Option<Counter>,
}

/// The gateway's metrics. One per running gateway, kept across reloads.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
    rejected: Vec<Rejected>,
    /// Injection findings in report mode: SQL, XSS (C20).
    injection_reports: [Counter; 2],
    reloads: [Counter; 2],
    connections: Gauge,
    open: OnceLock<Arc<AtomicUsize>>,
    /// The counts of rate limiters replaced by reloads: (refused, store errors).
    retired_rate_limits: std::sync::Mutex<(u64, u64)>,
    jwks: RwLock<Option<Arc<Jwks>>>,
    identity: RwLock<Option<Arc<crate::identity::service::IdentityService>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

static META: Metadata<'static> = Metadata::new("portcullis", metrics::Level::INFO, None);

fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(k, v)| Label::new(*k, (*v).to_owned())).collect()
}

impl Metrics {
    /// Zeroed counters, with every fixed series registered and described.
    pub fn new() -> Arc<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), BUCKETS)
            .map_or_else(|_| PrometheusBuilder::new().build_recorder(), PrometheusBuilder::build_recorder);
        let handle = recorder.handle();
        // The exporter's clock calibrates itself (a timed loop, about a
        // millisecond natively) on first use: here at start, not in the
        // middle of the first requests.
        handle.run_upkeep();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
        };
        for (name, help) in DESCRIPTIONS {
            describe(name, help);
        }
        recorder.describe_histogram(
            KeyName::from_const_str(DURATION),
            Some(Unit::Seconds),
            "Time from the request head to the response head, by route.".into(),
        );
        recorder.describe_gauge(
            KeyName::from_const_str("portcullis_connections_open"),
            None,
            "Open client connections (gateway and redirect listeners).".into(),
        );
        recorder.describe_gauge(
            KeyName::from_const_str("portcullis_jwks_keys"),
            None,
            "Keys in the cached JWK set.".into(),
        );
        let counter = |name: &'static str, pairs: &[(&'static str, &str)]| {
            recorder.register_counter(&Key::from_parts(name, labels(pairs)), &META)
        };
        let rejected = RejectionKind::ALL
            .iter()
            .map(|k| Rejected {
                total: counter(
                    "portcullis_rejections_total",
                    &[("control", control(*k)), ("reason", k.code())],
                ),
                auth: is_auth_failure(*k)
                    .then(|| counter("portcullis_auth_failures_total", &[("reason", k.code())])),
                upstream: upstream_failure(*k)
                    .map(|f| counter("portcullis_upstream_errors_total", &[("kind", f)])),
            })
            .collect();
        let metrics = Arc::new(Metrics {
            injection_reports: [
                counter("portcullis_injection_reports_total", &[("class", "sql_injection")]),
                counter("portcullis_injection_reports_total", &[("class", "xss")]),
            ],
            reloads: [
                counter("portcullis_reloads_total", &[("result", "ok")]),
                counter("portcullis_reloads_total", &[("result", "failed")]),
            ],
            connections: recorder
                .register_gauge(&Key::from_static_name("portcullis_connections_open"), &META),
            recorder,
            handle,
            routes: RwLock::new(HashMap::new()),
            rejected,
            open: OnceLock::new(),
            retired_rate_limits: std::sync::Mutex::new((0, 0)),
            jwks: RwLock::new(None),
            identity: RwLock::new(None),
        });
        // Histogram samples wait in buckets until drained: drain them
        // even when nobody scrapes, so memory stays flat.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&metrics);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    match weak.upgrade() {
                        Some(m) => m.handle.run_upkeep(),
                        None => return,
                    }
                }
            });
        }
        metrics
    }

    /// Reports this count of open connections.
    pub fn watch_connections(&self, open: Arc<AtomicUsize>) {
        let _ = self.open.set(open);
    }

    /// Reports this JWKS cache's counters too (the one of the current
    /// configuration: a reload replaces it).
    pub fn watch_jwks(&self, jwks: Option<Arc<Jwks>>) {
        *self.jwks.write().unwrap_or_else(PoisonError::into_inner) = jwks;
    }

    /// Reports the identity provider's counters too (C24 C15 C31).
    pub fn watch_identity(&self, identity: Option<Arc<crate::identity::service::IdentityService>>) {
        *self.identity.write().unwrap_or_else(PoisonError::into_inner) = identity;
    }

    fn route(&self, route: &str) -> Arc<RouteSeries> {
        if let Some(s) = self.routes.read().unwrap_or_else(PoisonError::into_inner).get(route) {
            return s.clone();
        }
        let mut map = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        map.entry(route.to_owned())
            .or_insert_with(|| {
                Arc::new(RouteSeries {
                    requests: Default::default(),
                    duration: self
                        .recorder
                        .register_histogram(&Key::from_parts(DURATION, labels(&[("route", route)])), &META),
                })
            })
            .clone()
    }

    /// Counts one answered request: its route (the pattern as configured,
    /// [`NO_ROUTE`] for none), method, status and time to the response
    /// head; and, if Portcullis answered it itself, why.
    pub fn record(
        &self,
        route: &str,
        method: Option<&Method>,
        status: u16,
        elapsed: Duration,
        rejection: Option<RejectionKind>,
    ) {
        let series = self.route(route);
        let m = method.map_or(METHODS.len() - 1, |m| {
            METHODS.iter().position(|n| *n == m.as_str()).unwrap_or(METHODS.len() - 1)
        });
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        series.requests[m][class]
            .get_or_init(|| {
                let l = labels(&[("route", route), ("method", METHODS[m]), ("status_class", CLASSES[class])]);
                self.recorder.register_counter(&Key::from_parts(REQUESTS, l), &META)
            })
            .increment(1);
        series.duration.record(elapsed.as_secs_f64());
        if let Some(kind) = rejection {
            self.record_rejection(kind);
        }
    }

    /// Counts an answer Portcullis wrote itself.
    pub fn record_rejection(&self, kind: RejectionKind) {
        if let Some(r) = RejectionKind::ALL.iter().position(|k| *k == kind).map(|i| &self.rejected[i]) {
            r.total.increment(1);
            if let Some(c) = &r.auth {
                c.increment(1);
            }
            if let Some(c) = &r.upstream {
                c.increment(1);
            }
        }
    }

    /// Keeps the counts of a rate limiter a reload replaced, so the
    /// counters never go back.
    pub fn retire_rate_limit(&self, old: &RateLimitLayer) {
        let s = old.stats();
        let mut r = self.retired_rate_limits.lock().unwrap_or_else(PoisonError::into_inner);
        r.0 += s.rejected;
        r.1 += s.store_errors;
    }

    /// Counts a reload, applied or refused (C31).
    pub fn record_reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].increment(1);
    }

    /// Counts injection findings of a request passed in report mode (C20 C31).
    pub fn record_injection_reports(&self, report: &InputReport) {
        for (_, class) in &report.findings {
            let i = match class {
                InjectionClass::Sql => 0,
                InjectionClass::Xss => 1,
            };
            self.injection_reports[i].increment(1);
        }
    }

    fn absolute(&self, name: &'static str, pairs: &[(&'static str, &str)], value: u64) {
        self.recorder.register_counter(&Key::from_parts(name, labels(pairs)), &META).absolute(value);
    }

    /// The exposition text: the counters kept elsewhere copied in, then
    /// rendered.
    pub fn render(&self, rate_limit: &RateLimitLayer) -> String {
        if let Some(open) = self.open.get() {
            self.connections.set(open.load(Ordering::Relaxed) as f64);
        }
        let s = rate_limit.stats();
        let (rejected, store_errors) =
            *self.retired_rate_limits.lock().unwrap_or_else(PoisonError::into_inner);
        self.absolute("portcullis_ratelimit_rejected_total", &[], rejected + s.rejected);
        self.absolute(
            "portcullis_store_errors_total",
            &[("store", "rate_limit")],
            store_errors + s.store_errors,
        );
        if let Some(j) = self.jwks.read().unwrap_or_else(PoisonError::into_inner).clone() {
            let s = j.stats();
            self.absolute("portcullis_jwks_fetches_total", &[], s.fetches);
            self.absolute("portcullis_jwks_fetch_failures_total", &[], s.failures);
            self.recorder
                .register_gauge(&Key::from_static_name("portcullis_jwks_keys"), &META)
                .set(s.keys as f64);
        }
        if let Some(id) = self.identity.read().unwrap_or_else(PoisonError::into_inner).clone() {
            let st = &id.stats;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            self.absolute("portcullis_identity_logins_total", &[], load(&st.logins));
            self.absolute("portcullis_identity_login_failures_total", &[], load(&st.login_failures));
            self.absolute("portcullis_identity_lockouts_total", &[], load(&st.lockouts));
            self.absolute("portcullis_identity_refresh_reuse_total", &[], load(&st.refresh_reuse));
            self.absolute("portcullis_identity_refresh_retries_total", &[], load(&st.refresh_retries));
            self.absolute("portcullis_store_errors_total", &[("store", "identity")], load(&st.store_errors));
            if let Some(sessions) = id.sessions() {
                let ss = &sessions.stats;
                self.absolute("portcullis_sessions_started_total", &[], load(&ss.started));
                self.absolute("portcullis_sessions_ended_total", &[], load(&ss.ended));
                self.absolute("portcullis_sessions_expired_total", &[], load(&ss.expired));
                self.absolute(
                    "portcullis_store_errors_total",
                    &[("store", "sessions")],
                    load(&ss.store_errors),
                );
            }
        }
        self.handle.render()
    }
}

/// `# HELP` texts of the counters.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (REQUESTS, "Requests answered, by route (the pattern as configured), method and status class."),
    ("portcullis_rejections_total", "Responses Portcullis wrote itself, by checklist control and reason."),
    (
        "portcullis_auth_failures_total",
        "Authentication and authorization failures, by reason (C22 C24 C27 C10 C15).",
    ),
    (
        "portcullis_upstream_errors_total",
        "Upstream failures: timeout, unreachable, or a 5xx replaced (C14 C29).",
    ),
    ("portcullis_injection_reports_total", "Possible injections passed in report mode, by class (C20)."),
    ("portcullis_reloads_total", "Configuration reloads, applied or refused."),
    ("portcullis_ratelimit_rejected_total", "Requests refused by a rate limit (C11)."),
    (
        "portcullis_store_errors_total",
        "Store failures, by store: rate_limit (Redis), identity (database), sessions.",
    ),
    ("portcullis_jwks_fetches_total", "JWKS fetch attempts (C22)."),
    ("portcullis_jwks_fetch_failures_total", "Failed JWKS fetches (the cached set stays)."),
    ("portcullis_identity_logins_total", "Successful logins (C24)."),
    (
        "portcullis_identity_login_failures_total",
        "Failed logins: unknown user, wrong password or disabled account (C15).",
    ),
    ("portcullis_identity_lockouts_total", "Logins refused by a lockout (C15)."),
    (
        "portcullis_identity_refresh_reuse_total",
        "Refresh tokens presented again; each revoked its family (C24).",
    ),
    (
        "portcullis_identity_refresh_retries_total",
        "Refreshes repeated within refresh_reuse_grace, given the same successor (C24).",
    ),
    ("portcullis_sessions_started_total", "Cookie sessions started (C25)."),
    ("portcullis_sessions_ended_total", "Cookie sessions ended by logout (C25)."),
    (
        "portcullis_sessions_expired_total",
        "Cookie sessions found idle, past their absolute timeout, or outlived by a change of their user (C25).",
    ),
];
