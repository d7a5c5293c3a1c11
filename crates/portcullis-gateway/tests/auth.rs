//! C21 C22 C23 C26 C27 C28 through the real gateway: a JWKS server that
//! rotates keys and goes down, route-bypass spellings, identity headers
//! the client can't forge, and the worked example of docs/auth.md against
//! the naive Express fixture's `/admin`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_layers::auth::Algorithm;
use portcullis_layers::auth::testing::{TestKey, jwks, unsigned};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// An identity provider's JWKS endpoint: its document can be swapped, it can
/// be taken down (503), and it counts the fetches.
struct Idp {
    addr: SocketAddr,
    doc: Arc<Mutex<Vec<u8>>>,
    down: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn idp(keys: &[&TestKey]) -> Idp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doc = Arc::new(Mutex::new(jwks(keys)));
    let down = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let (d, dn, h) = (doc.clone(), down.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (d, dn, h) = (d.clone(), dn.clone(), h.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let res = if dn.load(Ordering::SeqCst) {
                        Response::builder().status(503).body(Full::new(Bytes::from_static(b"down")))
                    } else {
                        Response::builder()
                            .header("content-type", "application/jwk-set+json")
                            .header("cache-control", "max-age=3600")
                            .body(Full::new(Bytes::from(d.lock().unwrap().clone())))
                    };
                    async move { Ok::<_, std::convert::Infallible>(res.unwrap()) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    Idp { addr, doc, down, hits }
}

const NOW_PLUS: u64 = 3600;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({"sub": sub, "roles": roles, "iss": "https://idp.test/", "aud": "api", "exp": now() + NOW_PLUS})
}

fn auth_toml(idp: SocketAddr) -> String {
    format!(
        r#"
[auth.jwt]
issuer = "https://idp.test/"
audience = "api"
jwks_url = "http://{idp}/jwks"
jwks_min_interval = "1s"

[[route]]
path = "/admin/**"
allow = {{ roles = ["admin"] }}

[[route]]
path = "/api/users/{{id}}"
allow = {{ roles = ["admin"], owner = "id" }}

[[route]]
path = "/api/hello"
methods = ["GET"]
public = true

[[route]]
path = "/api/**"
"#
    )
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, Response<()>) {
    let mut b = Request::builder().method(method).uri(path).header("host", "gw.test");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let (res, body) = send(addr, b.body(Full::new(Bytes::new())).unwrap()).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (res.status().as_u16(), v, res)
}

/// The gateway accepts `token` on `path` at once: the first token with an
/// unknown kid waits for the JWKS fetch in flight (or starts one), so no
/// polling is needed.
async fn accepted(addr: SocketAddr, path: &str, token: &str) {
    let bearer = format!("Bearer {token}");
    let (status, body, _) = call(addr, "GET", path, &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{path}: {body}");
}

#[tokio::test]
async fn c22_jwks_rotation_outage_and_kid_flood_end_to_end() {
    let k1 = TestKey::generate(Algorithm::ES256, "k1");
    let idp = idp(&[&k1]).await;
    let up = upstream().await;
    let clock = portcullis_layers::clock::ManualClock::starting_at(now() * 1_000_000);
    let gw = gateway_with_clock(up.addr, &auth_toml(idp.addr), Arc::new(clock.clone())).await;
    let alice = k1.sign(&claims("alice", &["user"]));
    accepted(gw.addr, "/api/things", &alice).await;

    // Rotation: the provider now publishes k2 only. A k2 token is an
    // unknown kid; it triggers a re-fetch at most once per
    // jwks_min_interval (1s): refused until that has passed, then accepted.
    let k2 = TestKey::generate(Algorithm::EdDSA, "k2");
    *idp.doc.lock().unwrap() = jwks(&[&k2]);
    let bob = k2.sign(&claims("bob", &["user"]));
    let (s, _, _) = call(gw.addr, "GET", "/api/things", &[("authorization", &format!("Bearer {bob}"))]).await;
    assert_eq!(s, 401, "re-fetched within jwks_min_interval of the last fetch");
    clock.advance(Duration::from_secs(1));
    accepted(gw.addr, "/api/things", &bob).await;
    // k1 is gone from the set: its tokens (even ones verified and cached before) are refused.
    let (s, v, res) =
        call(gw.addr, "GET", "/api/things", &[("authorization", &format!("Bearer {alice}"))]).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_token")));
    assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert!(v["request_id"].is_string());

    // The provider goes down: tokens of the cached set still work.
    idp.down.store(true, Ordering::SeqCst);
    let carol = k2.sign(&claims("carol", &["user"]));
    assert_eq!(call(gw.addr, "GET", "/api/x", &[("authorization", &format!("Bearer {carol}"))]).await.0, 200);

    // A flood of random kids can't make the gateway hammer the provider.
    let before = idp.hits.load(Ordering::SeqCst);
    for i in 0..100 {
        let t = k2.sign_with_header(&json!({"alg": "EdDSA", "kid": format!("rnd-{i}")}), &claims("x", &[]));
        assert_eq!(call(gw.addr, "GET", "/api/x", &[("authorization", &format!("Bearer {t}"))]).await.0, 401);
    }
    let fetched = idp.hits.load(Ordering::SeqCst) - before;
    assert!(fetched <= 3, "{fetched} JWKS fetches for 100 unknown kids");
}

#[tokio::test]
async fn c21_c28_protected_route_unreachable_by_any_spelling() {
    let k = TestKey::generate(Algorithm::ES256, "k");
    let idp = idp(&[&k]).await;
    let up = upstream().await;
    let gw = gateway(up.addr, &auth_toml(idp.addr)).await;
    let user = format!("Bearer {}", k.sign(&claims("alice", &["user"])));
    accepted(gw.addr, "/api/x", &k.sign(&claims("alice", &[]))).await;
    // Each spelling resolves to /admin (and gets the admin rule: 401/403) or
    // is refused as a path (400). None reaches the upstream.
    let spellings = [
        "/admin",
        "/ADMIN",
        "/Admin/",
        "/admin/",
        "//admin",
        "/./admin",
        "/api/../admin",
        "/api/x/../../admin",
        "/%61dmin",
        "/%41DMIN",
        "/api/%2e%2e/admin",
        "/api/..%2fadmin",
        "/admin%2f",
        "/admin;x=1",
        "/admin%00",
        "/admin%252f",
        "/%2561dmin",
        "/admin%5c",
        "/admin/.",
        "/admin/x/..",
        "/admin?x=/api/hello",
    ];
    for path in spellings {
        for auth in [None, Some(user.as_str())] {
            let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
            let (s, v, _) = call(gw.addr, "GET", path, &headers).await;
            assert!(matches!(s, 400 | 401 | 403 | 404), "{path} with {auth:?}: {s}");
            assert_ne!(v["code"], Value::Null, "{path}: Portcullis answered, not the upstream");
        }
    }
    // Absolute-form and raw spellings hyper's client won't send.
    for target in ["http://gw.test/admin", "/admin\\", "/ad%6din/", "/admin/..;/"] {
        let out = raw(
            gw.addr,
            format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status: u16 = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(matches!(status, 400 | 401), "{target}: {out}");
    }
    // HEAD is GET: the public GET-only route admits HEAD, nothing else sneaks through.
    assert_eq!(call(gw.addr, "HEAD", "/api/hello", &[]).await.0, 200);
    // The GET-only route owns /api/hello: DELETE is 405 (issue 12), not
    // the protected catch-all's 401.
    assert_eq!(call(gw.addr, "DELETE", "/api/hello", &[]).await.0, 405);
    assert_eq!(call(gw.addr, "GET", "/undeclared", &[]).await.0, 404);
    let mut up = up;
    while let Ok(seen) = up.seen.try_recv() {
        assert!(!seen.path_and_query.to_ascii_lowercase().contains("admin"), "{}", seen.path_and_query);
    }
}

#[tokio::test]
async fn c23_c26_c27_identity_reaches_the_upstream_unforgeable() {
    let k = TestKey::generate(Algorithm::RS256, "rsa");
    let idp = idp(&[&k]).await;
    let mut up = upstream().await;
    let gw = gateway(up.addr, &auth_toml(idp.addr)).await;
    let alice = format!("Bearer {}", k.sign(&claims("alice", &["user"])));
    accepted(gw.addr, "/api/x", &k.sign(&claims("probe", &[]))).await;
    while up.seen.try_recv().is_ok() {}

    // Forged identity headers in every spelling, and an attempt to remove
    // the real ones through Connection, and a method override.
    let out = raw(
        gw.addr,
        format!(
            "GET /api/users/alice HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {alice}\r\nX-Auth-Subject: root\r\nx_auth_subject: root\r\nX-AUTH-ROLES: admin\r\nX_Auth_Roles: admin\r\nConnection: close, X-Auth-Subject, x-auth-roles\r\nX-HTTP-Method-Override: DELETE\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = up.seen.recv().await.unwrap();
    assert_eq!(seen.headers.get_all("x-auth-subject").iter().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(seen.headers.get_all("x-auth-roles").iter().collect::<Vec<_>>(), ["user"]);
    for forged in ["x_auth_subject", "x_auth_roles", "x-http-method-override", "authorization"] {
        assert!(seen.headers.get(forged).is_none(), "{forged} reached the upstream");
    }
    // Ownership and roles (roles only from the token: C26).
    let (s, v, res) =
        call(gw.addr, "GET", "/api/users/bob", &[("authorization", &alice), ("x-auth-roles", "admin")]).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"insufficient_scope\"");
    let admin = format!("Bearer {}", k.sign(&claims("root", &["admin"])));
    assert_eq!(call(gw.addr, "GET", "/api/users/bob", &[("authorization", &admin)]).await.0, 200);
    // No token: 401 with the bare challenge; a token in the query string is not read.
    let t = k.sign(&claims("alice", &["admin"]));
    let (s, v, res) = call(gw.addr, "GET", &format!("/admin?access_token={t}"), &[]).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    // alg none and a forged HS256 token (the RSA public key as the secret).
    let none = unsigned(&json!({"alg": "none", "kid": "rsa"}), &claims("root", &["admin"]));
    let hs = portcullis_layers::auth::testing::hs256(
        k.public_pem.as_bytes(),
        &json!({"alg": "HS256", "kid": "rsa"}),
        &claims("root", &["admin"]),
    );
    for forged in [none, hs] {
        let (s, v, _) =
            call(gw.addr, "GET", "/admin", &[("authorization", &format!("Bearer {forged}"))]).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("invalid_token")));
    }
}

/// The worked example of docs/auth.md: the naive Express fixture's `/admin`
/// answers anyone directly; behind Portcullis only an admin token reaches it.
#[tokio::test]
async fn worked_example_protects_the_express_admin_route() {
    let express = express_app::express().await;
    let (s, v, _) = call(express.addr, "GET", "/admin", &[]).await;
    assert_eq!((s, v["secret"].as_str()), (200, Some("admin-only data")), "the bare fixture is open");

    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::generate(Algorithm::EdDSA, "idp-1");
    std::fs::write(dir.path().join("idp.pem"), &k.public_pem).unwrap();
    let text = docs_example_config("auth.md", express.addr);
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();

    let (s, v, _) = call(gw.addr, "GET", "/admin", &[]).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthenticated")));
    let user = format!("Bearer {}", k.sign(&claims("alice", &["user"])));
    assert_eq!(call(gw.addr, "GET", "/ADMIN/", &[("authorization", &user)]).await.0, 403);
    let admin = format!("Bearer {}", k.sign(&claims("root", &["admin"])));
    let (s, v, _) = call(gw.addr, "GET", "/Admin", &[("authorization", &admin)]).await;
    assert_eq!((s, v["secret"].as_str()), (200, Some("admin-only data")));
    // Public and owner routes of the example.
    assert_eq!(call(gw.addr, "GET", "/api/hello", &[]).await.0, 200);
    let (s, v, _) = call(gw.addr, "GET", "/api/users/alice", &[("authorization", &user)]).await;
    assert_eq!((s, v["id"].as_str()), (200, Some("alice")));
    assert_eq!(call(gw.addr, "GET", "/api/users/bob", &[("authorization", &user)]).await.0, 403);
    // C21 C27 (issue 12): methods the owner route leaves out are 405, not
    // handed to the `/api/**` catch-all that admits any token.
    for m in ["DELETE", "POST", "PATCH", "PUT"] {
        let (s, v, _) = call(gw.addr, m, "/api/users/bob", &[("authorization", &user)]).await;
        assert_eq!((s, v["code"].as_str()), (405, Some("method_not_allowed")), "{m}");
    }
    // Express's own identity view: the headers Portcullis set, not the client's.
    let (s, v, _) = call(
        gw.addr,
        "GET",
        "/api/headers",
        &[("authorization", &user), ("x-auth-subject", "root"), ("x_auth_roles", "admin")],
    )
    .await;
    assert_eq!(s, 200);
    let h = &v["headers"];
    assert_eq!(h["x-auth-subject"], "alice");
    assert_eq!(h["x-auth-roles"], "user");
    assert!(h.get("x_auth_roles").is_none() && h.get("authorization").is_none(), "{h}");
}

// C27 (issue 13 item 4): Express's `:id` and `{id}` are the same parameter;
// an owner rule written either way protects `/api/users/7`.
#[tokio::test]
async fn c27_express_colon_and_brace_parameters_protect_alike() {
    let k = TestKey::generate(Algorithm::ES256, "k");
    let idp = idp(&[&k]).await;
    let up = upstream().await;
    for spelling in ["{id}", ":id"] {
        let route = format!("/api/users/{spelling}\"");
        let toml = auth_toml(idp.addr).replace("/api/users/{id}\"", &route);
        assert!(toml.contains(&route), "{toml}");
        let gw = gateway(up.addr, &toml).await;
        let seven = format!("Bearer {}", k.sign(&claims("7", &["user"])));
        let eight = format!("Bearer {}", k.sign(&claims("8", &["user"])));
        accepted(gw.addr, "/api/users/7", &k.sign(&claims("7", &["user"]))).await;
        assert_eq!(call(gw.addr, "GET", "/api/users/7", &[]).await.0, 401, "{spelling}");
        assert_eq!(
            call(gw.addr, "GET", "/api/users/7", &[("authorization", &seven)]).await.0,
            200,
            "{spelling}"
        );
        assert_eq!(
            call(gw.addr, "GET", "/API/users/7/", &[("authorization", &seven)]).await.0,
            200,
            "{spelling}"
        );
        let (s, v, _) = call(gw.addr, "GET", "/api/users/7", &[("authorization", &eight)]).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")), "{spelling}");
    }
}

// C11 per user (issue 13 item 5): `key = "subject"` counts by the verified
// subject, after authentication; each user has their own budget, a user
// can't spend another's, and requests refused before auth don't count.
#[tokio::test]
async fn c11_rate_limit_per_verified_subject() {
    let k = TestKey::generate(Algorithm::ES256, "k");
    let idp = idp(&[&k]).await;
    let up = upstream().await;
    let toml = format!(
        "[[rate_limit]]\nname = \"per-user\"\nkey = \"subject\"\nlimit = 2\nwindow = \"1h\"\nroutes = [\"/api/**\"]\n[[rate_limit]]\nname = \"per-ip\"\nlimit = 1000\nwindow = \"1m\"\n{}",
        auth_toml(idp.addr)
    );
    let gw = gateway(up.addr, &toml).await;
    let alice = format!("Bearer {}", k.sign(&claims("alice", &["user"])));
    let alice2 = format!("Bearer {}", k.sign(&json!({"sub": "alice", "iss": "https://idp.test/", "aud": "api", "exp": now() + NOW_PLUS, "jti": "another-token"})));
    let bob = format!("Bearer {}", k.sign(&claims("bob", &["user"])));
    accepted(gw.addr, "/admin/x", &k.sign(&claims("root", &["admin"]))).await;
    // Refused by auth (no token, bad token): not counted against anyone.
    for _ in 0..5 {
        assert_eq!(call(gw.addr, "GET", "/api/things", &[]).await.0, 401);
        assert_eq!(call(gw.addr, "GET", "/api/things", &[("authorization", "Bearer x.y.z")]).await.0, 401);
    }
    let (s, _, res) = call(gw.addr, "GET", "/api/things", &[("authorization", &alice)]).await;
    assert_eq!(s, 200);
    // Both limiters speak in the draft-8 lists: the per-user rule (decided
    // after auth) and the per-IP one (before it).
    let joined = |name: &str| {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert!(joined("ratelimit").contains("\"per-user\";r=1"), "{:?}", res.headers());
    assert!(joined("ratelimit-policy").contains("\"per-ip\";q=1000"), "{:?}", res.headers());
    // A second token for the same subject shares the budget.
    assert_eq!(call(gw.addr, "GET", "/api/things", &[("authorization", &alice2)]).await.0, 200);
    let (s, v, res) = call(gw.addr, "GET", "/api/things", &[("authorization", &alice)]).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")));
    assert!(res.headers().contains_key("retry-after"));
    // Bob, from the same IP, has his own.
    assert_eq!(call(gw.addr, "GET", "/api/things", &[("authorization", &bob)]).await.0, 200);
    assert_eq!(call(gw.addr, "GET", "/api/things", &[("authorization", &bob)]).await.0, 200);
    assert_eq!(call(gw.addr, "GET", "/api/things", &[("authorization", &bob)]).await.0, 429);
}
