//! TLS termination and redirect (C1), HSTS over HTTPS (C2), HTTP/2 by ALPN.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

struct Certs {
    dir: tempfile::TempDir,
    cert_der: rustls::pki_types::CertificateDer<'static>,
}

fn certs() -> Certs {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    Certs { dir, cert_der: cert.der().clone() }
}

async fn tls_gateway(
    up: std::net::SocketAddr,
    certs: &Certs,
    redirect: bool,
) -> portcullis_gateway::server::Running {
    tls_gateway_with(up, certs, if redirect { "redirect_http = \"127.0.0.1:0\"\n" } else { "" }).await
}

async fn tls_gateway_with(
    up: std::net::SocketAddr,
    certs: &Certs,
    redirect: &str,
) -> portcullis_gateway::server::Running {
    portcullis_gateway::server::start(&tls_config(up, certs, redirect)).await.unwrap()
}

/// The configuration of [`tls_gateway_with`], read (with its certificate
/// files) from `certs.dir`.
fn tls_config(up: std::net::SocketAddr, certs: &Certs, redirect: &str) -> portcullis_gateway::config::Config {
    let text = format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n{redirect}[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[upstream]\nurl = \"http://{up}\"\n{}",
        common::PUBLIC_CATCH_ALL
    );
    portcullis_gateway::config::from_str(&text, certs.dir.path(), &|_| None).unwrap()
}

fn client_config(
    certs: &Certs,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.cert_der.clone()).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

async fn connect(
    addr: std::net::SocketAddr,
    cfg: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn c1_tls12_and_tls13_handshakes_with_modern_suites() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway(up.addr, &c, false).await;
    for (versions, want) in [
        (&[&rustls::version::TLS12][..], rustls::ProtocolVersion::TLSv1_2),
        (&[&rustls::version::TLS13][..], rustls::ProtocolVersion::TLSv1_3),
    ] {
        let stream = connect(gw.addr, client_config(&c, versions, &[b"http/1.1"])).await.unwrap();
        let (_, conn) = stream.get_ref();
        assert_eq!(conn.protocol_version(), Some(want));
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(suite.contains("GCM") || suite.contains("CHACHA20"), "{suite}");
        assert!(!suite.contains("CBC"));
    }
}

/// Runs `openssl s_client` (an independent TLS stack that still speaks the
/// legacy protocols and suites) and says whether a session was established.
fn openssl_handshake(addr: std::net::SocketAddr, args: &[&str]) -> bool {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is needed for the legacy-TLS tests (Debian package openssl)");
    let text = String::from_utf8_lossy(&out.stdout);
    // A completed handshake prints the negotiated cipher.
    text.contains("Cipher is ") && !text.contains("Cipher is (NONE)")
}

