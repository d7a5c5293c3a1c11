//! Stage 2: raw -> validated. Collects every problem with its place.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use http::HeaderName;
use ipnet::IpNet;
use portcullis_layers::headers::{Csp, Hsts, SecurityHeaders};
use portcullis_layers::input::InputPolicy;
use portcullis_layers::path::PathPolicy;
use serde::de::DeserializeOwned;

use super::raw::*;
use super::secret;
use super::units::{parse_duration, parse_size};
use super::{Config, ErrorPages, Limits, Problems, ServerConfig, TlsConfig, UpstreamConfig};

const SECTIONS: &[&str] = &[
    "server",
    "admin",
    "upstream",
    "headers",
    "limits",
    "paths",
    "errors",
    "cors",
    "state",
    "rate_limit_options",
    "rate_limit",
    "routes",
    "route",
    "auth",
    "input",
    "openapi",
];
/// Sections of issues not built yet: refused with a clear message, so a
/// policy written for them is never silently not enforced.
const PLANNED: &[&str] = &["identity", "sessions", "session", "cookies", "csrf"];

/// Validates a configuration text. `base` resolves relative file paths;
/// `env` looks up `${VAR}` secrets.
pub fn from_str(text: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let doc: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map(|s| line_col(text, s.start)).unwrap_or_else(|| "file".to_owned());
            p.push(at, format!("TOML syntax error: {}", e.message()));
            return Err(p);
        }
    };
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            if PLANNED.contains(&key.as_str()) {
                p.push(key.clone(), "this section is not supported by this version of Portcullis; refusing to start rather than ignore it");
            } else {
                p.push(key.clone(), format!("unknown section; expected one of: {}", SECTIONS.join(", ")));
            }
        }
    }
    let server: RawServer = section("server", &doc, &mut p);
    let admin: RawAdmin = section("admin", &doc, &mut p);
    let upstream: RawUpstream = section("upstream", &doc, &mut p);
    let headers: RawHeaders = section("headers", &doc, &mut p);
    let limits: RawLimits = section("limits", &doc, &mut p);
    let paths: RawPaths = section("paths", &doc, &mut p);
    let errors: RawErrors = section("errors", &doc, &mut p);
    let cors: Option<RawCors> = doc.contains_key("cors").then(|| section("cors", &doc, &mut p));
    let state: RawState = section("state", &doc, &mut p);
    let rl_options: RawRateLimitOptions = section("rate_limit_options", &doc, &mut p);
    let rl_rules = table_array("rate_limit", &doc, &mut p);
    let routes_opts: RawRoutes = section("routes", &doc, &mut p);
    let route_list: Vec<RawRoute> = table_array("route", &doc, &mut p);
    let auth: RawAuth = section("auth", &doc, &mut p);
    let input: RawInput = section("input", &doc, &mut p);
    let openapi: Option<RawOpenApi> = doc.contains_key("openapi").then(|| section("openapi", &doc, &mut p));

    let server = validate_server(server, base, &mut p);
    let admin = validate_admin(admin, &mut p);
    let upstream = validate_upstream(upstream, env, &mut p);
    let headers = validate_headers(headers, &mut p);
    let limits = validate_limits(limits, &mut p);
    let paths = PathPolicy {
        merge_slashes: paths.merge_slashes.unwrap_or(true),
        resolve_dot_segments: paths.resolve_dot_segments.unwrap_or(true),
    };
    let errors = validate_errors(errors, &mut p);
    let cors = super::cors::validate(cors, &mut p);
    let state = super::ratelimit::validate_state(state, env, &mut p);
    let jwt_configured = auth.jwt.is_some();
    let rate_limit = super::ratelimit::validate(rl_options, rl_rules, &state, jwt_configured, &mut p);
    let auth = super::auth::validate_auth(auth, base, &mut p);
    let max_body = limits.as_ref().map_or(Limits::default().body, |l| l.body);
    let input_defaults = super::input::validate_defaults(input, &mut p);
    // Each route carries its own input policy (no list parallel to the table).
    let policies: Vec<Option<InputPolicy>> = route_list
        .iter()
        .enumerate()
        .map(|(i, r)| super::input::route_policy(i, r, &input_defaults, max_body, base, &mut p))
        .collect();
    let mut extra = Vec::new();
    if let Some(o) = openapi
        && let Some(o) = super::openapi::load(o, base, &input_defaults, max_body, jwt_configured, &mut p)
    {
        for (name, route, policy) in o.routes {
            extra.push((name, portcullis_layers::input::InputLayer::policy_of(route, policy)));
        }
    }
    let input = super::input::InputConfig {
        default_policy: super::input::default_policy(&input_defaults, max_body),
        defaults: input_defaults,
    };
    if route_list.is_empty()
        && extra.is_empty()
        && routes_opts.unmatched.as_deref() != Some("insecure_pass_through")
    {
        p.push(
            "route",
            "no [[route]] declared: Portcullis refuses requests that match no route (deny by default, C21), so this gateway would answer 404 to everything. Declare the API's routes (e.g. [[route]] path = \"/api/health\" public = true), or opt out with [routes] unmatched = \"insecure_pass_through\"",
        );
    }
    let mut warnings = Problems::default();
    let routes = super::auth::validate_routes(
        routes_opts,
        route_list,
        policies,
        extra,
        jwt_configured,
        &mut p,
        &mut warnings,
    );

    if let (Some(s), Some(a)) = (&server, admin)
        && a.port() != 0
        && (a == s.listen || Some(a) == s.redirect_http)
    {
        p.push("admin.listen", "must differ from the server listeners");
    }
    match (server, upstream, headers, limits, errors, cors, rate_limit, routes, auth) {
        (
            Some(server),
            Some(upstream),
            Some(headers),
            Some(limits),
            Some(errors),
            Some(cors),
            Some(rate_limit),
            Some(routes),
            Some(auth),
        ) if p.0.is_empty() => Ok(Config {
            server,
            admin,
            upstream,
            headers,
            limits,
            paths,
            errors,
            cors,
            state,
            rate_limit,
            routes,
            auth,
            input,
            warnings,
        }),
        _ => {
            p.locate(text);
            Err(p)
        }
    }
    .map(|mut c: Config| {
        c.warnings.locate(text);
        c
    })
}

