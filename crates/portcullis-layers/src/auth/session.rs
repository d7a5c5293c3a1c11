//! Cookie sessions (C25) and CSRF protection (C10) in the authentication
//! layer.
//!
//! A [`SessionSource`] (the gateway's session store) turns the session
//! cookie into an identity. The layer reads the cookie only when the
//! request carries no bearer token: a bearer token wins, and a request
//! authenticated by one is not subject to CSRF checks, because a browser
//! never attaches an `Authorization` header on its own: another site can't
//! make a victim's browser send it. A cookie it does attach on its own, so
//! a cookie-authenticated unsafe request (any method but GET, HEAD,
//! OPTIONS, TRACE) must show both:
//! - `X-CSRF-Token` equal to the session's synchronizer token (compared in
//!   constant time), which another origin can neither read nor guess;
//! - that it comes from the same origin: `Sec-Fetch-Site: same-origin`
//!   where the browser sends it, else an `Origin` equal to the request's
//!   own scheme and host. A request with neither (old browsers, non-browser
//!   clients) still needs the token.
//!
//! Otherwise the answer is 403 `csrf_failed`; the upstream never sees the
//! request. On a public route a failed check does not refuse the request;
//! it goes on without the identity, as if no cookie had been sent.
//!
//! The session cookie never reaches the upstream: it is removed from the
//! forwarded `Cookie` header, other cookies stay. A cookie that is
//! malformed, too long, sent twice (cookie tossing) or unknown to the store
//! counts as no session. A store that can't be reached is 503 on a
//! protected route, never a pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, header};

use super::Identity;

/// A session's identity and its CSRF token.
#[derive(Clone, Debug)]
pub struct SessionAuth {
    /// Who the session belongs to.
    pub identity: Arc<Identity>,
    /// The session's synchronizer token.
    pub csrf: String,
}

/// Put in the request's extensions when the request was authenticated by
/// its session cookie: the session's id and CSRF token, for Portcullis'
/// own session endpoints.
#[derive(Clone, Debug)]
pub struct ActiveSession {
    /// The cookie's value.
    pub id: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Put in the request's extensions whenever a well-formed session cookie
/// was sent (authenticated or not): a login ends that session, so a
/// planted id is never carried into a new one.
#[derive(Clone, Debug)]
pub struct PresentedSession(pub String);

/// What the store says about a session id.
#[derive(Clone, Debug)]
pub enum SessionLookup {
    /// A live session.
    Found(SessionAuth),
    /// Unknown, expired or ended.
    NotFound,
    /// The store could not be reached (fail closed: 503 where a session is needed).
    Unavailable,
}

/// The future of [`SessionSource::lookup`].
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = SessionLookup> + Send + 'a>>;

/// Where sessions live (the gateway's store).
pub trait SessionSource: Send + Sync + std::fmt::Debug + 'static {
    /// The session cookie's name.
    fn cookie_name(&self) -> &str;
    /// The session for a cookie value (already checked to be well-formed).
    fn lookup<'a>(&'a self, id: &'a str) -> LookupFuture<'a>;
}

/// The longest session cookie value read; longer ones are no session.
pub const MAX_SESSION_ID: usize = 128;

/// What the `Cookie` headers hold under the session cookie's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCookie {
    /// No such cookie.
    Absent,
    /// One well-formed value (base64url, at most [`MAX_SESSION_ID`]).
    Id(String),
    /// Present but malformed, too long, or sent more than once.
    Invalid,
}

