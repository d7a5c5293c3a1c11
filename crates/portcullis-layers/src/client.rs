//! Who is the client? Trusted-proxy resolution done once (C3).
//!
//! The socket peer is the client unless the peer is a configured trusted proxy.
//! Then `X-Forwarded-For` is walked from the right, skipping trusted proxies;
//! the first address that is not trusted is the client. A malformed entry stops
//! the walk at the nearest trusted hop, so garbage never becomes an identity.
//! `X-Forwarded-Proto` is honoured only from a trusted peer as well.
//!
//! Every later decision (rate-limit keys, logs, forwarded headers, HSTS) reads
//! the [`ClientInfo`] this layer stores; nothing else parses those headers.

use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request};
use ipnet::IpNet;
use tower::{Layer, Service};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Facts about the connection a request came in on, set by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The socket peer.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub https: bool,
}

/// The resolved client of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client address.
    pub ip: IpAddr,
    /// Whether the client used HTTPS (to us, or to the trusted proxy in front).
    pub https: bool,
    /// Whether the socket peer is a trusted proxy.
    pub peer_trusted: bool,
}

/// An address as text, as its `Display` writes it; IPv4 without
/// `core::fmt` (it is written into several headers and keys of every
/// request: issue 16).
pub fn ip_text(ip: IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip_text(&mut s, ip);
    s
}

/// [`ip_text`], appended to `s`.
pub fn push_ip_text(s: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    s.push(char::from(b'0' + o / 10 % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(s, "{v6}");
        }
    }
}

/// The set of trusted proxy networks.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// No trusted proxies: the socket peer is always the client.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Trusts these networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies { nets: nets.into_iter().collect() }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The trusted networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Resolves the client of a request from its peer and headers.
    pub fn resolve(&self, peer: &PeerAddr, headers: &HeaderMap) -> ClientInfo {
        let peer_ip = peer.addr.ip().to_canonical();
        if !self.contains(peer_ip) {
            return ClientInfo { ip: peer_ip, https: peer.https, peer_trusted: false };
        }
        let mut client = peer_ip;
        let mut entries: Vec<&str> = Vec::new();
        for v in headers.get_all(X_FORWARDED_FOR) {
            match v.to_str() {
                Ok(s) => entries.extend(s.split(',')),
                // Non-ASCII in the chain: stop at the peer.
                Err(_) => entries.clear(),
            }
        }
        for entry in entries.iter().rev() {
            match parse_forwarded_ip(entry) {
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        let https = match headers.get(X_FORWARDED_PROTO).and_then(|v| v.to_str().ok()) {
            Some(v) => match v.split(',').next().map(str::trim) {
                Some(p) if p.eq_ignore_ascii_case("https") => true,
                Some(p) if p.eq_ignore_ascii_case("http") => false,
                _ => peer.https,
            },
            None => peer.https,
        };
        ClientInfo { ip: client, https, peer_trusted: true }
    }
}

/// Parses one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:80`.
pub fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = e.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = e.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical())
}

/// Resolves [`ClientInfo`] from the [`PeerAddr`] extension, and removes the
/// headers some framework would read as the client's address, URL or
/// method ([`crate::forwarded::strip_spoofable`]: the whole family from an
/// untrusted peer, URL and method overrides from anyone), so that neither a
/// later layer nor the application behind can be fooled by them (C3 C23).
///
/// `PeerAddr` is a required extension: the server inserts it (an axum app
/// inserts it from `ConnectInfo`). A request without one is refused with
/// `500 internal` and an error is logged once, rather than putting every
/// client in one `0.0.0.0` bucket (one rate limit for the whole world).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ClientInfoLayer {
    trusted: std::sync::Arc<TrustedProxies>,
}

impl ClientInfoLayer {
    /// Uses these trusted proxies.
    pub fn new(trusted: TrustedProxies) -> Self {
        ClientInfoLayer { trusted: std::sync::Arc::new(trusted) }
    }
}

impl<S> Layer<S> for ClientInfoLayer {
    type Service = ClientInfoService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientInfoService { inner, trusted: self.trusted.clone() }
    }
}

/// The service of [`ClientInfoLayer`].
#[derive(Clone, Debug)]
pub struct ClientInfoService<S> {
    inner: S,
    trusted: std::sync::Arc<TrustedProxies>,
}

