//! The identity endpoints (C24, C15), served by Portcullis behind the same
//! edge layers as the proxied API (headers, rate limits, body limits,
//! strict JSON, logging):
//! - `POST /auth/login` `{"username","password"}` -> 200
//!   `{"access_token","token_type":"Bearer","expires_in","refresh_token"}`;
//! - `POST /auth/refresh` `{"refresh_token"}` -> a new pair (rotation);
//! - `POST /auth/logout` `{"refresh_token"}` -> 204 (revokes the family);
//! - `GET /.well-known/jwks.json` -> the public signing key.
//!
//! Field names follow OAuth 2.0 (RFC 6749 section 5). Nothing a client
//! sends is echoed; no password, token or hash is ever logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use portcullis_layers::Body;
use portcullis_layers::client::ClientInfo;
use portcullis_layers::clock::Clock;
use portcullis_layers::json::{JsonLimits, parse_strict};
use portcullis_layers::rejection::{Rejection, RejectionKind, Violation};
use portcullis_layers::request_id::RequestId;
use serde_json::{Value, json};

use super::keys::SigningKey;
use super::password::{Hasher, PasswordError};
use super::store::{Rotation, Store, StoreError};
use crate::config::{IdentityConfig, Lockout};

/// The longest user name accepted (checked before any hashing).
pub const MAX_USERNAME_BYTES: usize = 256;
/// The largest request body an identity endpoint reads.
const MAX_BODY: usize = 8 * 1024;

/// Which identity endpoint a route is (attached to the route as a policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /auth/logout`.
    Logout,
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `POST /auth/session`: a login that starts a cookie session (C25).
    SessionLogin,
    /// `GET /auth/session`: the session's subject, roles and CSRF token.
    SessionInfo,
    /// `DELETE /auth/session`: ends the session.
    SessionLogout,
}

impl Endpoint {
    /// Every endpoint with its method and path.
    pub const ALL: [(Endpoint, Method, &'static str); 7] = [
        (Endpoint::Login, Method::POST, "/auth/login"),
        (Endpoint::Refresh, Method::POST, "/auth/refresh"),
        (Endpoint::Logout, Method::POST, "/auth/logout"),
        (Endpoint::Jwks, Method::GET, "/.well-known/jwks.json"),
        (Endpoint::SessionLogin, Method::POST, "/auth/session"),
        (Endpoint::SessionInfo, Method::GET, "/auth/session"),
        (Endpoint::SessionLogout, Method::DELETE, "/auth/session"),
    ];

    /// Whether this is a `[sessions]` endpoint.
    pub fn is_session(self) -> bool {
        matches!(self, Endpoint::SessionLogin | Endpoint::SessionInfo | Endpoint::SessionLogout)
    }

    /// Its access rule: reading or ending a session needs one (and, for
    /// `DELETE`, the CSRF checks); everything else is public.
    pub fn access(self) -> portcullis_layers::route::Access {
        use portcullis_layers::route::{Access, Authz};
        match self {
            Endpoint::SessionInfo | Endpoint::SessionLogout => Access::Protected(Authz::default()),
            _ => Access::Public,
        }
    }
}

/// Counters for `/metrics` and the security log (C31).
#[derive(Debug, Default)]
pub struct IdentityStats {
    /// Successful logins.
    pub logins: AtomicU64,
    /// Failed logins (unknown user, wrong password, disabled).
    pub login_failures: AtomicU64,
    /// Logins refused because of a lock.
    pub lockouts: AtomicU64,
    /// Refresh tokens presented a second time (families revoked).
    pub refresh_reuse: AtomicU64,
    /// Refreshes repeated within `refresh_reuse_grace` (same successor).
    pub refresh_retries: AtomicU64,
    /// Store failures answered 503.
    pub store_errors: AtomicU64,
}

/// Failed-login counters per account name and per client (C15): in
/// memory, or in Redis (`[state] redis`) so every instance sees them.
enum Locks {
    Memory(MemoryLocks),
    Redis(RedisLocks),
}

#[derive(Debug)]
struct MemoryLocks {
    cfg: Lockout,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The lockout counters in Redis. Per key, one script: count the failure
/// (the counter expires with the window) and, at the threshold, set the
/// lock (expiring with the lock). Keys carry a hash of the account name or
/// address, in a hash tag so a counter and its lock share a cluster slot:
/// the same script runs on one server and on a Redis Cluster.
struct RedisLocks {
    cfg: Lockout,
    conn: crate::redis_store::RedisConn,
    fail: redis::Script,
    timeout: Duration,
}

const FAIL_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
end
return n
";

/// The lockout store could not be reached: the login is answered 503.
struct LockStoreDown(&'static str);

impl RedisLocks {
    fn keys(k: &str) -> (String, String) {
        let h = sha256_hex(k);
        (format!("portcullis:login:{{{h}}}:failures"), format!("portcullis:login:{{{h}}}:lock"))
    }

    async fn locked(&self, keys: &[String]) -> Result<Option<Duration>, LockStoreDown> {
        let mut longest: Option<Duration> = None;
        for k in keys {
            let (_, lock) = Self::keys(k);
            let ms: i64 = self
                .conn
                .call(self.timeout, async |mut c| redis::cmd("PTTL").arg(&lock).query_async(&mut c).await)
                .await
                .map_err(LockStoreDown)?;
            if ms > 0 {
                let d = Duration::from_millis(ms.unsigned_abs());
                longest = Some(longest.map_or(d, |l| l.max(d)));
            }
        }
        Ok(longest)
    }

    async fn fail(&self, keys: &[String]) -> Result<(), LockStoreDown> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        for k in keys {
            let threshold = threshold(&self.cfg, k);
            let (count, lock) = Self::keys(k);
            let mut inv = self.fail.prepare_invoke();
            inv.key(&count).key(&lock).arg(threshold).arg(ms(self.cfg.window)).arg(ms(self.cfg.duration));
            let _: i64 = self
                .conn
                .call(self.timeout, async |mut c| inv.invoke_async(&mut c).await)
                .await
                .map_err(LockStoreDown)?;
        }
        Ok(())
    }

    async fn succeed(&self, key: &str) -> Result<(), LockStoreDown> {
        let (count, _) = Self::keys(key);
        let _: i64 = self
            .conn
            .call(self.timeout, async |mut c| redis::cmd("DEL").arg(&count).query_async(&mut c).await)
            .await
            .map_err(LockStoreDown)?;
        Ok(())
    }
}

impl Locks {
    async fn locked(&self, keys: &[String], now: u64) -> Result<Option<Duration>, LockStoreDown> {
        match self {
            Locks::Memory(m) => Ok(m.locked(keys, now)),
            Locks::Redis(r) => r.locked(keys).await,
        }
    }

