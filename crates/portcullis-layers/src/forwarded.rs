//! Header rewriting at the proxy boundary (C3, C23 groundwork).
//!
//! Requests: hop-by-hop headers are removed, including every header the client
//! names in `Connection`, except the protected ones a client must never be able
//! to drop that way (the forwarding family, `Host`, the request id). Then
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and
//! `Forwarded` are written from the resolved [`ClientInfo`]: a client's own
//! values are overwritten unless the peer is a trusted proxy, whose chain is
//! extended.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::client::{ClientInfo, PeerAddr, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP};

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
];

/// [`HOP_BY_HOP`] as header names: removing by a `&str` parses the name
/// again on every request (docs/performance.md).
static HOP_BY_HOP_NAMES: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

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
    for name in &HOP_BY_HOP_NAMES {
        headers.remove(name);
    }
    if let Some(up) = upgrade {
        headers.insert(header::UPGRADE, up);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether a request asks for a protocol upgrade (WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let conn_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))));
    conn_upgrade && headers.contains_key(header::UPGRADE)
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
    let peer_text = peer_ip.to_string();
    let xff = if client.peer_trusted {
        let existing: Vec<&str> =
            headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        if existing.is_empty() {
            peer_text.clone()
        } else {
            format!("{}, {}", existing.join(", "), peer_text)
        }
    } else {
        peer_text.clone()
    };
    headers.remove(X_FORWARDED_FOR);
    if let Ok(v) = HeaderValue::from_str(&xff) {
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

    let client_ip = client.ip.to_string();
    if let Ok(v) = HeaderValue::from_str(&client_ip) {
        headers.insert(X_REAL_IP, v);
    }
    let for_part = if client.ip.is_ipv6() { format!("\"[{client_ip}]\"") } else { client_ip };
    let mut fwd = format!("for={for_part};proto={proto}");
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
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true, &[]);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
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
