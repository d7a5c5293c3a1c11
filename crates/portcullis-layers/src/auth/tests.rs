//! The JWT attack suite (C22), JWKS behaviour, and the layer's decisions
//! (C21 C23 C26 C27). Attacks follow the classes in the public record:
//! `alg: none` (CVE-2015-9235 and kin), RS/HS key confusion
//! (CVE-2016-10555), embedded `jwk` (CVE-2018-0114), `jku`/`x5u` key URLs,
//! `kid` injection and traversal, "psychic" ECDSA signatures
//! (CVE-2022-21449), claim type confusion, expiry/issuer/audience, oversize.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

use super::testing::{TestKey, alg_name, b64url, hs256, jwks, unsigned};
use super::*;
use crate::body::Body;
use crate::clock::ManualClock;
use crate::pattern::PathPattern;
use crate::route::{Access, Authz, Route, RouteLayer, RouteTable};

const NOW: u64 = 1_900_000_000;

fn claims() -> Value {
    json!({"sub": "alice", "iss": "https://idp.test/", "aud": "api", "exp": NOW + 600, "iat": NOW, "roles": ["user"]})
}

fn with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn policy() -> JwtPolicy {
    JwtPolicy {
        issuers: vec!["https://idp.test/".into()],
        audiences: vec!["api".into()],
        ..JwtPolicy::default()
    }
}

struct Keys {
    es: TestKey,
    ed: TestKey,
    es384: TestKey,
    rs: TestKey,
    ps: TestKey,
    attacker: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es: TestKey::generate(Algorithm::ES256, "es"),
        ed: TestKey::generate(Algorithm::EdDSA, "ed"),
        es384: TestKey::generate(Algorithm::ES384, "es384"),
        rs: TestKey::generate(Algorithm::RS256, "rs"),
        ps: TestKey::generate(Algorithm::PS256, "ps"),
        attacker: TestKey::generate(Algorithm::ES256, "es"),
    })
}

fn keyset() -> KeySet {
    let k = keys();
    let (set, skipped) =
        KeySet::from_jwks(&jwks(&[&k.es, &k.ed, &k.es384, &k.rs, &k.ps]), SUPPORTED).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    set
}

fn verifier(clock: &ManualClock) -> Verifier {
    Verifier::new(policy(), keyset(), None).clock(Arc::new(clock.clone()))
}

fn clock() -> ManualClock {
    ManualClock::starting_at(NOW * 1_000_000)
}

