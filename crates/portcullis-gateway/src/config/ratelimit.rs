//! `[rate_limit_options]` and `[[rate_limit]]` (C11, C12).

use std::time::Duration;

use http::{HeaderName, Method};
use portcullis_layers::pattern::PathPattern;
use portcullis_layers::ratelimit::{FailMode, HeaderFormat, KeyKind, Rule};

use serde::Deserialize;

use super::units::{Dur, show_duration, within};
use super::{Problems, StateConfig};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimitOptions {
    pub(crate) store: Option<Store>,
    pub(crate) headers: Option<Headers>,
    pub(crate) legacy_headers: Option<bool>,
    pub(crate) on_store_error: Option<OnStoreError>,
    pub(crate) max_keys: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimit {
    pub(crate) name: Option<String>,
    pub(crate) routes: Option<Vec<String>>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<u64>,
    pub(crate) window: Option<Dur>,
}

/// Which store the rate limits use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// In-process.
    Memory,
    /// `[state] redis`.
    Redis,
}

/// The validated rate-limit configuration.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The store.
    pub store: StoreKind,
    /// Header format.
    pub headers: HeaderFormat,
    /// Legacy `X-RateLimit-*`.
    pub legacy_headers: bool,
    /// Store failure behaviour.
    pub on_store_error: FailMode,
    /// Bound of the memory store (and of the fail-open fallback).
    pub max_keys: usize,
}

fn parse_key(s: &str) -> Result<KeyKind, String> {
    match s {
        "ip" => Ok(KeyKind::ip()),
        "global" => Ok(KeyKind::Global),
        "subject" => Ok(KeyKind::Subject),
        s if let Some(n) = s.strip_prefix("ip/") => match n.parse::<u8>() {
            Ok(n) if (32..=128).contains(&n) => Ok(KeyKind::Ip { v6_prefix: n }),
            _ => Err("ip/N groups IPv6 clients by a prefix of 32 to 128 bits, e.g. \"ip/56\"".to_owned()),
        },
        s if let Some(name) = s.strip_prefix("header:") => HeaderName::from_bytes(name.as_bytes())
            .map(KeyKind::Header)
            .map_err(|_| "not a valid header name after \"header:\"".to_owned()),
        _ => Err("expected \"ip\", \"ip/56\", \"header:X-Api-Key\" or \"global\"".to_owned()),
    }
}

super::units::keywords! {
    /// `rate_limit_options.store`.
    Store => StoreKind { "memory" => StoreKind::Memory, "redis" => StoreKind::Redis }
}

super::units::keywords! {
    /// `rate_limit_options.headers`: which RateLimit header draft is sent.
    Headers => HeaderFormat {
        "draft-8" => HeaderFormat::Draft8,
        "draft-7" => HeaderFormat::Draft7,
        "draft-6" => HeaderFormat::Draft6,
        "off" => HeaderFormat::Off,
    }
}

super::units::keywords! {
    /// `rate_limit_options.on_store_error`.
    OnStoreError => FailMode { "fail_open" => FailMode::Open, "fail_closed" => FailMode::Closed }
}

