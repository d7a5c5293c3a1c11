//! C24 C15, the built-in identity: its store against a real SQLite file
//! and a real PostgreSQL server (each test gets a database of its own), and
//! its endpoints through the real gateway (login, protected calls, refresh
//! rotation and reuse, logout, lockout, bad input, timing).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;
#[path = "common/redis.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use portcullis_gateway::identity::keys::{KeyAlg, generate};
use portcullis_gateway::identity::password::{Cost, Hasher};
use portcullis_gateway::identity::store::{Rotation, SCHEMA_VERSION, Store, StoreError};
use portcullis_layers::clock::ManualClock;
use serde_json::{Value, json};
use sqlx::Connection;

/// The PostgreSQL server the tests use (scripts/test starts one when the
/// machine has none): `PORTCULLIS_TEST_PG`, or the local default.
fn pg_admin_url() -> String {
    std::env::var("PORTCULLIS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh database on the test server, dropped by `drop_pg`.
async fn fresh_pg() -> (String, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("portcullis_t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let admin = pg_admin_url();
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin} ({e}); scripts/test starts one"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c).await.unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("a database URL ends with /dbname"),
    };
    (url, name)
}

async fn drop_pg(name: &str) {
    let mut c = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut c)
        .await;
}

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| (*s).to_owned()).collect()
}

/// The same behaviour on both back ends.
async fn store_behaviour(store: &Store) {
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    store.add_user("alice", "$argon2id$hash-a", &roles(&["admin", "user"])).await.unwrap();
    store.add_user("bob", "$argon2id$hash-b", &roles(&[])).await.unwrap();
    assert!(matches!(store.add_user("alice", "x", &[]).await, Err(StoreError::Exists)));
    let a = store.user("alice").await.unwrap().unwrap();
    assert_eq!(
        (a.roles.clone(), a.disabled, a.password_hash.as_str()),
        (roles(&["admin", "user"]), false, "$argon2id$hash-a")
    );
    assert!(store.user("nobody").await.unwrap().is_none());
    // Names are data, never SQL.
    let evil = "x' OR '1'='1";
    assert!(store.user(evil).await.unwrap().is_none());
    store.add_user(evil, "h", &[]).await.unwrap();
    assert_eq!(store.user(evil).await.unwrap().unwrap().name, evil);
    store.remove_user(evil).await.unwrap();
    assert_eq!(
        store.users().await.unwrap().iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );

    // Rotation: the presented token dies, its successor lives.
    let now = 1_000;
    store.start_family("alice", "fam1", "t1", now + 100).await.unwrap();
    assert_eq!(
        store.rotate("t1", "t2", now, now + 100, 0).await.unwrap(),
        Rotation::Rotated { user: "alice".into(), family: "fam1".into() }
    );
    assert_eq!(
        store.rotate("t2", "t3", now, now + 100, 0).await.unwrap(),
        Rotation::Rotated { user: "alice".into(), family: "fam1".into() }
    );
    // Reuse of t1: the whole family is revoked, t3 with it.
    assert_eq!(
        store.rotate("t1", "tx", now, now + 100, 0).await.unwrap(),
        Rotation::Reused { user: "alice".into(), family: "fam1".into() }
    );
    assert!(store.family_revoked("fam1").await.unwrap());
    assert_eq!(store.rotate("t3", "t4", now, now + 100, 0).await.unwrap(), Rotation::Revoked);
    assert_eq!(
        store.rotate("tx", "ty", now, now + 100, 0).await.unwrap(),
        Rotation::Invalid,
        "the loser's successor was never stored"
    );
    assert_eq!(store.rotate("unknown", "u2", now, now + 100, 0).await.unwrap(), Rotation::Invalid);
    // Expired: invalid, not reuse.
    store.start_family("alice", "fam2", "e1", now + 10).await.unwrap();
    assert_eq!(store.rotate("e1", "e2", now + 10, now + 100, 0).await.unwrap(), Rotation::Invalid);
    assert!(!store.family_revoked("fam2").await.unwrap());

    // Concurrent rotations of one token: exactly one new pair.
    store.start_family("bob", "fam3", "c1", now + 100).await.unwrap();
    let (x, y) = tokio::join!(
        store.rotate("c1", "c2a", now, now + 100, 0),
        store.rotate("c1", "c2b", now, now + 100, 0)
    );
    let outcomes = [x.unwrap(), y.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Rotated { .. })).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Reused { .. })).count(), 1, "{outcomes:?}");
    for t in ["c2a", "c2b"] {
        assert_ne!(
            std::mem::discriminant(&store.rotate(t, "c3", now, now + 100, 0).await.unwrap()),
            std::mem::discriminant(&Rotation::Rotated { user: String::new(), family: String::new() }),
            "{t} lives on after the family was revoked"
        );
    }

    // Logout revokes; role changes, password changes and disabling revoke
    // every family of the user.
    store.start_family("bob", "fam4", "l1", now + 100).await.unwrap();
    assert!(store.revoke_family_of("l1").await.unwrap());
    assert!(!store.revoke_family_of("never-issued").await.unwrap());
    assert_eq!(store.rotate("l1", "l2", now, now + 100, 0).await.unwrap(), Rotation::Revoked);
    for (i, change) in ["roles", "password", "disable"].into_iter().enumerate() {
        let fam = format!("famc{i}");
        let tok = format!("r{i}");
        store.set_disabled("bob", false).await.unwrap();
        store.start_family("bob", &fam, &tok, now + 100).await.unwrap();
        match change {
            "roles" => store.set_roles("bob", &roles(&["ops"])).await.unwrap(),
            "password" => store.set_password("bob", "$argon2id$new").await.unwrap(),
            _ => store.set_disabled("bob", true).await.unwrap(),
        }
        assert!(store.family_revoked(&fam).await.unwrap(), "{change}");
        assert!(
            !matches!(store.rotate(&tok, "z", now, now + 100, 0).await.unwrap(), Rotation::Rotated { .. }),
            "{change}"
        );
    }
    grace_behaviour(store).await;
    let b = store.user("bob").await.unwrap().unwrap();
    assert_eq!((b.roles, b.disabled, b.password_hash.as_str()), (roles(&["ops"]), true, "$argon2id$new"));
    assert!(matches!(store.set_roles("nobody", &[]).await, Err(StoreError::NoSuchUser)));
    assert!(matches!(store.remove_user("nobody").await, Err(StoreError::NoSuchUser)));
    store.remove_user("bob").await.unwrap();
    assert!(store.user("bob").await.unwrap().is_none());
}

