//! Cookie sessions (C25) for the built-in identity's users: the store
//! (memory, Redis or the identity database) and the lookups the
//! authentication layer makes through [`SessionSource`].
//!
//! - The cookie holds only a random id (256 bits, base64url); the store
//!   keys the session by the id's SHA-256, so a copy of the store holds no
//!   usable cookie. A session holds the subject, the roles at login, the
//!   CSRF token, the user's generation, and its start and last use.
//! - A session ends when unused for `idle_timeout`, `absolute_timeout`
//!   after login, on logout, and when its user changes: a role, password or
//!   state change bumps the user's generation, and a session of an older
//!   generation is dead (seen within [`USER_RECHECK`] on every instance,
//!   whichever store). A new login always gets a new id.
//! - A store that can't be reached is [`SessionLookup::Unavailable`]:
//!   503 where a session is needed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_layers::auth::session::LookupFuture;
use portcullis_layers::auth::{Identity, SessionAuth, SessionLookup, SessionSource};
use portcullis_layers::clock::Clock;

use super::store::{SessionRecord, Store, StoreError};
use crate::config::{SessionStoreKind, SessionsConfig};
use crate::redis_store::RedisConn;

/// How long a user's generation (roles, password, state) is trusted from
/// the cache before it is read again: the longest a disabled user's or
/// re-roled user's session lives on.
pub const USER_RECHECK: Duration = Duration::from_secs(5);

/// Counters for `/metrics` (C31).
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Sessions started (logins through `/auth/session`).
    pub started: AtomicU64,
    /// Sessions ended by logout.
    pub ended: AtomicU64,
    /// Sessions found expired or outlived by a change of their user.
    pub expired: AtomicU64,
    /// Store failures.
    pub store_errors: AtomicU64,
}

enum Backend {
    Memory(Mutex<HashMap<String, SessionRecord>>),
    Redis { conn: RedisConn, timeout: Duration },
    Database,
}

/// The session manager: the store plus the rules above.
pub struct Sessions {
    cfg: SessionsConfig,
    backend: Backend,
    users: Store,
    clock: Arc<dyn Clock>,
    /// user -> their state, and when it was read (µs).
    user_cache: Mutex<HashMap<String, (UserState, u64)>>,
    /// Counters.
    pub stats: SessionStats,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("cookie", &self.cfg.cookie).finish_non_exhaustive()
    }
}

/// A user's generation and whether they are disabled; `None` when gone.
type UserState = Option<(i64, bool)>;

/// A session store failure.
#[derive(Debug)]
pub struct SessionStoreDown;

