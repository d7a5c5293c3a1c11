//! `[sessions]`: cookie sessions for browsers (C25) on the built-in
//! identity's users, with CSRF protection (C10).

use std::time::Duration;

use portcullis_layers::headers::SameSite;
use serde::Deserialize;

use super::cookies::{SameSiteWord, cookie_name_ok};
use super::units::{Dur, within};
use super::{Problems, StateConfig};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSessions {
    pub(crate) store: Option<StoreWord>,
    pub(crate) cookie: Option<String>,
    pub(crate) same_site: Option<SameSiteWord>,
    pub(crate) idle_timeout: Option<Dur>,
    pub(crate) absolute_timeout: Option<Dur>,
    pub(crate) max_sessions: Option<u64>,
}

/// Where sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// In this process (the default): lost on restart, not shared.
    Memory,
    /// In `[state] redis` / `redis_cluster`: every instance sees every session.
    Redis,
    /// In the identity database (`[state] database`).
    Database,
}

super::units::keywords! {
    /// `sessions.store`.
    StoreWord => SessionStoreKind {
        "memory" => SessionStoreKind::Memory,
        "redis" => SessionStoreKind::Redis,
        "database" => SessionStoreKind::Database,
    }
}

/// `[sessions]`, validated.
#[derive(Clone, Debug)]
pub struct SessionsConfig {
    /// Where sessions live.
    pub store: SessionStoreKind,
    /// The cookie's name (`__Host-session`).
    pub cookie: String,
    /// The cookie's `SameSite`.
    pub same_site: SameSite,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// At most this many sessions in memory (the memory store).
    pub max_sessions: usize,
}

pub(super) fn validate(
    raw: Option<RawSessions>,
    identity_on: bool,
    state: &StateConfig,
    p: &mut Problems,
) -> Option<SessionsConfig> {
    let raw = raw?;
    if !identity_on {
        p.push("sessions", "cookie sessions log in the built-in identity's users: add an [identity] section");
    }
    let store = raw.store.map_or(SessionStoreKind::Memory, |s| s.0);
    if store == SessionStoreKind::Redis && state.redis.is_none() {
        p.push("sessions.store", "\"redis\" needs [state] redis or redis_cluster");
    }
    let cookie = raw.cookie.unwrap_or_else(|| "__Host-session".to_owned());
    if !cookie_name_ok(&cookie) {
        p.push("sessions.cookie", "not a cookie name (letters, digits and !#$%&'*+-.^_`|~)");
    }
    let same_site = match raw.same_site.map(|s| s.0) {
        None | Some(Some(SameSite::Lax)) => SameSite::Lax,
        Some(Some(SameSite::Strict)) => SameSite::Strict,
        Some(None) => {
            p.push("sessions.same_site", "\"lax\" or \"strict\": Portcullis' own cookie always has SameSite");
            SameSite::Lax
        }
    };
    let minute = Duration::from_secs(60);
    let idle = within(
        "sessions.idle_timeout",
        raw.idle_timeout.map(|d| d.0),
        30 * minute,
        minute,
        30 * 24 * 60 * minute,
        p,
    );
    let absolute = within(
        "sessions.absolute_timeout",
        raw.absolute_timeout.map(|d| d.0),
        12 * 60 * minute,
        minute,
        365 * 24 * 60 * minute,
        p,
    );
    if idle > absolute {
        p.push("sessions.idle_timeout", "must not be longer than sessions.absolute_timeout");
    }
    let max_sessions = within("sessions.max_sessions", raw.max_sessions, 100_000, 1, 100_000_000, p) as usize;
    Some(SessionsConfig {
        store,
        cookie,
        same_site,
        idle_timeout: idle,
        absolute_timeout: absolute,
        max_sessions,
    })
}

/// This section as `portcullis check` prints it.
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let Some(s) = &c.sessions else { return };
    let show = super::units::show_duration;
    let store = match s.store {
        SessionStoreKind::Memory => "memory (this process)",
        SessionStoreKind::Redis => "redis (shared)",
        SessionStoreKind::Database => "database (shared)",
    };
    let _ = writeln!(o, "[sessions] cookie sessions (C25), CSRF on unsafe methods (C10)");
    let _ = writeln!(o, "  endpoints         POST, GET, DELETE /auth/session");
    let _ = writeln!(
        o,
        "  cookie            {}; HttpOnly; Secure; SameSite={}; Path=/",
        s.cookie,
        s.same_site.as_str()
    );
    let _ = writeln!(
        o,
        "  store             {store}; idle {}, absolute {}",
        show(s.idle_timeout),
        show(s.absolute_timeout)
    );
}
