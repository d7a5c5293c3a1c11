//! `[identity]`: Portcullis as the identity provider (C24): the signing
//! key, the issuer and audience of its tokens, their lifetimes, the
//! password hashing cost and the login lockout (C15).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::units::{Dur, within};
use super::{Problems, Secret, StateConfig, secret};
use crate::identity::keys::SigningKey;
use crate::identity::password::Cost;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIdentity {
    pub(crate) signing_key: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) access_ttl: Option<Dur>,
    pub(crate) refresh_ttl: Option<Dur>,
    pub(crate) refresh_reuse_grace: Option<Dur>,
    pub(crate) argon2_memory_kib: Option<u64>,
    pub(crate) argon2_iterations: Option<u64>,
    pub(crate) argon2_parallelism: Option<u64>,
    pub(crate) hash_concurrency: Option<u64>,
    pub(crate) lockout_failures: Option<u64>,
    pub(crate) lockout_client_failures: Option<u64>,
    pub(crate) lockout_window: Option<Dur>,
    pub(crate) lockout_duration: Option<Dur>,
}

/// Repeated failed logins lock an account name, or a client, for a while (C15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// Failures for one account name within `window` that lock it.
    pub failures: u32,
    /// Failures from one client address within `window` that lock it
    /// (higher: many users may share an address behind NAT).
    pub client_failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long a lock lasts.
    pub duration: Duration,
}

/// `[identity]`, validated: the key is loaded.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// The access-token signing key.
    pub key: SigningKey,
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// How long a used refresh token may be presented again and get the
    /// same successor (a client retrying a lost answer); 0, the default,
    /// makes any second use reuse.
    pub refresh_reuse_grace: Duration,
    /// argon2id cost.
    pub cost: Cost,
    /// Password hashes computed at once, at most.
    pub hash_concurrency: usize,
    /// The login lockout.
    pub lockout: Lockout,
    /// The database (`[state] database`, or the SQLite default).
    pub database: Secret,
}