async fn check(token: &str) -> Result<Arc<Identity>, TokenError> {
    verifier(&clock()).verify(token).await
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

#[tokio::test]
async fn c22_every_supported_algorithm_verifies() {
    let k = keys();
    for key in [&k.es, &k.ed, &k.es384, &k.rs, &k.ps] {
        let id = check(&key.sign(&claims())).await.unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(id.subject, "alice");
        assert_eq!(id.roles, ["user"]);
        assert_eq!(id.expires, NOW + 600);
    }
    // Without a kid, every key for the algorithm is tried.
    let no_kid = k.rs.sign_with_header(&json!({"alg": "RS256"}), &claims());
    assert!(check(&no_kid).await.is_ok());
}

#[tokio::test]
async fn c22_attack_table() {
    use TokenError::*;
    let k = keys();
    let c = claims();
    let signed = k.es.sign(&c);
    let (h, _, s) = {
        let mut it = signed.split('.');
        (it.next().unwrap().to_owned(), it.next().unwrap().to_owned(), it.next().unwrap().to_owned())
    };
    let admin = b64url(with(json!({"roles": ["admin"]})).to_string().as_bytes());
    let rsa_pem = k.rs.public_pem.as_bytes();
    let psychic = format!("{h}.{}.{}", signed.split('.').nth(1).unwrap(), b64url(&[0u8; 64]));
    let cases: Vec<(&str, String, TokenError)> = vec![
        // alg none in its spellings, with and without a signature part.
        ("alg none", unsigned(&header("none", "es"), &c), AlgorithmNotAllowed),
        ("alg None", unsigned(&header("None", "es"), &c), AlgorithmNotAllowed),
        ("alg nOnE + sig", format!("{}{s}", unsigned(&header("nOnE", "es"), &c)), AlgorithmNotAllowed),
        ("alg missing", k.es.sign_with_header(&json!({"kid": "es"}), &c), AlgorithmNotAllowed),
        (
            "alg not a string",
            k.es.sign_with_header(&json!({"alg": ["ES256"], "kid": "es"}), &c),
            AlgorithmNotAllowed,
        ),
        // RS/HS confusion: the public key (PEM, or its JWK) as an HMAC secret.
        ("HS256 with RSA PEM", hs256(rsa_pem, &header("HS256", "rs"), &c), AlgorithmNotAllowed),
        (
            "HS256 with JWK text",
            hs256(k.rs.jwk().to_string().as_bytes(), &header("HS256", "rs"), &c),
            AlgorithmNotAllowed,
        ),
        ("HS512", hs256(rsa_pem, &header("HS512", "rs"), &c), AlgorithmNotAllowed),
        // The key pins the algorithm: an RS256 key can't verify PS256 and the reverse.
        ("PS256 on an RS256 key", k.rs.sign_with_header(&header("PS256", "rs"), &c), AlgorithmNotAllowed),
        ("ES256 header on Ed key", k.ed.sign_with_header(&header("ES256", "ed"), &c), AlgorithmNotAllowed),
        ("ES512", k.es.sign_with_header(&header("ES512", "es"), &c), AlgorithmNotAllowed),
        // kid tricks: never a file, query or URL.
        ("unknown kid", k.es.sign_with_header(&header("ES256", "nope"), &c), UnknownKid),
        ("kid traversal", k.es.sign_with_header(&header("ES256", "../../../../dev/null"), &c), UnknownKid),
        ("kid injection", k.es.sign_with_header(&header("ES256", "x' UNION SELECT 'secret"), &c), UnknownKid),
        ("kid not a string", k.es.sign_with_header(&json!({"alg": "ES256", "kid": 1}), &c), Malformed),
        // Keys carried by the token itself are never used.
        (
            "embedded jwk",
            k.attacker.sign_with_header(&json!({"alg": "ES256", "jwk": k.attacker.jwk()}), &c),
            BadSignature,
        ),
        (
            "jku to attacker",
            k.attacker.sign_with_header(
                &json!({"alg": "ES256", "kid": "evil", "jku": "http://evil.test/jwks"}),
                &c,
            ),
            UnknownKid,
        ),
        (
            "x5u + same kid",
            k.attacker
                .sign_with_header(&json!({"alg": "ES256", "kid": "es", "x5u": "http://evil.test/c"}), &c),
            BadSignature,
        ),
        (
            "crit header",
            k.es.sign_with_header(&json!({"alg": "ES256", "kid": "es", "crit": ["exp"]}), &c),
            CriticalHeader,
        ),
        // Signatures.
        ("other key, same kid", k.attacker.sign(&c), BadSignature),
        ("tampered payload", format!("{h}.{admin}.{s}"), BadSignature),
        ("psychic signature r=s=0", psychic, BadSignature),
        ("signature stripped", format!("{h}.{}", signed.split('.').nth(1).unwrap()), Malformed),
        ("empty signature", format!("{h}.{}.", signed.split('.').nth(1).unwrap()), AlgorithmNotAllowed),
        ("four parts", format!("{signed}.x"), Malformed),
        ("padded base64", format!("{h}=.{}.{s}", signed.split('.').nth(1).unwrap()), Malformed),
        ("standard base64 alphabet", signed.replace('-', "+").replace('_', "/") + "+", Malformed),
        // Parser differentials: duplicate keys (JSON.parse keeps the last).
        (
            "duplicate sub",
            k.es.sign_raw(
                header("ES256", "es").to_string().as_bytes(),
                br#"{"sub":"alice","exp":1999999999,"sub":"admin","iss":"https://idp.test/","aud":"api"}"#,
            ),
            Malformed,
        ),
        (
            "duplicate alg",
            k.es.sign_raw(br#"{"alg":"none","alg":"ES256","kid":"es"}"#, c.to_string().as_bytes()),
            Malformed,
        ),
        ("header not an object", k.es.sign_raw(br#"["ES256"]"#, c.to_string().as_bytes()), Malformed),
        (
            "payload not an object",
            k.es.sign_raw(header("ES256", "es").to_string().as_bytes(), b"\"alice\""),
            Malformed,
        ),
        // Claim types: a string exp is a rejection, not a missing claim.
        ("exp missing", k.es.sign(&with(json!({"exp": null}))), MissingExpiry),
        ("exp string", k.es.sign(&with(json!({"exp": (NOW + 600).to_string()}))), ClaimType),
        ("exp bool", k.es.sign(&with(json!({"exp": true}))), ClaimType),
        ("exp negative", k.es.sign(&with(json!({"exp": -1}))), ClaimType),
        ("exp object", k.es.sign(&with(json!({"exp": {"$gt": 0}}))), ClaimType),
        ("nbf string", k.es.sign(&with(json!({"nbf": "0"}))), ClaimType),
        ("iat string", k.es.sign(&with(json!({"iat": "now"}))), ClaimType),
        ("iss array", k.es.sign(&with(json!({"iss": ["https://idp.test/"]}))), ClaimType),
        ("aud number", k.es.sign(&with(json!({"aud": 1}))), ClaimType),
        ("aud array with number", k.es.sign(&with(json!({"aud": ["api", 1]}))), ClaimType),
        ("sub number", k.es.sign(&with(json!({"sub": 7}))), ClaimType),
        ("roles object", k.es.sign(&with(json!({"roles": {"admin": true}}))), ClaimType),
        ("roles with a number", k.es.sign(&with(json!({"roles": ["user", 1]}))), ClaimType),
        // Time, issuer, audience, subject.
        ("expired", k.es.sign(&with(json!({"exp": NOW - 31}))), Expired),
        ("not yet valid", k.es.sign(&with(json!({"nbf": NOW + 31}))), NotYetValid),
        ("other issuer", k.es.sign(&with(json!({"iss": "https://idp.test.evil/"}))), WrongIssuer),
        ("issuer missing", k.es.sign(&with(json!({"iss": null}))), WrongIssuer),
        ("issuer case", k.es.sign(&with(json!({"iss": "HTTPS://IDP.TEST/"}))), WrongIssuer),
        ("other audience", k.es.sign(&with(json!({"aud": "api2"}))), WrongAudience),
        ("audience missing", k.es.sign(&with(json!({"aud": null}))), WrongAudience),
        ("subject missing", k.es.sign(&with(json!({"sub": null}))), MissingSubject),
        ("subject empty", k.es.sign(&with(json!({"sub": ""}))), MissingSubject),
        // Size.
        ("oversize", k.es.sign(&with(json!({"pad": "x".repeat(9000)}))), TooLong),
    ];
    for (name, token, want) in cases {
        assert_eq!(check(&token).await.err(), Some(want), "{name}");
    }
}

/// C22: `iss` and `aud` are compared as whole strings. One IdP often signs
/// for several tenants (`https://idp.test/other-tenant`), so an issuer that
/// extends, truncates or contains the configured one must fail, and so must
/// an audience that is a prefix, an extension or empty.
#[tokio::test]
async fn c22_issuer_and_audience_match_whole_strings() {
    let k = keys();
    let issuers = [
        "https://idp.test",
        "https://idp.test/other-tenant",
        "https://idp.test//",
        "https://idp.test/ ",
        " https://idp.test/",
        "https://idp.tes",
        "https://idp.test.evil/",
        "http://idp.test/",
        "https://IDP.test/",
        "idp.test",
        "",
    ];
    for iss in issuers {
        assert_eq!(
            check(&k.es.sign(&with(json!({"iss": iss})))).await.err(),
            Some(TokenError::WrongIssuer),
            "iss {iss:?}"
        );
    }
    let audiences = ["ap", "a", "", "api2", "apix", "API", " api", "xapi", "api/"];
    for aud in audiences {
        assert_eq!(
            check(&k.es.sign(&with(json!({"aud": aud})))).await.err(),
            Some(TokenError::WrongAudience),
            "aud {aud:?}"
        );
        let list = with(json!({"aud": [aud, "other"]}));
        assert_eq!(
            check(&k.es.sign(&list)).await.err(),
            Some(TokenError::WrongAudience),
            "aud [{aud:?}, other]"
        );
    }
    assert_eq!(check(&k.es.sign(&with(json!({"aud": []})))).await.err(), Some(TokenError::WrongAudience));
    // Several accepted values: any one, still whole.
    let multi = JwtPolicy {
        issuers: vec!["https://a.test/".into(), "https://b.test/".into()],
        audiences: vec!["api".into(), "web".into()],
        ..policy()
    };
    let v = Verifier::new(multi, keyset(), None).clock(Arc::new(clock()));
    assert!(v.verify(&k.es.sign(&with(json!({"iss": "https://b.test/", "aud": "web"})))).await.is_ok());
    for (iss, aud, want) in [
        ("https://b.test", "web", TokenError::WrongIssuer),
        ("https://a.test/b.test/", "web", TokenError::WrongIssuer),
        ("https://b.test/", "we", TokenError::WrongAudience),
        ("https://b.test/", "apiweb", TokenError::WrongAudience),
    ] {
        assert_eq!(
            v.verify(&k.es.sign(&with(json!({"iss": iss, "aud": aud})))).await.err(),
            Some(want),
            "{iss} {aud}"
        );
    }
}

/// C22: the policy's algorithm list is enforced by the verifier itself,
/// not only by the gateway's key filtering: a correctly signed token whose
/// algorithm is not listed fails, although its key is in the set.
#[tokio::test]
async fn c22_algorithm_list_is_enforced_by_the_verifier() {
    let k = keys();
    let only_ed = JwtPolicy { algorithms: vec![Algorithm::EdDSA], ..policy() };
    let v = Verifier::new(only_ed, keyset(), None).clock(Arc::new(clock()));
    assert!(v.verify(&k.ed.sign(&claims())).await.is_ok());
    for key in [&k.es, &k.es384, &k.rs, &k.ps] {
        assert_eq!(
            v.verify(&key.sign(&claims())).await.err(),
            Some(TokenError::AlgorithmNotAllowed),
            "{:?}",
            key.alg
        );
    }
}

#[tokio::test]
async fn c22_leeway_and_accepted_variants() {
    let k = keys();
    let ok: Vec<(&str, Value)> = vec![
        ("exp within leeway", with(json!({"exp": NOW - 29}))),
        ("nbf within leeway", with(json!({"nbf": NOW + 29}))),
        ("fractional exp", with(json!({"exp": (NOW + 10) as f64 + 0.5}))),
        ("audience array", with(json!({"aud": ["other", "api"]}))),
        ("roles as a space-separated string", with(json!({"roles": "user admin"}))),
        ("no roles", with(json!({"roles": null}))),
    ];
    for (name, c) in ok {
        assert!(check(&k.es.sign(&c)).await.is_ok(), "{name}");
    }
    let id = check(&k.es.sign(&with(json!({"roles": "user admin"})))).await.unwrap();
    assert_eq!(id.roles, ["user", "admin"]);
    // A nested roles claim (Keycloak style).
    let v = Verifier::new(JwtPolicy { roles_claim: "realm_access.roles".into(), ..policy() }, keyset(), None)
        .clock(Arc::new(clock()));
    let id = v.verify(&k.es.sign(&with(json!({"realm_access": {"roles": ["admin"]}})))).await.unwrap();
    assert_eq!(id.roles, ["admin"]);
}

/// Boundaries are exact: `exp + leeway` is still valid and one second
/// later is not; `nbf - leeway` is valid and one second earlier is not; a
/// token of exactly `max_token_len` bytes is read, one byte more is not.
#[tokio::test]
async fn c22_time_and_size_boundaries_are_exact() {
    let k = keys();
    let leeway = 30;
    for (claims, ok) in [
        (with(json!({"exp": NOW - leeway})), true),
        (with(json!({"exp": NOW - leeway - 1})), false),
        (with(json!({"nbf": NOW + leeway})), true),
        (with(json!({"nbf": NOW + leeway + 1})), false),
    ] {
        assert_eq!(check(&k.es.sign(&claims)).await.is_ok(), ok, "{claims}");
    }
    let token = k.es.sign(&claims());
    let exact = JwtPolicy { max_token_len: token.len(), ..policy() };
    let v = Verifier::new(exact, keyset(), None).clock(Arc::new(clock()));
    assert!(v.verify(&token).await.is_ok());
    let short = JwtPolicy { max_token_len: token.len() - 1, ..policy() };
    let v = Verifier::new(short, keyset(), None).clock(Arc::new(clock()));
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::TooLong));
}

/// The reasons logged for each refusal: fixed texts, never token data.
#[test]
fn c22_refusal_reasons() {
    use TokenError::*;
    let all = [
        (TooLong, "token too long"),
        (Malformed, "malformed token"),
        (AlgorithmNotAllowed, "algorithm not allowed"),
        (CriticalHeader, "unsupported crit header"),
        (UnknownKid, "unknown kid"),
        (NoKey, "no key for the algorithm"),
        (BadSignature, "bad signature"),
        (MissingExpiry, "no exp"),
        (Expired, "expired"),
        (NotYetValid, "not yet valid (nbf)"),
        (WrongIssuer, "issuer not accepted"),
        (WrongAudience, "audience not accepted"),
        (MissingSubject, "no subject"),
        (ClaimType, "claim of the wrong type"),
    ];
    for (e, text) in all {
        assert_eq!((e.as_str(), e.to_string()), (text, text.to_owned()));
    }
}

#[test]
fn c22_jwks_parsing_skips_unusable_keys() {
    let k = keys();
    let mut weak = k.rs.jwk();
    weak["n"] = json!(b64url(&[0xc5; 128]));
    let doc = json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": b64url(b"secret")},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": k.rs.jwk()["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "hs-alg", "alg": "HS256", "n": k.rs.jwk()["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "none-alg", "alg": "none", "n": k.rs.jwk()["n"], "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "short", "x": b64url(&[1; 31]), "y": b64url(&[1; 32])},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ops", "key_ops": ["sign"], "x": k.ed.jwk()["x"]},
        weak,
        k.es.jwk(),
    ]});
    let (set, skipped) = KeySet::from_jwks(doc.to_string().as_bytes(), SUPPORTED).unwrap();
    assert_eq!(set.keys().len(), 1, "only the ES256 key is usable");
    assert_eq!(skipped.len(), 8, "{skipped:?}");
    for bad in [&b"[]"[..], b"{\"keys\": 1}", b"{}", b"{\"keys\":[],\"keys\":[]}", b"\xff"] {
        assert!(KeySet::from_jwks(bad, SUPPORTED).is_err(), "{bad:?}");
    }
    // An HS256 token naming the skipped oct key is refused before any key lookup.
    let t = hs256(b"secret", &header("HS256", "hmac"), &claims());
    let v = Verifier::new(policy(), set, None);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(v.verify(&t)).err(), Some(TokenError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn c22_pem_keys_pin_their_algorithm() {
    let k = keys();
    let key = KeySet::from_pem(k.es.public_pem.as_bytes(), Algorithm::ES256, None).unwrap();
    let v = Verifier::new(policy(), KeySet::new(vec![key]), None).clock(Arc::new(clock()));
    assert!(v.verify(&k.es.sign(&claims())).await.is_ok());
    let t = hs256(k.es.public_pem.as_bytes(), &json!({"alg": "HS256"}), &claims());
    assert_eq!(v.verify(&t).await.err(), Some(TokenError::AlgorithmNotAllowed));
    assert!(KeySet::from_pem(b"not a key", Algorithm::RS256, None).is_err());
}

#[tokio::test]
async fn c22_verified_tokens_are_cached_until_expiry() {
    let k = keys();
    let clock = clock();
    let v = verifier(&clock);
    let t = k.es.sign(&with(json!({"exp": NOW + 60})));
    assert!(v.verify_cached(&t).is_none(), "nothing verified yet");
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(v.cached(), 1);
    // The synchronous fast path of the auth layer sees the same entry.
    assert_eq!(v.verify_cached(&t).map(|id| id.subject.clone()).as_deref(), Some("alice"));
    assert!(v.verify_cached(&format!("{t}x")).is_none(), "another token is not a hit");
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(v.cached(), 1);
    clock.advance(Duration::from_secs(60 + 31));
    assert!(v.verify_cached(&t).is_none(), "an expired entry is no hit");
    assert_eq!(
        v.verify(&t).await.err(),
        Some(TokenError::Expired),
        "a cache hit is still checked for expiry"
    );
    // The cache is bounded.
    let small = Verifier::new(policy(), keyset(), None).clock(Arc::new(self::clock())).cache_capacity(16);
    for i in 0..100 {
        assert!(small.verify(&k.ed.sign(&with(json!({"sub": format!("u{i}")})))).await.is_ok());
    }
    assert!(small.cached() <= 16, "{}", small.cached());
}

// ---- JWKS ----

struct FakeIdp {
    doc: std::sync::Mutex<Result<Vec<u8>, String>>,
    max_age: Option<Duration>,
    fetches: AtomicUsize,
}

impl Fetch for Arc<FakeIdp> {
    fn fetch(&self) -> FetchFuture<'_> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let r = self.doc.lock().unwrap().clone();
        let max_age = self.max_age;
        Box::pin(async move {
            tokio::task::yield_now().await;
            r.map(|body| Fetched { body, max_age })
        })
    }
}

