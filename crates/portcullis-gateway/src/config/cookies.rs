//! `[cookies]`: hardening of the upstream's `Set-Cookie` headers (C9). On
//! by default: `Secure` (on HTTPS), `HttpOnly` and `SameSite=Lax` are added
//! where missing, never weakened.

use portcullis_layers::headers::{AddSecure, CookiePolicy, SameSite};
use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCookies {
    pub(crate) secure: Option<SecureWord>,
    pub(crate) http_only: Option<bool>,
    pub(crate) same_site: Option<SameSiteWord>,
    pub(crate) js_readable: Option<Vec<String>>,
}

/// `cookies.secure`: `true` (on HTTPS requests), `false`, or `"always"`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SecureWord(AddSecure);

impl<'de> Deserialize<'de> for SecureWord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SecureWord;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or \"always\"")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<SecureWord, E> {
                Ok(SecureWord(if b { AddSecure::Https } else { AddSecure::Never }))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SecureWord, E> {
                match s {
                    "always" => Ok(SecureWord(AddSecure::Always)),
                    _ => Err(E::custom("expected true, false or \"always\"")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

super::units::keywords! {
    /// `cookies.same_site` and `sessions.same_site`.
    SameSiteWord => Option<SameSite> {
        "lax" => Some(SameSite::Lax),
        "strict" => Some(SameSite::Strict),
        "off" => None,
    }
}

pub(super) fn validate(raw: RawCookies, p: &mut Problems) -> CookiePolicy {
    let d = CookiePolicy::default();
    let js_readable = raw.js_readable.unwrap_or_default();
    for (i, name) in js_readable.iter().enumerate() {
        if !cookie_name_ok(name) {
            p.push(
                format!("cookies.js_readable[{i}]"),
                "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
            );
        }
    }
    CookiePolicy {
        secure: raw.secure.map_or(d.secure, |s| s.0),
        http_only: raw.http_only.unwrap_or(d.http_only),
        same_site: raw.same_site.map_or(d.same_site, |s| s.0),
        js_readable,
    }
}

/// An RFC 6265 cookie name (an RFC 9110 token).
pub(crate) fn cookie_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// This section as `portcullis check` prints it.
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let policy = &c.cookies;
    let mut adds = Vec::new();
    match policy.secure {
        AddSecure::Https => adds.push("Secure (HTTPS requests)".to_owned()),
        AddSecure::Always => adds.push("Secure (always)".to_owned()),
        AddSecure::Never => {}
    }
    if policy.http_only {
        adds.push("HttpOnly".to_owned());
    }
    if let Some(s) = policy.same_site {
        adds.push(format!("SameSite={}", s.as_str()));
    }
    if adds.is_empty() {
        let _ = writeln!(o, "[cookies] upstream Set-Cookie left as sent (C9 off)");
        return;
    }
    let _ =
        writeln!(o, "[cookies] upstream Set-Cookie hardened (C9): adds {} where missing", adds.join(", "));
    if !policy.js_readable.is_empty() {
        let _ = writeln!(o, "  readable from JavaScript (no HttpOnly): {}", policy.js_readable.join(", "));
    }
}
