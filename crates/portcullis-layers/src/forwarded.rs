//! Header rewriting at the proxy boundary (C3, C21, C23).
//!
//! Requests: hop-by-hop headers are removed, including every header the client
//! names in `Connection`, except the protected ones a client must never be able
//! to drop that way (the forwarding family, `Host`, the request id). Headers
//! that some framework reads as the client's address, scheme, port, URL or
//! method ([`CLIENT_CLAIMS`], [`ALWAYS_STRIPPED`]) are removed in every
//! spelling ([`strip_spoofable`], called by the client layer at the start
//! of the onion). Then `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and `Forwarded` are
//! written from the resolved [`ClientInfo`]: a client's own values are
//! overwritten unless the peer is a trusted proxy, whose chain is extended.
//!
//! Protocol upgrades: only WebSocket ([`wants_websocket`]) may pass, and only
//! where the route opts in; every other `Upgrade` (h2c above all, which would
//! open a raw channel past every policy) is removed with `HTTP2-Settings`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::client::{
    ClientInfo, PeerAddr, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP, ip_text,
};

/// Hop-by-hop headers of RFC 9110 section 7.6.1 plus the non-standard ones.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// [`HOP_BY_HOP`] as header names: removing by a `&str` parses the name
/// again on every request (docs/performance.md).
static HOP_BY_HOP_NAMES: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Request headers that some framework or library reads as the client's
/// address, scheme, port or URL prefix (Express's `request-ip` reads
/// `X-Client-IP` first, Spring `X-Forwarded-Prefix`, Traefik
/// `X-Forwarded-Uri`). Removed in every spelling (case, `_` for `-`) unless
/// the peer is a trusted proxy; spellings with `_` are removed always (CGI
/// and WSGI servers read `X_Client_IP` as `X-Client-IP`). The list in
/// `docs/configuration.md` is tested against this one.
pub const CLIENT_CLAIMS: &[&str] = &[
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-forwarded",
    "forwarded-for",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-url-scheme",
    "front-end-https",
    "proxy-client-ip",
    "wl-proxy-client-ip",
    "x-proxyuser-ip",
    "x-envoy-external-address",
];

/// Request headers removed in every spelling whatever the peer: URL and
/// method overrides (IIS, Symfony, Laravel, Express `method-override`) let
/// the upstream route a request as another path or method than the one the
/// policy decided on (C21, C28).
pub const ALWAYS_STRIPPED: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-override-url",
    "x-original-uri",
    "x-envoy-original-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The forwarding headers Portcullis writes itself: any other spelling of
/// them (`X_Forwarded_For`) is removed.
const FORWARDING: &[&str] =
    &["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"];

/// Whether two header names are spellings of one another: ASCII case
/// folded and `_` read as `-` (CGI and WSGI servers do both), the one rule
/// for every header Portcullis strips "in every spelling".
pub fn same_spelling(a: &str, b: &str) -> bool {
    let fold = |c: u8| if c == b'_' { b'-' } else { c.to_ascii_lowercase() };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Removes [`ALWAYS_STRIPPED`], [`CLIENT_CLAIMS`] and the forwarding
/// headers (`X-Forwarded-*`, `X-Real-IP`, `Forwarded`) unless `peer_trusted`,
/// and the `_` spellings of all of them. An application behind the layer
/// (axum, or the upstream of the gateway, which writes its own forwarding
/// headers after this) never reads a client's claim about itself.
pub fn strip_spoofable(headers: &mut HeaderMap, peer_trusted: bool) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for k in headers.keys() {
        let name = k.as_str();
        // Every listed name starts with one of these: skip the rest cheaply.
        if !matches!(name.as_bytes().first(), Some(b'x' | b't' | b'c' | b'f' | b'p' | b'w')) {
            continue;
        }
        let underscored = name.contains('_');
        let hit = ALWAYS_STRIPPED.iter().any(|n| same_spelling(name, n))
            || ((underscored || !peer_trusted) && CLIENT_CLAIMS.iter().any(|n| same_spelling(name, n)))
            || ((underscored || !peer_trusted) && FORWARDING.iter().any(|n| same_spelling(name, n)));
        if hit {
            doomed.push(k.clone());
        }
    }
    for name in doomed {
        headers.remove(&name);
    }
}

