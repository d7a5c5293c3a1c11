//! Stage 3 of the configuration: the validated [`Config`] built into one
//! tower service, outermost layer first, as in the design's request path.

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use portcullis_layers::Body;
use portcullis_layers::client::{ClientInfoLayer, TrustedProxies};
use portcullis_layers::errors::UpstreamErrorsLayer;
use portcullis_layers::framing::FramingLayer;
use portcullis_layers::headers::SecurityHeadersLayer;
use portcullis_layers::input::InputLayer;
use portcullis_layers::limit::BodyLimitLayer;
use portcullis_layers::path::CanonicalPathLayer;
use portcullis_layers::request_id::RequestIdLayer;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use std::sync::Arc;

use portcullis_layers::auth::{AuthLayer, Jwks, JwtPolicy, KeySet, SUPPORTED, Verifier};
use portcullis_layers::clock::Clock;
use portcullis_layers::ratelimit::{MemoryStore, RateLimitLayer, Store};
use portcullis_layers::route::{MatchedRoute, RouteLayer};

use crate::access_log::{AccessLogLayer, RecordPathLayer, RecordRouteLayer, RecordSubjectLayer};
use crate::config::{Config, StoreKind};
use crate::identity::service::{Endpoint, IdentityService};
use crate::jwks::HttpFetch;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::redis_store::RedisStore;

/// The gateway's request service.
pub type GatewayService = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// The rate-limit store of a configuration (a Redis store connects
/// lazily), and the same store as Redis for `/readyz` to ping.
fn rate_limit_store(cfg: &Config) -> (Arc<dyn Store>, Option<Arc<RedisStore>>) {
    let rl = &cfg.rate_limit;
    match (rl.store, &cfg.state.redis) {
        (StoreKind::Redis, Some(redis)) => match RedisStore::new(redis, cfg.state.redis_timeout) {
            Ok(s) => {
                let s = Arc::new(s);
                (s.clone(), Some(s))
            }
            // Validated in stage 2; a failure here is a fault of ours.
            Err(e) => {
                tracing::error!(error = %e, "redis store unavailable; rate limits use the in-process store");
                (Arc::new(MemoryStore::new(rl.max_keys)), None)
            }
        },
        _ => (Arc::new(MemoryStore::new(rl.max_keys)), None),
    }
}

/// The rate-limit layer of a configuration (its store connects lazily).
pub fn rate_limit_layer(cfg: &Config, clock: Arc<dyn Clock>) -> RateLimitLayer {
    rate_limit_layer_on(cfg, clock, rate_limit_store(cfg).0)
}

fn rate_limit_layer_on(cfg: &Config, clock: Arc<dyn Clock>, store: Arc<dyn Store>) -> RateLimitLayer {
    let rl = &cfg.rate_limit;
    RateLimitLayer::builder(rl.rules.clone(), store)
        .headers(rl.headers)
        .legacy_headers(rl.legacy_headers)
        .on_store_error(rl.on_store_error, rl.max_keys)
        .clock(clock)
        .build()
}

/// The authentication layer of a configuration. A JWKS cache starts
/// fetching in the background (on the current tokio runtime) and is
/// returned for metrics.
pub fn auth_layer(cfg: &Config, clock: Arc<dyn Clock>) -> (AuthLayer, Option<Arc<Jwks>>) {
    let (layer, task) = auth_layer_with(cfg, clock, None);
    (layer, task.map(|t| t.jwks.clone()))
}

/// A JWKS cache and its background refresh, which stops when the last
/// holder drops it (a reload that changed `[auth]`).
pub struct JwksTask {
    jwks: Arc<Jwks>,
    refresh: Option<tokio::task::AbortHandle>,
}

impl Drop for JwksTask {
    fn drop(&mut self) {
        if let Some(h) = &self.refresh {
            h.abort();
        }
    }
}

