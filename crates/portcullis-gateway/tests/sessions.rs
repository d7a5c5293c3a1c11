//! C25 C10 C9: cookie sessions on the built-in identity's users, CSRF
//! checks on cookie-authenticated unsafe methods, and hardened cookies,
//! through the real gateway (a real SQLite file, a real Redis, the real
//! Express fixture). Attacks: session fixation, cookie tossing, look-alike
//! origins, cross-site logins, tokens guessed or replayed after logout.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;
#[path = "common/redis.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use portcullis_gateway::identity::keys::{KeyAlg, generate};
use portcullis_gateway::identity::password::{Cost, Hasher};
use portcullis_gateway::identity::store::Store;
use portcullis_layers::clock::ManualClock;
use serde_json::{Value, json};

const CHEAP: Cost = Cost { memory_kib: 64, iterations: 1, parallelism: 1 };

struct Gw {
    gw: portcullis_gateway::server::Running,
    up: Upstream,
    clock: ManualClock,
    store: Store,
    _dir: tempfile::TempDir,
}

fn now_us() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros())
        .unwrap()
}

/// The config of a gateway with `[identity]` and `[sessions]` on a SQLite
/// file in `dir`: `/admin/**` for admins, `/api/**` for anyone logged in,
/// `/public/**` for all.
fn config_text(dir: &std::path::Path, sessions: &str, extra: &str) -> String {
    let key = dir.join("signing.pem");
    if !key.exists() {
        std::fs::write(&key, generate(KeyAlg::EdDsa).unwrap()).unwrap();
    }
    format!(
        "[state]\ndatabase = \"sqlite://{}\"\n{extra}\n[identity]\nsigning_key = \"file:{}\"\nargon2_memory_kib = 64\nargon2_iterations = 1\nlockout_failures = 3\n[sessions]\n{sessions}\n\
         [[route]]\npath = \"/admin/**\"\nallow = {{ roles = [\"admin\"] }}\n[[route]]\npath = \"/api/**\"\n[[route]]\npath = \"/public/**\"\npublic = true\n[[route]]\npath = \"/set-cookie\"\n",
        dir.join("ids.db").display(),
        key.display()
    )
}

async fn users(store: &Store) {
    let hasher = Hasher::new(CHEAP, 2).unwrap();
    store.add_user("alice", &hasher.hash("alice-password").await.unwrap(), &["admin".into()]).await.unwrap();
    store.add_user("bob", &hasher.hash("bob-password").await.unwrap(), &[]).await.unwrap();
}

async fn session_gateway(sessions: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("ids.db").display())).await.unwrap();
    users(&store).await;
    let clock = ManualClock::starting_at(now_us());
    let up = upstream().await;
    let gw =
        gateway_with_clock(up.addr, &config_text(dir.path(), sessions, ""), Arc::new(clock.clone())).await;
    Gw { gw, up, clock, store, _dir: dir }
}

/// A request to the gateway; returns status, JSON body and headers.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, Value, http::HeaderMap) {
    let mut r = Request::builder().method(method).uri(path).header("host", "gw.test");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let bytes = match body {
        Some((ct, b)) => {
            r = r.header("content-type", ct);
            Bytes::from(b.to_owned())
        }
        None => Bytes::new(),
    };
    let (res, bytes) = send(addr, r.body(Full::new(bytes)).unwrap()).await;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (res.status().as_u16(), v, res.headers().clone())
}

/// Logs in through `POST /auth/session`; returns the cookie pair
/// (`name=value`) and the CSRF token.
async fn login(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    cookie: Option<&str>,
) -> (String, String) {
    let body = json!({"username": user, "password": password}).to_string();
    let (s, v, h) = call(addr, "POST", "/auth/session", cookie, &[], Some(("application/json", &body))).await;
    assert_eq!(s, 200, "{v}");
    let set = h["set-cookie"].to_str().unwrap().to_owned();
    (set.split(';').next().unwrap().to_owned(), v["csrf_token"].as_str().unwrap().to_owned())
}

fn drain(up: &mut Upstream) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Ok(s) = up.seen.try_recv() {
        out.push(s);
    }
    out
}

