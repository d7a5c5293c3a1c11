//! A bounded cache of verified tokens, so a token is verified once, not on
//! every request, until it expires or the key set changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::jwt::Identity;

const SHARDS: usize = 16;

/// Token hash -> (identity, key set generation).
type Shard = HashMap<[u8; 32], (Arc<Identity>, u64)>;

/// Verified tokens by SHA-256 of the token, each with its `exp` and the key
/// set generation it was verified against.
#[derive(Debug)]
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, h: &[u8; 32]) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[usize::from(h[0]) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache key of a token: computed once per verification, for both
    /// [`TokenCache::get`] and [`TokenCache::insert`].
    pub fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// A cached identity, if the token was verified against `generation` and
    /// is not past `exp + leeway` at `now_s`.
    pub fn get(&self, h: &[u8; 32], generation: u64, now_s: u64, leeway_s: u64) -> Option<Arc<Identity>> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(h);
        match shard.get(h) {
            Some((id, g)) if *g == generation && now_s <= id.expires.saturating_add(leeway_s) => {
                Some(id.clone())
            }
            Some(_) => {
                shard.remove(h);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token. A full shard first drops expired entries,
    /// then, if still full, everything: memory stays bounded under a flood
    /// of distinct valid tokens, at the cost of re-verifying.
    pub fn insert(&self, h: [u8; 32], id: Arc<Identity>, generation: u64, now_s: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&h);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires: u64) -> Arc<Identity> {
        Arc::new(Identity { subject: "s".into(), roles: vec![], claims: serde_json::Map::new(), expires })
    }

    /// Keys in shard 0 (the shard is the first byte modulo 16).
    fn key(n: u8) -> [u8; 32] {
        let mut k = [n; 32];
        k[0] = n * 16;
        k
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
        assert!(cache.get(&key(0), 7, now, 0).is_some(), "a live entry was evicted");
        assert!(cache.get(&key(2), 7, now, 0).is_some());
        assert_eq!(cache.len(), 2);
        // An entry of an older key-set generation goes too.
        let cache = TokenCache::new(2 * SHARDS);
        cache.insert(key(0), identity(now + 100), 7, now);
        cache.insert(key(1), identity(now + 100), 6, now);
        cache.insert(key(2), identity(now + 100), 7, now);
        assert!(cache.get(&key(0), 7, now, 0).is_some(), "a live entry was evicted");
        // Everything live and full: cleared, memory stays bounded.
        cache.insert(key(3), identity(now + 100), 7, now);
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
        assert!(cache.get(&key(3), 7, now, 0).is_some());
        // Capacity 0: nothing kept.
        let none = TokenCache::new(0);
        none.insert(key(0), identity(now + 100), 7, now);
        assert!(none.is_empty() && none.get(&key(0), 7, now, 0).is_none());
    }

    #[test]
    fn c22_entries_expire_with_their_token_and_key_set() {
        let cache = TokenCache::new(64);
        let k = TokenCache::key("a.b.c");
        assert_ne!(k, TokenCache::key("a.b.d"));
        cache.insert(k, identity(1_000), 3, 900);
        assert!(cache.get(&k, 3, 1_000, 0).is_some());
        assert!(cache.get(&k, 3, 1_030, 30).is_some(), "within the leeway");
        assert!(cache.get(&k, 3, 1_031, 30).is_none());
        cache.insert(k, identity(1_000), 3, 900);
        assert!(cache.get(&k, 4, 950, 0).is_none(), "the key set changed");
        assert!(cache.is_empty(), "a stale entry is dropped when seen");
    }
}
