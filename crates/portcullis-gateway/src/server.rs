//! Listeners: the main listener (TCP or TLS), the HTTP->HTTPS redirect
//! listener and the admin listener; connection caps, header-read and idle
//! timeouts, graceful shutdown (C1, C14), and reload: a new configuration
//! is built beside the running one and swapped in whole; connections read
//! the current one per connection (TLS, timeouts) and per request (the
//! policy), so none is dropped.
//!
//! Workers (`server.workers`, issue 16 item 7): the main listener is served
//! by one single-threaded runtime per worker, each accepting on its own
//! `SO_REUSEPORT` socket, as nginx's worker processes do. The first worker
//! is the runtime that called [`start`]; it also runs the redirect and
//! admin listeners and the background tasks. A request stays on the
//! thread that accepted its connection, with that worker's upstream pool
//! ([`worker_index`]): no cross-thread wakeups on the request path.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_layers::Body;
use portcullis_layers::client::PeerAddr;
use portcullis_layers::forwarded::asks_upgrade;
use portcullis_layers::framing::FramingVerdict;
use portcullis_layers::headers::SecurityHeaders;
use portcullis_layers::rejection::{Rejection, RejectionKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tower::ServiceExt;

use portcullis_layers::clock::Clock;

use arc_swap::ArcSwap;

use crate::config::{Config, Limits};
use crate::framing::{Answering, EarlyAnswer, TrackedIo, Tracker, Verdicts};
use crate::stack::{GatewayService, Kept, build};

/// What one configuration makes of the listeners; a reload swaps it whole.
struct Generation {
    service: GatewayService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    answer: EarlyAnswer,
    limits: Limits,
    headers: Arc<SecurityHeaders>,
    names: Arc<Vec<String>>,
    readiness: crate::readiness::Readiness,
    acme: Option<Arc<AcmeTask>>,
    kept: Kept,
}

/// An ACME manager and its issuing and renewing task, which stops when
/// the last generation holding it goes.
struct AcmeTask {
    acme: Arc<crate::acme::Acme>,
    run: tokio::task::AbortHandle,
}

impl Drop for AcmeTask {
    fn drop(&mut self) {
        self.run.abort();
    }
}

impl Generation {
    async fn new(cfg: &Config, clock: Arc<dyn Clock>, before: Option<&Generation>) -> io::Result<Generation> {
        let (service, kept) =
            build(cfg, clock, before.map(|g| &g.kept)).await.map_err(|e| io::Error::other(e.to_string()))?;
        // ACME: the running manager carries on while its settings are the
        // same (no second issuance, no renewal cut short); else a new one.
        let acme = cfg.server.tls.as_ref().and_then(|t| t.acme.clone()).map(|new| {
            match before.and_then(|g| g.acme.clone()).filter(|old| old.acme.settings() == new.settings()) {
                Some(old) => old,
                None => Arc::new(AcmeTask { run: tokio::spawn(new.clone().run()).abort_handle(), acme: new }),
            }
        });
        let tls = match (&cfg.server.tls, &acme) {
            (Some(_), Some(a)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                crate::tls::acme_server_config(a.acme.resolver()).map_err(io::Error::other)?,
            ))),
            (Some(t), None) => Some(tokio_rustls::TlsAcceptor::from(t.rustls.clone())),
            (None, _) => None,
        };
        Ok(Generation {
            service,
            tls,
            answer: EarlyAnswer::new(Arc::new(cfg.headers.clone()), kept.metrics.clone()),
            limits: cfg.limits.clone(),
            headers: Arc::new(cfg.headers.clone()),
            names: Arc::new(cfg.server.names.clone()),
            readiness: crate::readiness::Readiness::new(
                cfg,
                kept.jwks().cloned(),
                kept.rate_limit_redis().cloned(),
                kept.sessions().cloned(),
                acme.as_ref().map(|a| a.acme.clone()),
            ),
            acme,
            kept,
        })
    }
}

type Current = Arc<ArcSwap<Generation>>;

/// The settings a reload cannot change: the listeners are bound once.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    listen: SocketAddr,
    redirect_http: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    max_connections: usize,
    workers: usize,
}