#[tokio::test(flavor = "multi_thread")]
async fn c1_legacy_protocols_and_weak_suites_are_refused() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway(up.addr, &c, false).await;
    let addr = gw.addr;
    let results = tokio::task::spawn_blocking(move || {
        [
            (
                "tls1.2 ECDHE-ECDSA-AES128-GCM",
                openssl_handshake(addr, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
                true,
            ),
            ("tls1.3", openssl_handshake(addr, &["-tls1_3"]), true),
            ("tls1.1", openssl_handshake(addr, &["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"]), false),
            ("tls1.0", openssl_handshake(addr, &["-tls1", "-cipher", "ALL:@SECLEVEL=0"]), false),
            (
                "tls1.2 CBC",
                openssl_handshake(
                    addr,
                    &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"],
                ),
                false,
            ),
            (
                "tls1.2 no forward secrecy",
                openssl_handshake(addr, &["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384"]),
                false,
            ),
        ]
    })
    .await
    .unwrap();
    for (name, got, want) in results {
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn c2_hsts_over_https_and_http2_by_alpn() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway(up.addr, &c, false).await;

    // HTTP/1.1 over TLS.
    let stream =
        connect(gw.addr, client_config(&c, &[&rustls::version::TLS13], &[b"http/1.1"])).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let res = sender
        .send_request(Request::get("/ok").header("host", "localhost").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, _) = res.into_parts();
    let res = http::Response::from_parts(parts, ());
    assert_eq!(res.status(), 200);
    assert_helmet(&res, true);

    // HTTP/2 negotiated by ALPN; errors from the upstream still replaced.
    let stream = connect(gw.addr, client_config(&c, &[&rustls::version::TLS13], &[b"h2"])).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    for (path, status) in [("/ok", 200), ("/crash", 500), ("/%2e%2e/x", 400)] {
        let req = Request::get(format!("https://localhost{path}")).body(Full::new(Bytes::new())).unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert_eq!(res.status(), status, "{path}");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        assert_no_leak(&body);
        assert_helmet(&http::Response::from_parts(parts, ()), true);
    }
}

#[tokio::test]
async fn c1_http_redirects_to_https() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway(up.addr, &c, true).await;
    let port = gw.addr.port();
    let raddr = gw.redirect_addr.unwrap();
    let (res, _) = send(
        raddr,
        Request::get("/a/b?x=1").header("host", "example.com:8080").body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], format!("https://example.com:{port}/a/b?x=1"));
    assert!(res.headers().get("strict-transport-security").is_none());
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    // A Host that can't be a host name gets 400, not a redirect to it.
    let out = raw(raddr, b"GET / HTTP/1.1\r\nHost: evil.test/<x>\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

// C1 (issue 12 item 9): with `server.names`, the redirect listener is no
// open redirect: another Host gets 400, not a 301 to it.
#[tokio::test]
async fn c1_redirect_listener_only_for_server_names() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway_with(
        up.addr,
        &c,
        "redirect_http = \"127.0.0.1:0\"\nnames = [\"api.example.com\", \"www.example.com\"]\n",
    )
    .await;
    let raddr = gw.redirect_addr.unwrap();
    let port = gw.addr.port();
    for host in ["api.example.com", "API.Example.com:8080", "www.example.com"] {
        let req = Request::get("/x").header("host", host).body(Full::new(Bytes::new())).unwrap();
        let (res, _) = send(raddr, req).await;
        assert_eq!(res.status(), 301, "{host}");
        let want = format!("https://{}:{port}/x", host.split(':').next().unwrap());
        assert_eq!(res.headers()["location"], want.as_str());
    }
    for host in ["evil.test", "api.example.com.evil.test", "example.com", "evil.test:443"] {
        let req = Request::get("/x").header("host", host).body(Full::new(Bytes::new())).unwrap();
        let (res, body) = send(raddr, req).await;
        assert_eq!(res.status(), 400, "{host}");
        assert!(res.headers().get("location").is_none());
        assert_eq!(json(&body)["code"], "invalid_host");
    }
}

#[tokio::test]
async fn c1_plain_http_to_tls_port_gets_no_response() {
    let up = upstream().await;
    let c = certs();
    let gw = tls_gateway(up.addr, &c, false).await;
    let out = raw(gw.addr, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(!out.contains("200"), "{out}");
}

// C4 (issue 17): new certificate files and a reload: a new connection is
// served the new certificate, a connection opened before keeps working.
#[tokio::test]
async fn c4_certificate_rotation_by_reload_is_seen_by_a_real_tls_client() {
    let up = upstream().await;
    let old = certs();
    let gw = tls_gateway(up.addr, &old, false).await;
    let new = certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(old.cert_der.clone()).unwrap();
    roots.add(new.cert_der.clone()).unwrap();
    let mut trusts_both =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    trusts_both.alpn_protocols = vec![b"http/1.1".to_vec()];
    let served = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };

    let before = connect(gw.addr, trusts_both.clone()).await.unwrap();
    assert_eq!(served(&before), old.cert_der);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(before)).await.unwrap();
    tokio::spawn(conn);
    let req =
        || Request::builder().uri("/x").header("host", "localhost").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);

    // The files are replaced in place, as certbot or a mounted secret does.
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(new.dir.path().join(f), old.dir.path().join(f)).unwrap();
    }
    gw.reload(&tls_config(up.addr, &old, "")).await.unwrap();

    let after = connect(gw.addr, trusts_both).await.unwrap();
    assert_eq!(served(&after), new.cert_der, "a new connection must get the new certificate");
    let res = sender.send_request(req()).await.expect("the connection opened before the reload was dropped");
    assert_eq!(res.status(), 200);
}