    async fn fail(&self, keys: &[String], now: u64) -> Result<(), LockStoreDown> {
        match self {
            Locks::Memory(m) => {
                m.fail(keys, now);
                Ok(())
            }
            Locks::Redis(r) => r.fail(keys).await,
        }
    }

    async fn succeed(&self, key: &str) -> Result<(), LockStoreDown> {
        match self {
            Locks::Memory(m) => {
                m.succeed(key);
                Ok(())
            }
            Locks::Redis(r) => r.succeed(key).await,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in the current window, and when it started (µs).
    failures: u32,
    window_start: u64,
    /// Locked until (µs); 0 when not locked.
    locked_until: u64,
}

/// The failures that lock `key`: a client address (`ip:...`) gets the
/// higher threshold, as many users may share one behind NAT.
fn threshold(cfg: &Lockout, key: &str) -> u32 {
    if key.starts_with("ip:") { cfg.client_failures } else { cfg.failures }
}

/// At most this many keys are tracked; beyond it, expired entries are
/// dropped first, then the oldest windows.
const MAX_LOCK_KEYS: usize = 100_000;

impl MemoryLocks {
    fn locked(&self, keys: &[String], now: u64) -> Option<Duration> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter(|e| e.locked_until > now)
            .map(|e| Duration::from_micros(e.locked_until - now))
            .max()
    }

    fn fail(&self, keys: &[String], now: u64) {
        let window = u64::try_from(self.cfg.window.as_micros()).unwrap_or(u64::MAX);
        let lock = u64::try_from(self.cfg.duration.as_micros()).unwrap_or(u64::MAX);
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_LOCK_KEYS {
            map.retain(|_, e| e.locked_until > now || now.saturating_sub(e.window_start) < window);
        }
        for k in keys {
            let threshold = threshold(&self.cfg, k);
            let e = map.entry(k.clone()).or_insert(Entry { failures: 0, window_start: now, locked_until: 0 });
            if now.saturating_sub(e.window_start) >= window {
                *e = Entry { failures: 0, window_start: now, locked_until: 0 };
            }
            e.failures += 1;
            if e.failures >= threshold {
                e.locked_until = now.saturating_add(lock);
                e.failures = 0;
                e.window_start = now;
            }
        }
    }

    fn succeed(&self, key: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

/// The identity provider behind the endpoints.
pub struct IdentityService {
    cfg: IdentityConfig,
    /// Where the subject and the roles go in issued tokens: the claim
    /// names `[auth.jwt]` reads, so one verifier reads both kinds.
    subject_claim: String,
    roles_claim: String,
    store: Store,
    hasher: Hasher,
    locks: Locks,
    clock: Arc<dyn Clock>,
    /// Cookie sessions (`[sessions]`), when on.
    sessions: Option<Arc<super::sessions::Sessions>>,
    /// Counters.
    pub stats: IdentityStats,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService").field("issuer", &self.cfg.issuer).finish_non_exhaustive()
    }
}

type Res = Response<Body>;

impl IdentityService {
    /// Opens the store (creating and migrating an SQLite file) and makes
    /// the service for a configuration with `[identity]`.
    pub async fn open(
        config: &crate::config::Config,
        clock: Arc<dyn Clock>,
    ) -> Result<IdentityService, StoreError> {
        let Some(cfg) = &config.identity else {
            return Err(StoreError::Unavailable("[identity] is not configured".to_owned()));
        };
        let store = Store::open(cfg.database.expose()).await?;
        let hasher = Hasher::new(cfg.cost, cfg.hash_concurrency).map_err(StoreError::Unavailable)?;
        let (subject_claim, roles_claim) = match &config.auth.jwt {
            Some(j) => (j.policy.subject_claim.clone(), j.policy.roles_claim.clone()),
            None => ("sub".to_owned(), "roles".to_owned()),
        };
        let locks = match &config.state.redis {
            Some(redis) => {
                let timeout = config.state.redis_timeout;
                let conn =
                    crate::redis_store::RedisConn::open(redis, timeout).map_err(StoreError::Unavailable)?;
                Locks::Redis(RedisLocks {
                    cfg: cfg.lockout,
                    conn,
                    fail: redis::Script::new(FAIL_SCRIPT),
                    timeout,
                })
            }
            None => Locks::Memory(MemoryLocks { cfg: cfg.lockout, entries: Mutex::new(HashMap::new()) }),
        };
        let sessions = match &config.sessions {
            Some(sc) => {
                let redis = config.state.redis.as_ref().map(|r| (r, config.state.redis_timeout));
                let s = super::sessions::Sessions::new(sc.clone(), redis, store.clone(), clock.clone())
                    .map_err(StoreError::Unavailable)?;
                Some(Arc::new(s))
            }
            None => None,
        };
        Ok(IdentityService {
            cfg: cfg.clone(),
            subject_claim,
            roles_claim,
            store,
            hasher,
            locks,
            clock,
            sessions,
            stats: IdentityStats::default(),
        })
    }

    /// The session manager (`[sessions]`), for the authentication layer.
    pub fn sessions(&self) -> Option<&Arc<super::sessions::Sessions>> {
        self.sessions.as_ref()
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.cfg.key
    }

    /// Answers a request for `endpoint`.
    pub async fn handle(&self, endpoint: Endpoint, req: Request<Body>) -> Res {
        let id = req.extensions().get::<RequestId>().cloned();
        let client = req.extensions().get::<ClientInfo>().map(|c| c.ip);
        let out = match endpoint {
            Endpoint::Jwks => Ok(self.jwks()),
            Endpoint::SessionInfo => self.session_info(&req),
            Endpoint::SessionLogout => {
                let active = req.extensions().get::<portcullis_layers::auth::ActiveSession>().cloned();
                self.session_logout(active).await
            }
            Endpoint::SessionLogin => self.session_login(req, client).await,
            _ => match read_json(req).await {
                Err(refusal) => Err(refusal),
                Ok(body) => match endpoint {
                    Endpoint::Login => self.login(&body, client).await,
                    Endpoint::Refresh => self.refresh(&body).await,
                    _ => self.logout(&body).await,
                },
            },
        };
        match out {
            Ok(res) => res,
            Err((kind, violation, retry_after)) => {
                let violations: Vec<Violation> = violation.into_iter().collect();
                let mut res: Res = Rejection::new(kind).into_response_with(id.as_ref(), &violations);
                if let Some(d) = retry_after {
                    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        res.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                if kind == RejectionKind::InvalidCredentials || kind == RejectionKind::InvalidGrant {
                    res.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_grant\""),
                    );
                }
                res
            }
        }
    }

    fn jwks(&self) -> Res {
        let mut res = Response::new(Body::from(Bytes::from(self.cfg.key.jwks())));
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        res
    }

    async fn login(&self, body: &Value, client: Option<IpAddr>) -> Outcome {
        let username = field(body, "username", &["username", "password"])?;
        let password = field(body, "password", &["username", "password"])?;
        let user = self.authenticate(username, password, client).await?;
        let family = random_hex(16);
        let (refresh, refresh_hash) = new_refresh_token();
        let expires = self.refresh_expiry();
        self.store
            .start_family(&user.name, &family, &refresh_hash, expires)
            .await
            .map_err(|e| self.store_error(&e))?;
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "portcullis::identity", event = "login", "login succeeded");
        self.pair(&user.name, &user.roles, &refresh)
    }