/// Finds the session cookie in every `Cookie` header and removes it from
/// them (other cookies stay, in order; an emptied header goes).
pub fn take_session_cookie(headers: &mut HeaderMap, name: &str) -> SessionCookie {
    if !headers.contains_key(header::COOKIE) {
        return SessionCookie::Absent;
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut kept: Vec<HeaderValue> = Vec::new();
    let mut changed = false;
    for v in headers.get_all(header::COOKIE) {
        let mut rest: Vec<&[u8]> = Vec::new();
        for pair in v.as_bytes().split(|b| *b == b';') {
            let trimmed = pair.trim_ascii();
            let (k, val) = match trimmed.iter().position(|b| *b == b'=') {
                Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
                None => (trimmed, &b""[..]),
            };
            if k.trim_ascii() == name.as_bytes() {
                found.push(val.trim_ascii().to_vec());
                changed = true;
            } else if !trimmed.is_empty() {
                rest.push(trimmed);
            }
        }
        if !rest.is_empty() {
            match HeaderValue::from_bytes(&rest.join(&b"; "[..])) {
                Ok(h) => kept.push(h),
                Err(_) => kept.push(v.clone()),
            }
        }
    }
    if !changed {
        return SessionCookie::Absent;
    }
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
    match found.as_slice() {
        [one] if well_formed(one) => SessionCookie::Id(String::from_utf8_lossy(one).into_owned()),
        _ => SessionCookie::Invalid,
    }
}

fn well_formed(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_SESSION_ID
        && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Where a request was addressed: whether the client used HTTPS (to us,
/// or to a trusted proxy in front), and the host it named (`Host`, or the
/// `:authority` of HTTP/2; empty when neither). What [`csrf_ok`] and
/// [`same_origin`] compare an `Origin` with.
pub fn addressed<B>(req: &http::Request<B>) -> (bool, &[u8]) {
    let https = req.extensions().get::<crate::client::ClientInfo>().is_some_and(|c| c.https);
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.as_bytes(),
        None => req.uri().authority().map_or(&b""[..], |a| a.as_str().as_bytes()),
    };
    (https, host)
}

/// Whether a method changes state (needs the CSRF checks with a cookie).
pub fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The CSRF checks for a cookie-authenticated unsafe request: the token,
/// and a same-origin `Sec-Fetch-Site` or `Origin` where present. `https`:
/// whether the client used HTTPS (for the origin's scheme).
pub fn csrf_ok(headers: &HeaderMap, expected: &str, https: bool, host: &[u8]) -> bool {
    let mut tokens = headers.get_all("x-csrf-token").iter();
    let token_ok = match (tokens.next(), tokens.next()) {
        (Some(t), None) => {
            let t = t.as_bytes();
            t.len() == expected.len() && constant_time_eq(t, expected.as_bytes())
        }
        _ => false,
    };
    token_ok && same_origin(headers, https, host)
}

/// Constant-time equality of two equal-length byte strings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// `Sec-Fetch-Site: same-origin` where sent; else an `Origin` equal to
/// this request's scheme and `host` (default ports ignored); neither
/// header: true (the token alone decides). Two values of either header:
/// false.
pub fn same_origin(headers: &HeaderMap, https: bool, host: &[u8]) -> bool {
    let one = |name: &str| -> Result<Option<&HeaderValue>, ()> {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (v, None) => Ok(v),
            _ => Err(()),
        }
    };
    let (Ok(site), Ok(origin)) = (one("sec-fetch-site"), one("origin")) else {
        return false;
    };
    if let Some(site) = site {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = origin else { return true };
    let (scheme, default_port): (&[u8], &[u8]) =
        if https { (b"https://", b":443") } else { (b"http://", b":80") };
    let o = origin.as_bytes();
    if o.len() < scheme.len() || !o[..scheme.len()].eq_ignore_ascii_case(scheme) || host.is_empty() {
        return false;
    }
    let strip = |h: &'_ [u8]| -> Vec<u8> {
        let h = h.strip_suffix(default_port).unwrap_or(h);
        h.to_ascii_lowercase()
    };
    strip(&o[scheme.len()..]) == strip(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "__Host-session";
    const SID: &str = "AAAAbbbbCCCCdddd0123456789-_xyzXYZ0123456789";

    fn take(cookies: &[&[u8]]) -> (SessionCookie, Vec<Vec<u8>>) {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_bytes(c).unwrap());
        }
        let got = take_session_cookie(&mut h, NAME);
        (got, h.get_all(header::COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    #[test]
    fn c25_the_session_cookie_is_read_once_and_never_forwarded() {
        let id = SessionCookie::Id(SID.to_owned());
        // (Cookie headers sent, what is read, Cookie headers forwarded)
        type Case = (Vec<&'static [u8]>, SessionCookie, Vec<&'static [u8]>);
        let table: Vec<Case> = vec![
            (vec![], SessionCookie::Absent, vec![]),
            (vec![b"a=1; b=2"], SessionCookie::Absent, vec![b"a=1; b=2"]),
            (vec![format!("{NAME}={SID}").into_bytes().leak()], id.clone(), vec![]),
            (vec![format!("a=1; {NAME}={SID}; b=2").into_bytes().leak()], id.clone(), vec![b"a=1; b=2"]),
            // Across two Cookie headers (HTTP/2 splits them).
            (vec![b"a=1", format!("{NAME}={SID}").into_bytes().leak()], id.clone(), vec![b"a=1"]),
            // Cookie tossing: two values (a subdomain planted one) is no session.
            (vec![format!("{NAME}={SID}; {NAME}=other").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (
                vec![
                    format!("{NAME}={SID}").into_bytes().leak(),
                    format!("{NAME}={SID}").into_bytes().leak(),
                ],
                SessionCookie::Invalid,
                vec![],
            ),
            // Malformed values.
            (vec![format!("{NAME}=").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (vec![NAME.as_bytes()], SessionCookie::Invalid, vec![]),
            (vec![format!("{NAME}=a.b").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (vec![format!("{NAME}=a%20b").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (vec![format!("{NAME}=\"{SID}\"").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (vec![format!("{NAME}={}", "a".repeat(129)).into_bytes().leak()], SessionCookie::Invalid, vec![]),
            (vec![format!("{NAME}=\u{e9}").into_bytes().leak()], SessionCookie::Invalid, vec![]),
            // Look-alike names are other cookies, forwarded as they are.
            (
                vec![format!("__host-session={SID}").into_bytes().leak()],
                SessionCookie::Absent,
                vec![format!("__host-session={SID}").into_bytes().leak()],
            ),
            (
                vec![format!("x{NAME}={SID}").into_bytes().leak()],
                SessionCookie::Absent,
                vec![format!("x{NAME}={SID}").into_bytes().leak()],
            ),
            (
                vec![format!("{NAME}2={SID}").into_bytes().leak()],
                SessionCookie::Absent,
                vec![format!("{NAME}2={SID}").into_bytes().leak()],
            ),
            // Spaces around the name and value, as some clients send.
            (vec![format!(" {NAME} = {SID} ;a=1").into_bytes().leak()], id.clone(), vec![b"a=1"]),
        ];
        for (input, want, forwarded) in table {
            let (got, rest) = take(&input);
            let shown: Vec<String> = input.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            assert_eq!(got, want, "{shown:?}");
            assert_eq!(rest, forwarded.iter().map(|v| v.to_vec()).collect::<Vec<_>>(), "{shown:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn c10_csrf_needs_the_token_and_a_same_origin_request() {
        let tok = "t0ken-of-the-session_0123456789abcdefghijk";
        let host = b"gw.test";
        let ok = |pairs: &[(&str, &str)]| csrf_ok(&headers(pairs), tok, true, host);
        // The token alone, when the browser sent neither header.
        assert!(ok(&[("x-csrf-token", tok)]));
        // Token wrong, missing, twice, a prefix, longer, other case.
        assert!(!ok(&[]));
        assert!(!ok(&[("x-csrf-token", "nope")]));
        assert!(!ok(&[("x-csrf-token", &tok[..tok.len() - 1])]));
        assert!(!ok(&[("x-csrf-token", &format!("{tok}x"))]));
        assert!(!ok(&[("x-csrf-token", &tok.to_uppercase())]));
        assert!(!ok(&[("x-csrf-token", tok), ("x-csrf-token", tok)]));
        assert!(!ok(&[("x-csrf-token", "")]));
        // Sec-Fetch-Site decides where sent.
        assert!(ok(&[("x-csrf-token", tok), ("sec-fetch-site", "same-origin")]));
        for site in ["same-site", "cross-site", "none", "Same-Origin", ""] {
            assert!(!ok(&[("x-csrf-token", tok), ("sec-fetch-site", site)]), "{site}");
            // ... even with a matching Origin.
            assert!(
                !ok(&[("x-csrf-token", tok), ("sec-fetch-site", site), ("origin", "https://gw.test")]),
                "{site}"
            );
        }
        assert!(!ok(&[
            ("x-csrf-token", tok),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "same-origin")
        ]));
        // Else Origin: this scheme and host, exactly; default port ignored.
        assert!(ok(&[("x-csrf-token", tok), ("origin", "https://gw.test")]));
        assert!(ok(&[("x-csrf-token", tok), ("origin", "https://GW.test")]));
        assert!(ok(&[("x-csrf-token", tok), ("origin", "https://gw.test:443")]));
        for origin in [
            "null",
            "http://gw.test",
            "https://gw.test.evil.test",
            "https://evil-gw.test",
            "https://evilgw.test",
            "https://gw.tes",
            "https://gw.test:8443",
            "https://gw.test/",
            "https://user@gw.test",
            "gw.test",
            "",
        ] {
            assert!(!ok(&[("x-csrf-token", tok), ("origin", origin)]), "{origin}");
        }
        assert!(!ok(&[("x-csrf-token", tok), ("origin", "https://gw.test"), ("origin", "https://gw.test")]));
        // Plain HTTP listener: the http origin, with its default port.
        let h = headers(&[("x-csrf-token", tok), ("origin", "http://gw.test:80")]);
        assert!(csrf_ok(&h, tok, false, b"gw.test"));
        assert!(csrf_ok(&h, tok, false, b"gw.test:80"));
        assert!(!csrf_ok(&h, tok, true, b"gw.test"));
        // No host known: an Origin can't match.
        assert!(!csrf_ok(&headers(&[("x-csrf-token", tok), ("origin", "https://gw.test")]), tok, true, b""));
        assert!(!csrf_ok(&headers(&[("x-csrf-token", tok), ("origin", "https://")]), tok, true, b""));
    }

    #[test]
    fn c10_safe_methods_are_exempt_and_unsafe_ones_are_not() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!unsafe_method(&m), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "CUSTOM"] {
            assert!(unsafe_method(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
    }
}