/// `refresh_reuse_grace` (C24): within the grace, the same presented token
/// with the same derived successor is a retry and gets it again; a
/// different successor, a successor already used, or a retry after the
/// grace is reuse and revokes the family.
async fn grace_behaviour(store: &Store) {
    let now = 5_000;
    let fam = |f: &str| Rotation::Retried { user: "alice".into(), family: f.into() };
    let rotated = |f: &str| Rotation::Rotated { user: "alice".into(), family: f.into() };
    let reused = |f: &str| Rotation::Reused { user: "alice".into(), family: f.into() };
    store.start_family("alice", "g1", "ga", now + 100).await.unwrap();
    assert_eq!(store.rotate("ga", "gb", now, now + 100, 10).await.unwrap(), rotated("g1"));
    // Retried twice inside the grace (the last second of it too).
    assert_eq!(store.rotate("ga", "gb", now + 1, now + 100, 10).await.unwrap(), fam("g1"));
    assert_eq!(store.rotate("ga", "gb", now + 9, now + 100, 10).await.unwrap(), fam("g1"));
    // The successor still rotates once.
    assert_eq!(store.rotate("gb", "gc", now + 9, now + 100, 10).await.unwrap(), rotated("g1"));
    // Now that gb is used, retrying ga is reuse: the family dies.
    assert_eq!(store.rotate("ga", "gb", now + 9, now + 100, 10).await.unwrap(), reused("g1"));
    assert_eq!(store.rotate("gc", "gd", now + 9, now + 100, 10).await.unwrap(), Rotation::Revoked);
    // Past the grace: reuse.
    store.start_family("alice", "g2", "ha", now + 100).await.unwrap();
    assert_eq!(store.rotate("ha", "hb", now, now + 100, 10).await.unwrap(), rotated("g2"));
    assert_eq!(store.rotate("ha", "hb", now + 10, now + 100, 10).await.unwrap(), reused("g2"));
    // A successor that is not the recorded one: reuse.
    store.start_family("alice", "g3", "ia", now + 100).await.unwrap();
    assert_eq!(store.rotate("ia", "ib", now, now + 100, 10).await.unwrap(), rotated("g3"));
    assert_eq!(store.rotate("ia", "forged", now + 1, now + 100, 10).await.unwrap(), reused("g3"));
    // No grace: reuse at once.
    store.start_family("alice", "g4", "ja", now + 100).await.unwrap();
    assert_eq!(store.rotate("ja", "jb", now, now + 100, 0).await.unwrap(), rotated("g4"));
    assert_eq!(store.rotate("ja", "jb", now, now + 100, 0).await.unwrap(), reused("g4"));
    // Concurrent rotations under a grace: one rotates, the other is a
    // retry of the same successor; never two live successors.
    store.start_family("alice", "g5", "ka", now + 100).await.unwrap();
    let (x, y) = tokio::join!(
        store.rotate("ka", "kb", now, now + 100, 10),
        store.rotate("ka", "kb", now, now + 100, 10)
    );
    let mut got = [x.unwrap(), y.unwrap()];
    got.sort_by_key(|r| matches!(r, Rotation::Retried { .. }));
    assert_eq!(got, [rotated("g5"), fam("g5")]);
}

