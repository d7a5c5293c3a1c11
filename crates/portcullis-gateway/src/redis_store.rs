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

use crate::config::RedisConfig;

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

/// A lazily made connection to one Redis server or a Redis Cluster, shared
/// by the rate-limit store and the login lockout. Portcullis starts while
/// Redis is down and reconnects by itself when it comes back.
pub(crate) enum RedisConn {
    Single(ConnectionManager),
    Cluster(Box<ClusterConn>),
}

/// The cluster connection (once made) and when it was last attempted.
type ClusterSlot = Arc<tokio::sync::Mutex<(Option<ClusterConnection>, Option<Instant>)>>;

pub(crate) struct ClusterConn {
    client: ClusterClient,
    slot: ClusterSlot,
}

/// A connection ready for one call: a clone of the shared one.
pub(crate) enum RedisHandle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for RedisHandle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            RedisHandle::Single(c) => c.req_packed_command(cmd),
            RedisHandle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            RedisHandle::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisHandle::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisHandle::Single(c) => c.get_db(),
            RedisHandle::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConn {
    /// The connection `[state]` describes. Does not connect yet.
    pub(crate) fn open(cfg: &RedisConfig, timeout: Duration) -> Result<RedisConn, String> {
        match cfg {
            RedisConfig::Standalone(url) => Ok(RedisConn::Single(lazy_connection(url.expose(), timeout)?)),
            RedisConfig::Cluster(nodes) => {
                RedisConn::cluster(nodes.iter().map(|s| s.expose().to_owned()).collect(), timeout)
            }
        }
    }

    fn cluster(urls: Vec<String>, timeout: Duration) -> Result<RedisConn, String> {
        let client = ClusterClient::builder(urls)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|_| "not valid redis:// node URLs".to_owned())?;
        let slot: ClusterSlot = Arc::new(tokio::sync::Mutex::new((None, None)));
        // Connect in the background at once, so the first request does not
        // pay for discovering the cluster's slots.
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(connect_cluster(client.clone(), slot.clone()));
        }
        Ok(RedisConn::Cluster(Box::new(ClusterConn { client, slot })))
    }

    /// Runs one call `f` on a connection, getting the connection and the
    /// call together bounded by `timeout`. The error is a reason that names
    /// no address (for logs).
    pub(crate) async fn call<T>(
        &self,
        timeout: Duration,
        f: impl AsyncFnOnce(RedisHandle) -> redis::RedisResult<T>,
    ) -> Result<T, &'static str> {
        let run = async {
            let con = self.get().await.map_err(|_| "no connection")?;
            f(con).await.map_err(|e| reason(&e))
        };
        tokio::time::timeout(timeout, run).await.unwrap_or(Err("timed out"))
    }

    /// Whether a server answers a PING within `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), &'static str> {
        self.call(timeout, async |mut c| redis::cmd("PING").query_async::<()>(&mut c).await).await
    }

    /// A connection for one call; for a cluster, made on first use and at
    /// most one attempt per second while it is down.
    pub(crate) async fn get(&self) -> Result<RedisHandle, StoreError> {
        let cc = match self {
            RedisConn::Single(m) => return Ok(RedisHandle::Single(m.clone())),
            RedisConn::Cluster(cc) => cc,
        };
        {
            let guard = cc.slot.lock().await;
            if let Some(c) = &guard.0 {
                return Ok(RedisHandle::Cluster(c.clone()));
            }
        }
        // The attempt runs as a task of its own: a caller that gives up
        // (its timeout) does not abandon it, and the next caller finds
        // the connection made.
        let task = tokio::spawn(connect_cluster(cc.client.clone(), cc.slot.clone()));
        match task.await {
            Ok(r) => r.map(RedisHandle::Cluster),
            Err(_) => Err(StoreError("redis: cluster unavailable".to_owned())),
        }
    }
}

/// Makes the cluster connection unless one exists; at most one attempt per
/// second while the cluster is down, so a down cluster is not hammered.
async fn connect_cluster(client: ClusterClient, slot: ClusterSlot) -> Result<ClusterConnection, StoreError> {
    let mut guard = slot.lock().await;
    if let Some(c) = &guard.0 {
        return Ok(c.clone());
    }
    if guard.1.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return Err(StoreError("redis: cluster unavailable".to_owned()));
    }
    guard.1 = Some(Instant::now());
    let c = client.get_async_connection().await.map_err(|e| err(&e))?;
    guard.0 = Some(c.clone());
    Ok(c)
}

/// A Redis (or Redis Cluster) store.
pub struct RedisStore {
    conn: RedisConn,
    script: redis::Script,
    timeout: Duration,
    prefix: String,
}

/// The kind of a Redis error, never its text (which can carry addresses).
fn reason(e: &redis::RedisError) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        "connection failed"
    } else {
        "command failed"
    }
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
    /// A store on one Redis server (`redis://` or `rediss://` URL), or on a
    /// Redis Cluster given seed node URLs. Does not connect yet.
    pub fn new(cfg: &RedisConfig, timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore::with(RedisConn::open(cfg, timeout)?, timeout))
    }

    /// A store on one Redis server (`redis://` or `rediss://` URL).
    pub fn standalone(url: &str, timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore::with(RedisConn::Single(lazy_connection(url, timeout)?), timeout))
    }

    /// A store on a Redis Cluster, given seed node URLs.
    pub fn cluster(urls: &[String], timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore::with(RedisConn::cluster(urls.to_vec(), timeout)?, timeout))
    }

    /// Whether the server answers a PING within the store's timeout
    /// (`/readyz`).
    pub async fn ping(&self) -> Result<(), &'static str> {
        self.conn.ping(self.timeout).await
    }

    fn with(conn: RedisConn, timeout: Duration) -> RedisStore {
        RedisStore { conn, script: redis::Script::new(SCRIPT), timeout, prefix: "portcullis:".to_owned() }
    }

    async fn run(&self, checks: &[Check]) -> Result<Vec<Outcome>, StoreError> {
        let flat = match self.conn.get().await? {
            mut con @ RedisHandle::Single(_) => {
                let mut inv = self.script.prepare_invoke();
                for c in checks {
                    inv.key(format!("{}{}", self.prefix, c.key));
                }
                for c in checks {
                    inv.arg(c.rate.interval_us).arg(c.rate.window_us);
                }
                inv.invoke_async::<Vec<i64>>(&mut con).await.map_err(|e| err(&e))?
            }
            RedisHandle::Cluster(c) => {
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