fn idp(doc: Result<Vec<u8>, String>, max_age: Option<Duration>) -> Arc<FakeIdp> {
    Arc::new(FakeIdp { doc: std::sync::Mutex::new(doc), max_age, fetches: AtomicUsize::new(0) })
}

fn jwks_cache(idp: &Arc<FakeIdp>, clock: &ManualClock) -> Arc<Jwks> {
    let opts = JwksOptions {
        refresh: Duration::from_secs(300),
        min_interval: Duration::from_secs(30),
        ..JwksOptions::default()
    };
    Arc::new(Jwks::new(Box::new(idp.clone()), Arc::new(clock.clone()), opts))
}

#[tokio::test]
async fn c22_jwks_rotation_and_unknown_kid_throttle() {
    let k = keys();
    let clock = clock();
    let provider = idp(Ok(jwks(&[&k.es])), None);
    let cache = jwks_cache(&provider, &clock);
    cache.refresh().await.unwrap();
    let v = Verifier::new(policy(), KeySet::default(), Some(cache.clone())).clock(Arc::new(clock.clone()));
    assert!(v.verify(&k.es.sign(&claims())).await.is_ok());
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);

    // The provider rotates to a new key: the first token with the new kid
    // triggers a re-fetch.
    let next = TestKey::generate(Algorithm::ES256, "es-2");
    *provider.doc.lock().unwrap() = Ok(jwks(&[&next]));
    clock.advance(Duration::from_secs(31));
    assert!(v.verify(&next.sign(&claims())).await.is_ok());
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
    // The old key is gone, and its cached verification with it.
    assert_eq!(v.verify(&k.es.sign(&claims())).await.err(), Some(TokenError::UnknownKid));

    // Random kids: at most one fetch per min_interval, however many arrive.
    for i in 0..50 {
        let t = next.sign_with_header(&header("ES256", &format!("random-{i}")), &claims());
        assert_eq!(v.verify(&t).await.err(), Some(TokenError::UnknownKid));
    }
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2, "within min_interval of the last fetch");
    clock.advance(Duration::from_secs(30));
    let futs: Vec<_> = (0..20)
        .map(|i| {
            let t = next.sign_with_header(&header("ES256", &format!("burst-{i}")), &claims());
            let v = &v;
            async move { v.verify(&t).await }
        })
        .collect();
    let results = futures_util::future::join_all(futs).await;
    assert!(results.iter().all(|r| r.as_ref().err() == Some(&TokenError::UnknownKid)));
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 3, "one fetch for the concurrent burst");
}