#[tokio::test]
async fn c25_c10_login_use_csrf_and_logout() {
    let mut g = session_gateway("").await;
    let a = g.gw.addr;
    // No session before login.
    assert_eq!(call(a, "GET", "/api/x", None, &[], None).await.0, 401);
    let (s, v, _) = call(a, "GET", "/auth/session", None, &[], None).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthenticated")));

    let body = r#"{"username":"alice","password":"alice-password"}"#;
    let (s, v, h) = call(a, "POST", "/auth/session", None, &[], Some(("application/json", body))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["expires_in"], 12 * 3600);
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 43, "256 bits, base64url");
    let set = h["set-cookie"].to_str().unwrap();
    let (pair, attrs) = set.split_once(';').unwrap();
    let (name, id) = pair.split_once('=').unwrap();
    assert_eq!(name, "__Host-session");
    assert_eq!(id.len(), 43);
    assert_eq!(attrs, " Path=/; Max-Age=43200; Secure; HttpOnly; SameSite=Lax", "no Domain (__Host-)");
    assert_eq!(h["cache-control"], "no-store");
    let cookie = format!("theme=dark; {pair}");
    drain(&mut g.up);

    // The cookie authenticates like a bearer token; the upstream sees the
    // identity headers and never the session cookie.
    assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 200);
    assert_eq!(call(a, "GET", "/admin/x", Some(&cookie), &[], None).await.0, 200);
    let seen = drain(&mut g.up);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-auth-subject"], "alice");
    assert_eq!(seen[0].headers["x-auth-roles"], "admin");
    assert_eq!(seen[0].headers["cookie"], "theme=dark");
    let (s, v, _) = call(a, "GET", "/auth/session", Some(&cookie), &[], None).await;
    assert_eq!((s, v), (200, json!({"subject": "alice", "roles": ["admin"], "csrf_token": csrf})));

    // CSRF: unsafe methods need the token and a same-origin request.
    let json_body = Some(("application/json", "{}"));
    for m in ["POST", "PUT", "PATCH", "DELETE"] {
        let (s, v, _) = call(a, m, "/api/x", Some(&cookie), &[], json_body).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("csrf_failed")), "{m}");
        assert!(v["request_id"].is_string());
    }
    for bad in [
        vec![("x-csrf-token", "guessed")],
        vec![("x-csrf-token", csrf.as_str()), ("sec-fetch-site", "cross-site")],
        vec![("x-csrf-token", csrf.as_str()), ("sec-fetch-site", "same-site")],
        vec![("x-csrf-token", csrf.as_str()), ("origin", "http://gw.test.evil.test")],
        vec![("x-csrf-token", csrf.as_str()), ("origin", "https://gw.test")],
        vec![("x-csrf-token", csrf.as_str()), ("origin", "null")],
    ] {
        let (s, v, _) = call(a, "POST", "/api/x", Some(&cookie), &bad, json_body).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("csrf_failed")), "{bad:?}");
    }
    assert!(drain(&mut g.up).is_empty(), "the upstream never saw a refused request");
    for good in [
        vec![("x-csrf-token", csrf.as_str()), ("sec-fetch-site", "same-origin")],
        vec![("x-csrf-token", csrf.as_str()), ("origin", "http://gw.test")],
        vec![("x-csrf-token", csrf.as_str())],
    ] {
        assert_eq!(call(a, "POST", "/api/x", Some(&cookie), &good, json_body).await.0, 200, "{good:?}");
    }
    // A bearer token is not subject to CSRF.
    let (_, v, _) = call(a, "POST", "/auth/login", None, &[], Some(("application/json", body))).await;
    let bearer = format!("Bearer {}", v["access_token"].as_str().unwrap());
    let (s, _, _) = call(
        a,
        "POST",
        "/api/x",
        None,
        &[("authorization", &bearer), ("sec-fetch-site", "cross-site")],
        json_body,
    )
    .await;
    assert_eq!(s, 200);

    // Logout is an unsafe method too; then the session is dead server-side.
    let (s, v, _) = call(a, "DELETE", "/auth/session", Some(&cookie), &[], None).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("csrf_failed")));
    let (s, _, h) = call(a, "DELETE", "/auth/session", Some(&cookie), &[("x-csrf-token", &csrf)], None).await;
    assert_eq!(s, 204);
    assert_eq!(
        h["set-cookie"].to_str().unwrap(),
        "__Host-session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
    );
    assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 401, "a replayed cookie is dead");
    assert_eq!(
        call(a, "DELETE", "/auth/session", Some(&cookie), &[("x-csrf-token", &csrf)], None).await.0,
        401
    );
}

