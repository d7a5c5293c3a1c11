//! `[routes]`, `[[route]]` and `[auth]`: deny-by-default routes (C21 C28),
//! JWT verification (C22), identity headers (C23), roles and ownership
//! (C26 C27).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use portcullis_layers::auth::{
    Algorithm, ClaimSource, IdentityHeaders, JwksOptions, JwtPolicy, KeySet, SUPPORTED, algorithm,
    same_spelling,
};
use portcullis_layers::input::{InputLayer, InputPolicy};
use portcullis_layers::pattern::{MatchOptions, PathPattern};
use portcullis_layers::route::{Access, Authz, Route, RouteTable, Unmatched};

use super::Problems;
use super::raw::{RawAuth, RawJwt, RawRoute, RawRoutes};
use super::units::{parse_duration, show_duration};

/// `[routes]` and `[[route]]`, built.
#[derive(Clone, Debug)]
pub struct RoutesConfig {
    /// The table, in file order.
    pub table: RouteTable,
    /// How unmatched requests are treated.
    pub unmatched: Unmatched,
    /// How patterns compare to paths.
    pub matching: MatchOptions,
}

/// `[auth]`, loaded.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `[auth.jwt]`.
    pub jwt: Option<JwtConfig>,
    /// `auth.identity_headers`.
    pub identity_headers: IdentityHeaders,
    /// `auth.forward_token`.
    pub forward_token: bool,
}

/// `[auth.jwt]`, loaded (key files read, URL checked).
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// What tokens must satisfy.
    pub policy: JwtPolicy,
    /// Keys from `auth.jwt.keys` files.
    pub static_keys: KeySet,
    /// The JWKS URL.
    pub jwks_url: Option<http::Uri>,
    /// JWKS timing.
    pub jwks: JwksOptions,
    /// Timeout of one JWKS fetch.
    pub jwks_timeout: Duration,
    /// Verified tokens cached.
    pub cache_size: usize,
}

fn dur(
    at: &str,
    raw: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
    p: &mut Problems,
) -> Duration {
    let Some(s) = raw else { return default };
    match parse_duration(s) {
        Ok(d) if d >= min && d <= max => d,
        Ok(_) => {
            p.push(at, format!("must be between {} and {}", show_duration(min), show_duration(max)));
            default
        }
        Err(e) => {
            p.push(at, e);
            default
        }
    }
}