/// A JWKS endpoint that answers only when the test says so.
struct GatedIdp {
    doc: Vec<u8>,
    open: tokio::sync::Semaphore,
    fetches: AtomicUsize,
}

impl Fetch for Arc<GatedIdp> {
    fn fetch(&self) -> FetchFuture<'_> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _permit = self.open.acquire().await.map_err(|e| e.to_string())?;
            Ok(Fetched { body: self.doc.clone(), max_age: None })
        })
    }
}

/// C22: a token that arrives while a fetch is in flight (the first one at
/// startup, typically) waits for that fetch instead of being refused as
/// "fetched too recently", and starts no second fetch.
#[tokio::test]
async fn c22_unknown_kid_during_a_fetch_waits_for_it() {
    let k = keys();
    let clock = clock();
    let provider = Arc::new(GatedIdp {
        doc: jwks(&[&k.es]),
        open: tokio::sync::Semaphore::new(0),
        fetches: AtomicUsize::new(0),
    });
    let opts = JwksOptions { min_interval: Duration::from_secs(30), ..JwksOptions::default() };
    let cache = Arc::new(Jwks::new(Box::new(provider.clone()), Arc::new(clock.clone()), opts));
    let background = tokio::spawn({
        let cache = cache.clone();
        async move { cache.refresh().await }
    });
    // Let the background fetch start and take the lock.
    while provider.fetches.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let v = Verifier::new(policy(), KeySet::default(), Some(cache.clone())).clock(Arc::new(clock.clone()));
    let token = k.es.sign(&claims());
    let verifying = tokio::spawn(async move { v.verify(&token).await.map(|id| id.subject.clone()) });
    tokio::task::yield_now().await;
    provider.open.add_permits(1);
    assert_eq!(verifying.await.unwrap(), Ok("alice".to_owned()));
    background.await.unwrap().unwrap();
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1, "no second fetch");
    // Once the fetch is over, the throttle holds as before.
    let unknown = k.es.sign_with_header(&header("ES256", "nope"), &claims());
    let v = Verifier::new(policy(), KeySet::default(), Some(cache)).clock(Arc::new(clock));
    assert_eq!(v.verify(&unknown).await.err(), Some(TokenError::UnknownKid));
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn c22_jwks_provider_down_serves_cache_and_no_keys_is_401() {
    let k = keys();
    let clock = clock();
    let provider = idp(Err("connection refused".into()), None);
    let cache = jwks_cache(&provider, &clock);
    assert!(cache.refresh().await.is_err());
    let v = Verifier::new(policy(), KeySet::default(), Some(cache.clone())).clock(Arc::new(clock.clone()));
    // No key set at all: refused (the unknown kid may fetch once; it fails).
    assert_eq!(v.verify(&k.es.sign(&claims())).await.err(), Some(TokenError::UnknownKid));
    let no_kid = k.es.sign_with_header(&json!({"alg": "ES256"}), &claims());
    assert_eq!(v.verify(&no_kid).await.err(), Some(TokenError::NoKey));

    *provider.doc.lock().unwrap() = Ok(jwks(&[&k.es]));
    clock.advance(Duration::from_secs(31));
    cache.refresh().await.unwrap();
    assert!(v.verify(&k.es.sign(&claims())).await.is_ok());
    // The provider goes down (or serves garbage, or a set without usable keys): the cache still serves.
    for broken in [
        Err("timeout".to_owned()),
        Ok(b"<html>".to_vec()),
        Ok(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#.to_vec()),
    ] {
        *provider.doc.lock().unwrap() = broken;
        assert!(cache.refresh().await.is_err());
        assert_eq!(cache.keys().keys().len(), 1);
        assert!(v.verify(&k.es.sign(&with(json!({"sub": "bob"})))).await.is_ok());
    }
    assert_eq!(cache.stats().failures, 4);
}

#[tokio::test(start_paused = true)]
async fn c22_jwks_refreshes_in_the_background_before_expiry() {
    let k = keys();
    let clock = clock();
    let provider = idp(Ok(jwks(&[&k.es])), Some(Duration::from_secs(120)));
    let cache = jwks_cache(&provider, &clock);
    let task = tokio::spawn(cache.clone().run());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.next_refresh(), Duration::from_secs(120), "max-age within bounds is honoured");
    let next = TestKey::generate(Algorithm::EdDSA, "ed-2");
    *provider.doc.lock().unwrap() = Ok(jwks(&[&k.es, &next]));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
    assert!(cache.keys().has_kid("ed-2"), "new key present before any token asked for it");
    task.abort();
}