#[tokio::test]
async fn c25_c10_c15_form_login_cross_site_login_and_lockout() {
    let g = session_gateway("same_site = \"strict\"").await;
    let a = g.gw.addr;
    let form = ("application/x-www-form-urlencoded", "username=bob&password=bob-password");
    let (s, v, h) =
        call(a, "POST", "/auth/session", None, &[("sec-fetch-site", "same-origin")], Some(form)).await;
    assert_eq!(s, 200, "{v}");
    assert!(h["set-cookie"].to_str().unwrap().ends_with("; SameSite=Strict"));
    // Login CSRF: a cross-site post is refused before any password check,
    // whatever the password, and counts no failure.
    for site in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.test")] {
        for pw in ["bob-password", "wrong"] {
            let body = format!("username=bob&password={pw}");
            let (s, v, h) = call(a, "POST", "/auth/session", None, &[site], Some((form.0, &body))).await;
            assert_eq!((s, v["code"].as_str()), (403, Some("csrf_failed")), "{site:?} {pw}");
            assert!(h.get("set-cookie").is_none());
        }
    }
    // The same answers and lockout as /auth/login (C15).
    let bad = ("application/x-www-form-urlencoded", "username=bob&password=nope");
    for _ in 0..3 {
        let (s, v, _) = call(a, "POST", "/auth/session", None, &[], Some(bad)).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("invalid_credentials")));
    }
    let (s, v, h) = call(a, "POST", "/auth/session", None, &[], Some(form)).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("login_locked")));
    assert!(h.get("retry-after").is_some() && h.get("set-cookie").is_none());
    // Bad input: 400 with the usual body, never an echo.
    for (ct, body) in [
        ("application/x-www-form-urlencoded", "username=alice&username=bob&password=x"),
        ("application/x-www-form-urlencoded", "__proto__=x&username=a&password=b"),
        ("application/json", "{\"username\":\"alice\",\"password\":1}"),
        ("application/json", "{\"username\":\"alice\""),
        ("application/json", "{\"username\":\"alice\",\"password\":\"x\",\"role\":\"admin\"}"),
    ] {
        let (s, v, _) = call(a, "POST", "/auth/session", None, &[], Some((ct, body))).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(!v.to_string().contains("alice"), "{v}");
    }
}

#[tokio::test]
async fn c25_fixation_a_login_always_issues_a_new_id_and_kills_the_old() {
    let g = session_gateway("").await;
    let a = g.gw.addr;
    let (first, _) = login(a, "bob", "bob-password", None).await;
    // Logging in again over the old cookie: a new id, and the old one dies.
    let (second, _) = login(a, "bob", "bob-password", Some(&first)).await;
    assert_ne!(first, second);
    assert_eq!(call(a, "GET", "/api/x", Some(&first), &[], None).await.0, 401);
    assert_eq!(call(a, "GET", "/api/x", Some(&second), &[], None).await.0, 200);
    // An attacker-chosen id planted before the victim's login is never adopted.
    let planted = "__Host-session=AttackerChosenIdAttackerChosenIdAttackerChos";
    let (victim, _) = login(a, "alice", "alice-password", Some(planted)).await;
    assert_ne!(victim, planted);
    assert_eq!(call(a, "GET", "/admin/x", Some(planted), &[], None).await.0, 401);
    assert_eq!(call(a, "GET", "/admin/x", Some(&victim), &[], None).await.0, 200);
}

#[tokio::test]
async fn c25_idle_and_absolute_expiry() {
    let g = session_gateway("idle_timeout = \"5m\"\nabsolute_timeout = \"1h\"").await;
    let a = g.gw.addr;
    let (cookie, _) = login(a, "bob", "bob-password", None).await;
    // Used every 4 minutes, it lives...
    for _ in 0..3 {
        g.clock.advance(Duration::from_secs(240));
        assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 200);
    }
    // ...idle 5 minutes, it ends.
    g.clock.advance(Duration::from_secs(300));
    assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 401);
    // Absolute: however often it is used, it ends an hour after login.
    let (cookie, _) = login(a, "bob", "bob-password", None).await;
    for _ in 0..14 {
        g.clock.advance(Duration::from_secs(240));
        assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 200);
    }
    g.clock.advance(Duration::from_secs(240));
    assert_eq!(call(a, "GET", "/api/x", Some(&cookie), &[], None).await.0, 401);
}

