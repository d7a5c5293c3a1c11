//! The upstream connection pool: one per worker (`server.workers`) and
//! upstream, HTTP/1.1 keep-alive connections kept in a stack (the most
//! recently used first), capped by `upstream.max_idle_connections` and
//! closed after `upstream.idle_connection_timeout` idle.
//!
//! Why not hyper-util's pool (issue 16): it serves any number of hosts, so
//! every checkout and return hashes its `(scheme, authority)` key with
//! SipHash, byte by byte (about 4.9k instructions per proxied request
//! under callgrind, 6% of the default policy), and it returns a connection
//! through a task spawned per request. A pool of one upstream needs no key,
//! and a connection goes back when its response body ends.
//!
//! Semantics kept from it: a request is retried on another connection only
//! when a reused connection closed before the request was written (hyper
//! hands the request back, so it was never sent: at most once); `Host` is
//! the upstream's when the request has none; connections that switch
//! protocols (WebSocket) are never pooled.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_layers::Body;
use tower::Service;

/// Connections to one upstream, for one worker.
pub(crate) struct Pool {
    connector: HttpConnector,
    /// The upstream's URL: the connector dials its scheme, host and port.
    dst: Uri,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    reaping: AtomicBool,
}

struct Idle {
    tx: SendRequest<Body>,
    since: tokio::time::Instant,
}

impl Idle {
    /// Still worth keeping: open and idle for less than `timeout`.
    fn usable(&self, timeout: Duration) -> bool {
        !self.tx.is_closed() && self.since.elapsed() < timeout
    }
}

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection: refused, unreachable, name not resolved, timed out.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed during the exchange.
    Http(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl Pool {
    pub(crate) fn new(
        connector: HttpConnector,
        dst: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            dst,
            max_idle,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            reaping: AtomicBool::new(false),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection, or
    /// a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        loop {
            let (mut tx, reused) = match self.checkout() {
                Some(tx) => (tx, true),
                None => (self.connect().await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(res) => {
                    // A connection that switched protocols is the tunnel's;
                    // `give_back` applies the cap.
                    let back =
                        (res.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| (tx, Arc::downgrade(self)));
                    return Ok(res.map(|inner| PooledBody { inner, back }));
                }
                Err(mut e) => match e.take_message() {
                    // The reused connection closed before the request was
                    // written (the upstream's keep-alive timeout): not sent,
                    // so it goes on another connection.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open, ready
    /// and not past the idle timeout; the others are closed.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(i) = idle.pop() {
            if i.tx.is_ready() && i.usable(self.idle_timeout) {
                return Some(i.tx);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Body>, UpstreamError> {
        let mut connector = self.connector.clone();
        let io = connector.call(self.dst.clone()).await.map_err(|e| UpstreamError::Connect(e.into()))?;
        let (tx, conn) = http1::Builder::new().handshake(io).await.map_err(UpstreamError::Http)?;
        // The connection's task ends when it closes: the upstream closed
        // it, it failed, or every handle to it (the pool's, the response
        // body's) is gone.
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(tx)
    }

    /// Keeps a connection whose exchange ended, up to the cap.
    fn give_back(self: &Arc<Self>, tx: SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle { tx, since: tokio::time::Instant::now() });
        }
        if !self.reaping.swap(true, Ordering::Relaxed)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }
}

/// Closes the idle connections past the timeout (and forgets closed ones)
/// every half timeout, while the pool lives.
async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let mut tick = tokio::time::interval(idle_timeout / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| i.usable(idle_timeout));
    }
}

/// A response body from the upstream; its connection goes back to the
/// pool when the body has ended.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<Body>, Weak<Pool>)>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some((tx, pool)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.give_back(tx);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body the server never polled has ended too; one dropped
        // part-way closes its connection with the handle.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}