/// `[[name]]`: an array of tables, each checked on its own.
fn table_array<T: DeserializeOwned + Default>(name: &str, doc: &toml::Table, p: &mut Problems) -> Vec<T> {
    let Some(v) = doc.get(name) else { return Vec::new() };
    let Some(items) = v.as_array() else {
        p.push(name, format!("expected [[{name}]] tables"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut wrapper = toml::Table::new();
        wrapper.insert(format!("{name}[{i}]"), item.clone());
        out.push(section(&format!("{name}[{i}]"), &wrapper, p));
    }
    out
}

fn line_col(text: &str, offset: usize) -> String {
    let (line, col) = super::locate::line_col(text, offset);
    format!("line {line}, column {col}")
}

/// Deserializes one section; on failure, checks each key alone so that every
/// bad key is reported, not just the first, and builds the section from the
/// good keys: a bad key never makes its neighbours look missing.
fn section<T: DeserializeOwned + Default>(name: &str, doc: &toml::Table, p: &mut Problems) -> T {
    let Some(value) = doc.get(name) else { return T::default() };
    let Some(table) = value.as_table() else {
        p.push(name, "expected a table, e.g. [".to_owned() + name + "]");
        p.refused(name.to_owned());
        return T::default();
    };
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(t) => t,
        Err(whole) => {
            let before = p.0.len();
            let mut good = toml::Table::new();
            for (k, v) in table {
                let mut one = toml::Table::new();
                one.insert(k.clone(), v.clone());
                match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(one)) {
                    Ok(_) => {
                        good.insert(k.clone(), v.clone());
                    }
                    Err(e) => {
                        let message = e.inner().to_string();
                        p.push(format!("{name}.{}", e.path()), clean_message(&message));
                        // A misspelt key leaves its table's meaning unknown
                        // (`publik = true` would make a route protected).
                        if message.starts_with("unknown field") {
                            p.misspelt_in(name);
                        } else {
                            p.refused(format!("{name}.{k}"));
                        }
                    }
                }
            }
            if p.0.len() == before {
                p.push(format!("{name}.{}", whole.path()), clean_message(&whole.inner().to_string()));
                p.refused(name.to_owned());
                return T::default();
            }
            serde_path_to_error::deserialize::<_, T>(toml::Value::Table(good)).unwrap_or_default()
        }
    }
}

