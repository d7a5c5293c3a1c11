//! JWT (JWS compact) verification with Portcullis' own header and claims
//! checks; only the signature arithmetic is delegated (jsonwebtoken on
//! aws-lc-rs).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::keys::{KeySet, SUPPORTED, algorithm};
use crate::json::{JsonLimits, parse_strict};

/// What a token must satisfy.
#[derive(Clone, Debug)]
pub struct JwtPolicy {
    /// Accepted `iss` values; empty: not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (any one present in the token); empty: not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Algorithms accepted at all (each key narrows this further).
    pub algorithms: Vec<Algorithm>,
    /// Longest token accepted, in bytes.
    pub max_token_len: usize,
    /// The claim naming the subject.
    pub subject_claim: String,
    /// The claim holding roles: a dotted path (`realm_access.roles`) to an
    /// array of strings or a space-separated string.
    pub roles_claim: String,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        JwtPolicy {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            algorithms: SUPPORTED.to_vec(),
            max_token_len: 8 * 1024,
            subject_claim: "sub".to_owned(),
            roles_claim: "roles".to_owned(),
        }
    }
}

/// A verified identity, stored in the request extensions (as `Arc<Identity>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The subject.
    pub subject: String,
    /// The roles, from the configured claim only (C26).
    pub roles: Vec<String>,
    /// All claims of the token.
    pub claims: Map<String, Value>,
    /// `exp`, in seconds since the epoch.
    pub expires: u64,
}

impl Identity {
    /// A claim by dotted path (`realm_access.roles`).
    pub fn claim(&self, path: &str) -> Option<&Value> {
        lookup(&self.claims, path)
    }
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Why a token was refused. Goes to the log, never to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the policy allows.
    TooLong,
    /// Not three base64url parts with JSON objects.
    Malformed,
    /// `alg` missing, `none`, HMAC or otherwise not allowed.
    AlgorithmNotAllowed,
    /// A `crit` header: extensions Portcullis doesn't implement.
    CriticalHeader,
    /// No key with the token's `kid`.
    UnknownKid,
    /// No key at all for the token's algorithm (e.g. the key set is not loaded).
    NoKey,
    /// The signature does not verify.
    BadSignature,
    /// No `exp`.
    MissingExpiry,
    /// Past `exp` (+ leeway).
    Expired,
    /// Before `nbf` (- leeway).
    NotYetValid,
    /// `iss` not accepted.
    WrongIssuer,
    /// `aud` not accepted.
    WrongAudience,
    /// No subject.
    MissingSubject,
    /// A registered or configured claim has the wrong JSON type.
    ClaimType,
}

impl TokenError {
    /// A short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::TooLong => "token too long",
            TokenError::Malformed => "malformed token",
            TokenError::AlgorithmNotAllowed => "algorithm not allowed",
            TokenError::CriticalHeader => "unsupported crit header",
            TokenError::UnknownKid => "unknown kid",
            TokenError::NoKey => "no key for the algorithm",
            TokenError::BadSignature => "bad signature",
            TokenError::MissingExpiry => "no exp",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not yet valid (nbf)",
            TokenError::WrongIssuer => "issuer not accepted",
            TokenError::WrongAudience => "audience not accepted",
            TokenError::MissingSubject => "no subject",
            TokenError::ClaimType => "claim of the wrong type",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// The header's `alg`.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    message: &'t str,
    signature: &'t str,
    payload: Vec<u8>,
}

const HEADER_LIMITS: JsonLimits =
    JsonLimits { max_depth: 4, max_entries: 64, max_string_len: 4096, forbid_prototype_keys: true };
const CLAIMS_LIMITS: JsonLimits =
    JsonLimits { max_depth: 8, max_entries: 512, max_string_len: 4096, forbid_prototype_keys: true };

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)
}

