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
            let _ = writeln!(o, "  listen            {a} (/healthz, /readyz, /metrics)");
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
    render_routes(c, &mut o);
    let d = &c.input.defaults;
    let _ = writeln!(o, "[input] always on (C17 C18 C19)");
    let _ = writeln!(
        o,
        "  json              strict: duplicate keys refused, depth {}, {} entries, strings {} bytes",
        d.json.max_depth, d.json.max_entries, d.json.max_string_len
    );
    let _ =
        writeln!(o, "  prototype keys    __proto__, constructor, prototype refused in JSON, query and forms");
    let _ = writeln!(
        o,
        "  query, forms      {} parameters; a[]=, a[b]=, repeats refused unless a schema declares an array",
        d.query.max_params
    );
    let _ = writeln!(o, "  encodings         gzip, deflate, br decoded and checked; others 415");
    let _ = writeln!(
        o,
        "  injection         {} unless a route says otherwise (C20)",
        format!("{:?}", d.injection).to_lowercase()
    );
    let _ = writeln!(o, "[errors]");
    let _ = writeln!(
        o,
        "  upstream 5xx{} replaced by a JSON error; {} bytes of the original logged",
        if c.errors.replace_html_4xx { " and HTML 4xx" } else { "" },
        c.errors.log_body_bytes
    );
    o
}

/// `; body schema, query schema, json only, injection Block`, or nothing.
fn input_summary(p: &portcullis_layers::input::InputPolicy) -> String {
    let mut parts = Vec::new();
    if p.body.is_some() {
        parts.push(if p.body_required {
            "body schema (required)".to_owned()
        } else {
            "body schema".to_owned()
        });
    }
    if p.query_schema.is_some() {
        parts.push("query schema".to_owned());
    }
    if p.params.is_some() {
        parts.push("params schema".to_owned());
    }
    if p.headers.is_some() {
        parts.push("headers schema".to_owned());
    }
    match &p.content_types {
        Some(t) if t.is_empty() => parts.push("no body".to_owned()),
        Some(t) => parts.push(format!("bodies {}", t.join(", "))),
        None => {}
    }
    if !p.json.forbid_prototype_keys {
        parts.push("PROTOTYPE KEYS ALLOWED (insecure)".to_owned());
    }
    if p.injection != portcullis_layers::input::InjectionMode::Off {
        parts.push(format!("injection {}", format!("{:?}", p.injection).to_lowercase()));
    }
    if parts.is_empty() { String::new() } else { format!("; {}", parts.join(", ")) }
}

fn render_routes(c: &Config, o: &mut String) {
    use portcullis_layers::route::{Access, Unmatched};
    let r = &c.routes;
    let _ = writeln!(
        o,
        "[routes] first match wins, on the canonical path; a route owns its paths (other methods: 405)"
    );
    let _ = writeln!(
        o,
        "  matching          {}, {}",
        if r.matching.case_sensitive { "case-sensitive" } else { "case-insensitive (Express)" },
        if r.matching.strict_trailing_slash {
            "trailing slash significant"
        } else {
            "trailing slash ignored"
        }
    );
    for (i, route) in r.table.routes().iter().enumerate() {
        let methods = route.methods.as_ref().map_or_else(
            || "*".to_owned(),
            |m| m.iter().map(http::Method::as_str).collect::<Vec<_>>().join(","),
        );
        let access = match &route.access {
            Access::Public => "public".to_owned(),
            Access::Protected(a) if a.roles.is_empty() && a.owner.is_none() => "any valid token".to_owned(),
            Access::Protected(a) => {
                let mut parts = Vec::new();
                if !a.roles.is_empty() {
                    parts.push(format!("role {}", a.roles.join(" | ")));
                }
                if let Some(o) = &a.owner {
                    parts.push(format!("subject == {{{o}}}"));
                }
                format!("token + ({})", parts.join(" OR "))
            }
        };
        let input =
            portcullis_layers::input::InputLayer::route_policy(route).map(input_summary).unwrap_or_default();
        let mut flags = String::new();
        if route.websocket {
            flags.push_str("; WebSocket upgrades");
        }
        if route.insecure_method_fallthrough {
            flags.push_str("; OTHER METHODS FALL THROUGH TO LATER ROUTES (insecure_method_fallthrough)");
        }
        let _ = writeln!(
            o,
            "  route[{i}]          {methods} {} -> {access}{input}{flags}",
            route.pattern.as_str()
        );
    }
    let _ = writeln!(
        o,
        "  unmatched         {}",
        match r.unmatched {
            Unmatched::NotFound => "404 not_found (deny by default)",
            Unmatched::InsecurePassThrough => "FORWARDED WITHOUT AUTHENTICATION (insecure_pass_through)",
        }
    );
    let a = &c.auth;
    let _ = writeln!(o, "[auth]");
    match &a.jwt {
        None => {
            let _ = writeln!(o, "  jwt               not configured");
        }
        Some(j) => {
            let algs: Vec<&str> =
                j.policy.algorithms.iter().map(|a| portcullis_layers::auth::algorithm_name(*a)).collect();
            let _ = writeln!(o, "  issuer            {}", j.policy.issuers.join(", "));
            let _ = writeln!(o, "  audience          {}", j.policy.audiences.join(", "));
            let _ = writeln!(o, "  algorithms        {} (pinned per key; never none/HMAC)", algs.join(", "));
            let _ = writeln!(o, "  leeway            {}", show_duration(j.policy.leeway));
            let _ = writeln!(o, "  static keys       {}", j.static_keys.keys().len());
            if let Some(u) = &j.jwks_url {
                let _ = writeln!(
                    o,
                    "  jwks              {u} (refresh {}, unknown kid re-fetch at most every {})",
                    show_duration(j.jwks.refresh),
                    show_duration(j.jwks.min_interval)
                );
            }
            let _ = writeln!(
                o,
                "  claims            subject `{}`, roles `{}`",
                j.policy.subject_claim, j.policy.roles_claim
            );
        }
    }
    let names: Vec<String> = a.identity_headers.names().iter().map(ToString::to_string).collect();
    let _ =
        writeln!(o, "  identity headers  {} (incoming copies stripped in every spelling)", names.join(", "));
    let _ =
        writeln!(o, "  bearer token      {}", if a.forward_token { "forwarded" } else { "not forwarded" });
}
