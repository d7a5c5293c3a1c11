//! Security response headers: the helmet 8 default set (C2, C5, C6, C7).
//!
//! # What it stops
//! Clickjacking, MIME sniffing, referrer leaks, cross-origin window and
//! resource attacks, protocol downgrade (HSTS), script injection (CSP), and
//! stack fingerprinting (`X-Powered-By`, `Server`).
//!
//! # Decision rules
//! - Every response gets the twelve headers helmet 8 sets by default, with
//!   helmet's values, replacing any value the upstream sent.
//! - `Strict-Transport-Security` only when the client used HTTPS (directly or
//!   through a trusted proxy, see [`crate::client`]).
//! - `X-Powered-By`, `Server`, `X-AspNet-Version` and `X-AspNetMvc-Version`
//!   are removed.
//! - Each header can be overridden or removed; the CSP is built directive by
//!   directive ([`Csp`]).
//!
//! # Example
//! ```
//! use portcullis_layers::headers::{SecurityHeaders, Csp};
//! let csp = Csp::helmet_default().directive("img-src", ["'self'", "https://cdn.example.com"]).unwrap();
//! let headers = SecurityHeaders::helmet().csp(Some(csp)).remove("x-frame-options").unwrap();
//! assert!(headers.effective(true).iter().any(|(n, _)| n == "strict-transport-security"));
//! assert!(!headers.effective(false).iter().any(|(n, _)| n == "x-frame-options"));
//! ```

pub mod cookies;
mod csp;
mod layer;

pub use cookies::{AddSecure, CookiePolicy, SameSite};
pub use csp::{Csp, KNOWN_DIRECTIVES};
pub use layer::{SecurityHeadersLayer, SecurityHeadersService};

use http::{HeaderName, HeaderValue};

use crate::config_error::ConfigError;

/// Headers that fingerprint the upstream stack and are always removed (C6).
pub const FINGERPRINT_HEADERS: &[&str] =
    &["x-powered-by", "server", "x-aspnet-version", "x-aspnetmvc-version"];

/// [`FINGERPRINT_HEADERS`] as header names (a `&str` is parsed again on
/// every removal).
static FINGERPRINT_NAMES: [HeaderName; 4] = [
    HeaderName::from_static("x-powered-by"),
    http::header::SERVER,
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
];

/// The helmet 8 defaults other than CSP and HSTS, in helmet's order.
pub const HELMET_DEFAULTS: &[(&str, &str)] = &[
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// `Strict-Transport-Security` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hsts {
    /// `max-age` in seconds.
    pub max_age: u64,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
}

impl Default for Hsts {
    /// helmet 8: 365 days, includeSubDomains, no preload.
    fn default() -> Self {
        Hsts { max_age: 31_536_000, include_subdomains: true, preload: false }
    }
}

impl Hsts {
    fn value(&self) -> HeaderValue {
        let mut s = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            s.push_str("; includeSubDomains");
        }
        if self.preload {
            s.push_str("; preload");
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
    }
}

/// The set of security headers to apply.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    fixed: Vec<(HeaderName, HeaderValue)>,
    hsts: Option<HeaderValue>,
    cookies: Option<CookiePolicy>,
}

impl SecurityHeaders {
    /// helmet 8's defaults.
    pub fn helmet() -> Self {
        let mut fixed = Vec::with_capacity(HELMET_DEFAULTS.len() + 1);
        let (csp_name, csp_value) = Csp::helmet_default().header();
        fixed.push((csp_name, csp_value));
        for (n, v) in HELMET_DEFAULTS {
            fixed.push((HeaderName::from_static(n), HeaderValue::from_static(v)));
        }
        SecurityHeaders { fixed, hsts: Some(Hsts::default().value()), cookies: None }
    }

    /// No headers at all (fingerprint headers are still removed).
    pub fn empty() -> Self {
        SecurityHeaders { fixed: Vec::new(), hsts: None, cookies: None }
    }

    /// Hardens every `Set-Cookie` of a response per `policy` (C9; see
    /// [`cookies`]). Off unless set.
    pub fn harden_cookies(mut self, policy: CookiePolicy) -> Self {
        self.cookies = Some(policy);
        self
    }

    /// Sets (or replaces) a header.
    pub fn set(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new("", "not a valid header name"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new("", "not a valid header value (control characters?)"))?;
        if n == http::header::STRICT_TRANSPORT_SECURITY {
            self.hsts = Some(v);
            return Ok(self);
        }
        match self.fixed.iter_mut().find(|(k, _)| *k == n) {
            Some(slot) => slot.1 = v,
            None => self.fixed.push((n, v)),
        }
        Ok(self)
    }

    /// Removes a header from the set.
    pub fn remove(mut self, name: &str) -> Result<Self, ConfigError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new("", "not a valid header name"))?;
        if n == http::header::STRICT_TRANSPORT_SECURITY {
            self.hsts = None;
        }
        self.fixed.retain(|(k, _)| *k != n);
        Ok(self)
    }

    /// Sets or removes HSTS.
    pub fn hsts(mut self, hsts: Option<Hsts>) -> Self {
        self.hsts = hsts.map(|h| h.value());
        self
    }

    /// Sets or removes the CSP (both the enforcing and report-only headers).
    pub fn csp(mut self, csp: Option<Csp>) -> Self {
        self.fixed.retain(|(k, _)| {
            k != http::header::CONTENT_SECURITY_POLICY
                && k != http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY
        });
        if let Some(c) = csp {
            self.fixed.insert(0, c.header());
        }
        self
    }

    /// The headers a response gets, for HTTPS or plain HTTP clients.
    pub fn effective(&self, https: bool) -> Vec<(HeaderName, HeaderValue)> {
        let mut v = self.fixed.clone();
        if https && let Some(h) = &self.hsts {
            v.push((http::header::STRICT_TRANSPORT_SECURITY, h.clone()));
        }
        v
    }

    /// Applies the set to response headers.
    pub fn apply(&self, headers: &mut http::HeaderMap, https: bool) {
        for name in &FINGERPRINT_NAMES {
            headers.remove(name);
        }
        // One growth of the map instead of several.
        headers.reserve(self.fixed.len() + 1);
        for (n, v) in &self.fixed {
            headers.insert(n.clone(), v.clone());
        }
        match (&self.hsts, https) {
            (Some(h), true) => {
                headers.insert(http::header::STRICT_TRANSPORT_SECURITY, h.clone());
            }
            _ => {
                // Never over plain HTTP, and never the upstream's when removed.
                headers.remove(http::header::STRICT_TRANSPORT_SECURITY);
            }
        }
        if let Some(c) = &self.cookies {
            cookies::harden_all(headers, c, https);
        }
    }
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders::helmet()
    }
}

#[cfg(test)]
mod tests;
