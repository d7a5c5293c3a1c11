//! The effective policy, as `portcullis check` prints it. Secrets print as
//! `***`; nothing here reads the raw file text.

use std::fmt::Write;

use portcullis_layers::headers::FINGERPRINT_HEADERS;

use super::Config;
use super::units::show_duration;

pub(super) fn render(c: &Config) -> String {
    let mut o = String::new();
    let s = &c.server;
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let _ = writeln!(o, "[server]");
    let _ = writeln!(o, "  listen            {} ({scheme})", s.listen);
    if let Some(t) = &s.tls {
        let _ = writeln!(
            o,
            "  tls               TLS 1.2+, ECDHE+AEAD suites, ALPN h2 http/1.1; cert {} key {}",
            t.cert.display(),
            t.key.display()
        );
    }
    if let Some(r) = s.redirect_http {
        let _ = writeln!(o, "  redirect_http     {r} -> 301 https");
    }
    let trusted: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        o,
        "  trusted_proxies   {}",
        if trusted.is_empty() {
            "none (client = socket peer; X-Forwarded-* overwritten)".to_owned()
        } else {
            trusted.join(", ")
        }
    );
    let _ = writeln!(o, "[admin]");
    match c.admin {
        Some(a) => {
            let _ = writeln!(o, "  listen            {a} (/healthz, /readyz)");
        }
        None => {
            let _ = writeln!(o, "  disabled");
        }
    }
    let u = &c.upstream;
    let _ = writeln!(o, "[upstream]");
    let _ = writeln!(o, "  url               {}", u.url);
    let _ = writeln!(
        o,
        "  timeout           {} (connect {})",
        show_duration(u.timeout),
        show_duration(u.connect_timeout)
    );
    for (name, secret) in &u.headers {
        let _ = writeln!(o, "  header            {name}: {secret}");
    }
    let l = &c.limits;
    let _ = writeln!(o, "[limits]");
    let _ = writeln!(o, "  body              {} bytes (413 beyond, also for chunked bodies)", l.body);
    let _ =
        writeln!(o, "  request head      {} bytes, {} fields (431 beyond)", l.header_bytes, l.max_headers);
    let _ = writeln!(
        o,
        "  timeouts          header read {}, body read {}, request {}, idle keep-alive {}",
        show_duration(l.header_read_timeout),
        show_duration(l.body_read_timeout),
        show_duration(l.request_timeout),
        show_duration(l.idle_timeout)
    );
    let _ = writeln!(
        o,
        "  connections       {} per listener; shutdown grace {}",
        l.max_connections,
        show_duration(l.shutdown_grace)
    );
    let _ = writeln!(o, "[paths]");
    let _ = writeln!(
        o,
        "  double slashes    {}; dot segments {}; refused: encoded / \\ . NUL %, ';', '\\', non-pchar bytes",
        if c.paths.merge_slashes { "merged" } else { "refused" },
        if c.paths.resolve_dot_segments { "resolved" } else { "refused" }
    );
    let _ = writeln!(o, "[headers] on every response");
    for (n, v) in c.headers.effective(true) {
        let v = v.to_str().unwrap_or("?");
        if n == http::header::STRICT_TRANSPORT_SECURITY {
            let _ = writeln!(o, "  {n}: {v}   (HTTPS only)");
        } else {
            let _ = writeln!(o, "  {n}: {v}");
        }
    }
    let _ = writeln!(o, "  removed: {}", FINGERPRINT_HEADERS.join(", "));
    let _ = writeln!(o, "[cors]");
    for line in &c.cors.summary {
        let _ = writeln!(o, "  {line}");
    }
    let _ = writeln!(o, "[state]");
    match &c.state.redis {
        None => {
            let _ = writeln!(o, "  in-process (no Redis)");
        }
        Some(super::RedisConfig::Standalone(_)) => {
            let _ =
                writeln!(o, "  redis ***, timeout {}", super::units::show_duration(c.state.redis_timeout));
        }
        Some(super::RedisConfig::Cluster(n)) => {
            let _ = writeln!(
                o,
                "  redis cluster, {} seed node(s) ***, timeout {}",
                n.len(),
                super::units::show_duration(c.state.redis_timeout)
            );
        }
    }
    let _ = writeln!(o, "[rate_limit]");
    if c.rate_limit.rules.is_empty() {
        let _ = writeln!(o, "  no rules");
    }
    for line in super::ratelimit::summary(&c.rate_limit) {
        let _ = writeln!(o, "  {line}");
    }
    let _ = writeln!(o, "[errors]");
    let _ = writeln!(
        o,
        "  upstream 5xx{} replaced by a JSON error; {} bytes of the original logged",
        if c.errors.replace_html_4xx { " and HTML 4xx" } else { "" },
        c.errors.log_body_bytes
    );
    o
}