#[tokio::test]
async fn c25_disabling_a_user_or_changing_roles_ends_their_sessions() {
    let g = session_gateway("").await;
    let a = g.gw.addr;
    let (alice, _) = login(a, "alice", "alice-password", None).await;
    let (bob, _) = login(a, "bob", "bob-password", None).await;
    g.store.set_disabled("alice", true).await.unwrap();
    g.store.set_roles("bob", &["admin".into()]).await.unwrap();
    // Seen within USER_RECHECK (5 s) on every instance.
    g.clock.advance(portcullis_gateway::identity::sessions::USER_RECHECK);
    assert_eq!(call(a, "GET", "/api/x", Some(&alice), &[], None).await.0, 401);
    assert_eq!(call(a, "GET", "/api/x", Some(&bob), &[], None).await.0, 401, "old roles, old id: dead");
    // A new login carries the new roles under a new id.
    let (bob2, _) = login(a, "bob", "bob-password", None).await;
    assert_ne!(bob, bob2);
    assert_eq!(call(a, "GET", "/admin/x", Some(&bob2), &[], None).await.0, 200);
    let body = r#"{"username":"alice","password":"alice-password"}"#;
    let (s, v, _) = call(a, "POST", "/auth/session", None, &[], Some(("application/json", body))).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_credentials")));
}

#[tokio::test]
async fn c25_malformed_oversized_tossed_or_unknown_cookies_are_no_session() {
    let g = session_gateway("").await;
    let a = g.gw.addr;
    let (good, _) = login(a, "bob", "bob-password", None).await;
    let long = format!("__Host-session={}", "A".repeat(4000));
    for bad in [
        "__Host-session=",
        "__Host-session=not base64!",
        "__Host-session=%41%41",
        long.as_str(),
        "__Host-session=UnknownUnknownUnknownUnknownUnknownUnknown12",
        // Cookie tossing: a second value planted by a sibling domain.
        &format!("{good}; __Host-session=PlantedPlantedPlantedPlantedPlantedPlanted1"),
        // A look-alike name is another cookie.
        &good.replace("__Host-session", "__host-session"),
    ] {
        let (s, v, h) = call(a, "GET", "/api/x", Some(bad), &[], None).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthenticated")), "{bad}");
        assert_eq!(h["content-type"], "application/json");
        assert!(!v.to_string().contains("Unknown") && !v.to_string().contains("AAAA"), "{v}");
        // Public routes pass, without an identity.
        assert_eq!(call(a, "GET", "/public/x", Some(bad), &[], None).await.0, 200);
    }
}

#[tokio::test]
async fn c25_redis_store_is_shared_and_fails_closed() {
    let mut redis = redis_server::RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("ids.db").display())).await.unwrap();
    users(&store).await;
    let up = upstream().await;
    let text = config_text(dir.path(), "store = \"redis\"", &format!("redis = \"{}\"", redis.url()));
    let one = gateway(up.addr, &text).await;
    let two = gateway(up.addr, &text).await;
    let (cookie, csrf) = login(one.addr, "bob", "bob-password", None).await;
    // Every instance sees every session.
    assert_eq!(call(two.addr, "GET", "/api/x", Some(&cookie), &[], None).await.0, 200);
    let (s, v, _) = call(two.addr, "GET", "/auth/session", Some(&cookie), &[], None).await;
    assert_eq!((s, v["csrf_token"].as_str()), (200, Some(csrf.as_str())));
    // Nothing in Redis is a usable cookie: keys are hashes of the id.
    let id = cookie.split_once('=').unwrap().1;
    let keys = redis.cli(&["--scan", "--pattern", "portcullis:session:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(!keys.contains(id) && !redis.cli(&["GET", keys.trim()]).contains(id));
    // Logout on one ends it on the other.
    assert_eq!(
        call(two.addr, "DELETE", "/auth/session", Some(&cookie), &[("x-csrf-token", &csrf)], None).await.0,
        204
    );
    assert_eq!(call(one.addr, "GET", "/api/x", Some(&cookie), &[], None).await.0, 401);
    // The store down: 503 where a session is needed, never a pass.
    let (cookie, _) = login(one.addr, "bob", "bob-password", None).await;
    let admin = one.admin_addr.unwrap();
    assert_eq!(get(admin, "/readyz").await.0.status(), 200);
    redis.stop().await;
    // Issue 17: every session request would fail, so not ready.
    let (res, body) = get(admin, "/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(&body)["reasons"], serde_json::json!(["session_store_unreachable"]));
    let (s, v, _) = call(one.addr, "GET", "/api/x", Some(&cookie), &[], None).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("unavailable")));
    let body = r#"{"username":"bob","password":"bob-password"}"#;
    let (s, _, h) =
        call(one.addr, "POST", "/auth/session", None, &[], Some(("application/json", body))).await;
    assert_eq!(s, 503);
    assert!(h.get("set-cookie").is_none());
    assert_eq!(call(one.addr, "GET", "/public/x", Some(&cookie), &[], None).await.0, 200);
}

