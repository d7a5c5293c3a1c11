//! Users and refresh-token families (C24), in SQLite (the default: a file
//! created and migrated on first start) or PostgreSQL, through sqlx's Any
//! driver. Every query is a static string with bound parameters (C20
//! "own"); nothing user-supplied is ever spliced into SQL.
//!
//! Refresh tokens are stored only as SHA-256 hashes. A rotation is one
//! transaction whose first statement marks the presented token used only
//! if it is still unused, unexpired and its family alive: of two concurrent
//! rotations of one token exactly one wins, and the loser is reuse.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Row, Transaction};

/// What went wrong with the store. Messages carry no user data and no
/// secrets (the URL is never part of them).
#[derive(Debug)]
pub enum StoreError {
    /// The database can't be reached or answered with an error: callers
    /// answer 503 (fail closed).
    Unavailable(String),
    /// `users add` for a name that exists.
    Exists,
    /// The user does not exist.
    NoSuchUser,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "identity database unavailable: {e}"),
            StoreError::Exists => f.write_str("the user exists"),
            StoreError::NoSuchUser => f.write_str("no such user"),
        }
    }
}

impl std::error::Error for StoreError {}

fn unavailable(e: sqlx::Error) -> StoreError {
    // sqlx errors name the statement or the driver's reason, never bound values.
    StoreError::Unavailable(match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    })
}

/// A user as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The login name (the token subject).
    pub name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Roles, in order.
    pub roles: Vec<String>,
    /// Disabled users can't log in or refresh.
    pub disabled: bool,
    /// Bumped by every change of roles, password or state.
    pub generation: i64,
}

/// A cookie session as stored (C25). The id itself is never stored, only
/// its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The user.
    pub subject: String,
    /// Their roles at login.
    pub roles: Vec<String>,
    /// The synchronizer CSRF token.
    pub csrf: String,
    /// The user's generation at login.
    pub generation: i64,
    /// When it started (µs since the epoch).
    pub created_us: u64,
    /// When it was last used (µs since the epoch).
    pub last_seen_us: u64,
}

/// The result of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; a successor was stored in the same family.
    Rotated {
        /// The user.
        user: String,
        /// The family.
        family: String,
    },
    /// The token was already used (or its family revoked): the whole family
    /// is now revoked (RFC 9700 section 4.14.2).
    Reused {
        /// The user.
        user: String,
        /// The family.
        family: String,
    },
    /// The token was used less than the reuse grace ago and its successor
    /// (the one the caller derived) is still unused: a client retrying a
    /// refresh whose answer it lost gets that successor again.
    Retried {
        /// The user.
        user: String,
        /// The family.
        family: String,
    },
    /// Its family was revoked (logout, reuse, a role or password change,
    /// a disabled user) or its user disabled: refused, nothing more to do.
    Revoked,
    /// Unknown or expired.
    Invalid,
}

/// Migrations, in order; each runs once, in a transaction, and none drops
/// or rewrites user rows. The version reached is kept in
/// `portcullis_schema`.
const MIGRATIONS: &[&[&str]] = &[
    // 1: users and refresh-token families.
    &[
        "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL, disabled BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
        "CREATE TABLE refresh_families (family TEXT PRIMARY KEY, user_name TEXT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)",
        "CREATE TABLE refresh_tokens (token_hash TEXT PRIMARY KEY, family TEXT NOT NULL, expires_at BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0)",
        "CREATE INDEX refresh_tokens_family ON refresh_tokens (family)",
        "CREATE INDEX refresh_families_user ON refresh_families (user_name)",
    ],
    // 2: when a refresh token was used and the hash of its successor, for
    // `refresh_reuse_grace`. Tokens used before the upgrade have neither
    // (used_at 0): a retry of one is reuse, as before.
    &[
        "ALTER TABLE refresh_tokens ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE refresh_tokens ADD COLUMN successor_hash TEXT",
    ],
    // 3: a user's generation (bumped by every change of roles, password or
    // state: sessions of an older generation end) and cookie sessions
    // (`[sessions] store = "database"`), keyed by the SHA-256 of their id.
    &[
        "ALTER TABLE users ADD COLUMN generation BIGINT NOT NULL DEFAULT 0",
        "CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, subject TEXT NOT NULL, roles TEXT NOT NULL, csrf TEXT NOT NULL, generation BIGINT NOT NULL, created_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL)",
        "CREATE INDEX sessions_subject ON sessions (subject)",
    ],
];