impl Bound {
    fn of(cfg: &Config) -> Bound {
        Bound {
            listen: cfg.server.listen,
            redirect_http: cfg.server.redirect_http,
            admin: cfg.admin,
            max_connections: cfg.limits.max_connections,
            workers: cfg.server.workers,
        }
    }

    /// The keys whose new values wait for a restart.
    fn differences(&self, new: &Bound) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.listen != new.listen {
            keys.push("server.listen");
        }
        if self.redirect_http != new.redirect_http {
            keys.push("server.redirect_http");
        }
        if self.admin != new.admin {
            keys.push("admin.listen");
        }
        if self.max_connections != new.max_connections {
            keys.push("limits.max_connections");
        }
        if self.workers != new.workers {
            keys.push("server.workers");
        }
        keys
    }
}

/// What a reload did.
#[derive(Debug)]
pub struct Reloaded {
    /// Keys that changed but keep their old value until a restart (the
    /// listeners are bound once).
    pub needs_restart: Vec<&'static str>,
}

/// A running gateway.
pub struct Running {
    /// The main listener's address (useful with port 0).
    pub addr: SocketAddr,
    /// The redirect listener's address.
    pub redirect_addr: Option<SocketAddr>,
    /// The admin listener's address.
    pub admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    drained: mpsc::Receiver<()>,
    grace: Duration,
    ready: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    accepting: mpsc::Receiver<()>,
    current: Current,
    bound: Bound,
    clock: Arc<dyn Clock>,
    reloading: tokio::sync::Mutex<()>,
}

impl Running {
    /// Stops accepting and asks every connection to finish its in-flight
    /// requests. Call [`Running::drain`] to wait.
    pub fn shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
    }

    /// Resolves once the gateway and redirect listeners are closed (after
    /// [`Running::shutdown`]); new connections are refused from then on.
    pub async fn stopped_accepting(&mut self) {
        while self.accepting.recv().await.is_some() {}
    }

    /// Number of open client connections (gateway and redirect listeners).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Builds `cfg` beside the running configuration and swaps it in:
    /// connections accepted from now on use it whole, requests on open
    /// connections from their next request; nothing in flight is dropped.
    /// On an error (the identity store can't be opened) the running
    /// configuration stays. Listener addresses, `limits.max_connections`
    /// and `server.workers` wait for a restart ([`Reloaded::needs_restart`]).
    pub async fn reload(&self, cfg: &Config) -> io::Result<Reloaded> {
        let _one_at_a_time = self.reloading.lock().await;
        let old = self.current.load_full();
        match Generation::new(cfg, self.clock.clone(), Some(&old)).await {
            Ok(g) => {
                self.current.store(Arc::new(g));
                old.kept.metrics.retire_rate_limit(&old.kept.rate_limit);
                old.kept.metrics.record_reload(true);
                Ok(Reloaded { needs_restart: self.bound.differences(&Bound::of(cfg)) })
            }
            Err(e) => {
                old.kept.metrics.record_reload(false);
                Err(e)
            }
        }
    }

    /// Counts a reload refused before it reached [`Running::reload`] (an
    /// invalid file).
    pub fn reload_refused(&self) {
        self.current.load().kept.metrics.record_reload(false);
    }

    /// Shuts down and waits until all connections are closed or the grace
    /// period is over. Returns whether everything drained in time.
    pub async fn drain(mut self) -> bool {
        self.shutdown();
        tokio::time::timeout(self.grace, async { while self.drained.recv().await.is_some() {} }).await.is_ok()
    }
}

