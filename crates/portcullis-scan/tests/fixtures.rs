//! Each passive check's pass case and fail case against small real servers
//! on 127.0.0.1:0 (raw HTTP/1.1 over TCP, and TLS with a test CA), and the
//! targets that must end the scan with a clear error: unreachable,
//! resetting, silent.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_scan::{Grade, Options, Outcome, Report, ScanError, scan};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a fixture sees of a request.
struct Seen {
    method: String,
    path: String,
    head: String,
    origin: Option<String>,
}

type Handler = fn(&Seen) -> String;

async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.ok()?;
    Some(Seen { method, path, origin: header("origin"), head })
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, handler: Handler) {
    if let Some(seen) = read_head(&mut s).await {
        let _ = s.write_all(handler(&seen).as_bytes()).await;
        let _ = s.shutdown().await;
    }
}

/// A plain-HTTP fixture answering every request with `handler`.
async fn serve(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(answer(tcp, handler));
        }
    });
    addr
}

fn response(status: &str, headers: &[String], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

const HELMET: &[&str] = &[
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Opener-Policy: same-origin",
    "Cross-Origin-Resource-Policy: same-origin",
    "Origin-Agent-Cluster: ?1",
    "Referrer-Policy: no-referrer",
    "X-Content-Type-Options: nosniff",
    "X-DNS-Prefetch-Control: off",
    "X-Download-Options: noopen",
    "X-Frame-Options: DENY",
    "X-Permitted-Cross-Domain-Policies: none",
    "X-XSS-Protection: 0",
    "Strict-Transport-Security: max-age=31536000; includeSubDomains",
];

/// Everything the checklist asks: helmet headers, JSON errors, TRACE
/// refused, CORS for one listed origin only, a flagged cookie.
fn careful(seen: &Seen) -> String {
    let mut h: Vec<String> = HELMET.iter().map(|s| s.to_string()).collect();
    h.push("Content-Type: application/json".into());
    h.push("Set-Cookie: sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax".into());
    if seen.origin.as_deref() == Some("https://app.example.test") {
        h.push("Access-Control-Allow-Origin: https://app.example.test".into());
        h.push("Vary: Origin".into());
    }
    match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api") => response("200 OK", &h, "{\"ok\":true}"),
        ("GET", _) => response("404 Not Found", &h, "{\"error\":\"not_found\",\"request_id\":\"r1\"}"),
        _ => response("405 Method Not Allowed", &h, "{\"error\":\"method_not_allowed\"}"),
    }
}

/// The mistakes: no headers, X-Powered-By, a reflected credentialed
/// origin, a bare cookie, TRACE echoed, stack traces in HTML errors.
fn careless(seen: &Seen) -> String {
    let mut h = vec!["X-Powered-By: Express".to_owned(), "Server: nginx/1.22.1".to_owned()];
    if let Some(o) = &seen.origin {
        h.push(format!("Access-Control-Allow-Origin: {o}"));
        h.push("Access-Control-Allow-Credentials: true".into());
    }
    h.push("Set-Cookie: connect.sid=s%3Aabc; Path=/".into());
    match (seen.method.as_str(), seen.path.as_str()) {
        ("TRACE", _) => response("200 OK", &["Content-Type: message/http".into()], &seen.head),
        ("GET", "/api") => response("200 OK", &h, "{\"ok\":true}"),
        (m, p) => {
            h.push("Content-Type: text/html".into());
            let page = format!(
                "<pre>Cannot {m} {p}<br> &nbsp;at next (/home/app/node_modules/express/lib/router/index.js:280:10)</pre>"
            );
            response("404 Not Found", &h, &page)
        }
    }
}

fn outcome(report: &Report, id: &str) -> Outcome {
    report.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no {id}")).outcome
}

#[tokio::test]
async fn careful_target_passes_every_passive_check() {
    let addr = serve(careful).await;
    let report = scan(&Options::new(&format!("http://{addr}/api")).unwrap()).await.unwrap();
    for f in &report.findings {
        assert!(matches!(f.outcome, Outcome::Pass | Outcome::Skip), "{}: {:?} {}", f.id, f.outcome, f.detail);
    }
    // Over loopback HTTP, C1 and C2 are not graded; everything else passes.
    assert_eq!(outcome(&report, "https"), Outcome::Skip);
    assert_eq!(outcome(&report, "cookies"), Outcome::Pass);
    assert_eq!(outcome(&report, "cors"), Outcome::Pass);
    assert_eq!((report.score, report.grade), (100, Grade::APlus));
}

