//! `[upstream]`: the API behind the gateway.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::units::{Dur, timeout as timeout_of};
use super::{Problems, Secret, secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<String>,
    pub(crate) timeout: Option<Dur>,
    pub(crate) connect_timeout: Option<Dur>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
    pub(crate) health_interval: Option<Dur>,
    pub(crate) unhealthy_after: Option<u64>,
    pub(crate) max_idle_connections: Option<u64>,
    pub(crate) idle_connection_timeout: Option<Dur>,
}

/// `[upstream]`.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `http://host:port` plus an optional base path.
    pub url: http::Uri,
    /// The base path without trailing slash (`""` for none).
    pub base_path: String,
    /// Time from sending the request to the response head (C14).
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Extra headers for the upstream (secrets).
    pub headers: Vec<(HeaderName, Secret)>,
    /// Connection probes for `/readyz`; `None` (the default) probes nothing.
    pub health: Option<UpstreamHealth>,
    /// Idle keep-alive connections kept open to the upstream, at most
    /// (0: a connection per request).
    pub max_idle_connections: usize,
    /// An idle upstream connection is closed after this long.
    pub idle_connection_timeout: Duration,
}

/// `upstream.health_interval` and `upstream.unhealthy_after`: a TCP
/// connection to the upstream every interval; after this many failures in
/// a row `/readyz` answers 503 until one succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamHealth {
    /// Time between probes.
    pub interval: Duration,
    /// Consecutive failed probes that make the gateway not ready.
    pub unhealthy_after: u64,
}

pub(super) fn validate(
    raw: RawUpstream,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<UpstreamConfig> {
    let before = p.0.len();
    let url = match raw.url.as_deref() {
        None => {
            p.push("upstream.url", "missing: the URL of the API to protect, e.g. \"http://127.0.0.1:3000\"");
            None
        }
        Some(s) => {
            match s.parse::<http::Uri>() {
                Ok(u) if u.scheme_str() == Some("https") => {
                    p.push(
                        "upstream.url",
                        "https upstreams are not supported yet; use http:// to a local or private upstream",
                    );
                    None
                }
                Ok(u) if u.scheme_str() != Some("http") || u.authority().is_none() => {
                    p.push("upstream.url", "expected an absolute http:// URL with a host");
                    None
                }
                Ok(u) if u.query().is_some() || s.contains('#') => {
                    p.push("upstream.url", "must not have a query or fragment");
                    None
                }
                Ok(u) if u.authority().is_some_and(|a| a.as_str().contains('@')) => {
                    p.push("upstream.url", "credentials in the URL are not allowed; use upstream.headers with a secret reference");
                    None
                }
                Ok(u) => Some(u),
                Err(_) => {
                    p.push("upstream.url", "not a valid URL");
                    None
                }
            }
        }
    };
    let timeout = timeout_of("upstream.timeout", raw.timeout, Duration::from_secs(30), p);
    let connect_timeout =
        timeout_of("upstream.connect_timeout", raw.connect_timeout, Duration::from_secs(5), p);
    let mut headers = Vec::new();
    for (name, value) in raw.headers.unwrap_or_default() {
        let at = format!("upstream.headers.{name}");
        let hn = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                p.push(at, "not a valid header name");
                continue;
            }
        };
        if portcullis_layers::forwarded::HOP_BY_HOP.contains(&hn.as_str())
            || portcullis_layers::forwarded::PROTECTED.contains(&hn.as_str())
        {
            p.push(at, "this header is managed by Portcullis and can't be set");
            continue;
        }
        match secret::parse_ref(&value).and_then(|r| secret::resolve(&r, env)) {
            Ok(s) if http::HeaderValue::from_str(s.expose()).is_ok() => headers.push((hn, s)),
            Ok(_) => p.push(at, "the secret's value is not a valid header value (control characters?)"),
            Err(e) => p.push(at, e.to_string()),
        }
    }
    let health = raw.health_interval.map(|d| UpstreamHealth {
        interval: super::units::within(
            "upstream.health_interval",
            Some(d.0),
            Duration::from_secs(5),
            Duration::from_millis(50),
            Duration::from_secs(3600),
            p,
        ),
        unhealthy_after: super::units::within("upstream.unhealthy_after", raw.unhealthy_after, 3, 1, 100, p),
    });
    let max_idle_connections =
        super::units::within("upstream.max_idle_connections", raw.max_idle_connections, 1024, 0, 65_536, p);
    let idle_connection_timeout = super::units::within(
        "upstream.idle_connection_timeout",
        raw.idle_connection_timeout.map(|d| d.0),
        // Under Node's default keep-alive timeout (5 s), so the gateway
        // never picks a connection an Express upstream is closing.
        Duration::from_secs(4),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        p,
    );
    if raw.unhealthy_after.is_some() && health.is_none() {
        p.push("upstream.unhealthy_after", "needs upstream.health_interval (probes are off without it)");
    }
    let url = url?;
    if p.0.len() != before {
        return None;
    }
    let base_path = url.path().trim_end_matches('/').to_owned();
    Some(UpstreamConfig {
        url,
        base_path,
        timeout,
        connect_timeout,
        headers,
        health,
        max_idle_connections: usize::try_from(max_idle_connections).unwrap_or(usize::MAX),
        idle_connection_timeout,
    })
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let u = &c.upstream;
    let _ = writeln!(o, "[upstream]");
    let _ = writeln!(o, "  url               {}", u.url);
    let _ = writeln!(
        o,
        "  timeout           {} (connect {})",
        super::units::show_duration(u.timeout),
        super::units::show_duration(u.connect_timeout)
    );
    let _ = writeln!(
        o,
        "  keep-alive        at most {} idle connections, closed after {} idle",
        u.max_idle_connections,
        super::units::show_duration(u.idle_connection_timeout)
    );
    for (name, secret) in &u.headers {
        let _ = writeln!(o, "  header            {name}: {secret}");
    }
    match u.health {
        Some(h) => {
            let _ = writeln!(
                o,
                "  health probes     every {}, not ready after {} failures in a row",
                super::units::show_duration(h.interval),
                h.unhealthy_after
            );
        }
        None => {
            let _ = writeln!(o, "  health probes     off");
        }
    }
}