/// Validates `[routes]` and the `[[route]]` list. `auth` says whether
/// `[auth.jwt]` is configured: a protected route without it could never be
/// reached, which is refused as a mistake.
pub(crate) fn validate_routes(
    opts: RawRoutes,
    routes: Vec<RawRoute>,
    policies: Vec<Option<InputPolicy>>,
    extra: Vec<(String, Route)>,
    jwt_configured: bool,
    p: &mut Problems,
    warnings: &mut Problems,
) -> Option<RoutesConfig> {
    let before = p.0.len();
    let unmatched = match opts.unmatched.as_deref() {
        None | Some("not_found") => Unmatched::NotFound,
        Some("insecure_pass_through") => Unmatched::InsecurePassThrough,
        Some(_) => {
            p.push(
                "routes.unmatched",
                "expected \"not_found\" (deny by default) or \"insecure_pass_through\"",
            );
            Unmatched::NotFound
        }
    };
    let matching = MatchOptions {
        case_sensitive: opts.case_sensitive.unwrap_or(false),
        strict_trailing_slash: opts.strict_trailing_slash.unwrap_or(false),
    };
    let mut built = Vec::new();
    let mut policies = policies.into_iter();
    for (i, r) in routes.into_iter().enumerate() {
        let policy = policies.next().flatten();
        let at = format!("route[{i}]");
        let pattern = match r.path.as_deref().map(PathPattern::parse) {
            None => {
                p.push(format!("{at}.path"), "missing: a path pattern, e.g. \"/api/users/{id}\"");
                None
            }
            Some(Err(e)) => {
                p.push(format!("{at}.path"), e.message);
                None
            }
            Some(Ok(pat)) => Some(pat),
        };
        if r.methods.as_ref().is_some_and(Vec::is_empty) {
            p.push(
                format!("{at}.methods"),
                "an empty list matches nothing; leave it out to match every method",
            );
        }
        let methods = r.methods.map(|ms| {
            let mut out = Vec::new();
            for (j, m) in ms.iter().enumerate() {
                match Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => out.push(method),
                    _ => p.push(
                        format!("{at}.methods[{j}]"),
                        "expected an upper-case method name, e.g. \"GET\"",
                    ),
                }
            }
            out
        });
        let public = r.public.unwrap_or(false);
        let access = match (public, r.allow) {
            (true, Some(_)) => {
                p.push(format!("{at}.allow"), "a public route admits everyone; remove `allow` or `public`");
                Access::Public
            }
            (true, None) => Access::Public,
            (false, allow) => {
                let allow = allow.unwrap_or_default();
                let roles = allow.roles.unwrap_or_default();
                for (j, role) in roles.iter().enumerate() {
                    if role.is_empty() || role.chars().any(char::is_whitespace) {
                        p.push(format!("{at}.allow.roles[{j}]"), "a role is a non-empty word");
                    }
                }
                if let (Some(owner), Some(pat)) = (&allow.owner, &pattern)
                    && !pat.params().any(|n| n == owner)
                {
                    p.push(
                        format!("{at}.allow.owner"),
                        format!("names no {{{owner}}} parameter of the path pattern"),
                    );
                }
                if !jwt_configured {
                    p.push(
                        at.clone(),
                        "a protected route (no `public = true`) needs [auth.jwt] to admit anyone; configure it, or mark the route public",
                    );
                }
                Access::Protected(Authz { roles, owner: allow.owner })
            }
        };
        if r.websocket == Some(true) && methods.as_ref().is_some_and(|ms| !ms.contains(&Method::GET)) {
            p.push(format!("{at}.websocket"), "a WebSocket handshake is a GET; add \"GET\" to `methods`");
        }
        if let Some(pattern) = pattern {
            let mut route = Route::new(pattern, access)
                .websocket(r.websocket.unwrap_or(false))
                .insecure_method_fallthrough(r.insecure_method_fallthrough.unwrap_or(false));
            if let Some(ms) = methods {
                route = route.methods(ms);
            }
            if let Some(policy) = policy {
                route = InputLayer::policy_of(route, policy);
            }
            built.push(route);
        }
    }
    let declared = built.len();
    let (extra_names, extra_routes): (Vec<String>, Vec<Route>) = extra.into_iter().unzip();
    built.extend(extra_routes);
    let table = RouteTable::new(built).match_options(matching).unmatched(unmatched);
    let name = |i: usize| {
        if i < declared { format!("route[{i}]") } else { extra_names[i - declared].clone() }
    };
    let describe = |r: &Route| {
        let methods = match &r.methods {
            None => "any method".to_owned(),
            Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", "),
        };
        format!("path \"{}\", {methods}", r.pattern.as_str())
    };
    for (i, j) in table.shadowed() {
        let routes = table.routes();
        let (earlier, later) = (describe(&routes[i]), describe(&routes[j]));
        p.push(
            name(j),
            format!(
                "can never match ({later}): {} ({earlier}) comes first and takes every request this route would, with its own policy; put the more specific route first",
                name(i)
            ),
        );
    }
    for (i, j, methods) in table.weaker_fallthroughs() {
        let methods: Vec<&str> = methods.iter().map(Method::as_str).collect();
        warnings.push(
            name(j),
            format!(
                "takes {} requests for paths {} matches but leaves out, and admits more callers than {}; list those methods on {} too, or narrow this route",
                methods.join(", "),
                name(i),
                name(i),
                name(i),
            ),
        );
    }
    (p.0.len() == before).then_some(RoutesConfig { table, unmatched, matching })
}