/// Shared per-listener context.
#[derive(Clone)]
struct Ctx {
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    /// Held by the accept loops that stop on shutdown; never sent on.
    _accepting: Option<mpsc::Sender<()>>,
    /// Never sent on: the receiver sees the channel close when the last
    /// clone (one per connection and accept loop) is dropped.
    _done: mpsc::Sender<()>,
    open: Arc<AtomicUsize>,
    /// Told each time a connection counted in `open` closes.
    closed: Arc<Notify>,
    /// Bumped by the accept loop when a new connection waits for a free
    /// slot: idle connections of the listener close (C14).
    shed: watch::Receiver<u64>,
}

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker serving on this thread: 1.. on the threads [`start`]
/// spawns for `server.workers`, 0 on any other thread (the first worker is
/// the caller's runtime). Per-worker state (the upstream pools) is indexed
/// by it, modulo its length.
#[must_use]
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// The connection cap of one listener, shared by its workers' accept loops.
#[derive(Clone)]
struct Cap {
    permits: Arc<Semaphore>,
    /// Bumped when a new connection waits for a free slot: idle
    /// connections of every worker close (C14).
    shed: Arc<watch::Sender<u64>>,
}

impl Cap {
    fn new(max_connections: usize) -> Cap {
        Cap { permits: Arc::new(Semaphore::new(max_connections)), shed: Arc::new(watch::channel(0).0) }
    }
}

/// Counts an open connection until dropped (also when its task is dropped
/// with its runtime).
struct OpenConn {
    open: Arc<AtomicUsize>,
    closed: Arc<Notify>,
}

impl OpenConn {
    fn new(ctx: &Ctx) -> OpenConn {
        ctx.open.fetch_add(1, Ordering::SeqCst);
        OpenConn { open: ctx.open.clone(), closed: ctx.closed.clone() }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.closed.notify_waiters();
    }
}

/// Binds one listener; the error names the address and the config key
/// that set it ("address already in use" alone says neither).
fn bind(key: &str, addr: SocketAddr) -> io::Result<TcpListener> {
    let mut one = bind_workers(key, addr, 1)?;
    TcpListener::from_std(one.remove(0))
}

/// Binds `key`'s listener once per worker, each with tokio's backlog
/// (1024). More than one worker: each socket sets `SO_REUSEPORT`, so the
/// kernel spreads new connections over the workers by their addresses; a
/// plain bind first proves the address free, so a second Portcullis
/// started by mistake is refused ("address in use") rather than silently
/// sharing the port.
fn bind_workers(key: &str, addr: SocketAddr, workers: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let at = |e: io::Error| io::Error::new(e.kind(), format!("{key} = \"{addr}\": {e}"));
    let shared = workers > 1;
    if shared && addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr).map_err(at)?);
    }
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(at)?;
        socket.set_reuse_address(true).map_err(at)?;
        if shared {
            socket.set_reuse_port(true).map_err(at)?;
        }
        socket.set_nonblocking(true).map_err(at)?;
        socket.bind(&addr.into()).map_err(at)?;
        socket.listen(1024).map_err(at)?;
        let l = std::net::TcpListener::from(socket);
        // Port 0: the others join the port the first one got.
        addr = l.local_addr().map_err(at)?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Runs worker `index` on a thread of its own: a single-threaded runtime
