//! Counters on the admin listener's `GET /metrics`, in the Prometheus text
//! format (C31): requests, requests Portcullis refused by reason, injection
//! findings passed in report mode, and the rate limiter's refusals and
//! store failures.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use portcullis_layers::auth::Jwks;
use portcullis_layers::input::{InjectionClass, InputReport};
use portcullis_layers::ratelimit::RateLimitLayer;
use portcullis_layers::rejection::RejectionKind;

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    rejected: Vec<AtomicU64>,
    /// Reloads: applied, refused.
    reloads: [AtomicU64; 2],
    /// Injection findings in report mode: SQL, XSS (C20).
    injection_reports: [AtomicU64; 2],
    jwks: RwLock<Option<Arc<Jwks>>>,
    identity: RwLock<Option<Arc<crate::identity::service::IdentityService>>>,
}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            requests: AtomicU64::new(0),
            rejected: RejectionKind::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            reloads: [AtomicU64::new(0), AtomicU64::new(0)],
            injection_reports: [AtomicU64::new(0), AtomicU64::new(0)],
            jwks: RwLock::new(None),
            identity: RwLock::new(None),
        })
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

    /// Counts one request and, if Portcullis answered it itself, its reason.
    pub fn record(&self, rejection: Option<RejectionKind>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(kind) = rejection
            && let Some(i) = RejectionKind::ALL.iter().position(|k| *k == kind)
        {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a reload, applied or refused (C31).
    pub fn record_reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts injection findings of a request passed in report mode (C20 C31).
    pub fn record_injection_reports(&self, report: &InputReport) {
        for (_, class) in &report.findings {
            let i = match class {
                InjectionClass::Sql => 0,
                InjectionClass::Xss => 1,
            };
            self.injection_reports[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self, rate_limit: &RateLimitLayer) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# HELP portcullis_requests_total Requests received by the gateway listener.");
        let _ = writeln!(o, "# TYPE portcullis_requests_total counter");
        let _ = writeln!(o, "portcullis_requests_total {}", self.requests.load(Ordering::Relaxed));
        let _ =
            writeln!(o, "# HELP portcullis_rejections_total Responses Portcullis wrote itself, by reason.");
        let _ = writeln!(o, "# TYPE portcullis_rejections_total counter");
        for (kind, n) in RejectionKind::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                o,
                "portcullis_rejections_total{{reason=\"{}\"}} {}",
                kind.code(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_injection_reports_total Possible injections passed in report mode, by class (C20)."
        );
        let _ = writeln!(o, "# TYPE portcullis_injection_reports_total counter");
        for (class, n) in ["sql_injection", "xss"].iter().zip(&self.injection_reports) {
            let _ = writeln!(
                o,
                "portcullis_injection_reports_total{{class=\"{class}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ =
            writeln!(o, "# HELP portcullis_reloads_total Configuration reloads, applied or refused (C31).");
        let _ = writeln!(o, "# TYPE portcullis_reloads_total counter");
        for (result, n) in ["ok", "failed"].iter().zip(&self.reloads) {
            let _ =
                writeln!(o, "portcullis_reloads_total{{result=\"{result}\"}} {}", n.load(Ordering::Relaxed));
        }
        let s = rate_limit.stats();
        let _ = writeln!(o, "# HELP portcullis_ratelimit_rejected_total Requests refused by a rate limit.");
        let _ = writeln!(o, "# TYPE portcullis_ratelimit_rejected_total counter");
        let _ = writeln!(o, "portcullis_ratelimit_rejected_total {}", s.rejected);
        let _ = writeln!(
            o,
            "# HELP portcullis_ratelimit_store_errors_total Rate-limit store failures (decided by on_store_error)."
        );
        let _ = writeln!(o, "# TYPE portcullis_ratelimit_store_errors_total counter");
        let _ = writeln!(o, "portcullis_ratelimit_store_errors_total {}", s.store_errors);
        if let Some(j) = self.jwks.read().unwrap_or_else(PoisonError::into_inner).clone() {
            let s = j.stats();
            let _ = writeln!(o, "# HELP portcullis_jwks_fetches_total JWKS fetch attempts.");
            let _ = writeln!(o, "# TYPE portcullis_jwks_fetches_total counter");
            let _ = writeln!(o, "portcullis_jwks_fetches_total {}", s.fetches);
            let _ = writeln!(
                o,
                "# HELP portcullis_jwks_fetch_failures_total Failed JWKS fetches (the cached set stays)."
            );
            let _ = writeln!(o, "# TYPE portcullis_jwks_fetch_failures_total counter");
            let _ = writeln!(o, "portcullis_jwks_fetch_failures_total {}", s.failures);
            let _ = writeln!(o, "# HELP portcullis_jwks_keys Keys in the cached JWK set.");
            let _ = writeln!(o, "# TYPE portcullis_jwks_keys gauge");
            let _ = writeln!(o, "portcullis_jwks_keys {}", s.keys);
        }
        if let Some(id) = self.identity.read().unwrap_or_else(PoisonError::into_inner).clone() {
            let s = &id.stats;
            let rows: [(&str, &str, &std::sync::atomic::AtomicU64); 6] = [
                ("portcullis_identity_logins_total", "Successful logins (C24).", &s.logins),
                (
                    "portcullis_identity_login_failures_total",
                    "Failed logins: unknown user, wrong password or disabled account (C15).",
                    &s.login_failures,
                ),
                ("portcullis_identity_lockouts_total", "Logins refused by a lockout (C15).", &s.lockouts),
                (
                    "portcullis_identity_refresh_reuse_total",
                    "Refresh tokens presented again; each revoked its family (C24).",
                    &s.refresh_reuse,
                ),
                (
                    "portcullis_identity_refresh_retries_total",
                    "Refreshes repeated within refresh_reuse_grace, given the same successor (C24).",
                    &s.refresh_retries,
                ),
                (
                    "portcullis_identity_store_errors_total",
                    "Identity database failures, answered 503.",
                    &s.store_errors,
                ),
            ];
            let mut all: Vec<(&str, &str, &std::sync::atomic::AtomicU64)> = rows.to_vec();
            if let Some(sessions) = id.sessions() {
                let st = &sessions.stats;
                all.extend([
                    ("portcullis_sessions_started_total", "Cookie sessions started (C25).", &st.started),
                    ("portcullis_sessions_ended_total", "Cookie sessions ended by logout (C25).", &st.ended),
                    (
                        "portcullis_sessions_expired_total",
                        "Cookie sessions found idle, past their absolute timeout, or outlived by a change of their user (C25).",
                        &st.expired,
                    ),
                    (
                        "portcullis_sessions_store_errors_total",
                        "Session store failures, answered 503 where a session was needed.",
                        &st.store_errors,
                    ),
                ]);
            }
            for (name, help, n) in all {
                let _ = writeln!(o, "# HELP {name} {help}");
                let _ = writeln!(o, "# TYPE {name} counter");
                let _ = writeln!(o, "{name} {}", n.load(Ordering::Relaxed));
            }
        }
        o
    }
}