/// Validates `[auth]`; key files are read relative to `base`.
pub(crate) fn validate_auth(raw: RawAuth, base: &Path, p: &mut Problems) -> Option<AuthConfig> {
    let before = p.0.len();
    let jwt = raw.jwt.map(|j| validate_jwt(j, base, p));
    let subject_claim =
        jwt.as_ref().and_then(|j| j.as_ref()).map_or("sub", |j| j.policy.subject_claim.as_str());
    let roles_claim =
        jwt.as_ref().and_then(|j| j.as_ref()).map_or("roles", |j| j.policy.roles_claim.as_str());
    let identity_headers = match raw.identity_headers {
        None => IdentityHeaders::default(),
        Some(map) => {
            let mut entries = Vec::new();
            for (name, claim) in map {
                let at = format!("auth.identity_headers.{name}");
                let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
                    p.push(at, "not a valid header name");
                    continue;
                };
                let managed = portcullis_layers::forwarded::HOP_BY_HOP
                    .iter()
                    .chain(portcullis_layers::forwarded::PROTECTED)
                    .chain(&["authorization", "cookie", "content-length", "content-type"])
                    .any(|m| same_spelling(hn.as_str(), m));
                if managed {
                    p.push(
                        at,
                        "this header is managed by Portcullis or carries the request; pick another name",
                    );
                    continue;
                }
                if claim.is_empty() || claim.split('.').any(str::is_empty) {
                    p.push(at, "expected a claim name or dotted path, e.g. \"sub\" or \"tenant.id\"");
                    continue;
                }
                let src = if claim == subject_claim {
                    ClaimSource::Subject
                } else if claim == roles_claim {
                    ClaimSource::Roles
                } else {
                    ClaimSource::Claim(claim)
                };
                entries.push((hn, src));
            }
            IdentityHeaders::new(entries)
        }
    };
    let jwt = match jwt {
        None => None,
        Some(Some(j)) => Some(j),
        Some(None) => return None,
    };
    (p.0.len() == before).then_some(AuthConfig {
        jwt,
        identity_headers,
        forward_token: raw.forward_token.unwrap_or(false),
    })
}

