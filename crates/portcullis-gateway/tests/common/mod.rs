//! Test harness: a real in-process hyper upstream on 127.0.0.1:0, a real
//! gateway on 127.0.0.1:0, and clients (hyper, and raw TCP for bytes hyper
//! would never send).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_gateway::config::{self, Config};
use portcullis_gateway::server::{self, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// What the upstream saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An in-process upstream with a few fixed routes.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    /// Releases requests held at `/hold`.
    pub release: Arc<Notify>,
}

pub async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let rel = release.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let rel = rel.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, tx.clone(), rel.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Upstream { addr, seen: rx, release }
}

fn resp(status: u16, ct: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", ct.parse().unwrap());
    r.headers_mut().insert("x-powered-by", "Express".parse().unwrap());
    r.headers_mut().insert("server", "upstream-secret-stack/1.2.3".parse().unwrap());
    r
}

async fn handle(
    mut req: Request<Incoming>,
    tx: mpsc::UnboundedSender<Seen>,
    release: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/ws" {
        // Echo WebSocket-ish upgrade: 101, then echo bytes back.
        let on = hyper::upgrade::on(&mut req);
        let _ = tx.send(Seen {
            method: req.method().to_string(),
            path_and_query: path.clone(),
            headers: req.headers().clone(),
            body: Bytes::new(),
        });
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert("upgrade", "websocket".parse().unwrap());
        r.headers_mut().insert("connection", "Upgrade".parse().unwrap());
        r.headers_mut().insert("sec-websocket-accept", "test".parse().unwrap());
        return Ok(r);
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(resp(400, "text/plain", "body error")),
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let _ = tx.send(seen);
    let r = match path.as_str() {
        "/crash" => resp(
            500,
            "text/html; charset=utf-8",
            "<pre>TypeError: x is undefined<br> at /srv/app/routes/users.js:42:17<br> at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)</pre>",
        ),
        "/sql" => {
            resp(503, "application/json", "{\"error\":\"SELECT * FROM users WHERE id=1 -- syntax error\"}")
        }
        "/notfound-html" => resp(404, "text/html", "<pre>Cannot GET /notfound-html</pre>"),
        "/notfound-json" => resp(404, "application/json", "{\"error\":\"no such thing\"}"),
        "/not-modified" => {
            let mut r = resp(304, "text/plain", Bytes::new());
            r.headers_mut().remove("content-type");
            r
        }
        "/hold" => {
            release.notified().await;
            resp(200, "text/plain", "released")
        }
        "/set-cookie" => {
            let mut r = resp(200, "text/plain", "ok");
            r.headers_mut().insert("set-cookie", "sid=abc; Path=/".parse().unwrap());
            r.headers_mut().insert("strict-transport-security", "max-age=5".parse().unwrap());
            r
        }
        "/echo" => resp(200, "application/octet-stream", body),
        "/api/whoami" => {
            let cookie = parts.headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut r = resp(
                200,
                "application/json",
                serde_json::json!({ "method": parts.method.as_str(), "cookie": cookie }).to_string(),
            );
            // A sloppy upstream that reflects any origin, like app.use(cors()).
            if let Some(o) = parts.headers.get("origin") {
                r.headers_mut().insert("access-control-allow-origin", o.clone());
                r.headers_mut().insert("access-control-allow-credentials", "true".parse().unwrap());
            }
            r
        }
        _ => resp(200, "application/json", "{\"ok\":true}"),
    };
    Ok(r)
}

/// Serves one static HTML page (a distinct browser origin per call).
pub async fn page_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    let mut r = Response::new(Full::new(Bytes::from_static(
                        b"<!doctype html><title>origin</title><p>origin page</p>",
                    )));
                    r.headers_mut().insert("content-type", "text/html".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// A gateway in front of `upstream`, with extra TOML appended.
pub async fn gateway(upstream: SocketAddr, extra: &str) -> Running {
    gateway_with_clock(upstream, extra, std::sync::Arc::new(portcullis_layers::clock::SystemClock)).await
}

/// [`gateway`] on a clock the test drives (rate-limit windows, token
/// expiry, the JWKS re-fetch throttle), instead of sleeping.
pub async fn gateway_with_clock(
    upstream: SocketAddr,
    extra: &str,
    clock: std::sync::Arc<dyn portcullis_layers::clock::Clock>,
) -> Running {
    // Tests about other controls get one public catch-all route; tests
    // about routes declare their own.
    let routes =
        if extra.contains("[[route]]") || extra.contains("[openapi]") { "" } else { PUBLIC_CATCH_ALL };
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n[upstream]\nurl = \"http://{upstream}\"\n{routes}"
    );
    let cfg = config_from(&text);
    server::start_with_clock(&cfg, clock).await.unwrap()
}

/// A route admitting every request without authentication.
pub const PUBLIC_CATCH_ALL: &str = "[[route]]\npath = \"/**\"\npublic = true\n";

pub fn config_from(text: &str) -> Config {
    match config::from_str(text, std::path::Path::new("."), &|_| None) {
        Ok(c) => c,
        Err(p) => panic!("config refused:\n{p}\n{text}"),
    }
}

/// Sends a request with hyper over a fresh HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (Response::from_parts(parts, ()), bytes)
}

pub async fn get(addr: SocketAddr, path: &str) -> (Response<()>, Bytes) {
    let req = Request::builder().uri(path).header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
    send(addr, req).await
}

/// Writes raw bytes and reads until the server closes the connection.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The header names of a response, lower case, sorted.
pub fn names(res: &Response<()>) -> Vec<String> {
    let mut v: Vec<String> = res.headers().keys().map(|k| k.as_str().to_owned()).collect();
    v.sort();
    v.dedup();
    v
}

pub fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

/// The twelve helmet 8 defaults (HSTS only over HTTPS).
pub const HELMET: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];
pub const HSTS: (&str, &str) = ("strict-transport-security", "max-age=31536000; includeSubDomains");

pub fn assert_helmet(res: &Response<()>, https: bool) {
    for (n, v) in HELMET {
        assert_eq!(res.headers().get(*n).map(|x| x.to_str().unwrap()), Some(*v), "{n} on {}", res.status());
        assert_eq!(res.headers().get_all(*n).iter().count(), 1, "{n} duplicated");
    }
    let hsts = res.headers().get(HSTS.0).map(|v| v.to_str().unwrap().to_owned());
    if https {
        assert_eq!(hsts.as_deref(), Some(HSTS.1));
    } else {
        assert_eq!(hsts, None, "HSTS over plain HTTP");
    }
    assert!(res.headers().get("x-powered-by").is_none());
    assert!(res.headers().get("server").is_none());
}

/// Text that must never reach a client.
pub fn assert_no_leak(body: &Bytes) {
    let s = String::from_utf8_lossy(body);
    for needle in ["TypeError", ".js:", "/srv/", "node_modules", "SELECT", "at Layer", "Cannot GET", "<pre>"]
    {
        assert!(!s.contains(needle), "leaked {needle:?}: {s}");
    }
}

pub type Shared<T> = Arc<Mutex<T>>;

/// The first ```toml block of a page in docs/, as a gateway configuration
/// for tests: listening on a free port, admin off, the upstream URL of the
/// example (`http://127.0.0.1:3000`) replaced by `upstream`.
pub fn docs_example_config(page: &str, upstream: SocketAddr) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(page);
    let doc = std::fs::read_to_string(path).unwrap();
    let example = doc.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n{}",
        example.replace("http://127.0.0.1:3000", &format!("http://{upstream}"))
    )
}
