//! The configuration model, in three stages (ripgrep's lowargs -> hiargs):
//! 1. `raw`: serde structs mirroring the TOML file;
//! 2. [`Config`]: validated, typed, secrets resolved, TLS loaded; every
//!    problem collected with its place in the file ([`Problems`]);
//! 3. [`crate::stack`]: built into the layers of `portcullis-layers`.

mod auth;
mod cors;
mod input;
mod locate;
mod openapi;
mod ratelimit;
mod raw;
mod render;
pub mod secret;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use portcullis_layers::headers::SecurityHeaders;
use portcullis_layers::path::PathPolicy;

pub use auth::{AuthConfig, JwtConfig, RoutesConfig};
pub use cors::CorsConfig;
pub use input::{InputConfig, InputDefaults};
pub use ratelimit::{RateLimitConfig, RedisConfig, StateConfig, StoreKind};
pub use secret::Secret;
pub use validate::from_str;

/// One configuration problem and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path in the file (`server.tls.cert`, `server.trusted_proxies[2]`,
    /// `route[0].path`), or `line L, column C` for syntax errors.
    pub at: String,
    /// What is wrong. Never contains a secret.
    pub message: String,
    /// Line and column (1-based) of the key, or of its table when the key
    /// is missing.
    pub line_col: Option<(usize, usize)>,
    /// The file, when read from one.
    pub file: Option<String>,
}

impl fmt::Display for Problem {
    /// `route #2 allow.owner: names no {id} parameter of the path pattern
    /// (portcullis.toml:14:26)`: routes counted as a user counts them, the
    /// place as `file:line:column`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", user_path(&self.at), user_path(&self.message))?;
        match (&self.file, self.line_col) {
            (Some(file), Some((l, c))) => write!(f, " ({file}:{l}:{c})"),
            (None, Some((l, c))) => write!(f, " (line {l}, column {c})"),
            _ => Ok(()),
        }
    }
}

