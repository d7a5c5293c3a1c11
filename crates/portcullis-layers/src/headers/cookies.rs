//! Hardening of `Set-Cookie` headers on the way out (C9).
//!
//! Every `Set-Cookie` of a response (the upstream's, usually) gets the
//! attributes the policy asks for *where they are missing*: `Secure`,
//! `HttpOnly`, `SameSite`. Nothing present is removed or weakened: an
//! explicit `SameSite=None` stays `None` (cross-site cookies are a
//! deliberate choice) and gets `Secure`, without which browsers drop it; an
//! unrecognised `SameSite` value is followed by the policy's, which
//! browsers read last-one-wins.
//!
//! `Secure` is added on HTTPS requests only, unless the policy says
//! [`AddSecure::Always`]: a `Secure` cookie set over plain HTTP is dropped
//! by browsers (except on `localhost`), which would log users out of a
//! development setup.

use http::{HeaderMap, HeaderValue, header};

/// The `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax`: sent on top-level cross-site navigations (GET), not
    /// on cross-site subrequests or form posts.
    Lax,
    /// `SameSite=Strict`: never sent cross-site.
    Strict,
}

impl SameSite {
    /// The attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }

    /// The whole attribute, as appended to a `Set-Cookie`.
    fn attribute(self) -> &'static str {
        match self {
            SameSite::Lax => "SameSite=Lax",
            SameSite::Strict => "SameSite=Strict",
        }
    }
}

/// When `Secure` is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddSecure {
    /// Never.
    Never,
    /// On responses to HTTPS requests (to Portcullis, or to a trusted proxy
    /// in front of it).
    Https,
    /// Always, plain HTTP included.
    Always,
}

/// What [`harden`] adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookiePolicy {
    /// When to add `Secure`.
    pub secure: AddSecure,
    /// Add `HttpOnly`.
    pub http_only: bool,
    /// Add this `SameSite` where none is set.
    pub same_site: Option<SameSite>,
    /// Cookie names that stay readable from JavaScript (no `HttpOnly`
    /// added), e.g. a framework's `XSRF-TOKEN`. Compared exactly.
    pub js_readable: Vec<String>,
}

impl Default for CookiePolicy {
    /// `Secure` on HTTPS, `HttpOnly`, `SameSite=Lax`.
    fn default() -> Self {
        CookiePolicy {
            secure: AddSecure::Https,
            http_only: true,
            same_site: Some(SameSite::Lax),
            js_readable: Vec::new(),
        }
    }
}

/// The attributes a `Set-Cookie` value already has.
#[derive(Debug, Default, PartialEq, Eq)]
struct Present {
    secure: bool,
    http_only: bool,
    /// A recognised `SameSite` (`Lax`, `Strict`, `None`), and whether it is `None`.
    same_site: bool,
    same_site_none: bool,
}

fn present(value: &[u8]) -> (&[u8], Present) {
    let mut parts = value.split(|b| *b == b';');
    let pair = parts.next().unwrap_or_default();
    let name = pair.split(|b| *b == b'=').next().unwrap_or_default().trim_ascii();
    let mut p = Present::default();
    for attr in parts {
        let mut kv = attr.splitn(2, |b| *b == b'=');
        let key = kv.next().unwrap_or_default().trim_ascii();
        let val = kv.next().unwrap_or_default().trim_ascii();
        if key.eq_ignore_ascii_case(b"secure") {
            p.secure = true;
        } else if key.eq_ignore_ascii_case(b"httponly") {
            p.http_only = true;
        } else if key.eq_ignore_ascii_case(b"samesite") {
            // The last SameSite wins, as in browsers.
            let none = val.eq_ignore_ascii_case(b"none");
            p.same_site = none || val.eq_ignore_ascii_case(b"lax") || val.eq_ignore_ascii_case(b"strict");
            p.same_site_none = none;
        }
    }
    (name, p)
}

/// One `Set-Cookie` value hardened per `policy`, or `None` when it already
/// has everything.
pub fn harden(value: &HeaderValue, policy: &CookiePolicy, https: bool) -> Option<HeaderValue> {
    let bytes = value.as_bytes();
    let (name, p) = present(bytes);
    let mut add: Vec<&[u8]> = Vec::new();
    let secure_wanted = match policy.secure {
        AddSecure::Never => false,
        AddSecure::Https => https,
        AddSecure::Always => true,
    };
    if !p.secure && secure_wanted {
        add.push(b"Secure");
    }
    if !p.http_only && policy.http_only && !policy.js_readable.iter().any(|n| n.as_bytes() == name) {
        add.push(b"HttpOnly");
    }
    if !p.same_site
        && let Some(s) = policy.same_site
    {
        add.push(s.attribute().as_bytes());
    }
    if add.is_empty() {
        return None;
    }
    let mut out = bytes.trim_ascii_end().to_vec();
    while out.last() == Some(&b';') {
        out.pop();
        out.truncate(out.trim_ascii_end().len());
    }
    for a in add {
        out.extend_from_slice(b"; ");
        out.extend_from_slice(a);
    }
    HeaderValue::from_bytes(&out).ok()
}

