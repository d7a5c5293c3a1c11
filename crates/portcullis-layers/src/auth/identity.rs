//! Identity headers to the upstream (C23): the verified identity as headers
//! the client cannot forge.
//!
//! Every incoming header whose name equals an identity header's name after
//! lower-casing and reading `_` as `-` is removed first (all copies), on
//! every request, public routes included: `X-Auth-Subject`,
//! `x-auth-subject`, `X_Auth_Subject` are one name to CGI-style frameworks
//! and some proxies. The gateway also protects these names from removal by
//! `Connection` (see [`crate::forwarded::strip_hop_by_hop`]).
//!
//! Values: bytes outside visible ASCII, and `%` and `,`, are percent-encoded,
//! so a value can't inject a header, a list separator or leading space;
//! lists (roles, array claims) are joined with `,`.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::jwt::Identity;

/// What an identity header carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimSource {
    /// The subject.
    Subject,
    /// The roles.
    Roles,
    /// Any claim, by dotted path.
    Claim(String),
}

/// The identity headers of a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaders {
    entries: Vec<(HeaderName, ClaimSource)>,
}

impl Default for IdentityHeaders {
    /// `X-Auth-Subject` (subject) and `X-Auth-Roles` (roles).
    fn default() -> Self {
        IdentityHeaders {
            entries: vec![
                (HeaderName::from_static("x-auth-subject"), ClaimSource::Subject),
                (HeaderName::from_static("x-auth-roles"), ClaimSource::Roles),
            ],
        }
    }
}

pub use crate::forwarded::same_spelling;

impl IdentityHeaders {
    /// These headers.
    pub fn new(entries: Vec<(HeaderName, ClaimSource)>) -> IdentityHeaders {
        IdentityHeaders { entries }
    }

    /// The header names.
    pub fn names(&self) -> Vec<HeaderName> {
        self.entries.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Removes every incoming spelling of every identity header.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.entries.iter().any(|(n, _)| same_spelling(k.as_str(), n.as_str())))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// Sets the headers for a verified identity (absent or null claims set
    /// nothing).
    pub fn apply(&self, headers: &mut HeaderMap, id: &Identity) {
        for (name, src) in &self.entries {
            // Each value is written once into its own buffer, which the
            // header then owns (issue 16: this runs on every request).
            let value = match src {
                ClaimSource::Subject => {
                    let mut v = String::with_capacity(id.subject.len());
                    encode_into(&mut v, &id.subject);
                    v
                }
                ClaimSource::Roles => {
                    let mut v = String::with_capacity(id.roles.iter().map(|r| r.len() + 1).sum());
                    for (i, r) in id.roles.iter().enumerate() {
                        if i > 0 {
                            v.push(',');
                        }
                        encode_into(&mut v, r);
                    }
                    v
                }
                ClaimSource::Claim(path) => match id.claim(path).and_then(render) {
                    Some(v) => v,
                    None => continue,
                },
            };
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
                headers.insert(name.clone(), v);
            }
        }
    }
}

fn render(v: &Value) -> Option<String> {
    let one = |v: &Value| match v {
        Value::String(s) => encode(s),
        other => encode(&other.to_string()),
    };
    match v {
        Value::Null => None,
        Value::Array(items) => Some(items.iter().map(one).collect::<Vec<_>>().join(",")),
        other => Some(one(other)),
    }
}

/// Percent-encodes everything but visible ASCII other than `%` and `,`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

/// [`encode`], appending to `out`.
fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c23_every_spelling_is_stripped() {
        let mut h = HeaderMap::new();
        for name in ["x-auth-subject", "X_Auth_Subject", "x-auth_subject", "X-AUTH-ROLES", "x_auth_roles"] {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("admin"));
        }
        h.append("x-auth-subject", HeaderValue::from_static("second copy"));
        h.insert("x-auth-subjects", HeaderValue::from_static("kept"));
        h.insert("accept", HeaderValue::from_static("kept"));
        IdentityHeaders::default().strip(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-auth-subjects"]);
    }

    /// The names the gateway protects from removal by `Connection` (C23):
    /// an identity header a client names there must survive to be set.
    #[test]
    fn c23_names_are_every_configured_header() {
        assert_eq!(
            IdentityHeaders::default().names(),
            [HeaderName::from_static("x-auth-subject"), HeaderName::from_static("x-auth-roles")]
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::CONNECTION, HeaderValue::from_static("x-auth-subject, keep-alive"));
        h.insert("x-auth-subject", HeaderValue::from_static("set later by the layer"));
        crate::forwarded::strip_hop_by_hop(&mut h, false, &IdentityHeaders::default().names());
        assert!(h.contains_key("x-auth-subject"), "named in Connection, yet protected");
        assert!(!h.contains_key(http::header::CONNECTION));
    }

    /// `encode` writes hex itself (it used `format!`): every byte of every
    /// character up to U+024F against the rule, spelled out.
    #[test]
    fn c23_encode_keeps_exactly_visible_ascii_but_percent_and_comma() {
        for c in (0u32..0x250).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            let want: String = s
                .bytes()
                .map(|b| {
                    if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            assert_eq!(encode(&s), want, "{c:?}");
        }
    }

    #[test]
    fn c23_values_cannot_inject() {
        assert_eq!(encode("alice"), "alice");
        assert_eq!(encode("a,b"), "a%2Cb");
        assert_eq!(encode("x\r\nX-Admin: 1"), "x%0D%0AX-Admin:%201");
        assert_eq!(encode(" lead"), "%20lead");
        assert_eq!(encode("100%"), "100%25");
        assert_eq!(encode("\u{e9}"), "%C3%A9");
        let id = Identity {
            subject: "u,1".into(),
            roles: vec!["admin".into(), "a,b".into()],
            claims: serde_json::json!({"tenant": {"id": 7}, "groups": ["x", 1, null], "n": null})
                .as_object()
                .unwrap()
                .clone(),
            expires: 0,
        };
        let hs = IdentityHeaders::new(vec![
            (HeaderName::from_static("x-auth-subject"), ClaimSource::Subject),
            (HeaderName::from_static("x-auth-roles"), ClaimSource::Roles),
            (HeaderName::from_static("x-tenant"), ClaimSource::Claim("tenant.id".into())),
            (HeaderName::from_static("x-groups"), ClaimSource::Claim("groups".into())),
            (HeaderName::from_static("x-none"), ClaimSource::Claim("n".into())),
            (HeaderName::from_static("x-missing"), ClaimSource::Claim("missing".into())),
        ]);
        let mut h = HeaderMap::new();
        hs.apply(&mut h, &id);
        assert_eq!(h["x-auth-subject"], "u%2C1");
        assert_eq!(h["x-auth-roles"], "admin,a%2Cb");
        assert_eq!(h["x-tenant"], "7");
        assert_eq!(h["x-groups"], "x,1,null");
        assert!(h.get("x-none").is_none() && h.get("x-missing").is_none());
    }
}