/// `route[1].allow` as a user counts routes: `route #2 allow`.
fn user_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("route[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "route[".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match (after[..digits].parse::<usize>(), after[digits..].strip_prefix(']')) {
            (Ok(n), Some(tail)) if digits > 0 => {
                out.push_str(&format!("route #{}", n + 1));
                rest = match tail.strip_prefix('.') {
                    Some(t) => {
                        out.push(' ');
                        t
                    }
                    None => tail,
                };
            }
            _ => {
                out.push_str("route[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>, Vec<String>);

impl Problems {
    /// Records a problem, unless it is about a key whose value was already
    /// refused (a refused `url` is not also "missing").
    pub(crate) fn push(&mut self, at: impl Into<String>, message: impl Into<String>) {
        let at = at.into();
        let message = message.into();
        let under = |k: &str| at.strip_prefix(k).is_some_and(|r| r.starts_with(['.', '[']));
        let said = |r: &String| match r.strip_prefix('~') {
            // A table with a misspelt key: its own verdicts and its
            // "missing" keys are unreliable; its other values are not.
            Some(table) => at == table || (under(table) && message.starts_with("missing")),
            None => at == *r || under(r),
        };
        if self.1.iter().any(said) {
            return;
        }
        self.0.push(Problem { at, message, line_col: None, file: None });
    }

    /// Marks a key whose value was refused: later problems about it are
    /// not reported.
    pub(crate) fn refused(&mut self, key: String) {
        self.1.push(key);
    }

    /// Marks a table with a misspelt key: later problems about the table
    /// itself, or about keys it lacks (perhaps the misspelt one), are not
    /// reported.
    pub(crate) fn misspelt_in(&mut self, table: &str) {
        self.1.push(format!("~{table}"));
    }

    /// Locates every problem in `text`.
    pub(crate) fn locate(&mut self, text: &str) {
        let l = locate::Locator::new(text);
        for p in &mut self.0 {
            if p.line_col.is_none() {
                p.line_col = l.find(&p.at);
            }
        }
    }

    /// Names the file every problem is in.
    pub(crate) fn in_file(mut self, file: &str) -> Problems {
        for p in &mut self.0 {
            p.file = Some(file.to_owned());
        }
        self
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`: where `/healthz` and `/readyz` listen; `None` when disabled.
    pub admin: Option<SocketAddr>,
    /// `[upstream]`.
    pub upstream: UpstreamConfig,
    /// `[headers]`, built.
    pub headers: SecurityHeaders,
    /// `[limits]`.
    pub limits: Limits,
    /// `[paths]`.
    pub paths: PathPolicy,
    /// `[errors]`.
    pub errors: ErrorPages,
    /// `[cors]`.
    pub cors: CorsConfig,
    /// `[state]`.
    pub state: StateConfig,
    /// `[rate_limit_options]` and `[[rate_limit]]`.
    pub rate_limit: RateLimitConfig,
    /// `[routes]` and `[[route]]`.
    pub routes: RoutesConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[input]`, the input keys of `[[route]]`, and `[openapi]` (C16-C20).
    pub input: InputConfig,
    /// What is valid but probably not meant (`check` prints these, `serve`
    /// logs them).
    pub warnings: Problems,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The main listener.
    pub listen: SocketAddr,
    /// TLS on the main listener.
    pub tls: Option<TlsConfig>,
    /// A plain HTTP listener that redirects to HTTPS.
    pub redirect_http: Option<SocketAddr>,
    /// Trusted proxy networks (C3).
    pub trusted_proxies: Vec<IpNet>,
    /// The host names this server answers to, lower case (`server.names`);
    /// empty for any. The redirect listener redirects only these.
    pub names: Vec<String>,
}

/// `[server.tls]`, loaded.
#[derive(Clone)]
pub struct TlsConfig {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
    /// The rustls configuration built from them.
    pub rustls: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

/// `[upstream]`.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `http://host:port` plus an optional base path.
    pub url: http::Uri,
    /// The base path without trailing slash (`""` for none).
    pub base_path: String,
    /// Time from sending the request to the response head (C14).
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Extra headers for the upstream (secrets).
    pub headers: Vec<(HeaderName, Secret)>,
}

/// `[limits]` (C13, C14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request body bytes.
    pub body: u64,
    /// Request head bytes (request line plus headers).
    pub header_bytes: usize,
    /// Number of request header fields.
    pub max_headers: usize,
    /// Time to receive a full request head (slowloris).
    pub header_read_timeout: Duration,
    /// Longest pause between request body frames.
    pub body_read_timeout: Duration,
    /// Longest time from request head to response head.
    pub request_timeout: Duration,
    /// Keep-alive connections with no request for this long are closed.
    pub idle_timeout: Duration,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 1024 * 1024,
            header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[errors]` (C29).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorPages {
    /// Replace upstream 4xx HTML pages too.
    pub replace_html_4xx: bool,
    /// Bytes of the original error body written to the log.
    pub log_body_bytes: usize,
}

impl Default for ErrorPages {
    fn default() -> Self {
        ErrorPages { replace_html_4xx: true, log_body_bytes: 2048 }
    }
}

/// Reads and validates a configuration file, resolving secrets from the
/// process environment.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut p = Problems::default();
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            std::io::ErrorKind::PermissionDenied => "can't be read: permission denied".to_owned(),
            std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            std::io::ErrorKind::InvalidData => "is not UTF-8 text".to_owned(),
            _ => "can't be read".to_owned(),
        };
        p.push(path.display().to_string(), why);
        p
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let file = path.display().to_string();
    from_str(&text, &base, &|name| std::env::var(name).ok())
        .map(|mut c| {
            c.warnings = std::mem::take(&mut c.warnings).in_file(&file);
            c
        })
        .map_err(|p| p.in_file(&file))
}

impl Config {
    /// A configuration with every default, proxying to `upstream`, with
    /// these `[[route]]` tables (TOML text).
    pub fn with_upstream(listen: SocketAddr, upstream: &str, routes: &str) -> Result<Config, Problems> {
        let text = format!(
            "[server]\nlisten = \"{listen}\"\n[admin]\nenabled = false\n[upstream]\nurl = \"{upstream}\"\n{routes}"
        );
        from_str(&text, Path::new("."), &|_| None)
    }

    /// The effective policy, as `portcullis check` prints it.
    pub fn render(&self) -> String {
        render::render(self)
    }
}