/// Validates `[identity]`; the key file is read here, relative paths from `base`.
pub(super) fn validate(
    raw: Option<RawIdentity>,
    state: &StateConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<IdentityConfig> {
    let raw = raw?;
    let before = p.0.len();
    let key = match raw.signing_key.as_deref() {
        None => {
            p.push(
                "identity.signing_key",
                "missing: \"file:/path/to/signing.pem\", made by `portcullis keys generate`",
            );
            None
        }
        Some(s) => {
            let resolved = match secret::parse_ref(s) {
                Ok(secret::SecretRef::File(path)) => {
                    let path = base.join(path);
                    secret::resolve(&secret::SecretRef::File(path.display().to_string()), env)
                }
                Ok(r) => secret::resolve(&r, env),
                Err(e) => Err(e),
            };
            match resolved {
                Ok(pem) => match SigningKey::from_pem(pem.expose()) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        p.push("identity.signing_key", e);
                        None
                    }
                },
                Err(e) => {
                    p.push("identity.signing_key", e.to_string());
                    None
                }
            }
        }
    };
    let issuer = raw.issuer.unwrap_or_else(|| "portcullis".to_owned());
    if issuer.is_empty() || issuer.len() > 256 {
        p.push("identity.issuer", "1 to 256 characters, e.g. \"https://api.example.com\"");
    }
    let audience = raw.audience.unwrap_or_else(|| issuer.clone());
    if audience.is_empty() || audience.len() > 256 {
        p.push("identity.audience", "1 to 256 characters");
    }
    let minute = Duration::from_secs(60);
    let day = Duration::from_secs(86_400);
    let access_ttl = within("identity.access_ttl", raw.access_ttl.map(|d| d.0), 15 * minute, minute, day, p);
    let refresh_ttl = within(
        "identity.refresh_ttl",
        raw.refresh_ttl.map(|d| d.0),
        30 * day,
        Duration::from_secs(3600),
        365 * day,
        p,
    );
    let refresh_reuse_grace = within(
        "identity.refresh_reuse_grace",
        raw.refresh_reuse_grace.map(|d| d.0),
        Duration::ZERO,
        Duration::ZERO,
        minute,
        p,
    );
    if refresh_reuse_grace.subsec_nanos() != 0 {
        p.push("identity.refresh_reuse_grace", "whole seconds, e.g. \"10s\"");
    }
    let d = Cost::default();
    let u32_of = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let cost = Cost {
        memory_kib: u32_of(within(
            "identity.argon2_memory_kib",
            raw.argon2_memory_kib,
            u64::from(d.memory_kib),
            8,
            4 << 20,
            p,
        )),
        iterations: u32_of(within(
            "identity.argon2_iterations",
            raw.argon2_iterations,
            u64::from(d.iterations),
            1,
            100,
            p,
        )),
        parallelism: u32_of(within(
            "identity.argon2_parallelism",
            raw.argon2_parallelism,
            u64::from(d.parallelism),
            1,
            64,
            p,
        )),
    };
    if u64::from(cost.memory_kib) < 8 * u64::from(cost.parallelism) {
        p.push("identity.argon2_memory_kib", "must be at least 8 KiB per lane (argon2_parallelism)");
    }
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get) as u64;
    let hash_concurrency =
        within("identity.hash_concurrency", raw.hash_concurrency, cpus, 1, 1024, p) as usize;
    let lockout = Lockout {
        failures: u32_of(within("identity.lockout_failures", raw.lockout_failures, 5, 1, 1000, p)),
        client_failures: u32_of(within(
            "identity.lockout_client_failures",
            raw.lockout_client_failures,
            20,
            1,
            100_000,
            p,
        )),
        window: within(
            "identity.lockout_window",
            raw.lockout_window.map(|d| d.0),
            15 * minute,
            Duration::from_secs(1),
            day,
            p,
        ),
        duration: within(
            "identity.lockout_duration",
            raw.lockout_duration.map(|d| d.0),
            15 * minute,
            Duration::from_secs(1),
            day,
            p,
        ),
    };
    let database = match &state.database {
        Some(url) => url.clone(),
        None => secret::literal(&format!("sqlite://{}", base.join("portcullis.db").display())),
    };
    if p.0.len() != before {
        return None;
    }
    Some(IdentityConfig {
        key: key?,
        issuer,
        audience,
        access_ttl,
        refresh_ttl,
        refresh_reuse_grace,
        cost,
        hash_concurrency,
        lockout,
        database,
    })
}

/// This section as `portcullis check` prints it.
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let Some(id) = &c.identity else { return };
    let show = super::units::show_duration;
    let _ = writeln!(o, "[identity] built-in identity provider (C24)");
    let _ = writeln!(
        o,
        "  endpoints         POST /auth/login, /auth/refresh, /auth/logout; GET /.well-known/jwks.json"
    );
    let _ = writeln!(o, "  signing key       {} kid {}", id.key.alg.name(), id.key.kid);
    let _ = writeln!(
        o,
        "  tokens            iss {}, aud {}; access {}, refresh {} (rotated, reuse revokes the family{})",
        id.issuer,
        id.audience,
        show(id.access_ttl),
        show(id.refresh_ttl),
        if id.refresh_reuse_grace.is_zero() {
            String::new()
        } else {
            format!("; a retry within {} gets the same successor", show(id.refresh_reuse_grace))
        }
    );
    let _ = writeln!(
        o,
        "  passwords         argon2id m={} KiB t={} p={}, at most {} at once",
        id.cost.memory_kib, id.cost.iterations, id.cost.parallelism, id.hash_concurrency
    );
    let _ = writeln!(
        o,
        "  lockout           {} failures for an account name, {} from a client, in {} lock it for {} (C15)",
        id.lockout.failures,
        id.lockout.client_failures,
        show(id.lockout.window),
        show(id.lockout.duration)
    );
}
