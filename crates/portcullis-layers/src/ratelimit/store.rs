//! Rate-limit stores: where TATs live. [`MemoryStore`] here; the Redis
//! store is in the gateway crate (it needs sockets).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::gcra::{Outcome, Rate, evaluate};
#[cfg(test)]
use crate::clock::ManualClock;
use crate::clock::{Clock, SystemClock};

/// One key to check against one rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The store key, e.g. `rl:login:ip:203.0.113.7`.
    pub key: String,
    /// The rule's rate.
    pub rate: Rate,
}

/// A store failure (unreachable, timed out). Never contains secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// The future a store returns.
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Outcome>, StoreError>> + Send + 'a>>;

/// Where rate-limit state lives.
///
/// Contract: `decide` evaluates every check at one instant and returns one
/// outcome per check, in order; if every check allows the request, every
/// key is charged, otherwise none is (a refused request costs nothing).
pub trait Store: Send + Sync + 'static {
    /// Decides a request.
    fn decide<'a>(&'a self, checks: &'a [Check]) -> StoreFuture<'a>;
    /// The same decision without a future, for a store that decides in
    /// process (`None`: ask [`Store::decide`]). The request path then costs
    /// no allocation for it.
    fn decide_local(&self, _checks: &[Check]) -> Option<Vec<Outcome>> {
        None
    }
    /// A short name for logs (`memory`, `redis`).
    fn name(&self) -> &'static str;
}

const SHARDS: usize = 16;

/// An in-process store: sharded maps of key -> TAT, bounded to `max_keys`.
///
/// A key whose TAT has passed is equivalent to an absent key, so it is
/// dropped first when a shard is full. If a shard is still full (a key
/// spraying attack), the entries with the smallest TATs, those closest to a
/// full quota anyway, are evicted (an eighth of the shard at once):
/// memory stays bounded and the keys under the heaviest use are the last to
/// be forgotten.
pub struct MemoryStore<C: Clock = SystemClock> {
    shards: Box<[Mutex<HashMap<String, u64>>]>,
    cap: usize,
    hasher: RandomState,
    clock: C,
}

impl MemoryStore<SystemClock> {
    /// At most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        MemoryStore::with_clock(max_keys, SystemClock)
    }
}

