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
