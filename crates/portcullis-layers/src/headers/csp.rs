use http::{HeaderName, HeaderValue};

use crate::config_error::ConfigError;

/// CSP directives (CSP Level 3) Portcullis accepts.
pub const KNOWN_DIRECTIVES: &[&str] = &[
    "default-src",
    "base-uri",
    "child-src",
    "connect-src",
    "fenced-frame-src",
    "font-src",
    "form-action",
    "frame-ancestors",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "report-to",
    "report-uri",
    "require-trusted-types-for",
    "sandbox",
    "script-src",
    "script-src-attr",
    "script-src-elem",
    "style-src",
    "style-src-attr",
    "style-src-elem",
    "trusted-types",
    "upgrade-insecure-requests",
    "block-all-mixed-content",
    "worker-src",
];

const VALUELESS: &[&str] = &["upgrade-insecure-requests", "block-all-mixed-content"];

const KEYWORDS: &[&str] = &[
    "self",
    "none",
    "unsafe-inline",
    "unsafe-eval",
    "unsafe-hashes",
    "strict-dynamic",
    "report-sample",
    "wasm-unsafe-eval",
    "inline-speculation-rules",
];

/// A Content-Security-Policy, built directive by directive (C7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csp {
    directives: Vec<(String, Vec<String>)>,
    report_only: bool,
}

impl Csp {
    /// helmet 8's default policy.
    pub fn helmet_default() -> Self {
        let d = |n: &str, v: &[&str]| (n.to_owned(), v.iter().map(|s| (*s).to_owned()).collect());
        Csp {
            directives: vec![
                d("default-src", &["'self'"]),
                d("base-uri", &["'self'"]),
                d("font-src", &["'self'", "https:", "data:"]),
                d("form-action", &["'self'"]),
                d("frame-ancestors", &["'self'"]),
                d("img-src", &["'self'", "data:"]),
                d("object-src", &["'none'"]),
                d("script-src", &["'self'"]),
                d("script-src-attr", &["'none'"]),
                d("style-src", &["'self'", "https:", "'unsafe-inline'"]),
                d("upgrade-insecure-requests", &[]),
            ],
            report_only: false,
        }
    }

    /// An empty policy, to build from scratch.
    pub fn empty() -> Self {
        Csp { directives: Vec::new(), report_only: false }
    }

    /// Sets (replaces) one directive. Errors name the directive and value index.
    pub fn directive<I, V>(mut self, name: &str, values: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<str>,
    {
        let name = name.to_ascii_lowercase();
        if !KNOWN_DIRECTIVES.contains(&name.as_str()) {
            return Err(ConfigError::new(name, "unknown CSP directive"));
        }
        let values: Vec<String> = values.into_iter().map(|v| v.as_ref().to_owned()).collect();
        if VALUELESS.contains(&name.as_str()) && !values.is_empty() {
            return Err(ConfigError::new(name, "this directive takes no values"));
        }
        if !VALUELESS.contains(&name.as_str()) && values.is_empty() {
            return Err(ConfigError::new(name, "empty source list; use \"'none'\" or remove the directive"));
        }
        for (i, v) in values.iter().enumerate() {
            let at = format!("{name}[{i}]");
            if v.is_empty()
                || v.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b';' || b == b',')
                || !v.is_ascii()
            {
                return Err(ConfigError::new(at, "a source must be one token without spaces, ';' or ','"));
            }
            if KEYWORDS.contains(&v.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(at, format!("keyword must be quoted: \"'{v}'\"")));
            }
        }
        match self.directives.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = values,
            None => self.directives.push((name, values)),
        }
        Ok(self)
    }

    /// Removes a directive.
    pub fn without(mut self, name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.directives.retain(|(n, _)| *n != name);
        self
    }

    /// Sends `Content-Security-Policy-Report-Only` instead of enforcing.
    pub fn report_only(mut self, yes: bool) -> Self {
        self.report_only = yes;
        self
    }

    /// The policy text.
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .directives
            .iter()
            .map(|(n, v)| if v.is_empty() { n.clone() } else { format!("{n} {}", v.join(" ")) })
            .collect();
        parts.join(";")
    }

    /// The header name and value.
    pub fn header(&self) -> (HeaderName, HeaderValue) {
        let name = if self.report_only {
            http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY
        } else {
            http::header::CONTENT_SECURITY_POLICY
        };
        // Every value was validated to be visible ASCII without separators.
        let value = HeaderValue::from_str(&self.to_text())
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        (name, value)
    }
}