    /// Checks a user name and password (C24) under the lockout (C15): the
    /// user, or the refusal. One answer for unknown, wrong and disabled.
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<super::store::User, Failure> {
        if username.is_empty() || username.len() > MAX_USERNAME_BYTES {
            return Err(bad("/body/username", "length"));
        }
        if password.is_empty() || password.len() > super::password::MAX_PASSWORD_BYTES {
            return Err(bad("/body/password", "length"));
        }
        let account_key = format!("user:{username}");
        let mut keys = vec![account_key.clone()];
        if let Some(ip) = client {
            keys.push(format!("ip:{ip}"));
        }
        let now = self.clock.now_us();
        let down = |e: LockStoreDown| {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "portcullis::identity", reason = e.0, "lockout store (Redis) unavailable; answering 503");
            (RejectionKind::Unavailable, None, None)
        };
        if let Some(wait) = self.locks.locked(&keys, now).await.map_err(down)? {
            self.stats.lockouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "portcullis::identity", event = "login_locked", "login refused: locked after repeated failures");
            return Err((RejectionKind::LoginLocked, None, Some(wait)));
        }
        let user = self.store.user(username).await.map_err(|e| self.store_error(&e))?;
        let phc = user.as_ref().map(|u| u.password_hash.as_str());
        let ok = match self.hasher.verify(password, phc).await {
            Ok(ok) => ok,
            Err(PasswordError::BadLength) => return Err(bad("/body/password", "length")),
            Err(PasswordError::Internal) => return Err((RejectionKind::Unavailable, None, None)),
        };
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            _ => {
                self.locks.fail(&keys, now).await.map_err(down)?;
                self.stats.login_failures.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "portcullis::identity", event = "login_failed", "login failed");
                return Err((RejectionKind::InvalidCredentials, None, None));
            }
        };
        self.locks.succeed(&account_key).await.map_err(down)?;
        Ok(user)
    }

    /// `POST /auth/session`: a login (JSON or an HTML form) that starts a
    /// cookie session (C25). A cross-site post is refused before any
    /// password check (login CSRF, C10); a session cookie sent along is
    /// ended, never carried over (fixation).
    async fn session_login(&self, req: Request<Body>, client: Option<IpAddr>) -> Outcome {
        let Some(sessions) = &self.sessions else { return Err((RejectionKind::NotFound, None, None)) };
        let (https, host) = portcullis_layers::auth::session::addressed(&req);
        if !portcullis_layers::auth::session::same_origin(req.headers(), https, host) {
            tracing::warn!(target: "portcullis::identity", event = "csrf_failed", "cross-site session login refused");
            return Err((RejectionKind::CsrfFailed, None, None));
        }
        let old = req.extensions().get::<portcullis_layers::auth::PresentedSession>().map(|p| p.0.clone());
        let form = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        let body = if form { read_form(req).await? } else { read_json(req).await? };
        let username = field(&body, "username", &["username", "password"])?;
        let password = field(&body, "password", &["username", "password"])?;
        let user = self.authenticate(username, password, client).await?;
        if let Some(old) = old {
            sessions.end(&old).await.map_err(|_| self.session_store_error())?;
        }
        let (id, rec) = sessions
            .start(&user.name, &user.roles, user.generation)
            .await
            .map_err(|_| self.session_store_error())?;
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "portcullis::identity", event = "session_login", "session started");
        let cfg = sessions.config();
        let ttl = cfg.absolute_timeout.as_secs();
        let body = json!({"csrf_token": rec.csrf, "expires_in": ttl});
        let mut res = json_response(&body);
        set_session_cookie(&mut res, cfg, &id, ttl);
        Ok(res)
    }

    /// `GET /auth/session`: who the session is, and its CSRF token.
    fn session_info(&self, req: &Request<Body>) -> Outcome {
        let (Some(active), Some(identity)) = (
            req.extensions().get::<portcullis_layers::auth::ActiveSession>(),
            req.extensions().get::<Arc<portcullis_layers::auth::Identity>>(),
        ) else {
            return Err((RejectionKind::Unauthenticated, None, None));
        };
        Ok(json_response(&json!({
            "subject": identity.subject,
            "roles": identity.roles,
            "csrf_token": active.csrf,
        })))
    }

    /// `DELETE /auth/session`: ends the session server-side and clears the
    /// cookie.
    async fn session_logout(&self, active: Option<portcullis_layers::auth::ActiveSession>) -> Outcome {
        let (Some(sessions), Some(active)) = (&self.sessions, active) else {
            return Err((RejectionKind::Unauthenticated, None, None));
        };
        sessions.end(&active.id).await.map_err(|_| self.session_store_error())?;
        sessions.stats.ended.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "portcullis::identity", event = "session_logout", "session ended");
        let cfg = sessions.config();
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        set_session_cookie(&mut res, cfg, "", 0);
        Ok(res)
    }

    fn session_store_error(&self) -> Failure {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(target: "portcullis::identity", "session store unavailable; answering 503");
        (RejectionKind::Unavailable, None, None)
    }

    async fn refresh(&self, body: &Value) -> Outcome {
        let presented = field(body, "refresh_token", &["refresh_token"])?;
        let grace = self.cfg.refresh_reuse_grace.as_secs();
        // Under a grace the successor is derived from the presented token,
        // so a retry can be given the same one; otherwise it is random.
        let (next, next_hash) = if grace > 0 {
            let next = self.cfg.key.successor_of(presented);
            let hash = sha256_hex(&next);
            (next, hash)
        } else {
            new_refresh_token()
        };
        let now = i64::try_from(self.clock.now_us() / 1_000_000).unwrap_or(i64::MAX);
        let grace = i64::try_from(grace).unwrap_or(i64::MAX);
        let outcome = self
            .store
            .rotate(&sha256_hex(presented), &next_hash, now, self.refresh_expiry(), grace)
            .await
            .map_err(|e| self.store_error(&e))?;
        if matches!(outcome, Rotation::Retried { .. }) {
            self.stats.refresh_retries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                target: "portcullis::identity",
                event = "refresh_retry",
                "a refresh token was presented again within refresh_reuse_grace: its successor is issued again"
            );
        }
        match outcome {
            Rotation::Rotated { user, .. } | Rotation::Retried { user, .. } => {
                let Some(u) = self.store.user(&user).await.map_err(|e| self.store_error(&e))? else {
                    return Err((RejectionKind::InvalidGrant, None, None));
                };
                self.pair(&u.name, &u.roles, &next)
            }
            Rotation::Reused { .. } => {
                self.stats.refresh_reuse.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "portcullis::identity",
                    event = "refresh_reuse",
                    "a refresh token was presented again: its family is revoked"
                );
                Err((RejectionKind::InvalidGrant, None, None))
            }
            Rotation::Revoked | Rotation::Invalid => Err((RejectionKind::InvalidGrant, None, None)),
        }
    }

    async fn logout(&self, body: &Value) -> Outcome {
        let presented = field(body, "refresh_token", &["refresh_token"])?;
        self.store.revoke_family_of(&sha256_hex(presented)).await.map_err(|e| self.store_error(&e))?;
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        Ok(res)
    }

    fn refresh_expiry(&self) -> i64 {
        let now = self.clock.now_us() / 1_000_000;
        i64::try_from(now.saturating_add(self.cfg.refresh_ttl.as_secs())).unwrap_or(i64::MAX)
    }

    fn pair(&self, user: &str, roles: &[String], refresh: &str) -> Outcome {
        let now = self.clock.now_us() / 1_000_000;
        let ttl = self.cfg.access_ttl.as_secs();
        let mut claims = json!({
            "sub": user,
            "roles": roles,
            "iss": self.cfg.issuer,
            "aud": self.cfg.audience,
            "iat": now,
            "exp": now + ttl,
            "jti": random_hex(16),
        });
        set_claim(&mut claims, &self.subject_claim, json!(user));
        set_claim(&mut claims, &self.roles_claim, json!(roles));
        let access = self.cfg.key.sign(&claims).map_err(|_| (RejectionKind::Internal, None, None))?;
        let body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
        });
        Ok(json_response(&body))
    }

    fn store_error(&self, e: &StoreError) -> Failure {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(target: "portcullis::identity", error = %e, "identity store error; answering 503");
        (RejectionKind::Unavailable, None, None)
    }

    /// The store (for the CLI and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Portcullis' own session cookie: always `Secure; HttpOnly; SameSite`,