/// serving `listener` until shutdown. The thread ends once every
/// connection of every worker has closed: one elsewhere may still use a
/// connection this runtime drives (a database connection opened here).
fn spawn_worker(
    index: usize,
    listener: std::net::TcpListener,
    ctx: Ctx,
    handler: Handler,
    cap: Cap,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name(format!("portcullis-w{index}")).spawn(move || {
        WORKER.with(|w| w.set(index));
        rt.block_on(async move {
            let (open, closed) = (ctx.open.clone(), ctx.closed.clone());
            match TcpListener::from_std(listener) {
                Ok(l) => accept_loop(l, ctx, handler, cap).await,
                Err(e) => tracing::error!(error = %e, worker = index, "can't serve the listener"),
            }
            loop {
                let notified = closed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        });
    })?;
    Ok(())
}

/// Binds every listener of the configuration and starts serving.
pub async fn start(cfg: &Config) -> io::Result<Running> {
    start_with_clock(cfg, Arc::new(portcullis_layers::clock::SystemClock)).await
}

/// [`start`] with the clock every time-based decision reads (rate limits,
/// token expiry, the JWKS re-fetch throttle): tests drive a
/// `ManualClock` instead of sleeping.
pub async fn start_with_clock(
    cfg: &Config,
    clock: Arc<dyn portcullis_layers::clock::Clock>,
) -> io::Result<Running> {
    crate::tls::install_crypto_provider();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (done_tx, done_rx) = mpsc::channel::<()>(1);
    let (accepting_tx, accepting_rx) = mpsc::channel::<()>(1);
    let ready_flag = Arc::new(AtomicBool::new(true));
    let ready = ready_flag.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let ctx = Ctx {
        limits: cfg.limits.clone(),
        shutdown: shutdown_rx,
        _accepting: Some(accepting_tx),
        _done: done_tx,
        open: open.clone(),
        closed: Arc::new(Notify::new()),
        // Each connection gets its listener's (the accept loop subscribes it).
        shed: watch::channel(0).1,
    };

    let mut workers = bind_workers("server.listen", cfg.server.listen, cfg.server.workers)?.into_iter();
    let main = TcpListener::from_std(workers.next().ok_or_else(|| io::Error::other("no listener"))?)?;
    let addr = main.local_addr()?;
    let redirect = match cfg.server.redirect_http {
        Some(a) => Some(bind("server.redirect_http", a)?),
        None => None,
    };
    let admin = match cfg.admin {
        Some(a) => Some(bind("admin.listen", a)?),
        None => None,
    };
    let redirect_addr = redirect.as_ref().map(TcpListener::local_addr).transpose()?;
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;

    let current: Current = Arc::new(ArcSwap::from_pointee(Generation::new(cfg, clock.clone(), None).await?));
    current.load().kept.metrics.watch_connections(open.clone());
    let cap = Cap::new(cfg.limits.max_connections);
    tokio::spawn(accept_loop(main, ctx.clone(), Handler::Gateway(current.clone()), cap.clone()));
    for (i, l) in workers.enumerate() {
        spawn_worker(i + 1, l, ctx.clone(), Handler::Gateway(current.clone()), cap.clone())?;
    }
    if let Some(l) = redirect {
        let handler = Handler::Redirect { https_port: addr.port(), current: current.clone() };
        tokio::spawn(accept_loop(l, ctx.clone(), handler, Cap::new(cfg.limits.max_connections)));
    }
    if let Some(l) = admin {
        // The admin listener keeps answering (`/readyz` says 503) while the
        // others drain, so load balancers see the shutdown; it ends with the
        // process and is not waited for.
        let (never_tx, _) = watch::channel(false);
        let (admin_done, _) = mpsc::channel::<()>(1);
        let admin_current = current.clone();
        let admin_ctx = Ctx {
            limits: cfg.limits.clone(),
            shutdown: never_tx.subscribe(),
            _accepting: None,
            _done: admin_done,
            open: Arc::new(AtomicUsize::new(0)),
            closed: Arc::new(Notify::new()),
            shed: watch::channel(0).1,
        };
        let admin_cap = Cap::new(cfg.limits.max_connections);
        tokio::spawn(async move {
            let _keep = never_tx;
            accept_loop(l, admin_ctx, Handler::Admin { ready, current: admin_current }, admin_cap).await;
        });
    }
    drop(ctx);
    Ok(Running {
        addr,
        redirect_addr,
        admin_addr,
        shutdown: shutdown_tx,
        drained: done_rx,
        grace: cfg.limits.shutdown_grace,
        ready: ready_flag,
        open,
        accepting: accepting_rx,
        current,
        bound: Bound::of(cfg),
        clock,
        reloading: tokio::sync::Mutex::new(()),
    })
}

#[derive(Clone)]
enum Handler {
    Gateway(Current),
    Redirect { https_port: u16, current: Current },
    Admin { ready: Arc<AtomicBool>, current: Current },
}

/// Accepts on `listener` until shutdown, then closes it before it drops
/// `ctx`: whoever waits for the accept loops to end (the drain,
/// [`Running::stopped_accepting`]) finds the socket closed.
async fn accept_loop(listener: TcpListener, mut ctx: Ctx, handler: Handler, cap: Cap) {
    accept_until_shutdown(&listener, &mut ctx, &handler, cap).await;
    drop(listener);
    drop(ctx);
}

async fn accept_until_shutdown(listener: &TcpListener, ctx: &mut Ctx, handler: &Handler, cap: Cap) {
    let Cap { permits, shed } = cap;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = ctx.shutdown.changed() => return,
        };
        // At the cap, the accepted connection waits for a slot (the rest
        // wait in the kernel backlog) while idle connections are asked to
        // close: new work goes before idle keep-alive (C14). The slot is
        // taken after the accept: with several workers, a loop holding the
        // last slot while it waits on its own socket would starve a
        // connection queued on another worker's.
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                shed.send_modify(|n| *n = n.wrapping_add(1));
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = ctx.shutdown.changed() => return,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        // Subscribed now, not when the connection's task first runs: a shed
        // between the two (another worker's connection waiting for this
        // slot) still reaches it.
        let ctx = Ctx { _accepting: None, shed: shed.subscribe(), ..ctx.clone() };
        let handler = handler.clone();
        tokio::spawn(async move {
            let open = OpenConn::new(&ctx);
            serve_tcp(tcp, peer, &ctx, handler).await;
            drop(open);
            drop(permit);
        });
    }
}

