//! Verification keys: from PEM files and JWK sets, each pinned to the
//! algorithms its type allows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::json::{JsonLimits, parse_strict};

/// The algorithms Portcullis verifies. No `none`, no HMAC: a gateway holds
/// public keys only, so an HMAC "key" could only be a public key misused as
/// a shared secret (the RS/HS confusion attack).
pub const SUPPORTED: &[Algorithm] =
    &[Algorithm::EdDSA, Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256];

/// Parses an algorithm name; only [`SUPPORTED`] ones.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    let alg = match name {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        _ => return None,
    };
    Some(alg)
}

/// The name of an algorithm in a JWT header.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::HS256 => "HS256",
        _ => "other",
    }
}

/// A public key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    /// The key id, if the source gave one.
    pub kid: Option<String>,
    /// The algorithms this key verifies (never empty).
    pub algs: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algs", &self.algs).finish_non_exhaustive()
    }
}

/// A set of keys.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

impl KeySet {
    /// A set of these keys.
    pub fn new(keys: Vec<VerifyKey>) -> KeySet {
        KeySet { keys }
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds the keys of another set.
    pub fn extend(&mut self, other: &KeySet) {
        self.keys.extend(other.keys.iter().cloned());
    }

    /// Whether some key has this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token with this `kid` and `alg`: keys for
    /// the algorithm whose id is the token's `kid`, and keys without an id
    /// (a configured PEM file); a token without `kid` may use any key for
    /// the algorithm.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.algs.contains(&alg) && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        })
    }

    /// Parses a JWK set (`{"keys": [...]}`) or a single JWK. Keys that are
    /// not usable for verification with `allowed` algorithms (symmetric
    /// `oct` keys, `use` other than `sig`, unknown curves, an `alg` that
    /// doesn't fit the key type, RSA under 2048 bits) are skipped; the
    /// reasons come back for the log.
    pub fn from_jwks(json: &[u8], allowed: &[Algorithm]) -> Result<(KeySet, Vec<String>), String> {
        let limits = JsonLimits {
            max_depth: 6,
            max_entries: 2_000,
            max_string_len: 16 * 1024,
            forbid_prototype_keys: true,
        };
        let doc = parse_strict(json, &limits).map_err(|e| format!("not a JWK set: {e}"))?;
        let list = match doc.get("keys") {
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err("not a JWK set: \"keys\" is not an array".to_owned()),
            None if doc.get("kty").is_some() => vec![doc],
            None => return Err("not a JWK set: no \"keys\"".to_owned()),
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            match jwk_key(jwk, allowed) {
                Ok(k) => keys.push(k),
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        Ok((KeySet { keys }, skipped))
    }

    /// A key from a PEM public key (SPKI) for one algorithm.
    pub fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<String>) -> Result<VerifyKey, String> {
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::RS256 | Algorithm::PS256 => DecodingKey::from_rsa_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => return Err("unsupported algorithm".to_owned()),
        }
        .map_err(|_| format!("not a PEM public key for {alg:?}"))?;
        Ok(VerifyKey { kid, algs: vec![alg], key })
    }
}

fn b64_len(v: &Value, field: &str) -> Result<(String, usize), String> {
    let s = v.get(field).and_then(Value::as_str).ok_or_else(|| format!("\"{field}\" missing"))?;
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| format!("\"{field}\" is not base64url"))?;
    Ok((s.to_owned(), bytes.len()))
}

fn jwk_key(jwk: &Value, allowed: &[Algorithm]) -> Result<VerifyKey, String> {
    let str_field = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("\"{name}\" is not a string")),
        }
    };
    let kty = str_field("kty")?.ok_or("no \"kty\"")?;
    if let Some(u) = str_field("use")?
        && u != "sig"
    {
        return Err(format!("use \"{u}\" is not \"sig\""));
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops.as_array().is_some_and(|a| a.iter().any(|o| o == "verify"))
    {
        return Err("key_ops lacks \"verify\"".to_owned());
    }
    let (mut algs, key) = match (kty, str_field("crv")?) {
        ("oct", _) => return Err("symmetric (oct) keys are never used".to_owned()),
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (alg, len) = if crv == "P-256" { (Algorithm::ES256, 32) } else { (Algorithm::ES384, 48) };
            let (x, xl) = b64_len(jwk, "x")?;
            let (y, yl) = b64_len(jwk, "y")?;
            if xl != len || yl != len {
                return Err(format!("coordinates do not fit {crv}"));
            }
            (vec![alg], DecodingKey::from_ec_components(&x, &y).map_err(|_| "bad EC key")?)
        }
        ("OKP", Some("Ed25519")) => {
            let (x, xl) = b64_len(jwk, "x")?;
            if xl != 32 {
                return Err("not an Ed25519 key".to_owned());
            }
            (vec![Algorithm::EdDSA], DecodingKey::from_ed_components(&x).map_err(|_| "bad OKP key")?)
        }
        ("RSA", _) => {
            let (n, nl) = b64_len(jwk, "n")?;
            let (e, _) = b64_len(jwk, "e")?;
            if nl < 256 {
                return Err("RSA key under 2048 bits".to_owned());
            }
            (
                vec![Algorithm::RS256, Algorithm::PS256],
                DecodingKey::from_rsa_components(&n, &e).map_err(|_| "bad RSA key")?,
            )
        }
        (kty, crv) => return Err(format!("unsupported key type {kty}/{}", crv.unwrap_or("-"))),
    };
    if let Some(a) = str_field("alg")? {
        match algorithm(a) {
            Some(alg) if algs.contains(&alg) => algs = vec![alg],
            _ => return Err(format!("alg \"{a}\" does not fit a {kty} key")),
        }
    }
    algs.retain(|a| allowed.contains(a));
    if algs.is_empty() {
        return Err("its algorithm is not allowed".to_owned());
    }
    Ok(VerifyKey { kid: str_field("kid")?.map(str::to_owned), algs, key })
}