/// The schema of version 1, as that release created it: the upgrade test
/// starts from it, so it must never change.
const SCHEMA_V1: &[&str] = &[
    "CREATE TABLE portcullis_schema (version BIGINT NOT NULL)",
    "INSERT INTO portcullis_schema (version) VALUES (1)",
    "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL, disabled BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE refresh_families (family TEXT PRIMARY KEY, user_name TEXT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)",
    "CREATE TABLE refresh_tokens (token_hash TEXT PRIMARY KEY, family TEXT NOT NULL, expires_at BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family)",
    "CREATE INDEX refresh_families_user ON refresh_families (user_name)",
    "INSERT INTO users VALUES ('alice', '$argon2id$v1-hash', 'admin user', 0, 1, 1)",
    "INSERT INTO users VALUES ('carol', '$argon2id$v1-hash-c', '', 1, 1, 1)",
    "INSERT INTO refresh_families VALUES ('old', 'alice', 0, 1)",
    "INSERT INTO refresh_tokens VALUES ('used-before', 'old', 99999999999, 1)",
    "INSERT INTO refresh_tokens VALUES ('live-before', 'old', 99999999999, 0)",
];

/// Upgrading from version 1 (C24 item 7): the users, their roles and
/// flags, and live refresh tokens survive; a token used before the
/// upgrade has no recorded use time, so even under a grace presenting it
/// again is reuse.
async fn upgrade_from_v1(url: &str) {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    for sql in SCHEMA_V1 {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut c).await.unwrap();
    }
    drop(c);
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let users = store.users().await.unwrap();
    let seen: Vec<_> = users
        .iter()
        .map(|u| (u.name.as_str(), u.roles.join(" "), u.disabled, u.password_hash.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "admin user".to_owned(), false, "$argon2id$v1-hash"),
            ("carol", String::new(), true, "$argon2id$v1-hash-c")
        ]
    );
    let now = 10_000;
    assert_eq!(
        store.rotate("live-before", "next", now, now + 100, 10).await.unwrap(),
        Rotation::Rotated { user: "alice".into(), family: "old".into() }
    );
    assert_eq!(
        store.rotate("used-before", "whatever", now, now + 100, 10).await.unwrap(),
        Rotation::Reused { user: "alice".into(), family: "old".into() }
    );
    // Opening again migrates nothing.
    drop(store);
    assert_eq!(Store::open(url).await.unwrap().users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn c24_upgrade_from_schema_v1_keeps_every_user() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    upgrade_from_v1(&format!("sqlite://{}?mode=rwc", dir.path().join("v1.db").display())).await;
    let (url, name) = fresh_pg().await;
    upgrade_from_v1(&url).await;
    drop_pg(&name).await;
}

