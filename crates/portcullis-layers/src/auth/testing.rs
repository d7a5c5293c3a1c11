//! Keys and tokens for tests (feature `test-util`): generated key pairs,
//! their JWKs and PEMs, and tokens signed with any header, including the
//! malicious ones an attack suite needs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// A generated signing key.
pub struct TestKey {
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its key id.
    pub kid: String,
    /// The public key, PEM (SPKI).
    pub public_pem: String,
    raw: Vec<u8>,
    enc: EncodingKey,
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

impl TestKey {
    /// Generates a key pair for `alg` (EdDSA, ES256, ES384, RS256, PS256).
    pub fn generate(alg: Algorithm, kid: &str) -> TestKey {
        let sig = match alg {
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::RS256 | Algorithm::PS256 => &rcgen::PKCS_RSA_SHA256,
            other => panic!("no test keys for {other:?}"),
        };
        let kp = rcgen::KeyPair::generate_for(sig).expect("key generation");
        let private = kp.serialize_pem();
        let enc = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private.as_bytes()),
        }
        .expect("encoding key");
        TestKey {
            alg,
            kid: kid.to_owned(),
            public_pem: kp.public_key_pem(),
            raw: kp.public_key_raw().to_vec(),
            enc,
        }
    }

    /// The public JWK, with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> Value {
        let r = &self.raw;
        let mut v = match self.alg {
            Algorithm::EdDSA => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(r)}),
            Algorithm::ES256 | Algorithm::ES384 => {
                let n = (r.len() - 1) / 2;
                let crv = if n == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64(&r[1..=n]), "y": b64(&r[1 + n..])})
            }
            _ => {
                let (n, e) = rsa_components(r);
                json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
            }
        };
        v["kid"] = json!(self.kid);
        v["alg"] = json!(alg_name(self.alg));
        v["use"] = json!("sig");
        v
    }

    /// A token with the header `{"alg", "kid", "typ": "JWT"}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": alg_name(self.alg), "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// A token with any header JSON, signed with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A token from raw header and payload bytes, signed with this key.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.enc, self.alg).expect("sign");
        format!("{message}.{sig}")
    }
}

/// `n` and `e` of a PKCS#1 `RSAPublicKey` (DER), leading zero bytes dropped.
fn rsa_components(der: &[u8]) -> (&[u8], &[u8]) {
    fn tlv(d: &[u8]) -> (&[u8], &[u8]) {
        let (len, start) = match d[1] {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(d[2]), 3),
            0x82 => (usize::from(d[2]) << 8 | usize::from(d[3]), 4),
            _ => panic!("unexpected DER length"),
        };
        (&d[start..start + len], &d[start + len..])
    }
    let (seq, _) = tlv(der);
    let (n, rest) = tlv(seq);
    let (e, _) = tlv(rest);
    let trim = |x: &[u8]| -> usize { x.iter().take_while(|b| **b == 0).count() };
    (&n[trim(n)..], &e[trim(e)..])
}

pub use super::keys::algorithm_name as alg_name;

/// A JWK set document of these keys.
pub fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string().into_bytes()
}

/// An HS256 token with `secret` as the HMAC key (for confusion attacks).
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let key = EncodingKey::from_secret(secret);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{message}.{sig}")
}

/// An unsigned token (`alg` as given, empty signature).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

/// Base64url without padding, as in JWTs.
pub fn b64url(v: &[u8]) -> String {
    b64(v)
}
