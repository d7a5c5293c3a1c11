//! `[state]`: where shared state lives (Redis, Redis Cluster), and the
//! identity database (SQLite file or PostgreSQL).

use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use super::secret::{self, Secret};
use super::units::{Dur, within};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawState {
    pub(crate) redis: Option<String>,
    pub(crate) redis_cluster: Option<Vec<String>>,
    pub(crate) redis_timeout: Option<Dur>,
    pub(crate) database: Option<String>,
}

/// Where shared state lives.
#[derive(Clone, Debug)]
pub enum RedisConfig {
    /// One server.
    Standalone(Secret),
    /// A cluster, by seed nodes.
    Cluster(Vec<Secret>),
}

/// `[state]`.
#[derive(Clone, Debug, Default)]
pub struct StateConfig {
    /// Redis, when configured.
    pub redis: Option<RedisConfig>,
    /// Bound on every Redis call.
    pub redis_timeout: Duration,
    /// The identity database URL (`sqlite://...` or `postgres://...`), when
    /// `[identity]` is on; `sqlite://portcullis.db` beside the config file
    /// by default.
    pub database: Option<Secret>,
}

/// A service URL: a reference, or a literal without a password.
fn service_url(at: &str, s: &str, env: &dyn Fn(&str) -> Option<String>, p: &mut Problems) -> Option<Secret> {
    let value = match secret::parse_ref(s) {
        Ok(r) => match secret::resolve(&r, env) {
            Ok(v) => v,
            Err(e) => {
                p.push(at, e.to_string());
                return None;
            }
        },
        Err(secret::SecretError::Literal) => {
            let has_password = s
                .split_once("://")
                .is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|a| a.contains('@')));
            if has_password {
                p.push(at, "this URL carries credentials: give it as \"${ENV_VAR}\" or \"file:/path\"");
                return None;
            }
            secret::literal(s)
        }
        Err(e) => {
            p.push(at, e.to_string());
            return None;
        }
    };
    Some(value)
}

/// A Redis URL (reference or credential-free literal).
fn redis_url(at: &str, s: &str, env: &dyn Fn(&str) -> Option<String>, p: &mut Problems) -> Option<Secret> {
    let value = service_url(at, s, env, p)?;
    if redis::Client::open(value.expose()).is_err()
        || !(value.expose().starts_with("redis://") || value.expose().starts_with("rediss://"))
    {
        p.push(at, "expected a redis:// or rediss:// URL");
        return None;
    }
    Some(value)
}

pub(super) fn validate(raw: RawState, env: &dyn Fn(&str) -> Option<String>, p: &mut Problems) -> StateConfig {
    let timeout = within(
        "state.redis_timeout",
        raw.redis_timeout.map(|d| d.0),
        Duration::from_millis(100),
        Duration::from_millis(1),
        Duration::from_secs(10),
        p,
    );
    let redis = match (raw.redis, raw.redis_cluster) {
        (Some(_), Some(_)) => {
            p.push("state.redis_cluster", "give either state.redis or state.redis_cluster, not both");
            None
        }
        (Some(u), None) => redis_url("state.redis", &u, env, p).map(RedisConfig::Standalone),
        (None, Some(nodes)) => {
            if nodes.is_empty() {
                p.push("state.redis_cluster", "list at least one seed node");
            }
            let v: Vec<Option<Secret>> = nodes
                .iter()
                .enumerate()
                .map(|(i, u)| redis_url(&format!("state.redis_cluster[{i}]"), u, env, p))
                .collect();
            v.into_iter().collect::<Option<Vec<_>>>().filter(|v| !v.is_empty()).map(RedisConfig::Cluster)
        }
        (None, None) => None,
    };
    let database = raw.database.as_deref().and_then(|s| {
        let url = service_url("state.database", s, env, p)?;
        let ok = ["sqlite://", "sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|pre| url.expose().starts_with(pre));
        if !ok {
            p.push("state.database", "expected \"sqlite://path/to/file.db\" or a postgres:// URL");
            return None;
        }
        Some(url)
    });
    StateConfig { redis, redis_timeout: timeout, database }
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[state]");
    match &c.state.redis {
        None => {
            let _ = writeln!(o, "  in-process (no Redis)");
        }
        Some(RedisConfig::Standalone(_)) => {
            let _ =
                writeln!(o, "  redis ***, timeout {}", super::units::show_duration(c.state.redis_timeout));
        }
        Some(RedisConfig::Cluster(n)) => {
            let _ = writeln!(
                o,
                "  redis cluster, {} seed node(s) ***, timeout {}",
                n.len(),
                super::units::show_duration(c.state.redis_timeout)
            );
        }
    }
    if let Some(id) = &c.identity {
        let db = id.database.expose();
        let shown = if db.starts_with("sqlite:") { db.to_owned() } else { "postgres ***".to_owned() };
        let _ = writeln!(o, "  database          {shown} (users, refresh-token families)");
    }
}