#[tokio::test]
async fn c24_store_on_a_real_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.unwrap();
    assert!(path.exists(), "the file is created on first start");
    store_behaviour(&store).await;
    drop(store);
    // Reopening migrates nothing again and keeps every user.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(again.user("alice").await.unwrap().unwrap().roles, roles(&["admin", "user"]));
}

#[tokio::test]
async fn c24_store_on_a_real_postgres() {
    let (url, name) = fresh_pg().await;
    let store = Store::open(&url).await.unwrap();
    store_behaviour(&store).await;
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.user("alice").await.unwrap().unwrap().roles, roles(&["admin", "user"]));
    drop((store, again));
    drop_pg(&name).await;
}

#[tokio::test]
async fn c24_an_unreachable_database_is_an_error_not_a_pass() {
    let e = Store::open("postgres://nobody:secret-pw@127.0.0.1:1/none").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)));
    assert!(!e.to_string().contains("secret-pw"), "{e}");
}

// ---- the endpoints, through the gateway ----

const CHEAP: Cost = Cost { memory_kib: 64, iterations: 1, parallelism: 1 };

struct Idp {
    gw: portcullis_gateway::server::Running,
    up: Upstream,
    clock: ManualClock,
    store: Store,
    _dir: tempfile::TempDir,
}

/// A gateway with `[identity]` on a fresh SQLite file, a protected
/// `/api/**` and an admin-only `/admin/**`, and users alice (admin) and bob.
async fn identity_gateway(extra: &str) -> Idp {
    identity_gateway_costing(64, extra).await
}

async fn identity_gateway_costing(memory_kib: u32, extra: &str) -> Idp {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, generate(KeyAlg::EdDsa).unwrap()).unwrap();
    let db = format!("sqlite://{}", dir.path().join("ids.db").display());
    let store = Store::open(&db).await.unwrap();
    let hasher = Hasher::new(Cost { memory_kib, ..CHEAP }, 2).unwrap();
    store.add_user("alice", &hasher.hash("alice-password").await.unwrap(), &["admin".into()]).await.unwrap();
    store.add_user("bob", &hasher.hash("bob-password").await.unwrap(), &[]).await.unwrap();
    let toml = format!(
        "[state]\ndatabase = \"{db}\"\n[identity]\nsigning_key = \"file:{}\"\nissuer = \"https://api.test\"\nargon2_memory_kib = {memory_kib}\nargon2_iterations = 1\n{extra}\n[[route]]\npath = \"/admin/**\"\nallow = {{ roles = [\"admin\"] }}\n\n[[route]]\npath = \"/api/**\"\n",
        key.display(),
    );
    let clock = ManualClock::starting_at(now_us());
    let up = upstream().await;
    let gw = gateway_with_clock(up.addr, &toml, Arc::new(clock.clone())).await;
    Idp { gw, up, clock, store, _dir: dir }
}

fn now_us() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros())
        .unwrap()
}