/// Headers that naming in `Connection` never removes.
pub const PROTECTED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// Removes hop-by-hop headers and those named in `Connection`.
///
/// `keep_upgrade` keeps `Upgrade` and sets `Connection: upgrade` (WebSocket
/// passthrough). `extra_protected` are further names that `Connection` can't
/// remove (identity headers set later).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, extra_protected: &[HeaderName]) {
    let mut named: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for token in s.split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes())
                && !PROTECTED.contains(&name.as_str())
                && !extra_protected.contains(&name)
            {
                named.push(name);
            }
        }
    }
    for name in named {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    let upgrade = if keep_upgrade { headers.remove(header::UPGRADE) } else { None };
    // One pass over the (few) fields present instead of ten lookups: most
    // requests carry none of these (issue 16).
    let mut present: Vec<HeaderName> = Vec::new();
    for k in headers.keys() {
        if HOP_BY_HOP_NAMES.contains(k) {
            present.push(k.clone());
        }
    }
    for name in present {
        headers.remove(name);
    }
    if let Some(up) = upgrade {
        headers.insert(header::UPGRADE, up);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether a request asks for any protocol switch: an `Upgrade` field, or
/// `upgrade` named in `Connection`. Such a request that is not passed as a
/// WebSocket gets `Connection: close`: the client may already be sending
/// the new protocol, which can't be read as HTTP.
pub fn asks_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) || connection_names_upgrade(headers)
}

fn connection_names_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// Whether a request is a WebSocket opening handshake (RFC 6455 section
/// 4.1): `GET` over HTTP/1.1, `Connection: upgrade` and exactly one
/// `Upgrade` field whose value is exactly `websocket`. Nothing else may be
/// upgraded (h2c, TLS, IRC: C21).
pub fn wants_websocket(method: &http::Method, version: http::Version, headers: &HeaderMap) -> bool {
    if method != http::Method::GET || version != http::Version::HTTP_11 || !connection_names_upgrade(headers)
    {
        return false;
    }
    let mut up = headers.get_all(header::UPGRADE).iter();
    match (up.next(), up.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    }
}