// ---- the layer ----

fn protected(roles: &[&str], owner: Option<&str>) -> Access {
    Access::Protected(Authz {
        roles: roles.iter().map(|s| (*s).to_owned()).collect(),
        owner: owner.map(str::to_owned),
    })
}

async fn call(req: Request<Body>) -> (StatusCode, http::HeaderMap, http::HeaderMap) {
    let table = RouteTable::new(vec![
        Route::new(PathPattern::parse("/public").unwrap(), Access::Public),
        Route::new(PathPattern::parse("/admin/**").unwrap(), protected(&["admin"], None)),
        Route::new(PathPattern::parse("/users/{id}").unwrap(), protected(&["admin"], Some("id"))),
        Route::new(PathPattern::parse("/me").unwrap(), protected(&[], None)),
    ]);
    let seen = Arc::new(std::sync::Mutex::new(http::HeaderMap::new()));
    let seen2 = seen.clone();
    let upstream = service_fn(move |req: Request<Body>| {
        *seen2.lock().unwrap() = req.headers().clone();
        async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(bytes::Bytes::from_static(b"ok"))))
        }
    });
    let verifier = Arc::new(verifier(&clock()));
    let svc = RouteLayer::new(table)
        .layer(AuthLayer::new(Some(verifier), IdentityHeaders::default()).layer(upstream));
    let res = svc.oneshot(req).await.unwrap();
    let upstream_saw = seen.lock().unwrap().clone();
    (res.status(), res.headers().clone(), upstream_saw)
}