/// `Path=/` and no `Domain` (C9; what the `__Host-` prefix demands).
/// An empty value with `max_age` 0 clears it.
fn set_session_cookie(res: &mut Res, cfg: &crate::config::SessionsConfig, value: &str, max_age: u64) {
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite={}",
        cfg.cookie,
        cfg.same_site.as_str()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A JSON answer that no cache keeps (RFC 6749 section 5.1).
fn json_response(body: &Value) -> Res {
    let mut res = Response::new(Body::from(body.to_string()));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// Puts `value` at a dotted claim path (`realm_access.roles`), creating
/// the objects on the way.
fn set_claim(claims: &mut Value, path: &str, value: Value) {
    let mut at = claims;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(map) = at else { return };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        at = map.entry(part.to_owned()).or_insert_with(|| json!({}));
    }
}

type Failure = (RejectionKind, Option<Violation>, Option<Duration>);
type Outcome = Result<Res, Failure>;

fn bad(path: &str, reason: &'static str) -> Failure {
    (RejectionKind::InvalidInput, Some(Violation::new(path, "", reason)), None)
}

/// A string field of a JSON object that has exactly the `allowed` fields.
fn field<'v>(body: &'v Value, name: &str, allowed: &[&str]) -> Result<&'v str, Failure> {
    let Value::Object(map) = body else { return Err(bad("/body", "type")) };
    if let Some(extra) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err((
            RejectionKind::InvalidInput,
            Some(Violation::field("/body", extra, "unknown_field")),
            None,
        ));
    }
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err((RejectionKind::InvalidInput, Some(Violation::field("/body", name, "type")), None)),
        None => Err((RejectionKind::InvalidInput, Some(Violation::field("/body", name, "required")), None)),
    }
}

