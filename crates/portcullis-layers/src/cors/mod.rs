//! Strict CORS (C8).
//!
//! # What it stops
//! Other sites reading your API's responses with the user's cookies or
//! tokens: reflected arbitrary origins, `*` with credentials, the `null`
//! origin, and suffix/prefix/regex look-alikes
//! (`https://app.example.com.evil.test`).
//!
//! # Decision rules
//! - Origins are an explicit list of exact `scheme://host[:port]` values
//!   or one-label wildcards (`https://*.example.com`); matching is
//!   byte-exact against what browsers send ([`OriginRule`]). `*` is
//!   possible only without credentials.
//! - A preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) is answered here and never forwarded:
//!   `204` with the policy when the origin, the method and every requested
//!   header are allowed, `403 cors_forbidden` otherwise.
//! - On every other response, `Access-Control-*` headers from the upstream
//!   are dropped; an allowed origin gets `Access-Control-Allow-Origin` (its
//!   own value, never a reflection of an unknown one), and credentials and
//!   exposed headers when configured. `Vary: Origin` is added to every
//!   response whose CORS headers depend on the origin.
//! - Per-route overrides: the first route whose patterns match the
//!   canonical path decides instead of the default policy.
//!
//! # Example
//! ```
//! use portcullis_layers::cors::Cors;
//! let cors = Cors::builder()
//!     .allow_origin("https://app.example.com").unwrap()
//!     .credentials(true)
//!     .build()
//!     .unwrap();
//! assert!(cors.origin_allowed(b"https://app.example.com"));
//! assert!(!cors.origin_allowed(b"https://app.example.com.evil.test"));
//! assert!(Cors::builder().allow_any_origin().credentials(true).build().is_err());
//! ```

mod layer;
mod origin;

pub use layer::{CorsLayer, CorsService};
pub use origin::OriginRule;

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, request};

use crate::config_error::ConfigError;

/// Request headers browsers may send cross-origin without asking.
const SAFELISTED: &[&str] = &["accept", "accept-language", "content-language"];

#[derive(Clone, Debug)]
enum Origins {
    Any,
    List(Vec<OriginRule>),
}

/// A built CORS policy.
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Origins,
    credentials: bool,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    methods_value: HeaderValue,
    headers_value: Option<HeaderValue>,
    expose_value: Option<HeaderValue>,
    max_age_value: Option<HeaderValue>,
}

/// Builds a [`Cors`] policy.
#[derive(Clone, Debug)]
#[must_use]
pub struct CorsBuilder {
    any: bool,
    rules: Vec<OriginRule>,
    credentials: bool,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    expose: Vec<HeaderName>,
    max_age: Option<Duration>,
}

fn list_value<T: AsRef<str>>(items: &[T]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    let joined: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    HeaderValue::from_str(&joined.join(", ")).ok()
}

impl CorsBuilder {
    /// Allows one origin (exact or `https://*.example.com`).
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        if origin == "*" {
            self.any = true;
        } else {
            self.rules.push(OriginRule::parse(origin)?);
        }
        Ok(self)
    }

    /// Allows every origin (`Access-Control-Allow-Origin: *`); refused with credentials.
    pub fn allow_any_origin(mut self) -> Self {
        self.any = true;
        self
    }

    /// Allows credentials (cookies, `Authorization`).
    pub fn credentials(mut self, yes: bool) -> Self {
        self.credentials = yes;
        self
    }

    /// The allowed methods (default GET, HEAD, POST, PUT, PATCH, DELETE).
    pub fn methods<I: IntoIterator<Item = S>, S: AsRef<str>>(
        mut self,
        methods: I,
    ) -> Result<Self, ConfigError> {
        let mut v = Vec::new();
        for (i, m) in methods.into_iter().enumerate() {
            let m = m.as_ref().to_ascii_uppercase();
            let method = Method::from_bytes(m.as_bytes())
                .map_err(|_| ConfigError::new(format!("[{i}]"), "not a valid method"))?;
            if matches!(method, Method::CONNECT | Method::TRACE) {
                return Err(ConfigError::new(format!("[{i}]"), "CONNECT and TRACE can't be allowed"));
            }
            v.push(method);
        }
        self.methods = v;
        Ok(self)
    }

    /// The allowed request headers (default `content-type`, `authorization`).
    pub fn headers<I: IntoIterator<Item = S>, S: AsRef<str>>(
        mut self,
        headers: I,
    ) -> Result<Self, ConfigError> {
        self.headers = names(headers)?;
        Ok(self)
    }

    /// Response headers scripts may read (`Access-Control-Expose-Headers`).
    pub fn expose_headers<I: IntoIterator<Item = S>, S: AsRef<str>>(
        mut self,
        h: I,
    ) -> Result<Self, ConfigError> {
        self.expose = names(h)?;
        Ok(self)
    }

    /// How long browsers may cache a preflight (default 10 minutes).
    pub fn max_age(mut self, d: Option<Duration>) -> Self {
        self.max_age = d;
        self
    }

    /// Builds the policy.
    pub fn build(self) -> Result<Cors, ConfigError> {
        if self.any && self.credentials {
            return Err(ConfigError::new(
                "",
                "\"*\" with credentials = true would let every site read responses with the user's credentials; list the origins",
            ));
        }
        if self.any && !self.rules.is_empty() {
            return Err(ConfigError::new(
                "",
                "\"*\" already allows every origin; remove the other entries or the \"*\"",
            ));
        }
        if !self.any && self.rules.is_empty() {
            return Err(ConfigError::new("", "no origin allowed; list at least one"));
        }
        let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        Ok(Cors {
            origins: if self.any { Origins::Any } else { Origins::List(self.rules) },
            credentials: self.credentials,
            methods_value: list_value(&methods).unwrap_or_else(|| HeaderValue::from_static("GET")),
            headers_value: list_value(&self.headers.iter().map(HeaderName::as_str).collect::<Vec<_>>()),
            expose_value: list_value(&self.expose.iter().map(HeaderName::as_str).collect::<Vec<_>>()),
            max_age_value: self.max_age.map(|d| HeaderValue::from(d.as_secs())),
            methods: self.methods,
            headers: self.headers,
        })
    }
}