#[tokio::test]
async fn careless_target_fails_each_check_with_evidence() {
    let addr = serve(careless).await;
    let options = Options {
        headers: vec![("Authorization".into(), "Bearer scan-secret-token".into())],
        ..Options::new(&format!("http://{addr}/api")).unwrap()
    };
    let report = scan(&options).await.unwrap();
    for (id, want) in [
        ("csp", Outcome::Fail),                    // C7
        ("x-content-type-options", Outcome::Fail), // C5
        ("x-frame-options", Outcome::Fail),        // C5
        ("x-powered-by", Outcome::Fail),           // C6
        ("server-banner", Outcome::Warn),          // C6
        ("cors", Outcome::Fail),                   // C8
        ("cookies", Outcome::Fail),                // C9
        ("error-format", Outcome::Warn),           // C19
        ("trace", Outcome::Fail),                  // C21
        ("error-leak", Outcome::Fail),             // C29
    ] {
        assert_eq!(outcome(&report, id), want, "{id}");
    }
    assert_eq!(report.grade, Grade::F);
    for f in report.findings.iter().filter(|f| f.outcome == Outcome::Fail) {
        assert!(!f.evidence.is_empty() && !f.fix.is_empty(), "{} has no evidence or fix", f.id);
    }
    // The token sent with every request and the cookie's value never reach
    // the report, in any format.
    for out in [
        portcullis_scan::render::json(&report),
        portcullis_scan::render::sarif(&report),
        portcullis_scan::render::text(&report, false),
    ] {
        assert!(!out.contains("scan-secret-token") && !out.contains("s%3Aabc"), "{out}");
        assert!(out.contains("Authorization: ***"));
    }
}

struct Certs {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn certs() -> Certs {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    Certs { ca_pem: cert.pem(), acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) }
}

async fn serve_tls(acceptor: tokio_rustls::TlsAcceptor, handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer(tls, handler).await;
                }
            });
        }
    });
    addr
}

fn redirect(seen: &Seen) -> String {
    // The test's HTTPS port is not known to a fn pointer; any https:// on
    // the same host is what the check asks for.
    response("308 Permanent Redirect", &[format!("Location: https://localhost{}", seen.path)], "")
}

fn plain_ok(_: &Seen) -> String {
    response("200 OK", &["Content-Type: application/json".into()], "{}")
}

#[tokio::test]
async fn c1_c2_https_with_hsts_and_the_plain_http_redirect() {
    let c = certs();
    let tls = serve_tls(c.acceptor.clone(), careful).await;
    let plain = serve(redirect).await;
    let options = Options {
        ca_pem: Some(c.ca_pem.clone().into_bytes()),
        http_port: plain.port(),
        ..Options::new(&format!("https://localhost:{}/api", tls.port())).unwrap()
    };
    let report = scan(&options).await.unwrap();
    assert_eq!(outcome(&report, "https"), Outcome::Pass);
    assert_eq!(outcome(&report, "https-redirect"), Outcome::Pass);
    assert_eq!(outcome(&report, "hsts"), Outcome::Pass);
    assert_eq!(report.grade, Grade::APlus);

    // Plain HTTP serving the API instead of redirecting fails C1.
    let serving = serve(plain_ok).await;
    let options = Options { http_port: serving.port(), ..options };
    let report = scan(&options).await.unwrap();
    assert_eq!(outcome(&report, "https-redirect"), Outcome::Fail);

    // No HSTS on HTTPS fails C2; a public host over plain HTTP fails C1.
    let no_hsts = serve_tls(c.acceptor.clone(), careless).await;
    let options = Options {
        ca_pem: Some(c.ca_pem.into_bytes()),
        ..Options::new(&format!("https://localhost:{}/api", no_hsts.port())).unwrap()
    };
    assert_eq!(outcome(&scan(&options).await.unwrap(), "hsts"), Outcome::Fail);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_error() {
    let c = certs();
    let tls = serve_tls(c.acceptor, careful).await;
    let err =
        scan(&Options::new(&format!("https://localhost:{}/api", tls.port())).unwrap()).await.unwrap_err();
    assert_eq!(err, ScanError::Unreachable("the TLS handshake failed".into()));
}

#[tokio::test]
async fn an_unreachable_host_a_resetting_host_and_a_silent_host_end_with_an_error() {
    // Nothing listens: the port of a listener just closed.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let err = scan(&Options::new(&format!("http://{gone}/")).unwrap()).await.unwrap_err();
    assert!(matches!(&err, ScanError::Unreachable(why) if why.contains("could not connect")), "{err}");

    // Accepts, then resets.
    let reset = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_addr = reset.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = reset.accept().await {
            // Linger 0 makes the close a reset; it does not block with 0.
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
            drop(tcp);
        }
    });
    let err = scan(&Options::new(&format!("http://{reset_addr}/")).unwrap()).await.unwrap_err();
    assert_eq!(err, ScanError::Unreachable("the connection closed before a response".into()));

    // Accepts and never answers: the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let options = Options {
        timeout: Duration::from_millis(300),
        ..Options::new(&format!("http://{silent_addr}/")).unwrap()
    };
    let err = scan(&options).await.unwrap_err();
    assert_eq!(err, ScanError::Unreachable("no answer within the timeout".into()));
}