fn get(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().method(Method::GET).uri(path);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.body(Body::empty()).unwrap()
}

fn bearer_for(c: &Value) -> String {
    format!("Bearer {}", keys().es.sign(c))
}

#[tokio::test]
async fn c21_c22_layer_challenges() {
    let (s, h, _) = call(get("/me", None)).await;
    assert_eq!((s, h["www-authenticate"].to_str().unwrap()), (StatusCode::UNAUTHORIZED, "Bearer"));
    let (s, h, _) = call(get("/me", Some("Basic YWxpY2U6cHc="))).await;
    assert_eq!((s, h["www-authenticate"].to_str().unwrap()), (StatusCode::UNAUTHORIZED, "Bearer"));
    for bad in ["Bearer", "Bearer  ", "Bearer a b", "Bearer ey\u{0}", "Bearer not.a.jwt"] {
        let mut req = get("/me", None);
        if let Ok(v) = HeaderValue::from_str(bad) {
            req.headers_mut().insert("authorization", v);
        }
        let (s, h, up) = call(req).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(up.is_empty(), "never forwarded");
        if bad.len() > 8 && !bad.contains('\u{0}') {
            assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"", "{bad:?}");
        }
    }
    // Never from the query string.
    let t = keys().es.sign(&claims());
    let (s, _, _) = call(get(&format!("/me?access_token={t}"), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Two Authorization headers: refused, whichever would be read.
    let mut req = get("/me", Some(&bearer_for(&claims())));
    req.headers_mut().append("authorization", HeaderValue::from_static("Bearer x.y.z"));
    assert_eq!(call(req).await.0, StatusCode::UNAUTHORIZED);
    // The scheme is case-insensitive.
    assert_eq!(call(get("/me", Some(&format!("bEaReR {t}")))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn c23_c26_c27_identity_roles_and_ownership() {
    let user = bearer_for(&claims());
    let admin = bearer_for(&with(json!({"sub": "root", "roles": ["admin"]})));
    // Roles come from the token only: a role in a header or the query is nothing.
    let mut forged = get("/admin/panel?roles=admin", Some(&user));
    forged.headers_mut().insert("x-auth-roles", HeaderValue::from_static("admin"));
    forged.headers_mut().insert("x_auth_subject", HeaderValue::from_static("root"));
    let (s, h, up) = call(forged).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h["www-authenticate"], "Bearer error=\"insufficient_scope\"");
    assert!(up.is_empty());
    assert_eq!(call(get("/admin/panel", Some(&admin))).await.0, StatusCode::OK);
    // Ownership: alice may read /users/alice, not /users/bob; admin may read both.
    assert_eq!(call(get("/users/alice", Some(&user))).await.0, StatusCode::OK);
    assert_eq!(call(get("/users/bob", Some(&user))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(get("/users/bob", Some(&admin))).await.0, StatusCode::OK);
    // Identity headers: forged copies in every spelling replaced by the verified ones.
    let mut req = get("/me", Some(&user));
    for (n, v) in [("x-auth-subject", "root"), ("x_auth_subject", "root"), ("X-Auth_Roles", "admin")] {
        req.headers_mut()
            .append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_static(v));
    }
    let (s, _, up) = call(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(up.get_all("x-auth-subject").iter().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(up.get_all("x-auth-roles").iter().collect::<Vec<_>>(), ["user"]);
    assert!(up.get("x_auth_subject").is_none() && up.get("x-auth_roles").is_none());
    assert!(up.get("authorization").is_none(), "the token is not forwarded by default");
}

#[tokio::test]
async fn c21_public_routes_strip_forgeries_and_ignore_bad_tokens() {
    let mut req = get("/public", Some("Bearer forged.token.here"));
    req.headers_mut().insert("x-auth-subject", HeaderValue::from_static("root"));
    let (s, _, up) = call(req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(up.get("x-auth-subject").is_none());
    let (s, _, up) = call(get("/public", Some(&bearer_for(&claims())))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(up["x-auth-subject"], "alice", "a valid token on a public route still identifies");
    // Unmatched: 404 before any token is looked at.
    assert_eq!(call(get("/nothing", Some(&bearer_for(&claims())))).await.0, StatusCode::NOT_FOUND);
}

#[test]
fn alg_names_round_trip() {
    for alg in SUPPORTED {
        assert_eq!(algorithm(alg_name(*alg)), Some(*alg));
    }
    assert_eq!(algorithm("none"), None);
    assert_eq!(algorithm("HS256"), None);
}

// ---- session cookies (C25) and CSRF (C10) in the layer ----

#[derive(Debug)]
struct FakeSessions {
    lookups: AtomicUsize,
    down: bool,
}

const SID: &str = "sessionidsessionidsessionidsessionid0123456";
const CSRF: &str = "csrf-token-of-the-session";

impl session::SessionSource for FakeSessions {
    fn cookie_name(&self) -> &str {
        "__Host-session"
    }
    fn lookup<'a>(&'a self, id: &'a str) -> session::LookupFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.down {
                return SessionLookup::Unavailable;
            }
            if id != SID {
                return SessionLookup::NotFound;
            }
            let identity = Identity {
                subject: "carol".into(),
                roles: vec!["user".into()],
                claims: serde_json::Map::new(),
                expires: 0,
            };
            SessionLookup::Found(SessionAuth { identity: Arc::new(identity), csrf: CSRF.into() })
        })
    }
}

#[allow(clippy::disallowed_methods)] // bounded by Limited
async fn call_with_sessions(req: Request<Body>, down: bool) -> (StatusCode, Value, Option<http::HeaderMap>) {
    let table = RouteTable::new(vec![
        Route::new(PathPattern::parse("/public").unwrap(), Access::Public),
        Route::new(PathPattern::parse("/admin/**").unwrap(), protected(&["admin"], None)),
        Route::new(PathPattern::parse("/users/{id}").unwrap(), protected(&[], Some("id"))),
        Route::new(PathPattern::parse("/me").unwrap(), protected(&[], None)),
    ]);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let upstream = service_fn(move |req: Request<Body>| {
        *seen2.lock().unwrap() = Some(req.headers().clone());
        async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(bytes::Bytes::from_static(b"{}"))))
        }
    });
    let sessions = Arc::new(FakeSessions { lookups: AtomicUsize::new(0), down });
    let verifier = Arc::new(verifier(&clock()));
    let svc = RouteLayer::new(table)
        .layer(AuthLayer::new(Some(verifier), IdentityHeaders::default()).sessions(sessions).layer(upstream));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(res.into_body(), 1 << 16))
        .await
        .unwrap()
        .to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let upstream_saw = seen.lock().unwrap().clone();
    (status, v, upstream_saw)
}

