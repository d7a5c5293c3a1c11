//! `[limits]`: body and header sizes, timeouts, connections (C12 C13 C14).

use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use super::units::{Dur, Size, timeout, within};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub(crate) body: Option<Size>,
    pub(crate) header_bytes: Option<Size>,
    pub(crate) max_headers: Option<u64>,
    pub(crate) header_read_timeout: Option<Dur>,
    pub(crate) body_read_timeout: Option<Dur>,
    pub(crate) request_timeout: Option<Dur>,
    pub(crate) idle_timeout: Option<Dur>,
    pub(crate) max_connections: Option<u64>,
    pub(crate) shutdown_grace: Option<Dur>,
}

/// `[limits]` (C13, C14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request body bytes.
    pub body: u64,
    /// Request head bytes (request line plus headers).
    pub header_bytes: usize,
    /// Number of request header fields.
    pub max_headers: usize,
    /// Time to receive a full request head (slowloris).
    pub header_read_timeout: Duration,
    /// Longest pause between request body frames.
    pub body_read_timeout: Duration,
    /// Longest time from request head to response head.
    pub request_timeout: Duration,
    /// Keep-alive connections with no request for this long are closed.
    pub idle_timeout: Duration,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 1024 * 1024,
            header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Validates `[limits]`.
pub(super) fn validate(raw: RawLimits, p: &mut Problems) -> Option<Limits> {
    let before = p.0.len();
    let d = Limits::default();
    let count = |at: &str, v: Option<u64>, default: usize, max: u64, p: &mut Problems| {
        let n = within(at, v, default as u64, 1, max, p);
        usize::try_from(n).unwrap_or(default)
    };
    let head = within(
        "limits.header_bytes",
        raw.header_bytes,
        Size(d.header_bytes as u64),
        Size(8192),
        Size(1 << 20),
        p,
    );
    let l = Limits {
        body: within("limits.body", raw.body, Size(d.body), Size(1), Size(1 << 40), p).0,
        header_bytes: usize::try_from(head.0).unwrap_or(d.header_bytes),
        max_headers: count("limits.max_headers", raw.max_headers, d.max_headers, 1000, p),
        header_read_timeout: timeout(
            "limits.header_read_timeout",
            raw.header_read_timeout,
            d.header_read_timeout,
            p,
        ),
        body_read_timeout: timeout("limits.body_read_timeout", raw.body_read_timeout, d.body_read_timeout, p),
        request_timeout: timeout("limits.request_timeout", raw.request_timeout, d.request_timeout, p),
        idle_timeout: timeout("limits.idle_timeout", raw.idle_timeout, d.idle_timeout, p),
        max_connections: count(
            "limits.max_connections",
            raw.max_connections,
            d.max_connections,
            1_000_000,
            p,
        ),
        shutdown_grace: timeout("limits.shutdown_grace", raw.shutdown_grace, d.shutdown_grace, p),
    };
    (p.0.len() == before).then_some(l)
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let l = &c.limits;
    let _ = writeln!(o, "[limits]");
    let _ = writeln!(
        o,
        "  body              {} (413 beyond, also for chunked bodies)",
        super::units::show_size(l.body)
    );
    let _ = writeln!(
        o,
        "  request head      {}, {} fields (431 beyond)",
        super::units::show_size(l.header_bytes as u64),
        l.max_headers
    );
    let _ = writeln!(
        o,
        "  timeouts          header read {}, body read {}, request {}, idle keep-alive {}",
        super::units::show_duration(l.header_read_timeout),
        super::units::show_duration(l.body_read_timeout),
        super::units::show_duration(l.request_timeout),
        super::units::show_duration(l.idle_timeout)
    );
    let _ = writeln!(
        o,
        "  connections       {} per listener; shutdown grace {}",
        l.max_connections,
        super::units::show_duration(l.shutdown_grace)
    );
}