async fn post(idp: &Idp, path: &str, body: &str) -> (u16, Value, http::Response<()>) {
    let req = Request::post(path)
        .header("host", "gw.test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let (res, bytes) = send(idp.gw.addr, req).await;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (res.status().as_u16(), v, res)
}

async fn get_with(idp: &Idp, path: &str, token: &str) -> u16 {
    let req = Request::get(path)
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(idp.gw.addr, req).await.0.status().as_u16()
}

async fn login(idp: &Idp, user: &str, password: &str) -> (u16, Value) {
    let (s, v, _) =
        post(idp, "/auth/login", &json!({"username": user, "password": password}).to_string()).await;
    (s, v)
}

/// `refresh_reuse_grace = "10s"` (C24 item 6): a client that lost the
/// answer to a refresh and sends it again within the grace gets the same
/// successor (and a working access token); after the grace the same retry
/// is reuse and revokes the family. Without the setting, the retry is reuse.
#[tokio::test]
async fn c24_refresh_reuse_grace_gives_a_retry_the_same_successor() {
    let idp = identity_gateway("refresh_reuse_grace = \"10s\"").await;
    let (s, v) = login(&idp, "bob", "bob-password").await;
    assert_eq!(s, 200, "{v}");
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let body = json!({"refresh_token": r1}).to_string();
    let (s, first, _) = post(&idp, "/auth/refresh", &body).await;
    assert_eq!(s, 200, "{first}");
    idp.clock.advance(Duration::from_secs(9));
    let (s, retry, _) = post(&idp, "/auth/refresh", &body).await;
    assert_eq!(s, 200, "{retry}");
    assert_eq!(retry["refresh_token"], first["refresh_token"], "the same successor");
    assert_ne!(retry["refresh_token"].as_str(), Some(r1.as_str()));
    assert_eq!(get_with(&idp, "/api/x", retry["access_token"].as_str().unwrap()).await, 200);
    // Past the grace, the retry is reuse: the family, successor included, dies.
    idp.clock.advance(Duration::from_secs(2));
    let (s, v, _) = post(&idp, "/auth/refresh", &body).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_grant")));
    let next = json!({"refresh_token": first["refresh_token"]}).to_string();
    assert_eq!(post(&idp, "/auth/refresh", &next).await.0, 401);

    // The default is no grace.
    let idp = identity_gateway("").await;
    let (_, v) = login(&idp, "bob", "bob-password").await;
    let body = json!({"refresh_token": v["refresh_token"]}).to_string();
    let (s, first, _) = post(&idp, "/auth/refresh", &body).await;
    assert_eq!(s, 200);
    assert_eq!(post(&idp, "/auth/refresh", &body).await.0, 401);
    let next = json!({"refresh_token": first["refresh_token"]}).to_string();
    assert_eq!(post(&idp, "/auth/refresh", &next).await.0, 401, "reuse revoked the family");
}

#[tokio::test]
async fn c24_login_protected_call_refresh_reuse_logout() {
    let mut idp = identity_gateway("").await;
    // Login: the OAuth 2.0 token response, never cached.
    let (s, v, res) = post(&idp, "/auth/login", r#"{"username":"alice","password":"alice-password"}"#).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN", "behind the edge layers");
    let access = v["access_token"].as_str().unwrap().to_owned();
    let refresh = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh.len(), 43, "256 bits, base64url");
    // The same auth layer verifies it: roles and identity headers work.
    assert_eq!(get_with(&idp, "/admin/panel", &access).await, 200);
    let seen = idp.up.seen.recv().await.unwrap();
    assert_eq!(seen.headers["x-auth-subject"], "alice");
    assert_eq!(seen.headers["x-auth-roles"], "admin");
    assert!(seen.path_and_query.starts_with("/admin/panel"));
    let (_, bob) = login(&idp, "bob", "bob-password").await;
    assert_eq!(get_with(&idp, "/admin/panel", bob["access_token"].as_str().unwrap()).await, 403);
    assert_eq!(get_with(&idp, "/api/x", bob["access_token"].as_str().unwrap()).await, 200);
    let _ = idp.up.seen.recv().await;
    // The identity endpoints never reach the upstream.
    assert!(idp.up.seen.try_recv().is_err());

    // Refresh rotates: a new pair; the old refresh token is dead.
    let (s, v2, _) = post(&idp, "/auth/refresh", &json!({"refresh_token": refresh}).to_string()).await;
    assert_eq!(s, 200, "{v2}");
    let refresh2 = v2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(get_with(&idp, "/admin/x", v2["access_token"].as_str().unwrap()).await, 200);
    let _ = idp.up.seen.recv().await;
    // Reuse of the old one: 401 invalid_grant, and the family is gone (the
    // thief's and the victim's newer token alike).
    let (s, v3, res) = post(&idp, "/auth/refresh", &json!({"refresh_token": refresh}).to_string()).await;
    assert_eq!((s, v3["code"].as_str()), (401, Some("invalid_grant")));
    assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"invalid_grant\"");
    let (s, _, _) = post(&idp, "/auth/refresh", &json!({"refresh_token": refresh2}).to_string()).await;
    assert_eq!(s, 401, "the reuse revoked the whole family");

    // Logout revokes the family: 204, and its refresh token is dead.
    let (_, v4) = login(&idp, "alice", "alice-password").await;
    let r4 = v4["refresh_token"].as_str().unwrap();
    let (s, _, _) = post(&idp, "/auth/logout", &json!({"refresh_token": r4}).to_string()).await;
    assert_eq!(s, 204);
    let (s, _, _) = post(&idp, "/auth/refresh", &json!({"refresh_token": r4}).to_string()).await;
    assert_eq!(s, 401);
    // Logout of an unknown token is 204 too (nothing to tell an attacker).
    assert_eq!(post(&idp, "/auth/logout", r#"{"refresh_token":"nope"}"#).await.0, 204);

    // The public key, for other services.
    let req = Request::get("/.well-known/jwks.json")
        .header("host", "gw.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (res, body) = send(idp.gw.addr, req).await;
    assert_eq!(res.status(), 200);
    let jwks: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(jwks["keys"][0].get("d").is_none());
    // Counted for monitoring (C31): one reuse, three logins, no failure.
    let req = Request::get("/metrics").header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    let (_, body) = send(idp.gw.admin_addr.unwrap(), req).await;
    let metrics = String::from_utf8(body.to_vec()).unwrap();
    for line in [
        "portcullis_identity_refresh_reuse_total 1",
        "portcullis_identity_logins_total 3",
        "portcullis_identity_login_failures_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    // Expiry runs on the gateway's clock: after access_ttl the token is refused.
    idp.clock.advance(Duration::from_secs(15 * 60 + 31));
    assert_eq!(get_with(&idp, "/api/x", &access).await, 401);
}

#[tokio::test]
async fn c24_one_answer_for_unknown_user_wrong_password_and_disabled() {
    let idp = identity_gateway("").await;
    idp.store.set_disabled("bob", true).await.unwrap();
    let mut bodies = Vec::new();
    for (user, pw) in [("nobody", "whatever"), ("alice", "wrong"), ("bob", "bob-password")] {
        let (s, v, res) =
            post(&idp, "/auth/login", &json!({"username": user, "password": pw}).to_string()).await;
        assert_eq!(s, 401, "{user}");
        assert_eq!(v["code"], "invalid_credentials", "{user}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer error=\"invalid_grant\"");
        let mut v = v;
        v["request_id"] = Value::Null;
        bodies.push(v);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn c24_bad_input_is_refused_before_any_hashing() {
    let idp = identity_gateway("").await;
    let long_name = "a".repeat(257);
    let long_pw = "p".repeat(1025);
    let cases: Vec<(String, &str)> = vec![
        ("{".to_owned(), "malformed_input"),
        (r#"{"username":"alice","username":"bob","password":"x"}"#.to_owned(), "malformed_input"),
        (r#"{"username":"alice","password":"x","__proto__":{}}"#.to_owned(), "prototype_pollution"),
        (r#"{"username":"alice"}"#.to_owned(), "invalid_input"),
        (r#"{"username":"alice","password":7}"#.to_owned(), "invalid_input"),
        (r#"{"username":["alice"],"password":"x"}"#.to_owned(), "invalid_input"),
        (r#"{"username":"alice","password":"x","admin":true}"#.to_owned(), "invalid_input"),
        (r#"["alice","x"]"#.to_owned(), "invalid_input"),
        (json!({"username": long_name, "password": "x"}).to_string(), "invalid_input"),
        (json!({"username": "alice", "password": long_pw}).to_string(), "invalid_input"),
        (r#"{"username":"","password":"x"}"#.to_owned(), "invalid_input"),
    ];
    for (body, code) in cases {
        let (s, v, _) = post(&idp, "/auth/login", &body).await;
        assert_eq!((s, v["code"].as_str()), (400, Some(code)), "{body}");
        assert!(!v.to_string().contains("alice"), "echoed input: {v}");
    }
    let (s, v, _) = post(&idp, "/auth/refresh", r#"{"refresh_token":1}"#).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_input")));
    // Other methods on the endpoints: 405, never the upstream.
    let req = Request::get("/auth/login").header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(idp.gw.addr, req).await.0.status(), 405);
}

#[tokio::test]
async fn c15_lockout_per_account_name_and_per_client() {
    let idp =
        identity_gateway("lockout_failures = 3\nlockout_client_failures = 6\nlockout_duration = \"10m\"\n")
            .await;
    // Three failures lock the account name, existing or not, with one answer.
    for user in ["alice", "ghost"] {
        for _ in 0..3 {
            assert_eq!(login(&idp, user, "wrong").await.0, 401);
        }
        let (s, v, res) =
            post(&idp, "/auth/login", &json!({"username": user, "password": "wrong"}).to_string()).await;
        assert_eq!((s, v["code"].as_str()), (429, Some("login_locked")), "{user}");
        assert_eq!(res.headers()["retry-after"], "600", "{user}");
    }
    // The right password does not get through a lock.
    assert_eq!(login(&idp, "alice", "alice-password").await.0, 429);
    // The client has 6 failures now: it is locked for every account.
    assert_eq!(login(&idp, "bob", "bob-password").await.0, 429);
    // After the lock, a success resets the account's counter.
    idp.clock.advance(Duration::from_secs(601));
    assert_eq!(login(&idp, "alice", "alice-password").await.0, 200);
    assert_eq!(login(&idp, "alice", "wrong").await.0, 401);
    assert_eq!(
        login(&idp, "alice", "alice-password").await.0,
        200,
        "one failure after a reset does not lock"
    );
}

/// Unknown user and wrong password take the same time: the unknown user
/// is checked against a dummy hash of the same cost. The property, stated:
/// over 21 interleaved samples each, the median for an unknown user is within a factor
/// of 2 of the median for a wrong password (without the dummy hash it is
/// about 1/1000 of it at this cost).
#[tokio::test]
async fn c24_login_timing_unknown_user_matches_wrong_password() {
    let idp =
        identity_gateway_costing(8192, "lockout_failures = 1000\nlockout_client_failures = 1000\n").await;
    // Interleaved, so that load on the machine falls on both alike.
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..21 {
        for (i, user) in ["alice", "nobody"].into_iter().enumerate() {
            let start = std::time::Instant::now();
            assert_eq!(login(&idp, user, "wrong-password").await.0, 401);
            samples[i].push(start.elapsed());
        }
    }
    let med: Vec<Duration> = samples
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    let (known, unknown) = (med[0].as_secs_f64(), med[1].as_secs_f64());
    println!("median login time: wrong password {known:.4}s, unknown user {unknown:.4}s");
    assert!(
        unknown > known / 2.0 && unknown < known * 2.0,
        "wrong password {known}s, unknown user {unknown}s"
    );
}

/// docs/identity.md's configuration, run against the real Express app.
#[tokio::test]
async fn worked_example_protects_the_express_admin_route() {
    let express = express_app::express().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("signing.pem"), generate(KeyAlg::EdDsa).unwrap()).unwrap();
    let text = docs_example_config("identity.md", express.addr);
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    let id = cfg.identity.as_ref().unwrap();
    assert_eq!((id.access_ttl, id.refresh_ttl.as_secs()), (Duration::from_secs(900), 30 * 86_400));
    // `portcullis users add`, as the CLI does it: the store beside the config.
    let store = Store::open(id.database.expose()).await.unwrap();
    let hasher = Hasher::new(id.cost, 2).unwrap();
    store.add_user("alice", &hasher.hash("alice-pw").await.unwrap(), &["admin".into()]).await.unwrap();
    store.add_user("bob", &hasher.hash("bob-pw").await.unwrap(), &[]).await.unwrap();
    assert!(dir.path().join("portcullis.db").exists());
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let idp = Idp { gw, up: upstream().await, clock: ManualClock::starting_at(0), store, _dir: dir };

    let get = |path: &'static str, token: Option<String>| {
        let addr = idp.gw.addr;
        async move {
            let mut b = Request::get(path).header("host", "gw.test");
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let (res, body) = send(addr, b.body(Full::new(Bytes::new())).unwrap()).await;
            (res.status().as_u16(), serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
        }
    };
    assert_eq!(get("/admin", None).await.0, 401);
    let (_, alice) = login(&idp, "alice", "alice-pw").await;
    let (_, bob) = login(&idp, "bob", "bob-pw").await;
    let (s, v) = get("/admin", alice["access_token"].as_str().map(str::to_owned)).await;
    assert_eq!((s, v["secret"].as_str()), (200, Some("admin-only data")));
    assert_eq!(get("/admin", bob["access_token"].as_str().map(str::to_owned)).await.0, 403);
    assert_eq!(get("/api/hello", None).await.0, 200);
    // Refresh, then reuse: the family dies.
    let r = alice["refresh_token"].as_str().unwrap();
    let (s, next, _) = post(&idp, "/auth/refresh", &json!({"refresh_token": r}).to_string()).await;
    assert_eq!(s, 200);
    assert_eq!(post(&idp, "/auth/refresh", &json!({"refresh_token": r}).to_string()).await.0, 401);
    let r2 = next["refresh_token"].as_str().unwrap();
    assert_eq!(post(&idp, "/auth/refresh", &json!({"refresh_token": r2}).to_string()).await.0, 401);
    // Five failures lock the name, with Retry-After: 900.
    for _ in 0..5 {
        assert_eq!(login(&idp, "alice", "guess").await.0, 401);
    }
    let (s, v, res) = post(&idp, "/auth/login", r#"{"username":"alice","password":"alice-pw"}"#).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("login_locked")));
    assert_eq!(res.headers()["retry-after"], "900");
}

/// Two gateways sharing PostgreSQL (users, token families) and Redis
/// (lockout counters), as N instances behind a load balancer: a refresh
/// token from one rotates on the other, reuse seen by the second revokes
/// the family for both, a lock set through one holds on the other, and a
/// lockout store that can't be reached is a 503, never a pass.
#[tokio::test]
async fn c24_c15_two_instances_share_users_families_and_locks() {
    let (db, db_name) = fresh_pg().await;
    let mut redis = redis_server::RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, generate(KeyAlg::Es256).unwrap()).unwrap();
    let store = Store::open(&db).await.unwrap();
    let hasher = Hasher::new(CHEAP, 2).unwrap();
    store.add_user("alice", &hasher.hash("alice-password").await.unwrap(), &[]).await.unwrap();
    let toml = format!(
        "[state]\ndatabase = \"${{PG_URL}}\"\nredis = \"redis://{}\"\n[identity]\nsigning_key = \"file:{}\"\nargon2_memory_kib = 64\nargon2_iterations = 1\nlockout_failures = 3\n[[route]]\npath = \"/api/**\"\n",
        redis.addr,
        key.display()
    );
    let up = upstream().await;
    let text = format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{}\"\n{toml}",
        up.addr
    );
    let cfg =
        portcullis_gateway::config::from_str(&text, dir.path(), &|n| (n == "PG_URL").then(|| db.clone()))
            .unwrap();
    let one = portcullis_gateway::server::start(&cfg).await.unwrap();
    let two = portcullis_gateway::server::start(&cfg).await.unwrap();
    let post_to = |addr: std::net::SocketAddr, path: &'static str, body: String| async move {
        let req = Request::post(path)
            .header("host", "gw.test")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let (res, bytes) = send(addr, req).await;
        (res.status().as_u16(), serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    };
    let login = r#"{"username":"alice","password":"alice-password"}"#.to_owned();
    let (s, v) = post_to(one.addr, "/auth/login", login.clone()).await;
    assert_eq!(s, 200, "{v}");
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    // Issued by one, rotated on the other.
    let (s, v) = post_to(two.addr, "/auth/refresh", json!({"refresh_token": r1}).to_string()).await;
    assert_eq!(s, 200, "{v}");
    let r2 = v["refresh_token"].as_str().unwrap().to_owned();
    // Reuse on the second revokes the family for the first too.
    assert_eq!(post_to(two.addr, "/auth/refresh", json!({"refresh_token": r1}).to_string()).await.0, 401);
    assert_eq!(post_to(one.addr, "/auth/refresh", json!({"refresh_token": r2}).to_string()).await.0, 401);
    // Failures counted on one lock the name on the other.
    let wrong = r#"{"username":"alice","password":"nope"}"#.to_owned();
    for _ in 0..3 {
        assert_eq!(post_to(one.addr, "/auth/login", wrong.clone()).await.0, 401);
    }
    let (s, v) = post_to(two.addr, "/auth/login", login.clone()).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("login_locked")));
    // The lockout store down: 503, never a pass.
    redis.stop().await;
    let (s, v) = post_to(two.addr, "/auth/login", login).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("unavailable")));
    drop((one, two, store));
    drop_pg(&db_name).await;
}