impl From<StoreError> for SessionStoreDown {
    fn from(_: StoreError) -> Self {
        SessionStoreDown
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Sessions {
    /// The manager for `[sessions]`; `redis` is `[state]`'s connection
    /// settings, `users` the identity store.
    pub fn new(
        cfg: SessionsConfig,
        redis: Option<(&crate::config::RedisConfig, Duration)>,
        users: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Sessions, String> {
        let backend = match cfg.store {
            SessionStoreKind::Memory => Backend::Memory(Mutex::new(HashMap::new())),
            SessionStoreKind::Database => Backend::Database,
            SessionStoreKind::Redis => {
                let Some((r, timeout)) = redis else {
                    return Err("[sessions] store = \"redis\" needs [state] redis".to_owned());
                };
                Backend::Redis { conn: RedisConn::open(r, timeout)?, timeout }
            }
        };
        Ok(Sessions {
            cfg,
            backend,
            users,
            clock,
            user_cache: Mutex::new(HashMap::new()),
            stats: SessionStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionsConfig {
        &self.cfg
    }

    /// Whether the store answers (`/readyz`): a PING to Redis, a query to
    /// the database; the memory store always does.
    pub async fn ping(&self) -> Result<(), SessionStoreDown> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis { conn, timeout } => conn.ping(*timeout).await.map_err(|_| SessionStoreDown),
            Backend::Database => self.users.ping().await.map_err(SessionStoreDown::from),
        }
    }

    fn redis_key(hash: &str) -> String {
        format!("portcullis:session:{hash}")
    }

    async fn redis<T>(
        &self,
        f: impl AsyncFnOnce(crate::redis_store::RedisHandle) -> redis::RedisResult<T>,
    ) -> Result<T, SessionStoreDown> {
        let Backend::Redis { conn, timeout } = &self.backend else { return Err(SessionStoreDown) };
        conn.call(*timeout, f).await.map_err(|_| SessionStoreDown)
    }

    /// Starts a session for `user`; returns its id (the cookie value).
    pub async fn start(
        &self,
        subject: &str,
        roles: &[String],
        generation: i64,
    ) -> Result<(String, SessionRecord), SessionStoreDown> {
        let id = super::service::random_token();
        let hash = super::service::sha256_hex(&id);
        let now = self.clock.now_us();
        let rec = SessionRecord {
            subject: subject.to_owned(),
            roles: roles.to_vec(),
            csrf: super::service::random_token(),
            generation,
            created_us: now,
            last_seen_us: now,
        };
        match &self.backend {
            Backend::Memory(m) => {
                let mut map = m.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() >= self.cfg.max_sessions {
                    map.retain(|_, s| self.live(s, now));
                }
                if map.len() >= self.cfg.max_sessions {
                    // Still full: the least recently used goes.
                    if let Some(oldest) =
                        map.iter().min_by_key(|(_, s)| s.last_seen_us).map(|(k, _)| k.clone())
                    {
                        map.remove(&oldest);
                    }
                }
                map.insert(hash, rec.clone());
            }
            Backend::Redis { .. } => {
                let value = serde_json::to_string(&rec).map_err(|_| SessionStoreDown)?;
                let key = Self::redis_key(&hash);
                let px = us(self.cfg.idle_timeout) / 1000;
                self.redis(async move |mut c| {
                    redis::cmd("SET").arg(&key).arg(&value).arg("PX").arg(px).query_async::<()>(&mut c).await
                })
                .await?;
            }
            Backend::Database => {
                // Expired rows go first (a login is rare next to requests).
                let _ = self
                    .users
                    .session_sweep(
                        now.saturating_sub(us(self.cfg.absolute_timeout)),
                        now.saturating_sub(us(self.cfg.idle_timeout)),
                    )
                    .await;
                self.users.session_put(&hash, &rec).await?;
            }
        }
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        Ok((id, rec))
    }

    /// Ends a session (logout, or a new login over an old cookie).
    pub async fn end(&self, id: &str) -> Result<(), SessionStoreDown> {
        let hash = super::service::sha256_hex(id);
        self.delete(&hash).await
    }

    async fn delete(&self, hash: &str) -> Result<(), SessionStoreDown> {
        match &self.backend {
            Backend::Memory(m) => {
                m.lock().unwrap_or_else(PoisonError::into_inner).remove(hash);
                Ok(())
            }
            Backend::Redis { .. } => {
                let key = Self::redis_key(hash);
                self.redis(async move |mut c| redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await)
                    .await
                    .map(|_| ())
            }
            Backend::Database => Ok(self.users.session_delete(hash).await?),
        }
    }

    fn live(&self, s: &SessionRecord, now: u64) -> bool {
        now < s.created_us.saturating_add(us(self.cfg.absolute_timeout))
            && now < s.last_seen_us.saturating_add(us(self.cfg.idle_timeout))
    }

    /// Whether a use this long after the last one is worth writing down
    /// (idle expiry is then exact to within this).
    fn touch_due(&self, s: &SessionRecord, now: u64) -> bool {
        let every = (us(self.cfg.idle_timeout) / 20).clamp(1_000_000, 60_000_000);
        now.saturating_sub(s.last_seen_us) >= every
    }

    /// The user's generation and state, cached for [`USER_RECHECK`].
    async fn user_state(&self, subject: &str, now: u64) -> Result<UserState, SessionStoreDown> {
        {
            let cache = self.user_cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((state, at)) = cache.get(subject)
                && now.saturating_sub(*at) < us(USER_RECHECK)
            {
                return Ok(*state);
            }
        }
        let user = self.users.user(subject).await?;
        let state = user.map(|u| (u.generation, u.disabled));
        let mut cache = self.user_cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= 100_000 {
            cache.clear();
        }
        cache.insert(subject.to_owned(), (state, now));
        Ok(state)
    }

    /// The session of a cookie value, if it is live.
    pub async fn find(&self, id: &str) -> Result<Option<SessionRecord>, SessionStoreDown> {
        let hash = super::service::sha256_hex(id);
        let now = self.clock.now_us();
        let found = match &self.backend {
            Backend::Memory(m) => m.lock().unwrap_or_else(PoisonError::into_inner).get(&hash).cloned(),
            Backend::Redis { .. } => {
                let key = Self::redis_key(&hash);
                let v: Option<String> = self
                    .redis(async move |mut c| redis::cmd("GET").arg(&key).query_async(&mut c).await)
                    .await?;
                v.and_then(|v| serde_json::from_str(&v).ok())
            }
            Backend::Database => self.users.session_get(&hash).await?,
        };
        let Some(mut s) = found else { return Ok(None) };
        let current = self.user_state(&s.subject, now).await?;
        let user_ok = current.is_some_and(|(generation, disabled)| !disabled && generation == s.generation);
        if !self.live(&s, now) || !user_ok {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
            self.delete(&hash).await?;
            return Ok(None);
        }
        if self.touch_due(&s, now) {
            s.last_seen_us = now;
            match &self.backend {
                Backend::Memory(m) => {
                    if let Some(e) = m.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&hash) {
                        e.last_seen_us = now;
                    }
                }
                Backend::Redis { .. } => {
                    let key = Self::redis_key(&hash);
                    let value = serde_json::to_string(&s).map_err(|_| SessionStoreDown)?;
                    let left = s.created_us.saturating_add(us(self.cfg.absolute_timeout)).saturating_sub(now);
                    let px = (us(self.cfg.idle_timeout).min(left) / 1000).max(1);
                    self.redis(async move |mut c| {
                        redis::cmd("SET")
                            .arg(&key)
                            .arg(&value)
                            .arg("PX")
                            .arg(px)
                            .arg("XX")
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await?;
                }
                Backend::Database => self.users.session_touch(&hash, now).await?,
            }
        }
        Ok(Some(s))
    }
}

impl SessionSource for Sessions {
    fn cookie_name(&self) -> &str {
        &self.cfg.cookie
    }

    fn lookup<'a>(&'a self, id: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            match self.find(id).await {
                Ok(Some(s)) => {
                    let mut claims = serde_json::Map::new();
                    claims.insert("sub".into(), serde_json::Value::String(s.subject.clone()));
                    let expires = s.created_us.saturating_add(us(self.cfg.absolute_timeout)) / 1_000_000;
                    let identity = Identity { subject: s.subject, roles: s.roles, claims, expires };
                    SessionLookup::Found(SessionAuth { identity: Arc::new(identity), csrf: s.csrf })
                }
                Ok(None) => SessionLookup::NotFound,
                Err(SessionStoreDown) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    SessionLookup::Unavailable
                }
            }
        })
    }
}