fn auth_layer_with(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    kept: Option<Arc<JwksTask>>,
) -> (AuthLayer, Option<Arc<JwksTask>>) {
    let a = &cfg.auth;
    let own = cfg.identity.as_ref().map(|id| {
        let (keys, _) = KeySet::from_jwks(&id.key.jwks(), SUPPORTED).unwrap_or_default();
        (keys, id.issuer.clone(), id.audience.clone())
    });
    let Some(j) = &a.jwt else {
        // Only Portcullis' own tokens ([identity]), or none at all.
        let verifier = own.map(|(keys, iss, aud)| {
            let policy = JwtPolicy { issuers: vec![iss], audiences: vec![aud], ..JwtPolicy::default() };
            Arc::new(Verifier::new(policy, keys, None).clock(clock.clone()))
        });
        return (AuthLayer::new(verifier, a.identity_headers.clone()).forward_token(a.forward_token), None);
    };
    let task = j.jwks_url.as_ref().map(|url| {
        if let Some(t) = kept {
            return t;
        }
        let fetch = HttpFetch::new(url.clone(), j.jwks_timeout);
        let jwks = Arc::new(Jwks::new(Box::new(fetch), clock.clone(), j.jwks.clone()));
        let refresh = match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt.spawn(jwks.clone().run()).abort_handle()),
            Err(_) => {
                tracing::error!("no runtime: the JWKS is fetched on the first unknown key only");
                None
            }
        };
        Arc::new(JwksTask { jwks, refresh })
    });
    let jwks = task.as_ref().map(|t| t.jwks.clone());
    // External tokens and, with [identity], Portcullis' own: its key joins
    // the static keys, its issuer and audience the accepted ones (where
    // [auth.jwt] checks them at all).
    let mut policy = j.policy.clone();
    let mut keys = j.static_keys.clone();
    if let Some((own_keys, iss, aud)) = own {
        keys.extend(&own_keys);
        if !policy.issuers.is_empty() {
            policy.issuers.push(iss);
        }
        if !policy.audiences.is_empty() {
            policy.audiences.push(aud);
        }
    }
    let verifier = Verifier::new(policy, keys, jwks).cache_capacity(j.cache_size).clock(clock);
    (
        AuthLayer::new(Some(Arc::new(verifier)), a.identity_headers.clone()).forward_token(a.forward_token),
        task,
    )
}

/// The input-validation layer of a configuration (C16-C20); routes carry
/// their own policies.
pub fn input_layer(cfg: &Config) -> InputLayer {
    InputLayer::new(cfg.input.default_policy.clone())
}

/// The stateful parts of a gateway. A reload builds the new request path
/// with the parts of the old one whose sections are written the same: rate
/// limit counters (`[state]`, `[rate_limit_options]`), the identity
/// provider with its sessions and lockouts (`[identity]`, `[sessions]`,
/// `[state]`, `[auth]`, and the same signing key) and the JWKS cache
/// (`[auth]`). The counters of `/metrics` always carry over.
#[derive(Clone)]
pub struct Kept {
    sections: crate::config::Sections,
    /// The counters of `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The rate limiter (the admin listener reads its counters).
    pub rate_limit: RateLimitLayer,
    rate_store: (Arc<dyn Store>, Option<Arc<RedisStore>>),
    jwks: Option<Arc<JwksTask>>,
    identity: Option<Arc<IdentityService>>,
    identity_key: Option<Vec<u8>>,
}

impl Kept {
    /// The JWKS cache, if `[auth.jwt]` fetches one.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref().map(|t| &t.jwks)
    }

    /// The rate limiter's store when it is Redis.
    pub fn rate_limit_redis(&self) -> Option<&Arc<RedisStore>> {
        self.rate_store.1.as_ref()
    }

    /// The session manager, with `[sessions]`.
    pub fn sessions(&self) -> Option<&Arc<crate::identity::sessions::Sessions>> {
        self.identity.as_ref().and_then(|i| i.sessions())
    }
}

const RATE_STORE_SECTIONS: &[&str] = &["state", "rate_limit_options"];
const IDENTITY_SECTIONS: &[&str] = &["identity", "sessions", "state", "auth"];
const AUTH_SECTIONS: &[&str] = &["auth"];

