//! C24, the built-in identity's store, against a real SQLite file and a
//! real PostgreSQL server (each test gets a database of its own): users,
//! refresh-token rotation, reuse detection, revocation, migrations.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_gateway::identity::store::{Rotation, Store, StoreError};
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
    assert_eq!(store.schema_version().await.unwrap(), 1);
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
        store.rotate("t1", "t2", now, now + 100).await.unwrap(),
        Rotation::Rotated { user: "alice".into(), family: "fam1".into() }
    );
    assert_eq!(
        store.rotate("t2", "t3", now, now + 100).await.unwrap(),
        Rotation::Rotated { user: "alice".into(), family: "fam1".into() }
    );
    // Reuse of t1: the whole family is revoked, t3 with it.
    assert_eq!(
        store.rotate("t1", "tx", now, now + 100).await.unwrap(),
        Rotation::Reused { user: "alice".into(), family: "fam1".into() }
    );
    assert!(store.family_revoked("fam1").await.unwrap());
    assert!(matches!(store.rotate("t3", "t4", now, now + 100).await.unwrap(), Rotation::Reused { .. }));
    assert_eq!(
        store.rotate("tx", "ty", now, now + 100).await.unwrap(),
        Rotation::Invalid,
        "the loser's successor was never stored"
    );
    assert_eq!(store.rotate("unknown", "u2", now, now + 100).await.unwrap(), Rotation::Invalid);
    // Expired: invalid, not reuse.
    store.start_family("alice", "fam2", "e1", now + 10).await.unwrap();
    assert_eq!(store.rotate("e1", "e2", now + 10, now + 100).await.unwrap(), Rotation::Invalid);
    assert!(!store.family_revoked("fam2").await.unwrap());

    // Concurrent rotations of one token: exactly one new pair.
    store.start_family("bob", "fam3", "c1", now + 100).await.unwrap();
    let (x, y) =
        tokio::join!(store.rotate("c1", "c2a", now, now + 100), store.rotate("c1", "c2b", now, now + 100));
    let outcomes = [x.unwrap(), y.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Rotated { .. })).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Reused { .. })).count(), 1, "{outcomes:?}");
    for t in ["c2a", "c2b"] {
        assert_ne!(
            std::mem::discriminant(&store.rotate(t, "c3", now, now + 100).await.unwrap()),
            std::mem::discriminant(&Rotation::Rotated { user: String::new(), family: String::new() }),
            "{t} lives on after the family was revoked"
        );
    }

    // Logout revokes; role changes, password changes and disabling revoke
    // every family of the user.
    store.start_family("bob", "fam4", "l1", now + 100).await.unwrap();
    assert!(store.revoke_family_of("l1").await.unwrap());
    assert!(!store.revoke_family_of("never-issued").await.unwrap());
    assert!(matches!(store.rotate("l1", "l2", now, now + 100).await.unwrap(), Rotation::Reused { .. }));
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
            !matches!(store.rotate(&tok, "z", now, now + 100).await.unwrap(), Rotation::Rotated { .. }),
            "{change}"
        );
    }
    let b = store.user("bob").await.unwrap().unwrap();
    assert_eq!((b.roles, b.disabled, b.password_hash.as_str()), (roles(&["ops"]), true, "$argon2id$new"));
    assert!(matches!(store.set_roles("nobody", &[]).await, Err(StoreError::NoSuchUser)));
    assert!(matches!(store.remove_user("nobody").await, Err(StoreError::NoSuchUser)));
    store.remove_user("bob").await.unwrap();
    assert!(store.user("bob").await.unwrap().is_none());
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
    assert_eq!(again.schema_version().await.unwrap(), 1);
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