fn with_cookie(method: Method, path: &str, cookie: &str, extra: &[(&str, &str)]) -> Request<Body> {
    let mut r =
        Request::builder().method(method).uri(path).header("host", "gw.test").header("cookie", cookie);
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn c25_a_session_cookie_authenticates_like_a_token_and_is_not_forwarded() {
    let cookie = format!("theme=dark; __Host-session={SID}");
    let (s, _, up) = call_with_sessions(with_cookie(Method::GET, "/me", &cookie, &[]), false).await;
    assert_eq!(s, StatusCode::OK);
    let up = up.unwrap();
    assert_eq!(up["x-auth-subject"], "carol");
    assert_eq!(up["x-auth-roles"], "user");
    assert_eq!(up["cookie"], "theme=dark", "the session cookie stays at the gateway");
    // Roles and ownership apply unchanged.
    assert_eq!(
        call_with_sessions(with_cookie(Method::GET, "/admin/x", &cookie, &[]), false).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call_with_sessions(with_cookie(Method::GET, "/users/carol", &cookie, &[]), false).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call_with_sessions(with_cookie(Method::GET, "/users/dave", &cookie, &[]), false).await.0,
        StatusCode::FORBIDDEN
    );
    // Unknown, malformed, doubled: no session, 401, never forwarded.
    for bad in [
        "__Host-session=unknownunknownunknownunknownunknownunknown12".to_owned(),
        "__Host-session=../../etc".to_owned(),
        format!("__Host-session={SID}; __Host-session={SID}"),
        format!("__Host-session={}", "a".repeat(500)),
    ] {
        let (s, v, up) = call_with_sessions(with_cookie(Method::GET, "/me", &bad, &[]), false).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")), "{bad}");
        assert!(up.is_none());
        assert!(!v.to_string().contains("etc") && !v.to_string().contains("aaaa"), "no echo: {v}");
    }
    // A store that can't be reached: 503 where a session is needed, never a pass.
    let (s, v, up) = call_with_sessions(with_cookie(Method::GET, "/me", &cookie, &[]), true).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")));
    assert!(up.is_none());
    // ... and on a public route the request goes on without an identity.
    let (s, _, up) = call_with_sessions(with_cookie(Method::GET, "/public", &cookie, &[]), true).await;
    assert_eq!(s, StatusCode::OK);
    assert!(up.unwrap().get("x-auth-subject").is_none());
    // Client-sent identity headers are stripped on the cookie path too.
    let (_, _, up) = call_with_sessions(
        with_cookie(Method::GET, "/me", &cookie, &[("x-auth-subject", "admin"), ("x_auth_roles", "admin")]),
        false,
    )
    .await;
    let up = up.unwrap();
    assert_eq!(up["x-auth-subject"], "carol");
    assert!(up.get("x_auth_roles").is_none());
}

#[tokio::test]
async fn c10_cookie_authenticated_unsafe_methods_need_the_csrf_checks() {
    let cookie = format!("__Host-session={SID}");
    let same = [("x-csrf-token", CSRF), ("sec-fetch-site", "same-origin")];
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let (s, v, up) = call_with_sessions(with_cookie(m.clone(), "/me", &cookie, &[]), false).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_failed")), "{m}");
        assert!(up.is_none(), "{m}: the upstream never sees it");
        assert!(v["request_id"].is_null() || v["request_id"].is_string());
        let (s, _, _) = call_with_sessions(with_cookie(m.clone(), "/me", &cookie, &same), false).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        // The token from another site's page: Sec-Fetch-Site or Origin says so.
        for bad in [
            vec![("x-csrf-token", CSRF), ("sec-fetch-site", "cross-site")],
            vec![("x-csrf-token", CSRF), ("sec-fetch-site", "same-site")],
            vec![("x-csrf-token", CSRF), ("origin", "https://evil.test")],
            vec![("x-csrf-token", "guess"), ("sec-fetch-site", "same-origin")],
        ] {
            let (s, v, up) = call_with_sessions(with_cookie(m.clone(), "/me", &cookie, &bad), false).await;
            assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_failed")), "{m} {bad:?}");
            assert!(up.is_none());
        }
        // Neither header (a non-browser client): the token alone.
        let (s, _, _) =
            call_with_sessions(with_cookie(m.clone(), "/me", &cookie, &[("x-csrf-token", CSRF)]), false)
                .await;
        assert_eq!(s, StatusCode::OK, "{m}");
    }
    // Safe methods need no token.
    for m in [Method::GET, Method::HEAD] {
        assert_eq!(call_with_sessions(with_cookie(m, "/me", &cookie, &[]), false).await.0, StatusCode::OK);
    }
    // A bearer token is not subject to CSRF (a browser never adds one by
    // itself), and wins over the cookie.
    let token = bearer_for(&claims());
    let (s, _, up) = call_with_sessions(
        with_cookie(
            Method::POST,
            "/me",
            &cookie,
            &[("authorization", &token), ("sec-fetch-site", "cross-site")],
        ),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(up.unwrap()["x-auth-subject"], "alice");
    // A public route: a failed check drops the identity instead of refusing.
    let (s, _, up) = call_with_sessions(with_cookie(Method::POST, "/public", &cookie, &[]), false).await;
    assert_eq!(s, StatusCode::OK);
    assert!(up.unwrap().get("x-auth-subject").is_none());
    let (_, _, up) = call_with_sessions(with_cookie(Method::POST, "/public", &cookie, &same), false).await;
    assert_eq!(up.unwrap()["x-auth-subject"], "carol");
}

/// `bearer`'s branch-free alphabet check is exactly RFC 7235's token68
/// (without the `=` padding), byte by byte.
#[test]
fn c22_token68_is_exactly_the_rfc_alphabet() {
    for b in 0..=255u8 {
        let want = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        assert_eq!(is_token68(b), want, "{b:#04x}");
    }
}

/// What `bearer` makes of each `Authorization` value, directly (through
/// the layer an invalid value and a bad token are both 401, so only this
/// tells them apart). Cases from a targeted `cargo mutants` run on
/// `bearer`: the padding bound, the empty token, a bad byte anywhere,
/// three good bytes (a fold that toggled would refuse them).
#[test]
fn c22_bearer_reads_exactly_one_token68() {
    let read = |values: &[&str]| {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, HeaderValue::from_bytes(v.as_bytes()).unwrap());
        }
        match bearer(&h) {
            Bearer::Absent => "absent".to_owned(),
            Bearer::Invalid => "invalid".to_owned(),
            Bearer::Token(t) => format!("token {t}"),
        }
    };
    let cases: &[(&[&str], &str)] = &[
        (&[], "absent"),
        (&["Basic YWxpY2U6cHc="], "absent"),
        (&["Bearer abc"], "token abc"),
        (&["bearer   abc"], "token abc"),
        (&["BEARER a-b.c_d~e+f/g=="], "token a-b.c_d~e+f/g=="),
        (&["Bearer abc=="], "token abc=="),
        (&["Bearer ="], "invalid"),
        (&["Bearer"], "invalid"),
        (&["Bearer "], "invalid"),
        (&["Bearer a$b"], "invalid"),
        (&["Bearer $ab"], "invalid"),
        (&["Bearer abc$"], "invalid"),
        (&["Bearer abc$=="], "invalid"),
        (&["Bearer a=b"], "invalid"),
        (&["Bearer a b"], "invalid"),
        (&["Bearer abc", "Bearer abc"], "invalid"),
        (&["Basic \u{e9}"], "invalid"),
        (&["Bearer abc\u{e9}"], "invalid"),
    ];
    for (values, want) in cases {
        assert_eq!(read(values), *want, "{values:?}");
    }
}
