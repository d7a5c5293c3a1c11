//! ACME (C4, issue 17 item 4) against a real ACME server: Pebble, the
//! Let's Encrypt test CA (Debian package `pebble`, installed by
//! scripts/test), with `pebble-challtestsrv` as its DNS, so a test domain
//! resolves to 127.0.0.1. Issuance by TLS-ALPN-01 and by HTTP-01, renewal,
//! and the certificate seen by a real TLS client.
//!
//! Pebble's configuration takes port numbers, so free ports are picked at
//! run time (bound to 127.0.0.1:0, then released).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "api.portcullis.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_listening(addr: SocketAddr) {
    let poll = async {
        while TcpStream::connect(addr).await.is_err() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), poll).await.expect("the ACME test server did not start");
}

/// Pebble and its DNS, with a TLS certificate for Pebble's own HTTPS from
/// a CA of the test's (`ca.pem` in `dir`).
struct Pebble {
    _dns: Proc,
    _pebble: Proc,
    directory: String,
    management: SocketAddr,
    ca: rustls::pki_types::CertificateDer<'static>,
}

async fn pebble(dir: &Path, tls_port: u16, http_port: u16) -> Pebble {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();

    let (listen, mgmt, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{listen}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        // Ten days: shorter than renew_before, so a renewal is due at once.
        "certificateValidityPeriod": 864_000,
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let spawn = |cmd: &mut Command| {
        Proc(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble is needed (Debian: apt-get install pebble; scripts/test does)"),
        )
    };
    let dns_proc = spawn(Command::new("pebble-challtestsrv").args([
        "-dns01",
        &format!("127.0.0.1:{dns}"),
        "-management",
        &format!("127.0.0.1:{dns_mgmt}"),
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
    ]));
    wait_listening(([127, 0, 0, 1], dns_mgmt).into()).await;
    let pebble_proc = spawn(
        Command::new("pebble")
            .args([
                "-config",
                dir.join("pebble.json").to_str().unwrap(),
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0"),
    );
    wait_listening(([127, 0, 0, 1], listen).into()).await;
    wait_listening(([127, 0, 0, 1], mgmt).into()).await;
    Pebble {
        _dns: dns_proc,
        _pebble: pebble_proc,
        directory: format!("https://127.0.0.1:{listen}/dir"),
        management: ([127, 0, 0, 1], mgmt).into(),
        ca: ca.der().clone(),
    }
}

fn client_trusting(roots: &[CertificateDer<'static>], alpn: &[u8]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

/// Pebble's root for this run (regenerated at each launch), from its
/// management interface.
async fn pebble_root(p: &Pebble) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(p.management).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_trusting(std::slice::from_ref(&p.ca), b"http/1.1")));
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let pem = &text[text.find("-----BEGIN").unwrap()..];
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Connects with SNI = the test domain, trusting only `root`; returns the
/// served certificate and the stream.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> (CertificateDer<'static>, tokio_rustls::client::TlsStream<TcpStream>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_trusting(std::slice::from_ref(root), b"http/1.1")));
    let tls = connector.connect(ServerName::try_from(DOMAIN).unwrap(), tcp).await.expect("handshake");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (leaf, tls)
}

async fn readyz_until_ready(admin: SocketAddr) {
    let poll = async {
        loop {
            let (res, body) = get(admin, "/readyz").await;
            if res.status() == 200 {
                return;
            }
            assert_eq!(json(&body)["reasons"], serde_json::json!(["no_certificate"]));
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), poll).await.expect("no certificate was issued");
}

/// A gateway on `tls` with `[server.tls.acme]` on Pebble; `server` and
/// `acme` add keys to those sections.
fn config(
    dir: &Path,
    pebble: &Pebble,
    tls: u16,
    server: &str,
    acme: &str,
    up: SocketAddr,
) -> portcullis_gateway::config::Config {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:{tls}\"\n{server}[server.tls.acme]\n{acme}domains = [\"{DOMAIN}\"]\ncontact = [\"mailto:ops@portcullis.test\"]\ndirectory = \"{}\"\nca_root = \"ca.pem\"\n[upstream]\nurl = \"http://{up}\"\n{PUBLIC_CATCH_ALL}",
        pebble.directory
    );
    portcullis_gateway::config::from_str(&text, dir, &|_| None).unwrap_or_else(|p| panic!("{p}"))
}

/// Pebble, and the gateway on the ports Pebble validates against (its TLS
/// listener, and with `redirect` its plain one). Pebble must be told those
/// ports before the gateway binds them, so they are found free first; when
/// another process takes one in between, the bind fails with `AddrInUse`
/// and the pair is started again on new ports (the CI run of 2026-12-04 hit
/// it while another build ran).
async fn pebble_and_gateway(
    dir: &Path,
    upstream: SocketAddr,
    redirect: bool,
    acme: &str,
) -> (Pebble, portcullis_gateway::config::Config, portcullis_gateway::server::Running) {
    let mut attempts = 0;
    loop {
        let (tls_port, http_port) = (free_port(), free_port());
        let p = pebble(dir, tls_port, http_port).await;
        let extra =
            if redirect { format!("redirect_http = \"127.0.0.1:{http_port}\"\n") } else { String::new() };
        let cfg = config(dir, &p, tls_port, &extra, acme, upstream);
        match portcullis_gateway::server::start(&cfg).await {
            Ok(gw) => return (p, cfg, gw),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 5 => attempts += 1,
            Err(e) => panic!("the gateway did not start: {e}"),
        }
    }
}

// TLS-ALPN-01: the CA validates on the TLS listener itself; the issued
// certificate is served, its files are private, a restart reuses them, and
// a due renewal replaces the certificate without closing an open connection.
#[tokio::test(flavor = "multi_thread")]
async fn c4_acme_tls_alpn_01_issues_serves_and_renews() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let (p, cfg, gw) = pebble_and_gateway(dir.path(), up.addr, false, "").await;
    readyz_until_ready(gw.admin_addr.unwrap()).await;

    let root = pebble_root(&p).await;
    let (first, stream) = connect(gw.addr, &root).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = || Request::get("/x").header("host", DOMAIN).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);

    let cache = dir.path().join("acme");
    for f in ["account.json", "cert.pem", "key.pem"] {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(cache.join(f)).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{f} must be private to the owner");
    }

    // A second manager on the same cache (a restart) serves the cached
    // certificate without asking the CA.
    let acme = cfg.server.tls.as_ref().unwrap().acme.clone().unwrap();
    assert!(portcullis_gateway::acme::Acme::new(acme.settings().clone()).has_certificate());

    // Ten-day certificates and renew_before 30 days: the renewal is due. The
    // gateway's manager renews; the next handshake shows the new
    // certificate while the connection opened before still answers.
    assert!(acme.renew_if_due().await.unwrap(), "a due renewal must issue");
    let (second, _) = connect(gw.addr, &root).await;
    assert_ne!(first, second, "the renewed certificate must be served");
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);
}

// HTTP-01: the CA fetches the key authorization from the plain listener
// (server.redirect_http), which still redirects everything else.
#[tokio::test(flavor = "multi_thread")]
async fn c4_acme_http_01_on_the_redirect_listener() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let (p, _cfg, gw) = pebble_and_gateway(dir.path(), up.addr, true, "challenge = \"http-01\"\n").await;
    readyz_until_ready(gw.admin_addr.unwrap()).await;
    let root = pebble_root(&p).await;
    let (leaf, _) = connect(gw.addr, &root).await;
    assert!(!leaf.is_empty());
    // Everything else on the plain listener is still a redirect, unknown
    // tokens included.
    let (res, _) = get(gw.redirect_addr.unwrap(), "/.well-known/acme-challenge/unknown").await;
    assert_eq!(res.status(), 301);
}