impl<S, B, ResBody> Service<Request<B>> for ClientInfoService<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: From<bytes::Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = crate::future::OrReject<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(peer) = req.extensions().get::<PeerAddr>().copied() else {
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::error!(
                    "ClientInfoLayer: request without the PeerAddr extension; insert it where connections are accepted (refusing with 500)"
                );
            }
            let res = crate::rejection::reject(&req, crate::rejection::RejectionKind::Internal);
            return crate::future::OrReject::Rejected { res: Some(res) };
        };
        let info = self.trusted.resolve(&peer, req.headers());
        crate::forwarded::strip_spoofable(req.headers_mut(), info.peer_trusted);
        req.extensions_mut().insert(info);
        crate::future::OrReject::Inner { fut: self.inner.call(req) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_writes_what_display_writes() {
        for o in 0..=255u8 {
            for ip in [[o, 0, 0, 0], [1, o, 2, 3], [10, 20, o, 30], [255, 255, 255, o], [o, o, o, o]] {
                let ip = IpAddr::from(ip);
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        for v6 in ["::1", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1:2:3:4"] {
            let ip: IpAddr = v6.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()])
    }

    fn resolve(peer: &str, xff: &[&str], xfp: Option<&str>) -> ClientInfo {
        let lines: Vec<&[u8]> = xff.iter().map(|v| v.as_bytes()).collect();
        resolve_bytes(peer, false, &lines, xfp)
    }

    /// Header lines as raw bytes: `HeaderValue::from_bytes` takes obs-text
    /// (0x80-0xFF), which is what arrives from the wire.
    fn resolve_bytes(peer: &str, tls: bool, xff: &[&[u8]], xfp: Option<&str>) -> ClientInfo {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, http::HeaderValue::from_bytes(v).unwrap());
        }
        if let Some(p) = xfp {
            h.insert(X_FORWARDED_PROTO, p.parse().unwrap());
        }
        let addr = SocketAddr::new(peer.parse().unwrap(), 1234);
        trusted().resolve(&PeerAddr { addr, https: tls }, &h)
    }

    /// C3: a line that is not ASCII breaks the chain where it stands. The
    /// entries written before it (further from us, as unverifiable as the
    /// garbage) are dropped; a spoofer can't hide `6.6.6.6` behind a broken
    /// line and have it believed.
    #[test]
    fn c3_non_ascii_line_resets_the_chain() {
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"6.6.6.6", b"\xff"], "10.0.0.2"),
            (&[b"6.6.6.6", b"1.2.3.4\xe9"], "10.0.0.2"),
            (&[b"6.6.6.6", b"\xc3\xa9, 10.1.1.1"], "10.0.0.2"),
            (&[b"6.6.6.6, 10.5.5.5", b"\x80"], "10.0.0.2"),
            // Entries after the broken line come from nearer hops: kept.
            (&[b"6.6.6.6", b"\xff", b"198.51.100.7"], "198.51.100.7"),
            (&[b"\xff", b"10.3.3.3"], "10.3.3.3"),
            (&[b"\xff", b"6.6.6.6, 10.3.3.3"], "6.6.6.6"),
        ];
        for (xff, want) in cases {
            let got = resolve_bytes("10.0.0.2", false, xff, None);
            assert_eq!(got.ip, want.parse::<IpAddr>().unwrap(), "xff {xff:?}");
            assert!(got.peer_trusted);
        }
        // From an untrusted peer nothing is read, broken or not.
        assert_eq!(
            resolve_bytes("203.0.113.9", false, &[b"\xff", b"6.6.6.6"], None).ip.to_string(),
            "203.0.113.9"
        );
    }

    /// C3: `X-Forwarded-Proto` from a trusted proxy wins in both directions
    /// (a TLS hop inside the trust boundary may carry plain HTTP from the
    /// client); from an untrusted peer the connection decides.
    #[test]
    fn c3_proto_from_a_trusted_tls_peer() {
        assert!(!resolve_bytes("10.0.0.2", true, &[], Some("http")).https);
        assert!(resolve_bytes("10.0.0.2", true, &[], None).https);
        assert!(resolve_bytes("10.0.0.2", true, &[], Some("gopher")).https);
        assert!(resolve_bytes("203.0.113.9", true, &[], Some("http")).https);
        assert!(!resolve_bytes("203.0.113.9", false, &[], Some("https")).https);
    }

    /// The service, run: without `PeerAddr` it refuses (500, JSON) and the
    /// inner service is never called, rather than resolving everyone to one
    /// `0.0.0.0` client; with it, `ClientInfo` is set and spoofable headers
    /// from an untrusted peer are gone before the inner service runs.
    #[tokio::test]
    async fn c3_service_requires_peer_addr_and_strips_for_the_inner_service() {
        use tower::ServiceExt;
        let (seen, inner) = crate::test_util::recording(|req: &Request<crate::body::Body>| {
            (req.extensions().get::<ClientInfo>().copied(), req.headers().clone())
        });
        let svc = ClientInfoLayer::new(trusted()).layer(inner);
        let req = |peer: Option<&str>| {
            let mut r = Request::builder()
                .uri("/x")
                .header(X_FORWARDED_FOR, "6.6.6.6")
                .header(X_REAL_IP, "6.6.6.6")
                .body(crate::body::Body::empty())
                .unwrap();
            if let Some(p) = peer {
                r.extensions_mut()
                    .insert(PeerAddr { addr: SocketAddr::new(p.parse().unwrap(), 1), https: false });
            }
            r
        };
        let res = svc.clone().oneshot(req(None)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers()[http::header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
        assert!(seen.lock().unwrap().is_empty(), "the inner service ran without a peer address");

        let res = svc.clone().oneshot(req(Some("203.0.113.9"))).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::OK);
        let res = svc.oneshot(req(Some("10.0.0.2"))).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::OK);
        let seen = seen.lock().unwrap();
        let (info, headers) = &seen[0];
        assert_eq!(info.unwrap().ip.to_string(), "203.0.113.9");
        assert!(!info.unwrap().peer_trusted);
        assert!(headers.get(X_FORWARDED_FOR).is_none() && headers.get(X_REAL_IP).is_none(), "{headers:?}");
        let (info, _) = &seen[1];
        assert_eq!(info.unwrap().ip.to_string(), "6.6.6.6");
        assert!(info.unwrap().peer_trusted);
    }

    #[test]
    fn back_pressure_passes_through() {
        use crate::test_util::{NotReady, is_ready};
        assert!(!is_ready(&mut ClientInfoLayer::new(trusted()).layer(NotReady)));
    }

    #[test]
    fn trusted_networks_are_kept() {
        let t = TrustedProxies::new(["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        let nets: Vec<String> = t.nets().iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "fd00::/8"]);
        assert!(TrustedProxies::none().nets().is_empty());
        assert!(t.contains("10.200.0.1".parse().unwrap()) && !t.contains("11.0.0.1".parse().unwrap()));
    }

    // C3: a table of spoofing attempts and honest chains.
    #[test]
    fn c3_resolution_table() {
        let cases: &[(&str, &[&str], &str)] = &[
            // untrusted peer: headers are ignored entirely
            ("203.0.113.9", &["1.1.1.1"], "203.0.113.9"),
            ("203.0.113.9", &["10.0.0.1"], "203.0.113.9"),
            // trusted peer: right-most untrusted
            ("10.0.0.2", &["198.51.100.7"], "198.51.100.7"),
            ("10.0.0.2", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            ("10.0.0.2", &["6.6.6.6, 198.51.100.7, 10.1.1.1"], "198.51.100.7"),
            ("10.0.0.2", &["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
            // garbage stops at the nearest trusted hop
            ("10.0.0.2", &["6.6.6.6, garbage"], "10.0.0.2"),
            ("10.0.0.2", &["6.6.6.6, garbage, 10.9.9.9"], "10.9.9.9"),
            ("10.0.0.2", &[""], "10.0.0.2"),
            // whole chain trusted: the left-most
            ("10.0.0.2", &["10.3.3.3, 10.4.4.4"], "10.3.3.3"),
            // ports and brackets
            ("10.0.0.2", &["198.51.100.7:4711"], "198.51.100.7"),
            ("10.0.0.2", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.2", &["2001:db8::1"], "2001:db8::1"),
            // IPv4-mapped peers are treated as IPv4
            ("::ffff:10.0.0.2", &["198.51.100.7"], "198.51.100.7"),
            ("::ffff:203.0.113.9", &["198.51.100.7"], "203.0.113.9"),
        ];
        for (peer, xff, want) in cases {
            let got = resolve(peer, xff, None);
            assert_eq!(got.ip, want.parse::<IpAddr>().unwrap(), "peer {peer} xff {xff:?}");
        }
    }

    #[test]
    fn c3_proto_only_from_trusted_peer() {
        assert!(!resolve("203.0.113.9", &[], Some("https")).https);
        assert!(resolve("10.0.0.2", &[], Some("https")).https);
        assert!(resolve("10.0.0.2", &[], Some("HTTPS, http")).https);
        assert!(!resolve("10.0.0.2", &[], Some("gopher")).https);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(xff in ".{0,200}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&xff) {
                h.insert(X_FORWARDED_FOR, v);
            }
            let addr = SocketAddr::from(([10, 0, 0, 1], 1));
            let _ = trusted().resolve(&PeerAddr { addr, https: false }, &h);
        }

        /// Every byte a header value can hold (visible ASCII, space, tab,
        /// obs-text 0x80-0xFF), over several lines: never a panic, and a
        /// client address is always either the peer or an address that
        /// appears in the lines after the last non-ASCII one.
        #[test]
        fn raw_header_bytes_never_panic_or_invent_addresses(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![0x20u8..0x7f, proptest::strategy::Just(b'\t'), 0x80u8..=0xff, proptest::strategy::Just(b','), proptest::strategy::Just(b'.'), 0x30u8..0x3a],
                    0..40,
                ),
                0..4,
            )
        ) {
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let got = resolve_bytes("10.0.0.2", false, &refs, None);
            let after_last_bad = lines.iter().rposition(|l| !l.is_ascii()).map_or(0, |i| i + 1);
            let visible: Vec<IpAddr> = lines[after_last_bad..]
                .iter()
                .flat_map(|l| std::str::from_utf8(l).unwrap().split(','))
                .filter_map(parse_forwarded_ip)
                .collect();
            let peer: IpAddr = "10.0.0.2".parse().unwrap();
            proptest::prop_assert!(got.ip == peer || visible.contains(&got.ip), "{:?} -> {}", lines, got.ip);
        }
    }
}