/// Writes the forwarding headers for the upstream request.
///
/// `host` is the host the client addressed (its `Host` header or the
/// authority of an HTTP/2 request).
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: &PeerAddr,
    client: &ClientInfo,
    host: Option<&HeaderValue>,
) {
    let peer_ip = peer.addr.ip().to_canonical();
    let peer_text = ip_text(peer_ip);
    let xff = if client.peer_trusted {
        let existing: Vec<&str> =
            headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        (!existing.is_empty()).then(|| format!("{}, {}", existing.join(", "), peer_text))
    } else {
        None
    };
    headers.remove(X_FORWARDED_FOR);
    if let Ok(v) = HeaderValue::from_str(xff.as_deref().unwrap_or(&peer_text)) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let proto = if client.https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));

    let trusted_xfh = if client.peer_trusted {
        let mut it = headers.get_all(X_FORWARDED_HOST).iter();
        match (it.next(), it.next()) {
            (Some(v), None) => Some(v.clone()),
            _ => None,
        }
    } else {
        None
    };
    headers.remove(X_FORWARDED_HOST);
    if let Some(h) = trusted_xfh.as_ref().or(host) {
        headers.insert(X_FORWARDED_HOST, h.clone());
    }

    // Usually the client is the peer: its address is formatted once.
    let client_ip = if client.ip == peer_ip { peer_text } else { ip_text(client.ip) };
    if let Ok(v) = HeaderValue::from_str(&client_ip) {
        headers.insert(X_REAL_IP, v);
    }
    // Written into one buffer, no `format!` (issue 16: every request).
    let mut fwd = String::with_capacity(64);
    fwd.push_str("for=");
    if client.ip.is_ipv6() {
        fwd.push_str("\"[");
        fwd.push_str(&client_ip);
        fwd.push_str("]\"");
    } else {
        fwd.push_str(&client_ip);
    }
    fwd.push_str(";proto=");
    fwd.push_str(proto);
    if let Some(h) = host.and_then(|h| h.to_str().ok())
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        fwd.push_str(";host=\"");
        fwd.push_str(h);
        fwd.push('"');
    }
    headers.remove(header::FORWARDED);
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(header::FORWARDED, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hop_by_hop_names_match_the_documented_list() {
        let names: Vec<&str> = HOP_BY_HOP_NAMES.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, HOP_BY_HOP);
    }

    #[test]
    fn hop_by_hop_and_connection_named_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-debug, close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-secret-debug", "1"),
            ("proxy-authorization", "Basic abc"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false, &[]);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    // C3: naming the forwarding family in Connection must not drop it.
    #[test]
    fn c3_connection_cannot_remove_protected() {
        let mut h = map(&[
            ("connection", "X-Forwarded-For, x-real-ip, forwarded, host, x-request-id, x-auth-subject"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
            ("host", "a"),
            ("x-request-id", "r"),
            ("x-auth-subject", "s"),
        ]);
        strip_hop_by_hop(&mut h, false, &[HeaderName::from_static("x-auth-subject")]);
        for k in ["x-forwarded-for", "x-real-ip", "forwarded", "host", "x-request-id", "x-auth-subject"] {
            assert!(h.contains_key(k), "{k} was removed");
        }
    }

    #[test]
    fn upgrade_is_kept_when_asked() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_websocket(&http::Method::GET, http::Version::HTTP_11, &h));
        strip_hop_by_hop(&mut h, true, &[]);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    // C21 C28: only a WebSocket handshake may switch protocols; h2c and the
    // rest are upgrade smuggling (a raw channel past every policy).
    type UpgradeCase<'a> = (&'a http::Method, http::Version, &'a [(&'a str, &'a str)], bool);

    #[test]
    fn c21_only_websocket_upgrades_table() {
        use http::{Method, Version};
        let cases: &[UpgradeCase<'_>] = &[
            (&Method::GET, Version::HTTP_11, &[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &Method::GET,
                Version::HTTP_11,
                &[("connection", "keep-alive, upgrade"), ("upgrade", "WebSocket")],
                true,
            ),
            (
                &Method::GET,
                Version::HTTP_11,
                &[("connection", "Upgrade, HTTP2-Settings"), ("upgrade", "h2c")],
                false,
            ),
            (
                &Method::GET,
                Version::HTTP_11,
                &[("connection", "Upgrade"), ("upgrade", "websocket, h2c")],
                false,
            ),
            (
                &Method::GET,
                Version::HTTP_11,
                &[("connection", "Upgrade"), ("upgrade", "h2c"), ("upgrade", "websocket")],
                false,
            ),
            (&Method::GET, Version::HTTP_11, &[("connection", "Upgrade"), ("upgrade", "TLS/1.2")], false),
            (&Method::GET, Version::HTTP_11, &[("upgrade", "websocket")], false),
            (&Method::POST, Version::HTTP_11, &[("connection", "Upgrade"), ("upgrade", "websocket")], false),
            (&Method::GET, Version::HTTP_10, &[("connection", "Upgrade"), ("upgrade", "websocket")], false),
        ];
        for (m, v, pairs, want) in cases {
            assert_eq!(wants_websocket(m, *v, &map(pairs)), *want, "{m} {v:?} {pairs:?}");
            assert!(asks_upgrade(&map(pairs)), "{pairs:?}");
        }
        assert!(asks_upgrade(&map(&[("connection", "upgrade")])));
        assert!(!asks_upgrade(&map(&[("connection", "keep-alive")])));
    }

    #[test]
    fn c21_h2c_upgrade_headers_are_stripped() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false, &[]);
        assert_eq!(names_of(&h), vec!["accept"]);
    }

    fn names_of(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        v.sort_unstable();
        v
    }

    // C3 C23: the client-address family from an untrusted peer, in every
    // spelling; URL and method overrides from anyone.
    #[test]
    fn c3_client_claims_stripped_from_untrusted_peers() {
        let attack = [
            ("X-Client-IP", "127.0.0.1"),
            ("True-Client-IP", "127.0.0.1"),
            ("CF-Connecting-IP", "127.0.0.1"),
            ("X-Cluster-Client-IP", "127.0.0.1"),
            ("X-Original-Forwarded-For", "127.0.0.1"),
            ("X_Client_IP", "127.0.0.1"),
            ("x-client_ip", "127.0.0.1"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Server", "internal"),
            ("X-Forwarded-Ssl", "on"),
            ("X-Forwarded-Uri", "/admin"),
            ("X-Forwarded-Prefix", "/admin"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X_Original_URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_http_method_override", "DELETE"),
            ("X_Forwarded_For", "127.0.0.1"),
            ("x_real_ip", "127.0.0.1"),
            ("accept", "*/*"),
            ("x-request-id", "r"),
        ];
        let mut h = map(&attack);
        strip_spoofable(&mut h, false);
        assert_eq!(names_of(&h), vec!["accept", "x-request-id"]);

        // A trusted proxy may tell the client's address, never a URL or
        // method override, and never in a CGI spelling.
        let mut h = map(&attack);
        strip_spoofable(&mut h, true);
        assert_eq!(
            names_of(&h),
            vec![
                "accept",
                "cf-connecting-ip",
                "true-client-ip",
                "x-client-ip",
                "x-cluster-client-ip",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-forwarded-server",
                "x-forwarded-ssl",
                "x-forwarded-uri",
                "x-original-forwarded-for",
                "x-request-id",
            ]
        );
    }

    /// The lists in docs/configuration.md are these lists.
    #[test]
    fn c3_documented_lists_match_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let listed = |marker: &str| -> Vec<String> {
            let start = docs.find(marker).unwrap_or_else(|| panic!("no {marker} in the docs"));
            let para = docs[start..].split_once("-->\n").unwrap().1.split("\n\n").next().unwrap();
            para.split('`').skip(1).step_by(2).map(str::to_ascii_lowercase).collect()
        };
        assert_eq!(listed("<!-- client-claims"), CLIENT_CLAIMS);
        assert_eq!(listed("<!-- always-stripped"), ALWAYS_STRIPPED);
    }

    #[test]
    fn every_listed_name_is_lower_case_and_starts_with_a_checked_byte() {
        for n in CLIENT_CLAIMS.iter().chain(ALWAYS_STRIPPED).chain(FORWARDING) {
            assert_eq!(*n, n.to_ascii_lowercase());
            assert!(matches!(n.as_bytes()[0], b'x' | b't' | b'c' | b'f' | b'p' | b'w'), "{n}");
        }
    }

    fn peer(ip: &str) -> PeerAddr {
        PeerAddr { addr: SocketAddr::new(ip.parse().unwrap(), 5555), https: false }
    }

    #[test]
    fn c3_untrusted_values_are_overwritten() {
        let mut h = map(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("x-real-ip", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
        ]);
        let p = peer("203.0.113.9");
        let c = ClientInfo { ip: "203.0.113.9".parse().unwrap(), https: false, peer_trusted: false };
        set_forwarding_headers(&mut h, &p, &c, Some(&HeaderValue::from_static("api.example.com")));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert_eq!(h["forwarded"], "for=203.0.113.9;proto=http;host=\"api.example.com\"");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    /// RFC 7239: an IPv6 node is quoted and bracketed; no host parameter
    /// for a host that would need quoting rules of its own.
    #[test]
    fn c3_forwarded_quotes_an_ipv6_client() {
        let mut h = map(&[]);
        let p = peer("2001:db8::1");
        let c = ClientInfo { ip: "2001:db8::1".parse().unwrap(), https: true, peer_trusted: false };
        set_forwarding_headers(&mut h, &p, &c, Some(&HeaderValue::from_static("a b")));
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=https");
        assert_eq!(h["x-real-ip"], "2001:db8::1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn c3_trusted_chain_is_extended() {
        let mut h = map(&[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-host", "public.example")]);
        let p = peer("10.0.0.2");
        let c = ClientInfo { ip: "198.51.100.7".parse().unwrap(), https: true, peer_trusted: true };
        set_forwarding_headers(&mut h, &p, &c, Some(&HeaderValue::from_static("internal")));
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "public.example");
        assert_eq!(h["x-real-ip"], "198.51.100.7");
    }
}