async fn serve_tcp(tcp: TcpStream, peer: SocketAddr, ctx: &Ctx, handler: Handler) {
    match handler {
        Handler::Gateway(current) => {
            // The configuration of the moment the connection arrived: its
            // TLS certificate and timeouts hold for its life.
            let generation = current.load_full();
            let ctx = &Ctx { limits: generation.limits.clone(), ..ctx.clone() };
            let answer = generation.answer.clone();
            match &generation.tls {
                Some(acceptor) => {
                    let hs = tokio::time::timeout(ctx.limits.header_read_timeout, acceptor.accept(tcp)).await;
                    drop(generation);
                    let Ok(Ok(stream)) = hs else { return };
                    // A TLS-ALPN-01 validation: the handshake was the answer.
                    if stream.get_ref().1.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
                        return;
                    }
                    // What ALPN agreed on is the only protocol the connection
                    // speaks: an invalid h2 preface gets GOAWAY, not an
                    // HTTP/1 parse (h2spec).
                    let proto =
                        if stream.get_ref().1.alpn_protocol() == Some(b"h2") { Proto::H2 } else { Proto::H1 };
                    let answer = (proto == Proto::H1).then_some(answer);
                    serve_gateway(stream, PeerAddr { addr: peer, https: true }, ctx, current, answer, proto)
                        .await;
                }
                None => {
                    drop(generation);
                    let peer = PeerAddr { addr: peer, https: false };
                    serve_gateway(tcp, peer, ctx, current, Some(answer), Proto::Auto).await;
                }
            }
        }
        Handler::Redirect { https_port, current } => {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let g = current.load();
                let res = acme_http01(&req, g.acme.as_ref().map(|a| &*a.acme))
                    .unwrap_or_else(|| redirect_response(&req, https_port, &g.headers, &g.names));
                async move { Ok::<_, Infallible>(res) }
            });
            serve_conn(tcp, ctx, svc, Proto::Auto, Arc::default()).await;
        }
        Handler::Admin { ready, current } => {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let g = current.load_full();
                let draining = !ready.load(Ordering::SeqCst);
                async move { Ok::<_, Infallible>(admin_response(&req, draining, &g).await) }
            });
            serve_conn(tcp, ctx, svc, Proto::Auto, Arc::default()).await;
        }
    }
}

