//! The configuration model, in three stages (ripgrep's lowargs -> hiargs):
//! 1. raw: each section's serde struct mirrors its table of the file, with
//!    typed sizes, durations and keywords (`units.rs`); read key by key so
//!    every bad key is one located problem (`problems::section`);
//! 2. [`Config`]: validated, typed, secrets resolved, TLS loaded; every
//!    problem collected with its place in the file ([`Problems`]);
//! 3. [`crate::stack`]: built into the layers of `portcullis-layers`.
//!
//! One file per section holds its raw struct, its validated type and its
//! validation: adding a key touches that file (and the docs). This file
//! only loads the text and calls the sections in order.

mod auth;
mod cookies;
mod cors;
mod errors;
mod headers;
mod identity;
mod input;
mod limits;
mod locate;
mod openapi;
mod paths;
mod problems;
mod ratelimit;
mod routes;
pub mod secret;
mod server;
mod sessions;
mod state;
mod units;
mod upstream;

use std::net::SocketAddr;
use std::path::Path;

use portcullis_layers::headers::SecurityHeaders;
use portcullis_layers::input::InputPolicy;
use portcullis_layers::path::PathPolicy;

pub use auth::{AuthConfig, JwtConfig};
pub use cors::CorsConfig;
pub use errors::ErrorPages;
pub use identity::{IdentityConfig, Lockout};
pub use input::{InputConfig, InputDefaults};
pub use limits::Limits;
pub use problems::{Problem, Problems};
pub use ratelimit::{RateLimitConfig, StoreKind};
pub use routes::RoutesConfig;
pub use secret::Secret;
pub use server::{ServerConfig, TlsConfig};
pub use sessions::{SessionStoreKind, SessionsConfig};
pub use state::{RedisConfig, StateConfig};
pub use upstream::{UpstreamConfig, UpstreamHealth};

use problems::{section, table_array};

const SECTIONS: &[&str] = &[
    "server",
    "admin",
    "upstream",
    "headers",
    "limits",
    "paths",
    "errors",
    "cors",
    "state",
    "rate_limit_options",
    "rate_limit",
    "routes",
    "route",
    "auth",
    "input",
    "openapi",
    "identity",
    "sessions",
    "cookies",
];
/// Sections users reach for under another name: refused with a pointer to
/// the right one, so a policy written for them is never silently ignored.
const ELSEWHERE: &[(&str, &str)] = &[
    ("session", "did you mean [sessions]?"),
    ("csrf", "CSRF protection comes with [sessions] and needs no section of its own (docs/sessions.md)"),
];