/// Builds the request path for a configuration, opening the identity
/// store if `[identity]` is on; with `before`, a reload: what its sections
/// leave unchanged is reused (see [`Kept`]).
pub async fn build(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    before: Option<&Kept>,
) -> Result<(GatewayService, Kept), crate::identity::store::StoreError> {
    let same = |names: &[&str]| before.filter(|b| b.sections.same(&cfg.sections, names));
    let identity_key = cfg.identity.as_ref().map(|i| i.key.jwks());
    let identity = match (&cfg.identity, same(IDENTITY_SECTIONS).filter(|b| b.identity_key == identity_key)) {
        (None, _) => None,
        (Some(_), Some(b)) if b.identity.is_some() => b.identity.clone(),
        (Some(_), _) => Some(Arc::new(IdentityService::open(cfg, clock.clone()).await?)),
    };
    let rate_store =
        same(RATE_STORE_SECTIONS).map_or_else(|| rate_limit_store(cfg), |b| b.rate_store.clone());
    let metrics = before.map_or_else(Metrics::new, |b| b.metrics.clone());
    let rate_limit = rate_limit_layer_on(cfg, clock.clone(), rate_store.0.clone());
    let (mut auth, jwks) = auth_layer_with(cfg, clock, same(AUTH_SECTIONS).and_then(|b| b.jwks.clone()));
    if let Some(s) = identity.as_ref().and_then(|i| i.sessions()) {
        auth = auth.sessions(s.clone()); // C25 C10
    }
    metrics.watch_jwks(jwks.as_ref().map(|t| t.jwks.clone()));
    metrics.watch_identity(identity.clone());
    // The policy below the canonical path, boxed once: the outer layers
    // then name a small type (two rate-limit services in one nested type
    // made type checking take minutes).
    let policy: GatewayService = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(cfg.cors.layer.clone()) // C8: preflights answered here, never routed or forwarded
            .layer(RouteLayer::new(cfg.routes.table.clone())) // C21 C28: deny by default
            .layer(RecordRouteLayer) // C30 C31: the route for the log and per-route metrics
            .layer(rate_limit.clone()) // C11 C12
            .layer(BodyLimitLayer::new(cfg.limits.body).idle_timeout(cfg.limits.body_read_timeout)) // C13 C14
            .layer(auth) // C22 C23 C26 C27
            .layer(RecordSubjectLayer) // C30: the verified subject for the log
            .layer(rate_limit.for_subjects()) // C11 per user: rules keyed by the verified subject
            .layer(input_layer(cfg)) // C16-C20: after auth, so no body is read for a client refused there
            // C29: innermost, so the CORS and RateLimit headers the request
            // earned are added to the replacement too (C8 C11).
            .layer(
                UpstreamErrorsLayer::new()
                    .replace_html_4xx(cfg.errors.replace_html_4xx)
                    .log_limit(cfg.errors.log_body_bytes),
            )
            .service(Endpoints {
                identity: identity.clone(),
                proxy: Proxy::new(
                    &cfg.upstream,
                    cfg.limits.request_timeout,
                    cfg.auth.identity_headers.names(),
                    cfg.server.workers,
                ),
            }), // C24 own endpoints; else C3 C14 C23 to the upstream
    );
    let stack = ServiceBuilder::new()
        .layer(ClientInfoLayer::new(TrustedProxies::new(cfg.server.trusted_proxies.iter().copied()))) // C3
        .layer(RequestIdLayer) // C30
        .layer(AccessLogLayer::new(metrics.clone())) // C30 C31
        .layer(SecurityHeadersLayer::new(cfg.headers.clone())) // C2 C5 C6 C7
        .layer(FramingLayer::new().host_names(cfg.server.names.iter().cloned())) // C28, and server.names
        .layer(CanonicalPathLayer::new(cfg.paths)) // C28
        .layer(RecordPathLayer)
        .layer(rate_limit.for_preflights()) // C11: preflights are counted too
        .service(policy);
    let kept = Kept {
        sections: cfg.sections.clone(),
        metrics,
        rate_limit,
        rate_store,
        jwks,
        identity,
        identity_key,
    };
    Ok((BoxCloneSyncService::new(stack), kept))
}

/// The innermost service: Portcullis' own endpoints (the identity routes,
/// C24) are answered here, after the whole edge policy; every other
/// request goes to the upstream.
#[derive(Clone)]
pub struct Endpoints {
    identity: Option<Arc<IdentityService>>,
    proxy: Proxy,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints").field("identity", &self.identity.is_some()).finish_non_exhaustive()
    }
}

impl tower::Service<Request<Body>> for Endpoints {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.proxy.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let endpoint = req
            .extensions()
            .get::<MatchedRoute>()
            .and_then(|m| m.route.as_ref())
            .and_then(|r| r.policy::<Endpoint>().copied());
        match (endpoint, &self.identity) {
            (Some(e), Some(id)) => {
                let id = id.clone();
                Box::pin(async move { Ok(id.handle(e, req).await) })
            }
            _ => self.proxy.call(req),
        }
    }
}