#[tokio::test]
async fn c25_database_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("ids.db").display())).await.unwrap();
    users(&store).await;
    let up = upstream().await;
    let text = config_text(dir.path(), "store = \"database\"", "");
    let first = gateway(up.addr, &text).await;
    let (cookie, csrf) = login(first.addr, "alice", "alice-password", None).await;
    drop(first);
    let second = gateway(up.addr, &text).await;
    assert_eq!(call(second.addr, "GET", "/admin/x", Some(&cookie), &[], None).await.0, 200);
    assert_eq!(
        call(second.addr, "DELETE", "/auth/session", Some(&cookie), &[("x-csrf-token", &csrf)], None).await.0,
        204
    );
    assert_eq!(call(second.addr, "GET", "/admin/x", Some(&cookie), &[], None).await.0, 401);
}

/// C9 against the real naive Express app: its `res.cookie()` cookies come
/// out hardened, with no `[sessions]` at all; an explicit
/// `SameSite=None; Secure` stays as it is.
#[tokio::test]
async fn c9_the_express_fixtures_cookies_are_hardened() {
    let app = express_app::express().await;
    let public = "[[route]]\npath = \"/**\"\npublic = true\n";
    let cookies = |h: &http::HeaderMap| -> Vec<String> {
        h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    // Directly: no flags at all.
    let (res, _) = send(
        app.addr,
        Request::post("/api/login").header("host", "x").body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(
        cookies(res.headers()),
        ["sid=naive-session-id; Path=/", "prefs=dark; Path=/; Secure; SameSite=None"]
    );
    // Through Portcullis on plain HTTP: HttpOnly and SameSite added; Secure
    // is not (browsers would drop the cookie over http://).
    let gw = gateway(app.addr, public).await;
    let (_, _, h) = call(gw.addr, "POST", "/api/login", None, &[], None).await;
    assert_eq!(
        cookies(&h),
        [
            "sid=naive-session-id; Path=/; HttpOnly; SameSite=Lax",
            "prefs=dark; Path=/; Secure; SameSite=None; HttpOnly"
        ]
    );
    // secure = "always" (TLS ends before Portcullis), strict, a JS-readable name.
    let gw = gateway(
        app.addr,
        &format!(
            "[cookies]\nsecure = \"always\"\nsame_site = \"strict\"\njs_readable = [\"prefs\"]\n{public}"
        ),
    )
    .await;
    let (_, _, h) = call(gw.addr, "POST", "/api/login", None, &[], None).await;
    assert_eq!(
        cookies(&h),
        [
            "sid=naive-session-id; Path=/; Secure; HttpOnly; SameSite=Strict",
            "prefs=dark; Path=/; Secure; SameSite=None"
        ]
    );
    // Off.
    let gw = gateway(
        app.addr,
        &format!("[cookies]\nsecure = false\nhttp_only = false\nsame_site = \"off\"\n{public}"),
    )
    .await;
    let (_, _, h) = call(gw.addr, "POST", "/api/login", None, &[], None).await;
    assert_eq!(cookies(&h), ["sid=naive-session-id; Path=/", "prefs=dark; Path=/; Secure; SameSite=None"]);
}

/// C25 C10 C9 in real headless Chromium: the session cookie is HttpOnly,
/// Secure and SameSite in the browser's own jar and invisible to page
/// scripts; same-origin calls work with the CSRF token and fail without
/// it; another site's credentialed fetch and form post never reach the
/// upstream; the upstream's own cookie comes out HttpOnly; logout clears
/// the cookie.
#[tokio::test(flavor = "multi_thread")]
async fn c25_c10_c9_real_browser() {
    let browser_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "browser tests not installed: run scripts/test (npm ci --prefix tests/browser, Debian chromium)"
    );
    let mut g = session_gateway("").await;
    let other = format!("http://{}/", page_server().await);
    let out = tokio::process::Command::new("node")
        .arg("sessions.mjs")
        .current_dir(&browser_dir)
        .env("GATEWAY", format!("http://localhost:{}", g.gw.addr.port()))
        .env("OTHER", &other)
        .output()
        .await
        .expect("node is needed for the browser tests");
    assert!(out.status.success(), "browser run failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["login"]["status"], 200, "{v}");
    assert_eq!(v["cookie_visible_to_js"], "", "{v}");
    assert_eq!(v["get"]["status"], 200, "{v}");
    assert_eq!(v["post_without_token"]["status"], 403, "{v}");
    assert!(v["post_without_token"]["body"].as_str().unwrap().contains("csrf_failed"));
    assert_eq!(v["post_with_token"]["status"], 200, "{v}");
    assert_eq!(v["upstream_cookie"]["status"], 200, "{v}");
    assert_eq!(v["cookie_visible_after_upstream"], "", "the upstream's cookie got HttpOnly: {v}");
    let jar = v["jar"].as_array().unwrap();
    let session = jar.iter().find(|c| c["name"] == "__Host-session").expect("the session cookie is kept");
    assert_eq!(
        (&session["httpOnly"], &session["secure"], &session["sameSite"], &session["path"]),
        (&json!(true), &json!(true), &json!("Lax"), &json!("/"))
    );
    let sid = jar.iter().find(|c| c["name"] == "sid").expect("the upstream's cookie");
    assert_eq!((&sid["httpOnly"], &sid["sameSite"]), (&json!(true), &json!("Lax")), "{v}");
    assert!(v["cross_site_form"]["body"].as_str().unwrap().contains("unauthenticated"), "{v}");
    assert_eq!(v["logout"], json!({"status": 204, "after": 401}), "{v}");
    assert!(!v["jar_after_logout"].as_array().unwrap().contains(&json!("__Host-session")), "{v}");
    // The upstream saw the page, the token-carrying POST and its own
    // cookie route; never a POST without the token, never the cross-site ones.
    let posts: Vec<String> = drain(&mut g.up)
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| {
            format!(
                "{} {}",
                s.path_and_query,
                s.headers.get("x-auth-subject").map_or("-", |h| h.to_str().unwrap())
            )
        })
        .collect();
    assert_eq!(posts, ["/api/x bob", "/set-cookie bob"], "{v}");
}

/// The worked example of docs/sessions.md, against the real Express app:
/// a session login, a protected call, the CSRF refusal and pass, the
/// naive app's cookie hardened, logout.
#[tokio::test]
async fn worked_example_runs_against_express() {
    let app = express_app::express().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("signing.pem"), generate(KeyAlg::EdDsa).unwrap()).unwrap();
    let store =
        Store::open(&format!("sqlite://{}", dir.path().join("portcullis.db").display())).await.unwrap();
    users(&store).await;
    let text = docs_example_config("sessions.md", app.addr);
    let text = text.replace("[identity]\n", "[identity]\nargon2_memory_kib = 64\nargon2_iterations = 1\n");
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let a = gw.addr;
    let (cookie, csrf) = login(a, "alice", "alice-password", None).await;
    let (s, v, _) = call(a, "GET", "/admin", Some(&cookie), &[], None).await;
    assert_eq!((s, v["admin"].as_bool()), (200, Some(true)));
    let echo = Some(("application/json", "{\"a\":1}"));
    let (s, v, _) = call(a, "POST", "/api/echo", Some(&cookie), &[], echo).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("csrf_failed")));
    let (s, v, _) = call(a, "POST", "/api/echo", Some(&cookie), &[("x-csrf-token", &csrf)], echo).await;
    assert_eq!((s, v), (200, json!({"a": 1})));
    let (_, _, h) = call(a, "POST", "/api/login", None, &[], None).await;
    assert_eq!(h["set-cookie"], "sid=naive-session-id; Path=/; HttpOnly; SameSite=Lax");
    assert_eq!(
        call(a, "DELETE", "/auth/session", Some(&cookie), &[("x-csrf-token", &csrf)], None).await.0,
        204
    );
    assert_eq!(call(a, "GET", "/admin", Some(&cookie), &[], None).await.0, 401);
}
