//! A bounded cache of verified tokens, so a token is verified once, not on
//! every request, until it expires or the key set changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use std::hash::{BuildHasher, Hasher};

use siphasher::sip128::{Hasher128, SipHasher13};

use super::jwt::Identity;

const SHARDS: usize = 16;

/// The cache key of a token: see [`TokenCache::key`].
pub type TokenKey = u128;

/// Token key -> (identity, key set generation).
type Shard = HashMap<TokenKey, (Arc<Identity>, u64)>;

/// Verified tokens by a keyed 128-bit hash of the token, each with its
/// `exp` and the key set generation it was verified against.
///
/// The hash is SipHash-1-3 with 128-bit output under a key drawn from the
/// system's randomness when the cache is made. SipHash is a pseudorandom
/// function: without the key, nobody can make a token whose hash equals
/// another's, and two of the at most a few thousand tokens held colliding
/// by chance has a probability under 2^-100. The key never leaves the
/// process, and the cache never leaves memory, so a collision-resistant
/// hash (SHA-256, which this replaced) buys nothing here; it cost about 17k
/// instructions per request on a CPU without SHA extensions (issue 16).
#[derive(Debug)]
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    key: (u64, u64),
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            key: random_key(),
        }
    }

    fn shard(&self, h: TokenKey) -> std::sync::MutexGuard<'_, Shard> {
        // Truncation intended: the low bits pick the shard.
        #[allow(clippy::cast_possible_truncation)]
        let low = h as usize;
        self.shards[low % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache key of a token: computed once per verification, for both
    /// [`TokenCache::get`] and [`TokenCache::insert`].
    pub fn key(&self, token: &str) -> TokenKey {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(token.as_bytes());
        h.finish128().as_u128()
    }

    /// A cached identity, if the token was verified against `generation` and
    /// is not past `exp + leeway` at `now_s`.
    pub fn get(&self, h: TokenKey, generation: u64, now_s: u64, leeway_s: u64) -> Option<Arc<Identity>> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(h);
        match shard.get(&h) {
            Some((id, g)) if *g == generation && now_s <= id.expires.saturating_add(leeway_s) => {
                Some(id.clone())
            }
            Some(_) => {
                shard.remove(&h);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token. A full shard first drops expired entries,
    /// then, if still full, everything: memory stays bounded under a flood
    /// of distinct valid tokens, at the cost of re-verifying.
    pub fn insert(&self, h: TokenKey, id: Arc<Identity>, generation: u64, now_s: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(h);
        if shard.len() >= self.per_shard {
            shard.retain(|_, (i, g)| *g == generation && i.expires >= now_s);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(h, (id, generation));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 128 bits from the system's randomness; if it has none (never seen on
/// Linux), from std's per-process random hash keys, which come from the
/// same source by another path.
fn random_key() -> (u64, u64) {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_ok() {
        let (k0, k1) = b.split_at(8);
        let word = |s: &[u8]| s.try_into().map_or(0, u64::from_le_bytes);
        return (word(k0), word(k1));
    }
    let s = std::hash::RandomState::new();
    (s.hash_one(0u8), s.hash_one(1u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires: u64) -> Arc<Identity> {
        Arc::new(Identity { subject: "s".into(), roles: vec![], claims: serde_json::Map::new(), expires })
    }

    /// Keys in shard 0 (the shard is the key modulo 16).
    fn key(n: u8) -> TokenKey {
        TokenKey::from(n) * 16
    }

    #[test]
    fn c22_a_full_shard_drops_only_dead_entries_before_clearing() {
        let now = 1_000;
        // Two entries per shard.
        let cache = TokenCache::new(2 * SHARDS);
        cache.insert(key(0), identity(now + 100), 7, now);
        cache.insert(key(1), identity(now - 1), 7, now); // expired
        // Full: the expired one goes, the live one stays, the new one joins.
        cache.insert(key(2), identity(now + 100), 7, now);
        assert!(cache.get(key(0), 7, now, 0).is_some(), "a live entry was evicted");
        assert!(cache.get(key(2), 7, now, 0).is_some());
        assert_eq!(cache.len(), 2);
        // An entry of an older key-set generation goes too.
        let cache = TokenCache::new(2 * SHARDS);
        cache.insert(key(0), identity(now + 100), 7, now);
        cache.insert(key(1), identity(now + 100), 6, now);
        cache.insert(key(2), identity(now + 100), 7, now);
        assert!(cache.get(key(0), 7, now, 0).is_some(), "a live entry was evicted");
        // Everything live and full: cleared, memory stays bounded.
        cache.insert(key(3), identity(now + 100), 7, now);
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
        assert!(cache.get(key(3), 7, now, 0).is_some());
        // Capacity 0: nothing kept.
        let none = TokenCache::new(0);
        none.insert(key(0), identity(now + 100), 7, now);
        assert!(none.is_empty() && none.get(key(0), 7, now, 0).is_none());
    }

    #[test]
    fn c22_entries_expire_with_their_token_and_key_set() {
        let cache = TokenCache::new(64);
        let k = cache.key("a.b.c");
        assert_ne!(k, cache.key("a.b.d"));
        cache.insert(k, identity(1_000), 3, 900);
        assert!(cache.get(k, 3, 1_000, 0).is_some());
        assert!(cache.get(k, 3, 1_030, 30).is_some(), "within the leeway");
        assert!(cache.get(k, 3, 1_031, 30).is_none());
        cache.insert(k, identity(1_000), 3, 900);
        assert!(cache.get(k, 4, 950, 0).is_none(), "the key set changed");
        assert!(cache.is_empty(), "a stale entry is dropped when seen");
    }

    #[test]
    fn c22_the_key_is_stable_in_a_cache_and_secret_to_it() {
        let (a, b) = (TokenCache::new(64), TokenCache::new(64));
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig";
        assert_eq!(a.key(token), a.key(token));
        // Each cache draws its own random key: a hash seen from one process
        // (or one reload) says nothing about another's.
        assert_ne!(a.key(token), b.key(token));
        assert_ne!(a.key, b.key);
        // One bit of the token changes the key.
        assert_ne!(a.key(token), a.key("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sih"));
    }
}