/// Splits and decodes a compact JWS, checking the header.
pub fn parse<'t>(token: &'t str, policy: &JwtPolicy) -> Result<Parsed<'t>, TokenError> {
    if token.len() > policy.max_token_len {
        return Err(TokenError::TooLong);
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        // An empty signature is how `alg: none` tokens look.
        return Err(if s.is_empty() { TokenError::AlgorithmNotAllowed } else { TokenError::Malformed });
    }
    let header = parse_strict(&b64(h)?, &HEADER_LIMITS).map_err(|_| TokenError::Malformed)?;
    let header = header.as_object().ok_or(TokenError::Malformed)?;
    if header.contains_key("crit") {
        return Err(TokenError::CriticalHeader);
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => algorithm(a).ok_or(TokenError::AlgorithmNotAllowed)?,
        _ => return Err(TokenError::AlgorithmNotAllowed),
    };
    if !policy.algorithms.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    // `jku`, `x5u`, `jwk`, `x5c` are never followed or trusted: keys come
    // from configuration only.
    Ok(Parsed { alg, kid, message: &token[..h.len() + 1 + p.len()], signature: s, payload: b64(p)? })
}

impl Parsed<'_> {
    /// Checks the signature against the candidate keys of `keys`.
    pub fn verify_signature(&self, keys: &KeySet) -> Result<(), TokenError> {
        let mut tried = false;
        for k in keys.candidates(self.kid.as_deref(), self.alg) {
            tried = true;
            if jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), &k.key, self.alg)
                .unwrap_or(false)
            {
                return Ok(());
            }
        }
        match (tried, &self.kid) {
            (true, _) => Err(TokenError::BadSignature),
            (false, Some(kid)) if !keys.has_kid(kid) => Err(TokenError::UnknownKid),
            // The kid exists but for another algorithm: confusion, not rotation.
            (false, Some(_)) => Err(TokenError::AlgorithmNotAllowed),
            (false, None) => Err(TokenError::NoKey),
        }
    }

    /// Checks the claims at `now_s` (seconds since the epoch); call only after
    /// [`Parsed::verify_signature`] succeeded.
    pub fn claims(self, policy: &JwtPolicy, now_s: u64) -> Result<Identity, TokenError> {
        let doc = parse_strict(&self.payload, &CLAIMS_LIMITS).map_err(|_| TokenError::Malformed)?;
        let Value::Object(claims) = doc else { return Err(TokenError::Malformed) };
        let leeway = policy.leeway.as_secs();
        let exp = time_claim(&claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
        if now_s > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = time_claim(&claims, "nbf")?
            && now_s.saturating_add(leeway) < nbf
        {
            return Err(TokenError::NotYetValid);
        }
        time_claim(&claims, "iat")?;
        match claims.get("iss") {
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(TokenError::ClaimType),
        }
        if !policy.issuers.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|i| policy.issuers.iter().any(|a| a == i)) {
                return Err(TokenError::WrongIssuer);
            }
        }
        let auds: Vec<&str> = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => {
                list.iter().map(|v| v.as_str().ok_or(TokenError::ClaimType)).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(TokenError::ClaimType),
        };
        if !policy.audiences.is_empty() && !auds.iter().any(|a| policy.audiences.iter().any(|p| p == a)) {
            return Err(TokenError::WrongAudience);
        }
        let subject = match lookup(&claims, &policy.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::String(_)) => return Err(TokenError::MissingSubject),
            Some(_) => return Err(TokenError::ClaimType),
        };
        let roles = match lookup(&claims, &policy.roles_claim) {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(TokenError::ClaimType))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::ClaimType),
        };
        Ok(Identity { subject, roles, claims, expires: exp })
    }
}

/// A NumericDate claim: a JSON number (fractions are truncated), or absent.
/// Strings, booleans, negative numbers are a type error, never "absent".
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                // Saturating float-to-int conversion, fraction truncated.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(f as u64))
            } else {
                Err(TokenError::ClaimType)
            }
        }
        Some(_) => Err(TokenError::ClaimType),
    }
}