/// Validates a configuration text. `base` resolves relative file paths;
/// `env` looks up `${VAR}` secrets.
pub fn from_str(text: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let doc: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = locate::line_col(text, s.start);
                    format!("line {line}, column {col}")
                })
                .unwrap_or_else(|| "file".to_owned());
            p.push(at, format!("TOML syntax error: {}", e.message()));
            return Err(p);
        }
    };
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            if let Some((_, hint)) = ELSEWHERE.iter().find(|(k, _)| k == key) {
                p.push(key.clone(), format!("unknown section: {hint}"));
            } else {
                p.push(key.clone(), format!("unknown section; expected one of: {}", SECTIONS.join(", ")));
            }
        }
    }
    let server: server::RawServer = section("server", &doc, &mut p);
    let admin: server::RawAdmin = section("admin", &doc, &mut p);
    let upstream: upstream::RawUpstream = section("upstream", &doc, &mut p);
    let headers: headers::RawHeaders = section("headers", &doc, &mut p);
    let limits: limits::RawLimits = section("limits", &doc, &mut p);
    let paths: paths::RawPaths = section("paths", &doc, &mut p);
    let errors: errors::RawErrors = section("errors", &doc, &mut p);
    let cors: Option<cors::RawCors> = doc.contains_key("cors").then(|| section("cors", &doc, &mut p));
    let state: state::RawState = section("state", &doc, &mut p);
    let identity: Option<identity::RawIdentity> =
        doc.contains_key("identity").then(|| section("identity", &doc, &mut p));
    let sessions: Option<sessions::RawSessions> =
        doc.contains_key("sessions").then(|| section("sessions", &doc, &mut p));
    let cookies: cookies::RawCookies = section("cookies", &doc, &mut p);
    let rl_options: ratelimit::RawRateLimitOptions = section("rate_limit_options", &doc, &mut p);
    let rl_rules = table_array("rate_limit", &doc, &mut p);
    let routes_opts: routes::RawRoutes = section("routes", &doc, &mut p);
    let route_list: Vec<routes::RawRoute> = table_array("route", &doc, &mut p);
    let auth: auth::RawAuth = section("auth", &doc, &mut p);
    let input: input::RawInput = section("input", &doc, &mut p);
    let openapi: Option<openapi::RawOpenApi> =
        doc.contains_key("openapi").then(|| section("openapi", &doc, &mut p));

    let server = server::validate(server, base, &mut p);
    let admin = server::validate_admin(admin, &mut p);
    let upstream = upstream::validate(upstream, env, &mut p);
    let headers = headers::validate(headers, &mut p);
    let limits = limits::validate(limits, &mut p);
    let paths = paths::validate(paths);
    let errors = errors::validate(errors, &mut p);
    let cors = cors::validate(cors, &mut p);
    let state = state::validate(state, env, &mut p);
    let identity_on = identity.is_some();
    let identity = identity::validate(identity, &state, base, env, &mut p);
    let sessions = sessions::validate(sessions, identity_on, &state, &mut p);
    let cookies = cookies::validate(cookies, &mut p);
    let headers = headers.map(|h| h.harden_cookies(cookies.clone()));
    // Tokens come from an external IdP ([auth.jwt]), from Portcullis
    // itself ([identity]), or both: either makes protected routes reachable.
    let jwt_configured = auth.jwt.is_some() || identity_on;
    let rate_limit = ratelimit::validate(rl_options, rl_rules, &state, jwt_configured, &mut p);
    let auth = auth::validate_auth(auth, base, &mut p);
    let max_body = limits.as_ref().map_or(Limits::default().body, |l| l.body);
    let input_defaults = input::validate_defaults(input, &mut p);
    // Each route carries its own input policy (no list parallel to the table).
    let policies: Vec<Option<InputPolicy>> = route_list
        .iter()
        .enumerate()
        .map(|(i, r)| input::route_policy(i, r, &input_defaults, max_body, base, &mut p))
        .collect();
    let mut extra = Vec::new();
    if let Some(o) = openapi
        && let Some(o) = openapi::load(o, base, &input_defaults, max_body, jwt_configured, &mut p)
    {
        for (name, route, policy) in o.routes {
            extra.push((name, portcullis_layers::input::InputLayer::policy_of(route, policy)));
        }
    }
    let input = input::InputConfig {
        default_policy: input::default_policy(&input_defaults, max_body),
        defaults: input_defaults,
    };
    if route_list.is_empty()
        && extra.is_empty()
        && !routes_opts
            .unmatched
            .is_some_and(|k| k.0 == portcullis_layers::route::Unmatched::InsecurePassThrough)
    {
        p.push(
            "route",
            "no [[route]] declared: Portcullis refuses requests that match no route (deny by default, C21), so this gateway would answer 404 to everything. Declare the API's routes (e.g. [[route]] path = \"/api/health\" public = true), or opt out with [routes] unmatched = \"insecure_pass_through\"",
        );
    }
    let mut warnings = Problems::default();
    let routes = routes::validate(
        routes_opts,
        route_list,
        policies,
        extra,
        jwt_configured,
        routes::OwnEndpoints { identity: identity_on, sessions: sessions.is_some() },
        &mut p,
        &mut warnings,
    );

    if let (Some(s), Some(a)) = (&server, admin)
        && a.port() != 0
        && (a == s.listen || Some(a) == s.redirect_http)
    {
        p.push("admin.listen", "must differ from the server listeners");
    }
    match (server, upstream, headers, limits, errors, cors, rate_limit, routes, auth) {
        (
            Some(server),
            Some(upstream),
            Some(headers),
            Some(limits),
            Some(errors),
            Some(cors),
            Some(rate_limit),
            Some(routes),
            Some(auth),
        ) if p.0.is_empty() => Ok(Config {
            server,
            admin,
            upstream,
            headers,
            limits,
            paths,
            errors,
            cors,
            state,
            rate_limit,
            routes,
            auth,
            input,
            identity,
            sessions,
            cookies,
            warnings,
            sections: Sections(std::sync::Arc::new(doc)),
        }),
        _ => {
            p.locate(text);
            Err(p)
        }
    }
    .map(|mut c: Config| {
        c.warnings.locate(text);
        c
    })
}
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
    /// `[identity]`: the built-in identity provider, when on.
    pub identity: Option<IdentityConfig>,
    /// `[sessions]`: cookie sessions, when on.
    pub sessions: Option<SessionsConfig>,
    /// `[cookies]`: how the upstream's `Set-Cookie` headers are hardened
    /// (already applied to `headers`; kept for `check`).
    pub cookies: portcullis_layers::headers::CookiePolicy,
    /// What is valid but probably not meant (`check` prints these, `serve`
    /// logs them).
    pub warnings: Problems,
    /// The file's sections as written: a reload keeps the state of a part
    /// (rate-limit counters, sessions, the JWKS cache) whose sections did
    /// not change.
    pub sections: Sections,
}

/// The sections of a configuration file as parsed, before validation.
/// Compared, never printed: `Debug` shows the section names only (a
/// section may hold a secret).
#[derive(Clone, Default)]
pub struct Sections(std::sync::Arc<toml::Table>);

impl Sections {
    /// Whether these sections are written the same in both files (absent in
    /// both counts as the same).
    pub fn same(&self, other: &Sections, names: &[&str]) -> bool {
        names.iter().all(|n| self.0.get(*n) == other.0.get(*n))
    }
}

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
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

    /// The effective policy, as `portcullis check` prints it: each section
    /// renders itself, in the order of the reference documentation.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let sections: [fn(&Config, &mut String); 15] = [
            server::render,
            upstream::render,
            limits::render,
            paths::render,
            headers::render,
            cors::render,
            state::render,
            ratelimit::render,
            routes::render,
            auth::render,
            identity::render,
            sessions::render,
            cookies::render,
            input::render,
            errors::render,
        ];
        for render in sections {
            render(self, &mut o);
        }
        o
    }
}

#[cfg(test)]
mod tests;