pub(super) fn validate(
    options: RawRateLimitOptions,
    rules: Vec<RawRateLimit>,
    state: &StateConfig,
    authentication: bool,
    p: &mut Problems,
) -> Option<RateLimitConfig> {
    let before = p.0.len();
    let store = match options.store.map(|k| k.0) {
        None if state.redis.is_some() => StoreKind::Redis,
        None | Some(StoreKind::Memory) => StoreKind::Memory,
        Some(StoreKind::Redis) if state.redis.is_some() => StoreKind::Redis,
        Some(StoreKind::Redis) => {
            p.push("rate_limit_options.store", "\"redis\" needs [state] redis = \"${REDIS_URL}\"");
            StoreKind::Memory
        }
    };
    let headers = options.headers.map_or(HeaderFormat::Draft8, |k| k.0);
    let on_store_error = options.on_store_error.map_or(FailMode::Open, |k| k.0);
    let max_keys = options.max_keys.unwrap_or(100_000);
    if !(100..=10_000_000).contains(&max_keys) {
        p.push("rate_limit_options.max_keys", "must be between 100 and 10000000");
    }
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, r) in rules.into_iter().enumerate() {
        let at = format!("rate_limit[{i}]");
        let name = r.name.clone().unwrap_or_else(|| format!("rule{i}"));
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            p.push(format!("{at}.name"), "1 to 32 characters of a-z, 0-9, '-' and '_'");
        } else if names.contains(&name) {
            p.push(format!("{at}.name"), "another rule has this name");
        }
        names.push(name.clone());
        if r.limit.is_none() {
            p.push(format!("{at}.limit"), "missing: how many requests per window");
        }
        let limit = within(&format!("{at}.limit"), r.limit, 1, 1, 1_000_000, p);
        let limit = u32::try_from(limit).unwrap_or(1);
        if r.window.is_none() {
            p.push(format!("{at}.window"), "missing, e.g. \"1m\"");
        }
        let window = within(
            &format!("{at}.window"),
            r.window.map(|d| d.0),
            Duration::from_secs(60),
            Duration::from_millis(1),
            Duration::from_secs(30 * 86_400),
            p,
        );
        let mut patterns = Vec::new();
        for (j, s) in r.routes.unwrap_or_default().iter().enumerate() {
            match PathPattern::parse(s) {
                Ok(pt) => patterns.push(pt),
                Err(e) => p.push(format!("{at}.routes[{j}]"), e.message),
            }
        }
        let mut methods = Vec::new();
        for (j, m) in r.methods.unwrap_or_default().iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => p.push(format!("{at}.methods[{j}]"), "not a valid method"),
            }
        }
        let key = match parse_key(r.key.as_deref().unwrap_or("ip")) {
            Ok(KeyKind::Subject) if !authentication => {
                p.push(
                    format!("{at}.key"),
                    "\"subject\" counts by the verified user, and no authentication is configured: add [auth.jwt], or count by \"ip\"",
                );
                KeyKind::ip()
            }
            Ok(k) => k,
            Err(e) => {
                p.push(format!("{at}.key"), e);
                KeyKind::ip()
            }
        };
        out.push(Rule::new(&name, limit, window).paths(patterns).methods(methods).key(key));
    }
    (p.0.len() == before).then_some(RateLimitConfig {
        rules: out,
        store,
        headers,
        legacy_headers: options.legacy_headers.unwrap_or(false),
        on_store_error,
        max_keys: usize::try_from(max_keys).unwrap_or(100_000),
    })
}

/// Lines for `check`.
pub(super) fn summary(c: &RateLimitConfig) -> Vec<String> {
    let store = match c.store {
        StoreKind::Memory => "memory (per instance)",
        StoreKind::Redis => "redis (shared)",
    };
    let headers = match c.headers {
        HeaderFormat::Draft6 => "draft-6",
        HeaderFormat::Draft7 => "draft-7",
        HeaderFormat::Draft8 => "draft-8",
        HeaderFormat::Off => "off",
        _ => "other",
    };
    let on_error = match c.on_store_error {
        FailMode::Open => "fail open (counted in this instance)",
        FailMode::Closed => "fail closed (503)",
        _ => "other",
    };
    let mut v = vec![format!(
        "store {store}, headers {headers}{}, on store error {on_error}, max {} keys in memory",
        if c.legacy_headers { " + legacy X-RateLimit-*" } else { "" },
        c.max_keys
    )];
    for r in &c.rules {
        let routes: Vec<&str> = r.patterns.iter().map(PathPattern::as_str).collect();
        let methods: Vec<&str> = r.methods.iter().map(Method::as_str).collect();
        let key = match &r.key {
            KeyKind::Ip { v6_prefix } => format!("ip (IPv6 /{v6_prefix})"),
            KeyKind::Header(h) => format!("header {h}"),
            KeyKind::Global => "global".to_owned(),
            KeyKind::Subject => "subject (the verified user; client IP without one)".to_owned(),
            _ => "other".to_owned(),
        };
        v.push(format!(
            "{}: {} per {} by {key} on {} {}",
            r.name,
            r.rate.limit,
            show_duration(r.window()),
            if methods.is_empty() { "any method".to_owned() } else { methods.join(",") },
            if routes.is_empty() { "every path".to_owned() } else { routes.join(" ") }
        ));
    }
    v
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[rate_limit]");
    if c.rate_limit.rules.is_empty() {
        let _ = writeln!(o, "  no rules");
    }
    for line in summary(&c.rate_limit) {
        let _ = writeln!(o, "  {line}");
    }
}