/// Hardens every `Set-Cookie` of `headers` in place.
pub fn harden_all(headers: &mut HeaderMap, policy: &CookiePolicy, https: bool) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let mut changed = false;
    let all: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match harden(v, policy, https) {
            Some(h) => {
                changed = true;
                h
            }
            None => v.clone(),
        })
        .collect();
    // Already hardened (Portcullis' own cookie, a careful upstream): the
    // fields stay as they are.
    if !changed {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for v in all {
        headers.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str, policy: &CookiePolicy, https: bool) -> String {
        let value = HeaderValue::from_str(v).unwrap();
        match harden(&value, policy, https) {
            Some(x) => x.to_str().unwrap().to_owned(),
            None => v.to_owned(),
        }
    }

    #[test]
    fn c9_missing_attributes_are_added_and_none_weakened() {
        let p = CookiePolicy::default();
        let table: &[(&str, bool, &str)] = &[
            // The naive Express fixture's cookie, over HTTPS and plain HTTP.
            ("sid=abc; Path=/", true, "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax"),
            ("sid=abc; Path=/", false, "sid=abc; Path=/; HttpOnly; SameSite=Lax"),
            // Already hardened: untouched, whatever the spelling.
            ("a=1; secure; HTTPONLY; samesite=strict", true, "a=1; secure; HTTPONLY; samesite=strict"),
            ("a=1;Secure;HttpOnly;SameSite=Lax", true, "a=1;Secure;HttpOnly;SameSite=Lax"),
            // Strict stays Strict; None stays None (and gets Secure).
            ("a=1; SameSite=Strict", true, "a=1; SameSite=Strict; Secure; HttpOnly"),
            ("a=1; SameSite=None", true, "a=1; SameSite=None; Secure; HttpOnly"),
            // An unknown SameSite value is followed by ours (last one wins).
            ("a=1; SameSite=bogus", true, "a=1; SameSite=bogus; Secure; HttpOnly; SameSite=Lax"),
            ("a=1; SameSite", true, "a=1; SameSite; Secure; HttpOnly; SameSite=Lax"),
            // The words in the value or in other attributes don't count.
            (
                "secure=HttpOnly; Path=/secure",
                true,
                "secure=HttpOnly; Path=/secure; Secure; HttpOnly; SameSite=Lax",
            ),
            ("a=Secure", true, "a=Secure; Secure; HttpOnly; SameSite=Lax"),
            ("a=1; Comment=SameSite=Lax", true, "a=1; Comment=SameSite=Lax; Secure; HttpOnly; SameSite=Lax"),
            // Trailing separators and spaces don't double up.
            ("a=1; ", true, "a=1; Secure; HttpOnly; SameSite=Lax"),
            ("a=1;;", true, "a=1; Secure; HttpOnly; SameSite=Lax"),
            // Expires (with its comma) and Max-Age are kept as they are.
            (
                "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Max-Age=60",
                true,
                "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Max-Age=60; Secure; HttpOnly; SameSite=Lax",
            ),
        ];
        for (input, https, want) in table {
            assert_eq!(h(input, &p, *https), *want, "{input} (https {https})");
        }
    }

    #[test]
    fn c9_the_policy_decides_what_is_added() {
        let strict = CookiePolicy { same_site: Some(SameSite::Strict), ..CookiePolicy::default() };
        assert_eq!(h("a=1", &strict, true), "a=1; Secure; HttpOnly; SameSite=Strict");
        let always = CookiePolicy { secure: AddSecure::Always, ..CookiePolicy::default() };
        assert_eq!(h("a=1", &always, false), "a=1; Secure; HttpOnly; SameSite=Lax");
        let never =
            CookiePolicy { secure: AddSecure::Never, http_only: false, same_site: None, js_readable: vec![] };
        assert_eq!(h("a=1", &never, true), "a=1");
        let js = CookiePolicy { js_readable: vec!["XSRF-TOKEN".into()], ..CookiePolicy::default() };
        assert_eq!(h("XSRF-TOKEN=t", &js, true), "XSRF-TOKEN=t; Secure; SameSite=Lax");
        assert_eq!(
            h("xsrf-token=t", &js, true),
            "xsrf-token=t; Secure; HttpOnly; SameSite=Lax",
            "exact names"
        );
    }

    #[test]
    fn c9_every_set_cookie_of_a_response_is_hardened_in_order() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers
            .append(header::SET_COOKIE, HeaderValue::from_static("b=2; Secure; HttpOnly; SameSite=Strict"));
        headers.append(header::SET_COOKIE, HeaderValue::from_bytes(b"c=\xff").unwrap());
        harden_all(&mut headers, &CookiePolicy::default(), true);
        let got: Vec<&[u8]> = headers.get_all(header::SET_COOKIE).iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(
            got,
            [
                b"a=1; Secure; HttpOnly; SameSite=Lax".as_slice(),
                b"b=2; Secure; HttpOnly; SameSite=Strict",
                b"c=\xff; Secure; HttpOnly; SameSite=Lax"
            ]
        );
        let mut none = HeaderMap::new();
        harden_all(&mut none, &CookiePolicy::default(), true);
        assert!(none.is_empty());
    }
}