impl<C: Clock> MemoryStore<C> {
    /// With an injected clock.
    pub fn with_clock(max_keys: usize, clock: C) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        MemoryStore { shards, cap: max_keys.div_ceil(SHARDS).max(1), hasher: RandomState::new(), clock }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous decision (see [`Store`]).
    pub fn decide_now(&self, checks: &[Check]) -> Vec<Outcome> {
        let now = self.clock.now_us();
        let idx: Vec<usize> =
            checks.iter().map(|c| (self.hasher.hash_one(&c.key) as usize) % SHARDS).collect();
        let mut order: Vec<usize> = idx.clone();
        order.sort_unstable();
        order.dedup();
        // Lock in shard order: no deadlock between concurrent requests.
        let mut guards: Vec<(usize, MutexGuard<'_, HashMap<String, u64>>)> =
            order.iter().map(|&i| (i, lock(&self.shards[i]))).collect();
        let slot = |shard: usize| order.binary_search(&shard).unwrap_or(0);
        let mut outcomes = Vec::with_capacity(checks.len());
        let mut tats: Vec<u64> = Vec::with_capacity(checks.len());
        // Evaluate in order; a key repeated in one request sees its own charge.
        for (i, (c, &shard)) in checks.iter().zip(&idx).enumerate() {
            let stored = checks[..i]
                .iter()
                .rposition(|earlier| earlier.key == c.key)
                .map(|j| tats[j])
                .or_else(|| guards[slot(shard)].1.get(&c.key).copied())
                .unwrap_or(0);
            let (o, new_tat) = evaluate(&c.rate, stored, now);
            outcomes.push(o);
            tats.push(new_tat);
        }
        if outcomes.iter().all(|o| o.allowed) {
            for ((c, &shard), tat) in checks.iter().zip(&idx).zip(tats) {
                let map = &mut guards[slot(shard)].1;
                if let Some(stored) = map.get_mut(&c.key) {
                    *stored = tat;
                    continue;
                }
                if map.len() >= self.cap {
                    evict(map, now, self.cap);
                }
                map.insert(c.key.clone(), tat);
            }
        }
        outcomes
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes room in a full shard, in one pass that frees at least an eighth of
/// it, so the cost is amortised over the inserts that follow: expired keys
/// first, then the live keys with the smallest TATs (closest to a full
/// quota anyway).
fn evict(map: &mut HashMap<String, u64>, now: u64, cap: usize) {
    map.retain(|_, tat| *tat > now);
    let target = cap - (cap / 8).max(1);
    if map.len() <= target {
        return;
    }
    let excess = map.len() - target;
    let mut tats: Vec<u64> = map.values().copied().collect();
    let (_, nth, _) = tats.select_nth_unstable(excess - 1);
    let cutoff = *nth;
    let mut removed = 0;
    map.retain(|_, tat| {
        if removed < excess && *tat <= cutoff {
            removed += 1;
            false
        } else {
            true
        }
    });
}

impl<C: Clock> Store for MemoryStore<C> {
    fn decide<'a>(&'a self, checks: &'a [Check]) -> StoreFuture<'a> {
        let out = self.decide_now(checks);
        Box::pin(async move { Ok(out) })
    }

    fn decide_local(&self, checks: &[Check]) -> Option<Vec<Outcome>> {
        Some(self.decide_now(checks))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(key: &str, limit: u32) -> Check {
        Check { key: key.to_owned(), rate: Rate::new(limit, Duration::from_secs(60)) }
    }

    #[test]
    fn c11_per_key_isolation() {
        let s = MemoryStore::with_clock(1000, ManualClock::starting_at(1_000_000));
        for _ in 0..3 {
            assert!(s.decide_now(&[check("a", 3)])[0].allowed);
        }
        assert!(!s.decide_now(&[check("a", 3)])[0].allowed);
        assert!(s.decide_now(&[check("b", 3)])[0].allowed);
    }

    #[test]
    fn c11_all_rules_must_pass_and_refusals_cost_nothing() {
        let s = MemoryStore::with_clock(1000, ManualClock::starting_at(1_000_000));
        // A strict rule (2) and a loose one (10) on the same request.
        for _ in 0..2 {
            let o = s.decide_now(&[check("loose", 10), check("strict", 2)]);
            assert!(o.iter().all(|o| o.allowed));
        }
        let o = s.decide_now(&[check("loose", 10), check("strict", 2)]);
        assert!(o[0].allowed && !o[1].allowed);
        // The refused request did not charge the loose rule.
        let o = s.decide_now(&[check("loose", 10)]);
        assert_eq!(o[0].remaining, 7);
    }

    #[test]
    fn time_restores_quota() {
        let clock = ManualClock::starting_at(1_000_000);
        let s = MemoryStore::with_clock(1000, clock.clone());
        assert!(s.decide_now(&[check("a", 1)])[0].allowed);
        assert!(!s.decide_now(&[check("a", 1)])[0].allowed);
        clock.advance(Duration::from_secs(60));
        assert!(s.decide_now(&[check("a", 1)])[0].allowed);
    }

    // C11: key spraying can't grow memory past the bound, and a key at its
    // limit survives the spray.
    #[test]
    fn c11_key_spraying_keeps_memory_bounded() {
        let clock = ManualClock::starting_at(1_000_000);
        let s = MemoryStore::with_clock(1_000, clock.clone());
        for _ in 0..5 {
            assert!(s.decide_now(&[check("victim", 5)])[0].allowed);
        }
        for i in 0..100_000 {
            s.decide_now(&[check(&format!("spray-{i}"), 5)]);
            if i % 1000 == 0 {
                clock.advance(Duration::from_millis(1));
            }
        }
        assert!(s.len() <= 1_000 + SHARDS, "{} keys held", s.len());
        assert!(!s.decide_now(&[check("victim", 5)])[0].allowed, "the spray reset a limited key");
    }

    #[test]
    fn idle_keys_are_dropped_first() {
        let clock = ManualClock::starting_at(1_000_000);
        let s = MemoryStore::with_clock(SHARDS * 2, clock.clone());
        for i in 0..200 {
            s.decide_now(&[check(&format!("old-{i}"), 5)]);
        }
        clock.advance(Duration::from_secs(120));
        for i in 0..200 {
            s.decide_now(&[check(&format!("new-{i}"), 5)]);
        }
        assert!(s.len() <= SHARDS * 2);
    }
}
