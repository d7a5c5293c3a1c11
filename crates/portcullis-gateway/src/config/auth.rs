//! `[auth]`: JWT verification (C22) and identity headers (C23).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use portcullis_layers::auth::{
    Algorithm, ClaimSource, IdentityHeaders, JwksOptions, JwtPolicy, KeySet, SUPPORTED, algorithm,
    same_spelling,
};
use serde::Deserialize;

use super::Problems;
use super::units::{Dur, within};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    pub(crate) jwt: Option<RawJwt>,
    pub(crate) identity_headers: Option<BTreeMap<String, String>>,
    pub(crate) forward_token: Option<bool>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawJwt {
    pub(crate) issuer: Option<OneOrMany>,
    pub(crate) audience: Option<OneOrMany>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) keys: Option<Vec<RawJwtKey>>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) leeway: Option<Dur>,
    pub(crate) subject_claim: Option<String>,
    pub(crate) roles_claim: Option<String>,
    pub(crate) jwks_refresh: Option<Dur>,
    pub(crate) jwks_min_interval: Option<Dur>,
    pub(crate) jwks_timeout: Option<Dur>,
    pub(crate) cache_size: Option<u64>,
    pub(crate) max_token_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawJwtKey {
    pub(crate) file: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) kid: Option<String>,
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
    let issuers = raw.issuer.map(OneOrMany::into_vec).unwrap_or_default();
    if issuers.is_empty() {
        p.push("auth.jwt.issuer", "missing: the `iss` your identity provider puts in tokens (required, so tokens minted for another issuer are refused)");
    }
    let audiences = raw.audience.map(OneOrMany::into_vec).unwrap_or_default();
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
    let leeway = within(
        "auth.jwt.leeway",
        raw.leeway.map(|d| d.0),
        Duration::from_secs(30),
        Duration::ZERO,
        Duration::from_secs(300),
        p,
    );
    let refresh = within(
        "auth.jwt.jwks_refresh",
        raw.jwks_refresh.map(|d| d.0),
        Duration::from_secs(300),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
        p,
    );
    let min_interval = within(
        "auth.jwt.jwks_min_interval",
        raw.jwks_min_interval.map(|d| d.0),
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        p,
    );
    let jwks_timeout = within(
        "auth.jwt.jwks_timeout",
        raw.jwks_timeout.map(|d| d.0),
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

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
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
            let _ = writeln!(o, "  leeway            {}", super::units::show_duration(j.policy.leeway));
            let _ = writeln!(o, "  static keys       {}", j.static_keys.keys().len());
            if let Some(u) = &j.jwks_url {
                let _ = writeln!(
                    o,
                    "  jwks              {u} (refresh {}, unknown kid re-fetch at most every {})",
                    super::units::show_duration(j.jwks.refresh),
                    super::units::show_duration(j.jwks.min_interval)
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