/// Serves the gateway on one connection. HTTP/1 connections (`answer` set)
/// are tracked for framing, and heads the tracker refuses are answered by it.
async fn serve_gateway<IO>(
    io: IO,
    peer: PeerAddr,
    ctx: &Ctx,
    current: Current,
    answer: Option<EarlyAnswer>,
    proto: Proto,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = answer.is_some().then(|| Tracker::new(ctx.limits.header_bytes, ctx.limits.max_headers));
    let verdicts: Option<Verdicts> = tracker.as_ref().map(Tracker::verdicts);
    let requests = Arc::new(ConnRequests::default());
    let mut io = TrackedIo::new(io, tracker);
    if let Some(answer) = answer {
        io = io.answering(Answering {
            answer,
            peer: peer.addr,
            https: peer.https,
            requests: requests.clone(),
        });
    }
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        if req.version() < Version::HTTP_2
            && let Some(v) = &verdicts
        {
            req.extensions_mut().insert(FramingVerdict(v.next()));
        }
        // A request that asks to switch protocols and is not switched
        // (anything but an admitted WebSocket) ends its connection: the
        // client may already be sending the other protocol (C21 C28).
        let asked_upgrade = asks_upgrade(req.headers());
        // Each request runs on the configuration current when it arrives.
        let fut = current.load().service.clone().oneshot(req);
        async move {
            let mut res = fut.await;
            if asked_upgrade
                && let Ok(r) = &mut res
                && r.status() != StatusCode::SWITCHING_PROTOCOLS
            {
                r.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            res
        }
    });
    serve_conn(io, ctx, svc, proto, requests).await;
}

/// The protocols a connection may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    /// HTTP/1.1, or HTTP/2 with prior knowledge (plain TCP).
    Auto,
    /// ALPN chose `http/1.1` (or nothing).
    H1,
    /// ALPN chose `h2`.
    H2,
}

/// Requests of one connection: whether one arrived, how many are in flight
/// (handed to the service, response head not yet produced), when the last
/// one finished. Read by the connection's timers and by the framing
/// tracker's early answers.
#[derive(Debug)]
pub(crate) struct ConnRequests {
    started: AtomicBool,
    inflight: AtomicUsize,
    /// The connection's start.
    base: tokio::time::Instant,
    /// When the last request finished, in nanoseconds after `base`.
    last_done: AtomicU64,
}

impl Default for ConnRequests {
    fn default() -> Self {
        ConnRequests {
            started: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            base: tokio::time::Instant::now(),
            last_done: AtomicU64::new(0),
        }
    }
}

impl ConnRequests {
    /// No request in flight.
    pub(crate) fn idle(&self) -> bool {
        self.inflight.load(Ordering::SeqCst) == 0
    }

    /// When the connection will have gone `idle` without a request (from
    /// the end of its last one, or from its start), or `None` if it already
    /// has. A request in flight pushes the answer to `now + idle`.
    fn idle_deadline(&self, idle: Duration, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        if !self.idle() {
            return Some(now + idle);
        }
        let at = self.base + Duration::from_nanos(self.last_done.load(Ordering::Relaxed)) + idle;
        (at > now).then_some(at)
    }
}

/// Counts a request in flight until dropped (also when the connection
/// drops the request's future).
struct InFlight(Arc<ConnRequests>);