fn validate_jwt(raw: RawJwt, base: &Path, p: &mut Problems) -> Option<JwtConfig> {
    let before = p.0.len();
    let issuers = raw.issuer.map(super::raw::OneOrMany::into_vec).unwrap_or_default();
    if issuers.is_empty() {
        p.push("auth.jwt.issuer", "missing: the `iss` your identity provider puts in tokens (required, so tokens minted for another issuer are refused)");
    }
    let audiences = raw.audience.map(super::raw::OneOrMany::into_vec).unwrap_or_default();
    if audiences.is_empty() {
        p.push("auth.jwt.audience", "missing: the `aud` of tokens for this API (required, so tokens for other APIs of the same issuer are refused)");
    }
    let mut algorithms = Vec::new();
    match raw.algorithms {
        None => algorithms = SUPPORTED.to_vec(),
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                match algorithm(a) {
                    Some(alg) => algorithms.push(alg),
                    None => p.push(
                        format!("auth.jwt.algorithms[{i}]"),
                        "expected one of EdDSA, ES256, ES384, RS256, PS256 (none and HMAC are never accepted)",
                    ),
                }
            }
            if list.is_empty() {
                p.push("auth.jwt.algorithms", "an empty list accepts no token");
            }
        }
    }
    let leeway = dur(
        "auth.jwt.leeway",
        raw.leeway.as_deref(),
        Duration::from_secs(30),
        Duration::ZERO,
        Duration::from_secs(300),
        p,
    );
    let refresh = dur(
        "auth.jwt.jwks_refresh",
        raw.jwks_refresh.as_deref(),
        Duration::from_secs(300),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
        p,
    );
    let min_interval = dur(
        "auth.jwt.jwks_min_interval",
        raw.jwks_min_interval.as_deref(),
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        p,
    );
    let jwks_timeout = dur(
        "auth.jwt.jwks_timeout",
        raw.jwks_timeout.as_deref(),
        Duration::from_secs(5),
        Duration::from_millis(100),
        Duration::from_secs(60),
        p,
    );
    if min_interval > refresh {
        p.push("auth.jwt.jwks_min_interval", "must not be longer than auth.jwt.jwks_refresh");
    }
    let jwks_url = raw.jwks_url.as_deref().and_then(|s| match s.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => Some(u),
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some_and(is_loopback) => Some(u),
        Ok(u) if u.scheme_str() == Some("http") => {
            p.push("auth.jwt.jwks_url", "must be https:// (plain http is allowed to a loopback address only): keys fetched in clear text can be replaced in transit");
            None
        }
        _ => {
            p.push("auth.jwt.jwks_url", "expected an absolute https:// URL");
            None
        }
    });
    let mut static_keys = Vec::new();
    for (i, k) in raw.keys.unwrap_or_default().into_iter().enumerate() {
        let at = format!("auth.jwt.keys[{i}]");
        let Some(file) = k.file else {
            p.push(format!("{at}.file"), "missing: a PEM public key or a JWK / JWK set file");
            continue;
        };
        let path: PathBuf = base.join(&file);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                p.push(format!("{at}.file"), format!("can't read {}: {}", path.display(), e.kind()));
                continue;
            }
        };
        if bytes.trim_ascii_start().starts_with(b"{") {
            if k.alg.is_some() || k.kid.is_some() {
                p.push(at.clone(), "a JWK file carries its own `alg` and `kid`; remove them here");
            }
            match KeySet::from_jwks(&bytes, &algorithms) {
                Ok((set, _)) if set.is_empty() => {
                    p.push(format!("{at}.file"), "no usable verification key in this JWK file")
                }
                Ok((set, _)) => static_keys.extend(set.keys().iter().cloned()),
                Err(e) => p.push(format!("{at}.file"), e),
            }
            continue;
        }
        let alg: Option<Algorithm> = match k.alg.as_deref() {
            None => {
                p.push(
                    format!("{at}.alg"),
                    "missing: the algorithm this PEM key verifies (EdDSA, ES256, ES384, RS256, PS256)",
                );
                None
            }
            Some(a) => match algorithm(a) {
                Some(alg) if algorithms.contains(&alg) => Some(alg),
                Some(_) => {
                    p.push(format!("{at}.alg"), "not in auth.jwt.algorithms");
                    None
                }
                None => {
                    p.push(format!("{at}.alg"), "expected one of EdDSA, ES256, ES384, RS256, PS256");
                    None
                }
            },
        };
        if let Some(alg) = alg {
            match KeySet::from_pem(&bytes, alg, k.kid) {
                Ok(key) => static_keys.push(key),
                Err(e) => p.push(format!("{at}.file"), e),
            }
        }
    }
    if jwks_url.is_none() && static_keys.is_empty() && p.0.len() == before {
        p.push("auth.jwt", "no keys: set jwks_url, or keys = [{ file = ..., alg = ... }]");
    }
    let cache_size = match raw.cache_size {
        None => 10_000,
        Some(n) if n <= 1_000_000 => usize::try_from(n).unwrap_or(1_000_000),
        Some(_) => {
            p.push("auth.jwt.cache_size", "at most 1000000");
            10_000
        }
    };
    let max_token_len = match raw.max_token_bytes {
        None => 8 * 1024,
        Some(n @ 256..=65_536) => usize::try_from(n).unwrap_or(8 * 1024),
        Some(_) => {
            p.push("auth.jwt.max_token_bytes", "between 256 and 65536");
            8 * 1024
        }
    };
    let claim = |at: &str, v: Option<String>, default: &str, p: &mut Problems| -> String {
        let v = v.unwrap_or_else(|| default.to_owned());
        if v.is_empty() || v.split('.').any(str::is_empty) {
            p.push(at, "expected a claim name or dotted path");
        }
        v
    };
    let subject_claim = claim("auth.jwt.subject_claim", raw.subject_claim, "sub", p);
    let roles_claim = claim("auth.jwt.roles_claim", raw.roles_claim, "roles", p);
    if p.0.len() != before {
        return None;
    }
    Some(JwtConfig {
        policy: JwtPolicy {
            issuers,
            audiences,
            leeway,
            algorithms: algorithms.clone(),
            max_token_len,
            subject_claim,
            roles_claim,
        },
        static_keys: KeySet::new(static_keys),
        jwks_url,
        jwks: JwksOptions { refresh, min_interval, algorithms },
        jwks_timeout,
        cache_size,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