/// The schema version this build migrates to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The identity store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Connects to `url` (`sqlite://path`, created if missing, or
    /// `postgres://...`) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 1 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(unavailable)?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether the database answers a trivial query (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    /// The schema version reached.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT version FROM portcullis_schema")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get::<i64, _>(0))
            .map_err(unavailable)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let current: Option<i64> = sqlx::query("SELECT version FROM portcullis_schema")
            .fetch_optional(&mut *tx)
            .await
            .and_then(|r| r.map(|r| r.try_get::<i64, _>(0)).transpose())
            .map_err(unavailable)?;
        if current.is_none() {
            sqlx::query("INSERT INTO portcullis_schema (version) VALUES (0)")
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        let from = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
        for (i, steps) in MIGRATIONS.iter().enumerate().skip(from) {
            for sql in *steps {
                sqlx::query(*sql).execute(&mut *tx).await.map_err(unavailable)?;
            }
            sqlx::query("UPDATE portcullis_schema SET version = $1")
                .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    /// Adds a user.
    pub async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        roles: &[String],
    ) -> Result<(), StoreError> {
        let now = now_s();
        let r = sqlx::query(
            "INSERT INTO users (name, password_hash, roles, disabled, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $4)",
        )
        .bind(name)
        .bind(password_hash)
        .bind(roles.join(" "))
        .bind(now)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(StoreError::Exists),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query("SELECT name, password_hash, roles, disabled, generation FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(|r| user_of(&r)).transpose().map_err(unavailable)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows =
            sqlx::query("SELECT name, password_hash, roles, disabled, generation FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        rows.iter().map(user_of).collect::<Result<_, _>>().map_err(unavailable)
    }

    /// Replaces a user's roles and revokes their refresh-token families
    /// (tokens carrying the old roles must not be renewed).
    pub async fn set_roles(&self, name: &str, roles: &[String]) -> Result<(), StoreError> {
        self.update_user(
            "UPDATE users SET roles = $1, updated_at = $2, generation = generation + 1 WHERE name = $3",
            &roles.join(" "),
            name,
        )
        .await
    }

    /// Replaces a user's password hash and revokes their families.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        self.update_user(
            "UPDATE users SET password_hash = $1, updated_at = $2, generation = generation + 1 WHERE name = $3",
            password_hash,
            name,
        )
        .await
    }

    /// Disables (or enables) a user; disabling revokes their families.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let flag = if disabled { "1" } else { "0" };
        self.update_user(
            "UPDATE users SET disabled = CAST($1 AS BIGINT), updated_at = $2, generation = generation + 1 WHERE name = $3",
            flag,
            name,
        )
        .await
    }

    async fn update_user(&self, sql: &'static str, value: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let n = sqlx::query(sql)
            .bind(value)
            .bind(now_s())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NoSuchUser);
        }
        revoke_user_in(&mut tx, name).await?;
        tx.commit().await.map_err(unavailable)
    }

    /// Removes a user and every refresh token of theirs.
    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM refresh_tokens WHERE family IN (SELECT family FROM refresh_families WHERE user_name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM refresh_families WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let n = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NoSuchUser);
        }
        tx.commit().await.map_err(unavailable)
    }

    /// Starts a family with its first token (a login).
    pub async fn start_family(
        &self,
        user: &str,
        family: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_families (family, user_name, revoked, created_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(family)
        .bind(user)
        .bind(now_s())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, expires_at, used) VALUES ($1, $2, $3, 0)",
        )
        .bind(token_hash)
        .bind(family)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    /// Presents a refresh token: rotates it to `next_hash` if it is live
    /// and its user may still log in, or revokes its family if it was
    /// already used. With a `grace` (seconds, 0 for none), a token used
    /// less than `grace` ago whose recorded successor is `next_hash` and
    /// still unused is a retry, not reuse. Atomic: one transaction.
    pub async fn rotate(
        &self,
        token_hash: &str,
        next_hash: &str,
        now: i64,
        next_expires_at: i64,
        grace: i64,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used = 1, used_at = $2, successor_hash = $3 \
             WHERE token_hash = $1 AND used = 0 AND expires_at > $2 \
             AND family IN (SELECT f.family FROM refresh_families f JOIN users u ON u.name = f.user_name \
             WHERE f.revoked = 0 AND u.disabled = 0)",
        )
        .bind(token_hash)
        .bind(now)
        .bind(next_hash)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        let row = sqlx::query(
            "SELECT t.family, f.user_name, t.expires_at, t.used, t.used_at, t.successor_hash \
             FROM refresh_tokens t JOIN refresh_families f ON f.family = t.family WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        let family: String = row.try_get(0).map_err(unavailable)?;
        let user: String = row.try_get(1).map_err(unavailable)?;
        let expires_at: i64 = row.try_get(2).map_err(unavailable)?;
        let used: i64 = row.try_get(3).map_err(unavailable)?;
        let used_at: i64 = row.try_get(4).map_err(unavailable)?;
        let successor: Option<String> = row.try_get(5).map_err(unavailable)?;
        if won {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family, expires_at, used) VALUES ($1, $2, $3, 0)",
            )
            .bind(next_hash)
            .bind(&family)
            .bind(next_expires_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(Rotation::Rotated { user, family });
        }
        if expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        if used == 0 {
            // Unused, yet not rotated: its family is revoked or its user disabled.
            return Ok(Rotation::Revoked);
        }
        let in_grace = grace > 0 && used_at > 0 && now < used_at.saturating_add(grace);
        if in_grace && successor.as_deref() == Some(next_hash) {
            let live = sqlx::query(
                "SELECT t.used FROM refresh_tokens t JOIN refresh_families f ON f.family = t.family \
                 JOIN users u ON u.name = f.user_name \
                 WHERE t.token_hash = $1 AND t.used = 0 AND t.expires_at > $2 AND f.revoked = 0 AND u.disabled = 0",
            )
            .bind(next_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
            .is_some();
            if live {
                return Ok(Rotation::Retried { user, family });
            }
        }
        // Used before: a replay of a stolen token, or the victim after the
        // thief. Either way the family is revoked.
        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family = $1")
            .bind(&family)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Rotation::Reused { user, family })
    }

    /// Revokes the family of a refresh token (logout). Returns whether the
    /// token was known.
    pub async fn revoke_family_of(&self, token_hash: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE refresh_families SET revoked = 1 WHERE family IN (SELECT family FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(n > 0)
    }

    /// Stores a session under the hash of its id.
    pub async fn session_put(&self, id_hash: &str, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, subject, roles, csrf, generation, created_us, last_seen_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id_hash)
        .bind(&s.subject)
        .bind(s.roles.join(" "))
        .bind(&s.csrf)
        .bind(s.generation)
        .bind(db_us(s.created_us))
        .bind(db_us(s.last_seen_us))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// A session by the hash of its id.
    pub async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT subject, roles, csrf, generation, created_us, last_seen_us FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(r) = row else { return Ok(None) };
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let roles: String = r.try_get(1).map_err(unavailable)?;
        Ok(Some(SessionRecord {
            subject: r.try_get(0).map_err(unavailable)?,
            roles: roles.split_ascii_whitespace().map(str::to_owned).collect(),
            csrf: r.try_get(2).map_err(unavailable)?,
            generation: r.try_get(3).map_err(unavailable)?,
            created_us: u(r.try_get(4).map_err(unavailable)?),
            last_seen_us: u(r.try_get(5).map_err(unavailable)?),
        }))
    }

    /// Records a session's use.
    pub async fn session_touch(&self, id_hash: &str, now_us: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_us = $1 WHERE id_hash = $2")
            .bind(db_us(now_us))
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes a session.
    pub async fn session_delete(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes the sessions that started before `created_before` or were
    /// last used before `seen_before` (both µs).
    pub async fn session_sweep(&self, created_before: u64, seen_before: u64) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE created_us < $1 OR last_seen_us < $2")
            .bind(db_us(created_before))
            .bind(db_us(seen_before))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(n)
    }

    /// Whether a family is revoked (for tests and metrics).
    pub async fn family_revoked(&self, family: &str) -> Result<bool, StoreError> {
        let v: i64 = sqlx::query("SELECT revoked FROM refresh_families WHERE family = $1")
            .bind(family)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(unavailable)?;
        Ok(v != 0)
    }
}

async fn revoke_user_in(tx: &mut Transaction<'_, sqlx::Any>, name: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE user_name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn user_of(r: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let roles: String = r.try_get(2)?;
    let disabled: i64 = r.try_get(3)?;
    Ok(User {
        name: r.try_get(0)?,
        password_hash: r.try_get(1)?,
        roles: roles.split_ascii_whitespace().map(str::to_owned).collect(),
        disabled: disabled != 0,
        generation: r.try_get(4)?,
    })
}

/// A microsecond time as the database's BIGINT.
fn db_us(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Seconds since the epoch.
pub(crate) fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