fn names<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Result<Vec<HeaderName>, ConfigError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.as_ref();
            if h == "*" {
                return Err(ConfigError::new(
                    format!("[{i}]"),
                    "\"*\" is not allowed: list the header names",
                ));
            }
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| ConfigError::new(format!("[{i}]"), "not a valid header name"))
        })
        .collect()
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// A preflight to answer with these headers (204).
    PreflightAllowed(HeaderMap),
    /// A preflight to refuse (403).
    PreflightRefused,
    /// Forward; then apply [`Cors::apply`] with the request's origin.
    Forward,
}

impl Cors {
    /// A builder with the defaults.
    pub fn builder() -> CorsBuilder {
        CorsBuilder {
            any: false,
            rules: Vec::new(),
            credentials: false,
            methods: [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
                .to_vec(),
            headers: vec![header::CONTENT_TYPE, header::AUTHORIZATION],
            expose: Vec::new(),
            max_age: Some(Duration::from_secs(600)),
        }
    }

    /// Whether an `Origin` value is allowed.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        match &self.origins {
            Origins::Any => origin != b"null",
            Origins::List(rules) => rules.iter().any(|r| r.matches(origin)),
        }
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        match self.origins {
            Origins::Any => HeaderValue::from_static("*"),
            Origins::List(_) => origin.clone(),
        }
    }

    /// Decides a request: preflight answered here, or forward.
    pub fn decide(&self, parts: &request::Parts) -> Decision {
        let origin = parts.headers.get(header::ORIGIN);
        let acrm = parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD);
        let (Some(origin), Some(acrm), true) = (origin, acrm, parts.method == Method::OPTIONS) else {
            return Decision::Forward;
        };
        if !self.origin_allowed(origin.as_bytes()) {
            return Decision::PreflightRefused;
        }
        let method_ok = Method::from_bytes(acrm.as_bytes()).is_ok_and(|m| self.methods.contains(&m));
        let headers_ok = parts.headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS).iter().all(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',').map(str::trim).filter(|h| !h.is_empty()).all(|h| {
                    let h = h.to_ascii_lowercase();
                    SAFELISTED.contains(&h.as_str()) || self.headers.iter().any(|a| a.as_str() == h)
                })
            })
        });
        if !method_ok || !headers_ok {
            return Decision::PreflightRefused;
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin));
        if self.credentials {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods_value.clone());
        if let Some(v) = &self.headers_value {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.max_age_value {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        Decision::PreflightAllowed(h)
    }

    /// Vary tokens for preflight responses.
    pub const PREFLIGHT_VARY: &'static [&'static str] =
        &["origin", "access-control-request-method", "access-control-request-headers"];

    /// Applies the policy to a forwarded response: drops the upstream's
    /// `Access-Control-*`, adds ours for an allowed origin, adds `Vary: Origin`.
    pub fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        strip_cors(headers);
        if let Some(o) = origin.filter(|o| self.origin_allowed(o.as_bytes())) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(o));
            if self.credentials {
                headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            }
            if let Some(v) = &self.expose_value {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
        }
        if matches!(self.origins, Origins::List(_)) {
            add_vary(headers, &["origin"]);
        }
    }
}

/// Removes every `Access-Control-*` response header.
pub fn strip_cors(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("access-control-")).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

/// Adds tokens to `Vary`, keeping what is there and not duplicating.
pub fn add_vary(headers: &mut HeaderMap, tokens: &[&str]) {
    let mut existing: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if existing.iter().any(|t| t == "*") {
        return;
    }
    for t in tokens {
        if !existing.iter().any(|e| e.eq_ignore_ascii_case(t)) {
            existing.push((*t).to_owned());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&existing.join(", ")) {
        headers.insert(header::VARY, v);
    }
}

#[cfg(test)]
mod tests;