impl InFlight {
    fn new(state: &Arc<ConnRequests>) -> InFlight {
        state.started.store(true, Ordering::Relaxed);
        state.inflight.fetch_add(1, Ordering::SeqCst);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let since = u64::try_from(self.0.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.last_done.store(since, Ordering::Relaxed);
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a new connection may stay silent before a shed closes it
/// (at most `limits.header_read_timeout`).
const SHED_GRACE: Duration = Duration::from_millis(250);

/// Serves one connection: HTTP/1.1 or HTTP/2, with upgrades. Closes it when
/// no complete request head arrived within `header_read_timeout` of the
/// accept (later heads are timed by hyper from their first byte), when idle
/// for `idle_timeout`, when the listener is at its connection cap and the
/// connection idle (C14), and drains it on shutdown.
async fn serve_conn<IO, S>(io: IO, ctx: &Ctx, svc: S, proto: Proto, requests: Arc<ConnRequests>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let l = &ctx.limits;
    let counted = requests.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = InFlight::new(&counted);
        let fut = svc.call(req);
        async move {
            let res = fut.await;
            drop(guard);
            res
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(l.header_read_timeout)
        .max_headers(l.max_headers)
        .max_buf_size(l.header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(l.header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(100)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = match proto {
        Proto::Auto => builder,
        Proto::H1 => builder.http1_only(),
        Proto::H2 => builder.http2_only(),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut shutdown = ctx.shutdown.clone();
    let mut shed = ctx.shed.clone();
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let idle = l.idle_timeout;
    let start = tokio::time::Instant::now();
    let first_head_deadline = start + l.header_read_timeout;
    // A shed reaches a connection still silent this young only once it is
    // this old: its first head may be on the wire (sent with the TCP
    // handshake's last packet), and closing it then resets a client that
    // did nothing wrong. Any later shed closes a silent connection at once.
    let shed_silent_at = start + l.header_read_timeout.min(SHED_GRACE);
    let mut shed_pending = false;
    let mut idle_deadline = start + idle;
    let silent = |r: &ConnRequests| !r.started.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            // hyper's header-read timer starts with the first byte of a
            // head; a connection that sends nothing would hold its slot
            // until the idle timeout.
            _ = tokio::time::sleep_until(first_head_deadline), if silent(&requests) => {
                if silent(&requests) {
                    break;
                }
            }
            Ok(()) = shed.changed(), if !closing && !shed_pending => {
                shed_pending = true;
            }
            _ = tokio::time::sleep_until(shed_silent_at), if shed_pending && !closing => {
                if silent(&requests) {
                    break;
                }
                // In-flight requests finish; the connection is not kept alive.
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            // One timer for the connection's life, moved on only when it
            // fires: "idle" is counted from the end of the last request.
            _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                match requests.idle_deadline(idle, tokio::time::Instant::now()) {
                    Some(later) => idle_deadline = later,
                    None => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    res
}

async fn admin_response(req: &Request<Incoming>, draining: bool, g: &Generation) -> Response<Body> {
    let mut res = match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Body::from(g.kept.metrics.render(&g.kept.rate_limit)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => json_response(StatusCode::OK, "{\"status\":\"ok\"}"),
        "/readyz" if draining => json_response(StatusCode::SERVICE_UNAVAILABLE, "{\"status\":\"draining\"}"),
        "/readyz" => {
            let reasons = g.readiness.reasons().await;
            if reasons.is_empty() {
                json_response(StatusCode::OK, "{\"status\":\"ready\"}")
            } else {
                let body = serde_json::json!({ "status": "not_ready", "reasons": reasons }).to_string();
                let mut r = json_response(StatusCode::SERVICE_UNAVAILABLE, "");
                *r.body_mut() = Body::from(body);
                r
            }
        }
        _ => Rejection::new(RejectionKind::NotFound).into_response(None),
    };
    SecurityHeaders::helmet().apply(res.headers_mut(), false);
    res
}

/// The HTTP-01 answer for `GET /.well-known/acme-challenge/TOKEN` while
/// that validation runs (C4); `None` for any other request.
fn acme_http01(req: &Request<Incoming>, acme: Option<&crate::acme::Acme>) -> Option<Response<Body>> {
    let token = req.uri().path().strip_prefix("/.well-known/acme-challenge/")?;
    let answer = acme?.http01_answer(token)?;
    let mut res = Response::new(Body::from(answer));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
    Some(res)
}

/// 301 to the same host and path on HTTPS; with `server.names` set, only
/// for those names (an open redirect to any `Host` otherwise, C1).
fn redirect_response(
    req: &Request<Incoming>,
    https_port: u16,
    headers: &SecurityHeaders,
    names: &[String],
) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .filter(|h| portcullis_layers::framing::valid_host(h))
        .and_then(|h| h.to_str().ok())
        .map(portcullis_layers::framing::strip_port)
        .filter(|h| names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(h)));
    let mut res = match host {
        Some(host) => {
            let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let pq = if pq.starts_with('/') { pq } else { "/" };
            let location = format!("https://{host}{port}{pq}");
            match http::HeaderValue::from_str(&location) {
                Ok(loc) => {
                    let mut r = Response::new(Body::empty());
                    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    r.headers_mut().insert(header::LOCATION, loc);
                    r
                }
                Err(_) => Rejection::new(RejectionKind::InvalidHost).into_response(None),
            }
        }
        None => Rejection::new(RejectionKind::InvalidHost).into_response(None),
    };
    headers.apply(res.headers_mut(), false);
    res
}
