//! The Redis rate-limit store (C12): several gateways share one limit.
//!
//! One `EVALSHA` per decision: a Lua script runs GCRA (the same function as
//! `portcullis_layers::ratelimit::gcra::evaluate`) for every key of the
//! request on Redis' own clock (`TIME`), so instances with skewed clocks
//! agree, and charges all keys or none, atomically. Keys expire when their
//! quota is full again. Every call is bounded by `timeout`; an error or
//! timeout goes to the layer's fail mode (open: local limiter; closed: 503).
//!
//! The connection is a `ConnectionManager` created lazily: Portcullis starts
//! while Redis is down and reconnects by itself when it comes back.
//! Cluster mode runs the script once per key (keys of different rules live
//! in different slots), concurrently; each key is atomic, but a request
//! refused by one rule may still have been charged by another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_layers::ratelimit::{Check, Outcome, Store, StoreError, StoreFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local out = {}
local tats = {}
local all = 1
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local tau = window - interval
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  for j = 1, i - 1 do
    if KEYS[j] == KEYS[i] then tat = tats[j] end
  end
  if tat < now then tat = now end
  local debt = tat - now
  if debt > tau then
    all = 0
    tats[i] = tat
    out[4 * i - 3] = 0
    out[4 * i - 2] = 0
    out[4 * i - 1] = debt
    out[4 * i] = debt - tau
  else
    local new_tat = tat + interval
    local used = new_tat - now
    tats[i] = new_tat
    out[4 * i - 3] = 1
    out[4 * i - 2] = math.floor((window - used) / interval)
    out[4 * i - 1] = used
    out[4 * i] = 0
  end
end
if all == 1 then
  for i = 1, n do
    local ttl = math.ceil((tats[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
return out
";

enum Conn {
    Single(ConnectionManager),
    Cluster(Box<ClusterConn>),
}

struct ClusterConn {
    client: ClusterClient,
    conn: tokio::sync::Mutex<(Option<ClusterConnection>, Option<Instant>)>,
}

/// A Redis (or Redis Cluster) store.
pub struct RedisStore {
    conn: Conn,
    script: redis::Script,
    timeout: Duration,
    prefix: String,
}

fn err(e: &redis::RedisError) -> StoreError {
    // The kind only: error texts can carry connection details.
    StoreError(format!("redis: {:?}", e.kind()))
}

/// A connection to one Redis server, made on first use and remade after a
/// failure; every call bounded by `timeout`. The rate-limit store and the
/// login lockout share this setup.
pub(crate) fn lazy_connection(url: &str, timeout: Duration) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|_| "not a valid redis:// URL".to_owned())?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, cfg).map_err(|e| err(&e).0)
}

impl RedisStore {
    /// A store on one Redis server (`redis://` or `rediss://` URL). Does not
    /// connect yet.
    pub fn standalone(url: &str, timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore::with(Conn::Single(lazy_connection(url, timeout)?), timeout))
    }

    /// A store on a Redis Cluster, given seed node URLs. Does not connect yet.
    pub fn cluster(urls: &[String], timeout: Duration) -> Result<RedisStore, String> {
        let client = ClusterClient::builder(urls.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|_| "not valid redis:// node URLs".to_owned())?;
        let conn = tokio::sync::Mutex::new((None, None));
        Ok(RedisStore::with(Conn::Cluster(Box::new(ClusterConn { client, conn })), timeout))
    }

    fn with(conn: Conn, timeout: Duration) -> RedisStore {
        RedisStore { conn, script: redis::Script::new(SCRIPT), timeout, prefix: "portcullis:".to_owned() }
    }

    async fn run_single(
        &self,
        manager: &ConnectionManager,
        checks: &[Check],
    ) -> Result<Vec<i64>, StoreError> {
        let mut inv = self.script.prepare_invoke();
        for c in checks {
            inv.key(format!("{}{}", self.prefix, c.key));
        }
        for c in checks {
            inv.arg(c.rate.interval_us).arg(c.rate.window_us);
        }
        let mut con = manager.clone();
        inv.invoke_async::<Vec<i64>>(&mut con).await.map_err(|e| err(&e))
    }

    async fn cluster_conn(
        &self,
        client: &ClusterClient,
        slot: &tokio::sync::Mutex<(Option<ClusterConnection>, Option<Instant>)>,
    ) -> Result<ClusterConnection, StoreError> {
        let mut guard = slot.lock().await;
        if let Some(c) = &guard.0 {
            return Ok(c.clone());
        }
        // Don't hammer a cluster that is down: one attempt per second.
        if guard.1.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return Err(StoreError("redis: cluster unavailable".to_owned()));
        }
        guard.1 = Some(Instant::now());
        let c = client.get_async_connection().await.map_err(|e| err(&e))?;
        guard.0 = Some(c.clone());
        Ok(c)
    }

    async fn run(&self, checks: &[Check]) -> Result<Vec<Outcome>, StoreError> {
        let flat = match &self.conn {
            Conn::Single(m) => self.run_single(m, checks).await?,
            Conn::Cluster(cc) => {
                let c = self.cluster_conn(&cc.client, &cc.conn).await?;
                let calls = checks.iter().map(|check| {
                    let mut con = c.clone();
                    let key = format!("{}{}", self.prefix, check.key);
                    async move {
                        self.script
                            .key(key)
                            .arg(check.rate.interval_us)
                            .arg(check.rate.window_us)
                            .invoke_async::<Vec<i64>>(&mut con)
                            .await
                    }
                });
                let mut flat = Vec::with_capacity(checks.len() * 4);
                for r in futures_util::future::join_all(calls).await {
                    flat.extend(r.map_err(|e| err(&e))?);
                }
                flat
            }
        };
        if flat.len() != checks.len() * 4 {
            return Err(StoreError("redis: unexpected script reply".to_owned()));
        }
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(flat
            .chunks_exact(4)
            .map(|c| Outcome {
                allowed: c[0] == 1,
                remaining: u(c[1]),
                reset_us: u(c[2]),
                retry_after_us: u(c[3]),
            })
            .collect())
    }
}

impl Store for RedisStore {
    fn decide<'a>(&'a self, checks: &'a [Check]) -> StoreFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.run(checks)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError("redis: timed out".to_owned())),
            }
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// Shared handle, as the layer takes it.
pub fn shared(store: RedisStore) -> Arc<dyn Store> {
    Arc::new(store)
}