/// serde's messages in user words, without echoing the value (it could be a
/// secret typed in the wrong place): `invalid type: integer `5`, expected a
/// string` becomes `expected text, found a number`.
fn clean_message(m: &str) -> String {
    // toml appends "\nin `key`": the key is already in the problem's place.
    let m = m.split('\n').next().unwrap_or(m).trim();
    if m.starts_with("data did not match any variant") {
        return "invalid value: expected a string or false (or a table where documented)".to_owned();
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = match found.split([' ', '`']).next().unwrap_or("") {
            "string" => "text",
            "integer" | "float" => "a number",
            "boolean" => "true or false",
            "sequence" => "a list",
            "map" => "a table",
            other => other,
        };
        return format!("expected {}, found {found}", user_type(expected));
    }
    if let Some(rest) = m.strip_prefix("invalid value: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("invalid value: expected {}", user_type(expected));
    }
    m.to_owned()
}

/// serde's names of expected types in user words.
fn user_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i64" => "a whole number",
        "a boolean" | "bool" => "true or false",
        "a string" => "text (in quotes)",
        "a sequence" => "a list, e.g. [\"a\", \"b\"]",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        "" => "another type",
        e => e,
    }
}

fn validate_server(raw: RawServer, base: &Path, p: &mut Problems) -> Option<ServerConfig> {
    let mut ok = true;
    let listen = match raw.listen.as_deref().unwrap_or("0.0.0.0:8080").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            p.push("server.listen", "expected ip:port, e.g. \"0.0.0.0:8080\"");
            ok = false;
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let mut trusted = Vec::new();
    for (i, s) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let at = format!("server.trusted_proxies[{i}]");
        let net = s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) if n.prefix_len() == 0 => {
                p.push(at, "trusting every address lets any client forge X-Forwarded-For; list the networks of your proxies");
                ok = false;
            }
            Some(n) => trusted.push(n.trunc()),
            None => {
                p.push(at, "expected an IP address or CIDR network, e.g. \"10.0.0.0/8\"");
                ok = false;
            }
        }
    }
    let tls = match raw.tls {
        None => None,
        Some(t) => {
            let cert = t.cert.as_deref().map(|c| base.join(c));
            let key = t.key.as_deref().map(|k| base.join(k));
            if cert.is_none() {
                p.push("server.tls.cert", "missing: path to the PEM certificate chain");
            }
            if key.is_none() {
                p.push("server.tls.key", "missing: path to the PEM private key");
            }
            match (cert, key) {
                (Some(cert), Some(key)) => match crate::tls::server_config(&cert, &key) {
                    Ok(cfg) => Some(TlsConfig { cert, key, rustls: Arc::new(cfg) }),
                    Err((which, msg)) => {
                        let at = match which {
                            crate::tls::TlsFile::Cert => "server.tls.cert",
                            crate::tls::TlsFile::Key => "server.tls.key",
                        };
                        p.push(at, msg);
                        ok = false;
                        None
                    }
                },
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let redirect_http = match raw.redirect_http.as_deref() {
        None => None,
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) if a == listen && a.port() != 0 => {
                p.push("server.redirect_http", "must differ from server.listen");
                ok = false;
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                p.push("server.redirect_http", "expected ip:port, e.g. \"0.0.0.0:80\"");
                ok = false;
                None
            }
        },
    };
    if redirect_http.is_some() && tls.is_none() && ok {
        p.push("server.redirect_http", "redirects to HTTPS need [server.tls] on server.listen");
        ok = false;
    }
    let mut names = Vec::new();
    for (i, n) in raw.names.unwrap_or_default().iter().enumerate() {
        let valid = !n.is_empty()
            && n.len() <= 253
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
            && !n.starts_with(['.', '-']);
        if valid {
            names.push(n.to_ascii_lowercase());
        } else {
            p.push(
                format!("server.names[{i}]"),
                "expected a host name without port, e.g. \"api.example.com\"",
            );
            ok = false;
        }
    }
    ok.then_some(ServerConfig { listen, tls, redirect_http, trusted_proxies: trusted, names })
}

fn validate_admin(raw: RawAdmin, p: &mut Problems) -> Option<SocketAddr> {
    if raw.enabled == Some(false) {
        return None;
    }
    match raw.listen.as_deref().unwrap_or("127.0.0.1:9901").parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push("admin.listen", "expected ip:port, e.g. \"127.0.0.1:9901\"");
            None
        }
    }
}

