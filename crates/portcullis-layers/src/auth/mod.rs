//! Bearer JWT authentication (C22), identity headers (C23), roles and
//! ownership (C26 C27).
//!
//! # Model
//! [`crate::route::RouteLayer`] decides which route a request is for;
//! [`AuthLayer`] then enforces that route's [`crate::route::Access`]:
//!
//! - `Public`: passes. A valid bearer token still sets the identity headers;
//!   an invalid one is ignored (and never forwarded as an identity).
//! - `Protected`: needs a valid token (401 `unauthenticated` without one,
//!   401 `invalid_token` with a bad one, both with `WWW-Authenticate`), then
//!   the route's roles/owner rule (403 `forbidden`).
//! - No [`crate::route::MatchedRoute`] at all (the layer used without a
//!   route table): treated as protected with no role rule. Fail closed.
//!
//! Tokens are read only from `Authorization: Bearer` (never a query string
//! or cookie); two `Authorization` headers are refused. Verification is
//! [`Verifier`]: keys from PEM/JWK files and/or a [`Jwks`] cache, the
//! algorithm pinned by the key, `exp` required, `nbf`/`iss`/`aud` checked
//! with a leeway, claims of the wrong JSON type refused, and verified
//! tokens cached (bounded) until they expire or the key set changes.
//!
//! The reason a token failed goes to the log (target `portcullis::auth`),
//! never to the client.

mod cache;
mod identity;
mod jwks;
mod jwt;
mod keys;
mod layer;
pub mod session;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

use std::sync::{Arc, PoisonError, RwLock};

use http::HeaderMap;

pub use cache::{TokenCache, TokenKey};
pub use identity::{ClaimSource, IdentityHeaders, encode as encode_header_value, same_spelling};
pub use jwks::{Fetch, FetchFuture, Fetched, Jwks, JwksOptions, JwksStats};
pub use jwt::{Identity, JwtPolicy, Parsed, TokenError, parse};
pub use keys::{KeySet, SUPPORTED, VerifyKey, algorithm, algorithm_name};
pub use layer::{AuthLayer, AuthService};
pub use session::{ActiveSession, PresentedSession, SessionAuth, SessionLookup, SessionSource};

pub use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SystemClock};

/// What the `Authorization` header holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header, or another scheme (e.g. `Basic`).
    Absent,
    /// A syntactically valid bearer token.
    Token(&'a str),
    /// Two `Authorization` headers, a non-ASCII value, or a bearer value that
    /// is not one token68.
    Invalid,
}

/// Reads the bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(first) = all.next() else { return Bearer::Absent };
    if all.next().is_some() {
        return Bearer::Invalid;
    }
    let v = first.as_bytes();
    let (scheme, rest) = match v.iter().position(|b| *b == b' ') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme; a value that is not visible ASCII is refused
        // whatever its scheme.
        return if first.to_str().is_ok() { Bearer::Absent } else { Bearer::Invalid };
    }
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    let end = token.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    // The token68 alphabet, which is visible ASCII only, so the token is
    // UTF-8. Folded without an early exit, so the compiler checks many
    // bytes per instruction (issue 16: a token is a few hundred bytes, on
    // every request).
    let token68 = end > 0 && token[..end].iter().fold(true, |ok, &b| ok & is_token68(b));
    match std::str::from_utf8(token) {
        Ok(t) if token68 => Bearer::Token(t),
        _ => Bearer::Invalid,
    }
}

/// RFC 7235 token68 characters, `=` padding excluded: letters (`b | 0x20`
/// folds only `A-Z` onto `a-z`), digits and `-._~+/`. Branch-free, for
/// [`bearer`]'s vectorised fold.
#[inline]
fn is_token68(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Verifies tokens: policy, keys, cache.
pub struct Verifier {
    policy: JwtPolicy,
    static_keys: KeySet,
    jwks: Option<Arc<Jwks>>,
    merged: RwLock<(u64, Arc<KeySet>)>,
    cache: TokenCache,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with static keys and/or a JWKS cache, the system clock and
    /// a cache of 10 000 tokens.
    pub fn new(policy: JwtPolicy, static_keys: KeySet, jwks: Option<Arc<Jwks>>) -> Verifier {
        let merged = RwLock::new((u64::MAX, Arc::new(static_keys.clone())));
        Verifier {
            policy,
            static_keys,
            jwks,
            merged,
            cache: TokenCache::new(10_000),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses this clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Verifier {
        self.clock = clock;
        self
    }

    /// Caches at most `n` verified tokens (0 disables the cache).
    #[must_use]
    pub fn cache_capacity(mut self, n: usize) -> Verifier {
        self.cache = TokenCache::new(n);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &JwtPolicy {
        &self.policy
    }

    /// Verified tokens currently cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn generation(&self) -> u64 {
        self.jwks.as_ref().map_or(0, |j| j.generation())
    }

    fn keys(&self) -> Arc<KeySet> {
        let Some(jwks) = &self.jwks else {
            return self.merged.read().unwrap_or_else(PoisonError::into_inner).1.clone();
        };
        let generation = jwks.generation();
        {
            let m = self.merged.read().unwrap_or_else(PoisonError::into_inner);
            if m.0 == generation {
                return m.1.clone();
            }
        }
        let mut set = self.static_keys.clone();
        set.extend(&jwks.keys());
        let set = Arc::new(set);
        *self.merged.write().unwrap_or_else(PoisonError::into_inner) = (generation, set.clone());
        set
    }

    /// The identity of a token verified before, still valid now and under
    /// the current key set; `None`: call [`Verifier::verify`].
    pub fn verify_cached(&self, token: &str) -> Option<Arc<Identity>> {
        self.cache_hit(self.cache.key(token), self.clock.now_us() / 1_000_000)
    }

    fn cache_hit(&self, key: cache::TokenKey, now_s: u64) -> Option<Arc<Identity>> {
        self.cache.get(key, self.generation(), now_s, self.policy.leeway.as_secs())
    }

    /// Verifies a token. An unknown `kid` may trigger one throttled JWKS
    /// re-fetch.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, TokenError> {
        let now_s = self.clock.now_us() / 1_000_000;
        let key = self.cache.key(token);
        if let Some(id) = self.cache_hit(key, now_s) {
            return Ok(id);
        }
        let parsed = parse(token, &self.policy)?;
        let mut checked = parsed.verify_signature(&self.keys());
        if let (Err(TokenError::UnknownKid | TokenError::NoKey), Some(jwks)) = (checked, &self.jwks)
            && jwks.refetch_for_unknown_kid().await
        {
            checked = parsed.verify_signature(&self.keys());
        }
        checked?;
        let id = Arc::new(parsed.claims(&self.policy, now_s)?);
        self.cache.insert(key, id.clone(), self.generation(), now_s);
        Ok(id)
    }
}

#[cfg(test)]
mod tests;
