//! A cached JWK set from an identity provider.
//!
//! - The set is fetched at start and refreshed in the background before it
//!   goes stale: after the provider's `max-age` (bounded to
//!   [`JwksOptions::min_interval`] ... [`JwksOptions::refresh`]), or after
//!   `refresh` when the provider gives none.
//! - A token with an unknown `kid` triggers a re-fetch at most once per
//!   `min_interval`: random kids can't make Portcullis hammer the provider.
//!   Concurrent requests wait for the one fetch in flight.
//! - A failed fetch keeps the last good set (served from cache while the
//!   provider is down); with no set at all, tokens fail with `NoKey` (401).
//!
//! The fetching itself is a [`Fetch`] implementation (the gateway's uses its
//! HTTP client); this module has no sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::keys::KeySet;
use crate::clock::Clock;

/// One fetched document.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the provider sent one.
    pub max_age: Option<Duration>,
}

/// The future a [`Fetch`] returns.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send + 'a>>;

/// Fetches the JWK set document.
pub trait Fetch: Send + Sync + 'static {
    /// One attempt; errors are short, secret-free descriptions.
    fn fetch(&self) -> FetchFuture<'_>;

    /// Where it fetches from, for log lines (no query string, no
    /// credentials).
    fn target(&self) -> String {
        "-".to_owned()
    }
}

/// Timing of a [`Jwks`].
#[derive(Clone, Debug)]
pub struct JwksOptions {
    /// The longest time between refreshes.
    pub refresh: Duration,
    /// The shortest time between two fetches (unknown kids, retries, and a
    /// lower bound for the provider's `max-age`).
    pub min_interval: Duration,
    /// The algorithms keys may be used for.
    pub algorithms: Vec<Algorithm>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            refresh: Duration::from_secs(300),
            min_interval: Duration::from_secs(30),
            algorithms: super::keys::SUPPORTED.to_vec(),
        }
    }
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// Fetch attempts.
    pub fetches: u64,
    /// Failed attempts (network, status, parse, no usable key).
    pub failures: u64,
    /// Keys in the current set.
    pub keys: u64,
}

/// A cached, refreshed JWK set.
pub struct Jwks {
    fetcher: Box<dyn Fetch>,
    clock: Arc<dyn Clock>,
    opts: JwksOptions,
    current: RwLock<(Arc<KeySet>, Vec<u8>)>,
    generation: AtomicU64,
    /// When the last fetch started (clock microseconds; 0 = never).
    last_attempt_us: AtomicU64,
    next_refresh: RwLock<Duration>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("opts", &self.opts).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Jwks {
    /// A cache with no keys yet; call [`Jwks::refresh`] or spawn [`Jwks::run`].
    pub fn new(fetcher: Box<dyn Fetch>, clock: Arc<dyn Clock>, opts: JwksOptions) -> Jwks {
        let first = opts.min_interval.min(Duration::from_secs(1));
        Jwks {
            fetcher,
            clock,
            opts,
            current: RwLock::new((Arc::new(KeySet::default()), Vec::new())),
            generation: AtomicU64::new(0),
            last_attempt_us: AtomicU64::new(0),
            next_refresh: RwLock::new(first),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    /// Increases whenever the key set changes (cached verifications of an
    /// older generation are verified again).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> JwksStats {
        JwksStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            keys: self.keys().keys().len() as u64,
        }
    }

    /// Fetches now (waiting for a fetch already in flight instead of
    /// starting a second one). On failure the last good set stays.
    pub async fn refresh(&self) -> Result<(), String> {
        let _guard = self.fetch_lock.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<(), String> {
        self.last_attempt_us.store(self.clock.now_us().max(1), Ordering::Release);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetcher.fetch().await.and_then(|f| {
            let (set, skipped) = KeySet::from_jwks(&f.body, &self.opts.algorithms)?;
            for s in &skipped {
                tracing::info!(target: "portcullis::auth", skipped = %s, "JWKS key not used");
            }
            if set.is_empty() {
                return Err("the JWK set has no usable key".to_owned());
            }
            Ok((set, f))
        });
        match result {
            Ok((set, f)) => {
                let every = f
                    .max_age
                    .map_or(self.opts.refresh, |a| a.clamp(self.opts.min_interval, self.opts.refresh));
                *self.next_refresh.write().unwrap_or_else(PoisonError::into_inner) = every;
                let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
                if cur.1 != f.body {
                    *cur = (Arc::new(set), f.body);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *self.next_refresh.write().unwrap_or_else(PoisonError::into_inner) = self.opts.min_interval;
                tracing::warn!(
                    target: "portcullis::auth",
                    jwks = %self.fetcher.target(),
                    error = %e,
                    keys = self.keys().keys().len(),
                    "JWKS fetch failed; keeping the cached key set"
                );
                Err(e)
            }
        }
    }

    /// Called when a token names a kid the set lacks: re-fetches unless a
    /// fetch started less than `min_interval` ago. A fetch already in
    /// flight (the first one at startup, say) is waited for rather than
    /// counted as "too recent": a token signed with a key that fetch
    /// brings is accepted, not refused for a race. Returns whether the key
    /// set changed (so the caller looks again).
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let before = self.generation();
        if !self.may_fetch() && self.fetch_lock.try_lock().is_ok() {
            // Too soon, and nothing in flight: refused without waiting.
            return false;
        }
        let _guard = self.fetch_lock.lock().await;
        // Another request, or the background refresh, fetched meanwhile.
        if self.generation() != before {
            return true;
        }
        if !self.may_fetch() {
            return false;
        }
        let _ = self.fetch_locked().await;
        self.generation() != before
    }

    fn may_fetch(&self) -> bool {
        let last = self.last_attempt_us.load(Ordering::Acquire);
        let min = u64::try_from(self.opts.min_interval.as_micros()).unwrap_or(u64::MAX);
        last == 0 || self.clock.now_us().saturating_sub(last) >= min
    }

    /// The time until the next background refresh.
    pub fn next_refresh(&self) -> Duration {
        *self.next_refresh.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs forever: fetches, then refreshes on schedule (tokio time, so
    /// tests can pause it).
    pub async fn run(self: Arc<Self>) {
        loop {
            let _ = self.refresh().await;
            tokio::time::sleep(self.next_refresh()).await;
        }
    }
}