fn duration(
    at: &str,
    raw: Option<&str>,
    default: std::time::Duration,
    p: &mut Problems,
) -> std::time::Duration {
    match raw {
        None => default,
        Some(s) => match parse_duration(s) {
            Ok(d) if d.is_zero() => {
                p.push(at, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                p.push(at, e);
                default
            }
        },
    }
}

fn validate_upstream(
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
    let timeout = duration("upstream.timeout", raw.timeout.as_deref(), std::time::Duration::from_secs(30), p);
    let connect_timeout = duration(
        "upstream.connect_timeout",
        raw.connect_timeout.as_deref(),
        std::time::Duration::from_secs(5),
        p,
    );
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
    let url = url?;
    if p.0.len() != before {
        return None;
    }
    let base_path = url.path().trim_end_matches('/').to_owned();
    Some(UpstreamConfig { url, base_path, timeout, connect_timeout, headers })
}

fn header_setting(
    s: SecurityHeaders,
    name: &str,
    raw: Option<RawHeaderValue>,
    p: &mut Problems,
) -> SecurityHeaders {
    let at = format!("headers.{}", name.replace('-', "_"));
    let r = match raw {
        None => return s,
        Some(RawHeaderValue::Off(false)) => s.clone().remove(name),
        Some(RawHeaderValue::Off(true)) => {
            p.push(at, "use false to remove the header, or a string value; true is not a value");
            return s;
        }
        Some(RawHeaderValue::Value(v)) => s.clone().set(name, &v),
    };
    r.unwrap_or_else(|e| {
        p.push(at, e.message);
        s
    })
}

fn validate_headers(raw: RawHeaders, p: &mut Problems) -> Option<SecurityHeaders> {
    let before = p.0.len();
    let mut s = SecurityHeaders::helmet();
    s = match raw.content_security_policy {
        None => s,
        Some(RawCsp::Off(false)) => s.csp(None),
        Some(RawCsp::Off(true)) => {
            p.push(
                "headers.content_security_policy",
                "use false to remove the CSP, or a table of directives",
            );
            s
        }
        Some(RawCsp::Policy(pol)) => {
            let mut csp = if pol.use_defaults.unwrap_or(true) { Csp::helmet_default() } else { Csp::empty() };
            for (name, d) in pol.directives.unwrap_or_default() {
                let at = format!("headers.content_security_policy.directives.{name}");
                csp = match d {
                    RawDirective::Off(false) => csp.without(&name),
                    RawDirective::Off(true) => {
                        // `true` only makes sense for valueless directives.
                        match csp.clone().directive(&name, Vec::<String>::new()) {
                            Ok(c) => c,
                            Err(e) => {
                                p.push(at, e.message);
                                csp
                            }
                        }
                    }
                    RawDirective::Sources(v) => match csp.clone().directive(&name, &v) {
                        Ok(c) => c,
                        Err(e) => {
                            let idx = e.at.find('[').map(|i| e.at[i..].to_owned()).unwrap_or_default();
                            p.push(format!("{at}{idx}"), e.message);
                            csp
                        }
                    },
                };
            }
            s.csp(Some(csp.report_only(pol.report_only.unwrap_or(false))))
        }
    };
    s = match raw.strict_transport_security {
        None => s,
        Some(RawHsts::Off(false)) => s.hsts(None),
        Some(RawHsts::Off(true)) => {
            p.push("headers.strict_transport_security", "use false to remove HSTS, or a table");
            s
        }
        Some(RawHsts::Policy(h)) => {
            let max_age = duration(
                "headers.strict_transport_security.max_age",
                h.max_age.as_deref(),
                std::time::Duration::from_secs(31_536_000),
                p,
            );
            let preload = h.preload.unwrap_or(false);
            let include = h.include_subdomains.unwrap_or(true);
            if preload && (!include || max_age.as_secs() < 31_536_000) {
                p.push(
                    "headers.strict_transport_security.preload",
                    "preload requires include_subdomains and max_age of at least 365d",
                );
            }
            s.hsts(Some(Hsts { max_age: max_age.as_secs(), include_subdomains: include, preload }))
        }
    };
    let simple = [
        ("cross-origin-opener-policy", raw.cross_origin_opener_policy),
        ("cross-origin-resource-policy", raw.cross_origin_resource_policy),
        ("origin-agent-cluster", raw.origin_agent_cluster),
        ("referrer-policy", raw.referrer_policy),
        ("x-content-type-options", raw.x_content_type_options),
        ("x-dns-prefetch-control", raw.x_dns_prefetch_control),
        ("x-download-options", raw.x_download_options),
        ("x-frame-options", raw.x_frame_options),
        ("x-permitted-cross-domain-policies", raw.x_permitted_cross_domain_policies),
        ("x-xss-protection", raw.x_xss_protection),
    ];
    for (name, v) in simple {
        if let Some(RawHeaderValue::Value(val)) = &v
            && let Some(msg) = check_known_value(name, val)
        {
            p.push(format!("headers.{}", name.replace('-', "_")), msg);
            continue;
        }
        s = header_setting(s, name, v, p);
    }
    (p.0.len() == before).then_some(s)
}

/// Values that browsers would silently ignore are refused.
fn check_known_value(name: &str, v: &str) -> Option<String> {
    let allowed: &[&str] = match name {
        "x-frame-options" => &["DENY", "SAMEORIGIN"],
        "cross-origin-opener-policy" => {
            &["same-origin", "same-origin-allow-popups", "unsafe-none", "noopener-allow-popups"]
        }
        "cross-origin-resource-policy" => &["same-origin", "same-site", "cross-origin"],
        "x-content-type-options" => &["nosniff"],
        "origin-agent-cluster" => &["?1", "?0"],
        "x-dns-prefetch-control" => &["on", "off"],
        "x-permitted-cross-domain-policies" => &["none", "master-only", "by-content-type", "all"],
        "referrer-policy" => {
            const RP: &[&str] = &[
                "no-referrer",
                "no-referrer-when-downgrade",
                "same-origin",
                "origin",
                "strict-origin",
                "origin-when-cross-origin",
                "strict-origin-when-cross-origin",
                "unsafe-url",
            ];
            return v.split(',').all(|t| RP.contains(&t.trim())).then_some(()).map_or_else(
                || Some(format!("expected a comma-separated list of: {}", RP.join(", "))),
                |_| None,
            );
        }
        _ => return None,
    };
    (!allowed.contains(&v)).then(|| format!("expected one of: {}", allowed.join(", ")))
}

fn validate_limits(raw: RawLimits, p: &mut Problems) -> Option<Limits> {
    let before = p.0.len();
    let d = Limits::default();
    let size = |at: &str, v: Option<&str>, default: u64, p: &mut Problems| -> u64 {
        match v.map(parse_size) {
            None => default,
            Some(Ok(0)) => {
                p.push(at, "must be greater than zero");
                default
            }
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                p.push(at, e);
                default
            }
        }
    };
    let body = size("limits.body", raw.body.as_deref(), d.body, p);
    let header_bytes = size("limits.header_bytes", raw.header_bytes.as_deref(), d.header_bytes as u64, p);
    if !(8192..=1024 * 1024).contains(&header_bytes) {
        p.push("limits.header_bytes", "must be between 8kb and 1mb");
    }
    let max_headers = raw.max_headers.unwrap_or(d.max_headers as u64);
    if !(1..=1000).contains(&max_headers) {
        p.push("limits.max_headers", "must be between 1 and 1000");
    }
    let max_connections = raw.max_connections.unwrap_or(d.max_connections as u64);
    if !(1..=1_000_000).contains(&max_connections) {
        p.push("limits.max_connections", "must be between 1 and 1000000");
    }
    let l = Limits {
        body,
        header_bytes: usize::try_from(header_bytes).unwrap_or(d.header_bytes),
        max_headers: usize::try_from(max_headers).unwrap_or(d.max_headers),
        header_read_timeout: duration(
            "limits.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            d.header_read_timeout,
            p,
        ),
        body_read_timeout: duration(
            "limits.body_read_timeout",
            raw.body_read_timeout.as_deref(),
            d.body_read_timeout,
            p,
        ),
        request_timeout: duration(
            "limits.request_timeout",
            raw.request_timeout.as_deref(),
            d.request_timeout,
            p,
        ),
        idle_timeout: duration("limits.idle_timeout", raw.idle_timeout.as_deref(), d.idle_timeout, p),
        max_connections: usize::try_from(max_connections).unwrap_or(d.max_connections),
        shutdown_grace: duration("limits.shutdown_grace", raw.shutdown_grace.as_deref(), d.shutdown_grace, p),
    };
    (p.0.len() == before).then_some(l)
}

fn validate_errors(raw: RawErrors, p: &mut Problems) -> Option<ErrorPages> {
    let d = ErrorPages::default();
    let log = raw.log_body_bytes.unwrap_or(d.log_body_bytes as u64);
    if log > 65_536 {
        p.push("errors.log_body_bytes", "must be at most 65536");
        return None;
    }
    Some(ErrorPages {
        replace_html_4xx: raw.replace_html_4xx.unwrap_or(d.replace_html_4xx),
        log_body_bytes: usize::try_from(log).unwrap_or(d.log_body_bytes),
    })
}

#[cfg(test)]
mod tests;
