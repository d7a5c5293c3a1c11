//! `/readyz` on the admin listener: 503 with the reasons while the gateway
//! can't do its job, so a load balancer sends traffic elsewhere; `/healthz`
//! stays liveness only. Not ready while:
//! - draining (`{"status":"draining"}`);
//! - `upstream_unreachable`: `upstream.unhealthy_after` TCP probes in a row
//!   failed (probes are off unless `upstream.health_interval` is set);
//! - `no_jwt_keys`: `[auth.jwt]` takes its keys from a JWKS URL alone and
//!   holds none (never fetched, or every fetch failed);
//! - `rate_limit_store_unreachable`: the rate limiter's Redis does not
//!   answer a PING and `on_store_error = "closed"` (with `"open"` the
//!   gateway still decides, per instance);
//! - `session_store_unreachable`: the `[sessions]` store (Redis or the
//!   database) does not answer: every session request would be a 503;
//! - `no_certificate`: `[server.tls.acme]` has not obtained a certificate
//!   yet: every TLS handshake would fail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portcullis_layers::auth::Jwks;

use crate::config::{Config, UpstreamHealth};
use crate::identity::sessions::Sessions;
use crate::redis_store::RedisStore;

/// The longest a store check may take (orchestrators' probes time out
/// after about a second).
const STORE_CHECK: Duration = Duration::from_millis(800);

/// The checks of one configuration.
#[derive(Default)]
pub(crate) struct Readiness {
    upstream: Option<(Arc<Probe>, tokio::task::AbortHandle)>,
    jwks: Option<Arc<Jwks>>,
    rate_store: Option<Arc<RedisStore>>,
    sessions: Option<Arc<Sessions>>,
    acme: Option<Arc<crate::acme::Acme>>,
}

impl Drop for Readiness {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.upstream {
            task.abort();
        }
    }
}

/// Consecutive failed upstream probes, and how many make it unreachable.
#[derive(Debug)]
struct Probe {
    failures: AtomicU64,
    threshold: u64,
}

impl Readiness {
    /// The checks `cfg` calls for, over the parts built for it. Starts the
    /// upstream probe (on the current runtime) if configured.
    pub(crate) fn new(
        cfg: &Config,
        jwks: Option<Arc<Jwks>>,
        rate_store: Option<Arc<RedisStore>>,
        sessions: Option<Arc<Sessions>>,
        acme: Option<Arc<crate::acme::Acme>>,
    ) -> Readiness {
        let keys_only_from_jwks = cfg.auth.jwt.as_ref().is_some_and(|j| j.static_keys.keys().is_empty());
        let fail_closed = cfg.rate_limit.on_store_error == portcullis_layers::ratelimit::FailMode::Closed;
        let upstream = cfg.upstream.health.and_then(|h| {
            let authority = cfg.upstream.url.authority()?;
            let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = authority.port_u16().unwrap_or(80);
            let probe = Arc::new(Probe { failures: AtomicU64::new(0), threshold: h.unhealthy_after });
            let connect = cfg.upstream.connect_timeout.min(h.interval);
            let task = tokio::spawn(run_probe(probe.clone(), host, port, h, connect)).abort_handle();
            Some((probe, task))
        });
        Readiness {
            upstream,
            // With [identity] on, Portcullis' own key is always there.
            jwks: jwks.filter(|_| keys_only_from_jwks && cfg.identity.is_none()),
            rate_store: rate_store.filter(|_| fail_closed),
            sessions,
            acme,
        }
    }

    /// Why the gateway is not ready; empty when it is.
    pub(crate) async fn reasons(&self) -> Vec<&'static str> {
        let mut r = Vec::new();
        if let Some((probe, _)) = &self.upstream
            && probe.failures.load(Ordering::SeqCst) >= probe.threshold
        {
            r.push("upstream_unreachable");
        }
        if self.acme.as_ref().is_some_and(|a| !a.has_certificate()) {
            r.push("no_certificate");
        }
        if self.jwks.as_ref().is_some_and(|j| j.stats().keys == 0) {
            r.push("no_jwt_keys");
        }
        // Each store check bounded: a probe that hangs is a failed probe.
        let bounded = async |f: std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>| {
            tokio::time::timeout(STORE_CHECK, f).await.unwrap_or(false)
        };
        let (store, sessions) = tokio::join!(
            bounded(Box::pin(async {
                match &self.rate_store {
                    Some(s) => s.ping().await.is_ok(),
                    None => true,
                }
            })),
            bounded(Box::pin(async {
                match &self.sessions {
                    Some(s) => s.ping().await.is_ok(),
                    None => true,
                }
            }))
        );
        if !store {
            r.push("rate_limit_store_unreachable");
        }
        if !sessions {
            r.push("session_store_unreachable");
        }
        r
    }
}

/// Probes the upstream every interval: a TCP connection within `connect`.
/// Logs the change between reachable and unreachable, naming the target.
async fn run_probe(probe: Arc<Probe>, host: String, port: u16, h: UpstreamHealth, connect: Duration) {
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = matches!(
            tokio::time::timeout(connect, tokio::net::TcpStream::connect((host.as_str(), port))).await,
            Ok(Ok(_))
        );
        if ok {
            if probe.failures.swap(0, Ordering::SeqCst) >= probe.threshold {
                tracing::info!(target: "portcullis", upstream = %Target(&host, port), "upstream reachable again: ready");
            }
        } else {
            let n = probe.failures.fetch_add(1, Ordering::SeqCst) + 1;
            if n == probe.threshold {
                tracing::error!(
                    target: "portcullis",
                    upstream = %Target(&host, port),
                    failures = n,
                    "upstream unreachable: /readyz answers 503"
                );
            }
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
struct Target<'a>(&'a str, u16);

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.parse::<std::net::IpAddr>() {
            Ok(ip) => write!(f, "{}", SocketAddr::new(ip, self.1)),
            Err(_) => write!(f, "{}:{}", self.0, self.1),
        }
    }
}