/// The request body as strict JSON (duplicate keys, depth, prototype keys
/// refused), at most [`MAX_BODY`] bytes.
#[allow(clippy::disallowed_methods)] // bounded by `Limited`
async fn read_json(req: Request<Body>) -> Result<Value, Failure> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err((RejectionKind::BodyTooLarge, None, None)),
    };
    let limits =
        JsonLimits { max_depth: 4, max_entries: 16, max_string_len: 4096, forbid_prototype_keys: true };
    parse_strict(&bytes, &limits).map_err(|_| (RejectionKind::MalformedInput, None, None))
}

/// An HTML form body (`application/x-www-form-urlencoded`) as a JSON
/// object of strings, read as the input layer reads forms (prototype keys,
/// repeats and bad encodings refused), at most [`MAX_BODY`] bytes.
#[allow(clippy::disallowed_methods)] // bounded by `Limited`
async fn read_form(req: Request<Body>) -> Result<Value, Failure> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err((RejectionKind::BodyTooLarge, None, None)),
    };
    portcullis_layers::input::parse_urlencoded(&bytes, &portcullis_layers::input::QueryLimits::default())
        .map_err(|_| (RejectionKind::MalformedInput, None, None))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // aws-lc-rs' DRBG; it does not fail in practice, and a zeroed token
    // would be caught by the unique index on the hash.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b
}

fn random_hex(n: usize) -> String {
    let b: [u8; 32] = random_bytes();
    super::password::hex(&b[..n.min(32)])
}

/// 256 random bits, base64url (session ids, CSRF tokens).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A new refresh token (256 random bits, base64url) and its stored hash.
fn new_refresh_token() -> (String, String) {
    let token = random_token();
    let hash = sha256_hex(&token);
    (token, hash)
}

pub(crate) fn sha256_hex(s: &str) -> String {
    super::password::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}
