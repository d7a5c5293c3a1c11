//! Rate limiting (C11, C12).
//!
//! # What it stops
//! Credential stuffing, scraping and request floods: per client IP (IPv6
//! grouped by /56 by default, so one host can't rotate through its
//! addresses), per API key, per route or globally; a stricter rule on
//! authentication paths.
//!
//! # Decision rules
//! - Every [`Rule`] whose path patterns and methods match the request
//!   applies; all must allow it. A refused request charges no rule.
//! - The algorithm is GCRA ([`gcra`]): a burst of up to `limit`, refilled
//!   continuously at `limit` per `window`.
//! - The client IP comes only from [`ClientInfo`]
//!   (trusted-proxy resolution); a spoofed `X-Forwarded-For` from an
//!   untrusted peer can't change a key. Header keys are hashed (SHA-256), so
//!   API keys are never stored in clear.
//! - Refused: `429 rate_limited` with `Retry-After` and the JSON error body.
//!   Every limited response carries `RateLimit-Policy` and `RateLimit`
//!   headers in the IETF draft 6, 7 or 8 format (8 by default), and
//!   optionally the legacy `X-RateLimit-*`.
//! - When the store fails (Redis down): [`FailMode::Open`] decides with a
//!   local in-process store instead (and counts and logs the failure),
//!   [`FailMode::Closed`] answers `503 unavailable`. Never a hang: stores
//!   bound their own latency.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use portcullis_layers::pattern::PathPattern;
//! use portcullis_layers::ratelimit::{KeyKind, MemoryStore, RateLimitLayer, Rule};
//! let login = Rule::new("login", 5, Duration::from_secs(900))
//!     .paths(vec![PathPattern::parse("/auth/**").unwrap()])
//!     .key(KeyKind::ip());
//! let layer = RateLimitLayer::new(vec![login], Arc::new(MemoryStore::new(100_000)));
//! # let _ = layer;
//! ```

pub mod gcra;
mod headers;
mod layer;
mod store;

pub use gcra::{Outcome, Rate};
pub use headers::HeaderFormat;
pub use layer::{FailMode, RateLimitBuilder, RateLimitLayer, RateLimitService, RateLimitStats};
pub use store::{Check, MemoryStore, Store, StoreError, StoreFuture};

use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderName, Method, request};
use sha2::{Digest, Sha256};

use crate::client::ClientInfo;
use crate::pattern::PathPattern;

/// What a rule counts by.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// The client IP; IPv6 addresses grouped by this prefix length.
    Ip {
        /// Prefix length for IPv6 (default 56).
        v6_prefix: u8,
    },
    /// A request header (e.g. an API key), hashed. Requests without it are
    /// counted by client IP instead.
    Header(HeaderName),
    /// One counter for everyone.
    Global,
    /// The verified subject of the request (C11 "per user"), hashed: the
    /// `sub` of a bearer token the auth layer verified, or the user of a
    /// built-in login. Requests without one are counted by client IP.
    /// Such rules are decided after authentication: put
    /// [`RateLimitLayer::for_subjects`] after the auth layer.
    Subject,
}

impl KeyKind {
    /// The client IP, IPv6 grouped by /56.
    pub fn ip() -> KeyKind {
        KeyKind::Ip { v6_prefix: 56 }
    }
}

/// One rate-limit rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name (in keys and in `RateLimit-Policy`).
    pub name: String,
    /// Path patterns; empty means every path.
    pub patterns: Vec<PathPattern>,
    /// Methods; empty means every method.
    pub methods: Vec<Method>,
    /// What it counts by.
    pub key: KeyKind,
    /// The rate.
    pub rate: Rate,
    window: Duration,
}

impl Rule {
    /// `limit` requests per `window`, every path and method, by client IP.
    pub fn new(name: &str, limit: u32, window: Duration) -> Rule {
        Rule {
            name: name.to_owned(),
            patterns: Vec::new(),
            methods: Vec::new(),
            key: KeyKind::ip(),
            rate: Rate::new(limit, window),
            window,
        }
    }

    /// Only these paths.
    pub fn paths(mut self, p: Vec<PathPattern>) -> Rule {
        self.patterns = p;
        self
    }

    /// Only these methods.
    pub fn methods(mut self, m: Vec<Method>) -> Rule {
        self.methods = m;
        self
    }

    /// Counts by this key.
    pub fn key(mut self, k: KeyKind) -> Rule {
        self.key = k;
        self
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether the rule applies to a request.
    pub fn applies(&self, parts: &request::Parts) -> bool {
        (self.methods.is_empty() || self.methods.contains(&parts.method))
            && (self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(parts.uri.path())))
    }

    /// The store key for a request: `rl:{rule}:{kind}:{value}`, written
    /// into one buffer (issue 16: it was three formatted strings).
    pub fn store_key(&self, parts: &request::Parts) -> String {
        let mut key = String::with_capacity(self.name.len() + 48);
        key.push_str("rl:");
        key.push_str(&self.name);
        key.push(':');
        let ip_key = |key: &mut String| {
            let ip = parts.extensions.get::<ClientInfo>().map(|c| c.ip);
            match (ip, &self.key) {
                (Some(ip), KeyKind::Ip { v6_prefix }) => {
                    key.push_str("ip:");
                    push_group(key, ip, *v6_prefix);
                }
                (Some(ip), _) => {
                    key.push_str("ip:");
                    push_group(key, ip, 56);
                }
                // No resolved client: every such request shares one key
                // (fails toward limiting, not toward a free pass).
                (None, _) => key.push_str("ip:unknown"),
            }
        };
        match &self.key {
            KeyKind::Global => key.push_str("global"),
            KeyKind::Ip { .. } => ip_key(&mut key),
            KeyKind::Header(h) => match parts.headers.get(h) {
                Some(v) => {
                    key.push_str("h:");
                    key.push_str(&hashed(v.as_bytes()));
                }
                None => ip_key(&mut key),
            },
            KeyKind::Subject => match subject(parts) {
                Some(s) => {
                    key.push_str("sub:");
                    key.push_str(&hashed(s.as_bytes()));
                }
                None => ip_key(&mut key),
            },
        }
        key
    }
}

/// The first 128 bits of SHA-256, in hex: a key that never stores the value.
fn hashed(v: &[u8]) -> String {
    let digest = Sha256::digest(v);
    let mut hex = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The verified subject, when the auth layer found one.
fn subject(parts: &request::Parts) -> Option<&str> {
    #[cfg(feature = "auth")]
    if let Some(id) = parts.extensions.get::<std::sync::Arc<crate::auth::Identity>>()
        && !id.subject.is_empty()
    {
        return Some(&id.subject);
    }
    let _ = parts;
    None
}

/// An IP as a key: IPv4 whole, IPv6 masked to `prefix` bits.
pub fn group(ip: IpAddr, prefix: u8) -> String {
    let mut s = String::with_capacity(24);
    push_group(&mut s, ip, prefix);
    s
}

/// [`group`], appended to `s`.
fn push_group(s: &mut String, ip: IpAddr, prefix: u8) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => crate::client::push_ip_text(s, IpAddr::V4(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let prefix = u32::from(prefix.min(128));
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            let _ = write!(s, "{}/{prefix}", std::net::Ipv6Addr::from(bits & mask));
        }
    }
}

#[cfg(test)]
mod tests;
