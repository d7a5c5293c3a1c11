//! `[cors]` (C8): raw -> built `CorsLayer`, with per-route overrides that
//! inherit what they don't say from the top-level policy.

use portcullis_layers::cors::{Cors, CorsLayer};
use portcullis_layers::pattern::PathPattern;

use super::Problems;
use super::units::Dur;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCors {
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) credentials: Option<bool>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) headers: Option<Vec<String>>,
    pub(crate) expose_headers: Option<Vec<String>>,
    pub(crate) max_age: Option<Dur>,
    pub(crate) routes: Option<Vec<RawCorsRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCorsRoute {
    pub(crate) paths: Option<Vec<String>>,
    pub(crate) enabled: Option<bool>,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) credentials: Option<bool>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) headers: Option<Vec<String>>,
    pub(crate) expose_headers: Option<Vec<String>>,
    pub(crate) max_age: Option<Dur>,
}

/// The validated CORS configuration: the layer plus a description for `check`.
#[derive(Clone, Debug)]
pub struct CorsConfig {
    /// The built layer.
    pub layer: CorsLayer,
    /// Lines for the effective-policy printout.
    pub summary: Vec<String>,
}

struct Fields<'a> {
    origins: Option<&'a Vec<String>>,
    credentials: Option<bool>,
    methods: Option<&'a Vec<String>>,
    headers: Option<&'a Vec<String>>,
    expose_headers: Option<&'a Vec<String>>,
    max_age: Option<Dur>,
}

fn build(at: &str, f: &Fields<'_>, p: &mut Problems) -> Option<(Cors, String)> {
    let before = p.0.len();
    let mut b = Cors::builder();
    let origins = f.origins.cloned().unwrap_or_default();
    if origins.is_empty() {
        p.push(format!("{at}.origins"), "list at least one origin, e.g. [\"https://app.example.com\"]");
    }
    for (i, o) in origins.iter().enumerate() {
        match b.clone().allow_origin(o) {
            Ok(nb) => b = nb,
            Err(e) => p.push(format!("{at}.origins[{i}]"), e.message),
        }
    }
    b = b.credentials(f.credentials.unwrap_or(false));
    if let Some(m) = f.methods {
        match b.clone().methods(m) {
            Ok(nb) => b = nb,
            Err(e) => p.push(format!("{at}.methods{}", e.at), e.message),
        }
    }
    if let Some(h) = f.headers {
        match b.clone().headers(h) {
            Ok(nb) => b = nb,
            Err(e) => p.push(format!("{at}.headers{}", e.at), e.message),
        }
    }
    if let Some(h) = f.expose_headers {
        match b.clone().expose_headers(h) {
            Ok(nb) => b = nb,
            Err(e) => p.push(format!("{at}.expose_headers{}", e.at), e.message),
        }
    }
    if let Some(Dur(d)) = f.max_age {
        b = b.max_age(Some(d));
    }
    if p.0.len() != before {
        return None;
    }
    match b.build() {
        Ok(c) => {
            let desc = format!(
                "origins {}; credentials {}{}",
                origins.join(" "),
                f.credentials.unwrap_or(false),
                f.methods.map(|m| format!("; methods {}", m.join(","))).unwrap_or_default()
            );
            Some((c, desc))
        }
        Err(e) => {
            p.push(format!("{at}.origins"), e.message);
            None
        }
    }
}

pub(super) fn validate(raw: Option<RawCors>, p: &mut Problems) -> Option<CorsConfig> {
    let Some(raw) = raw else {
        return Some(CorsConfig {
            layer: CorsLayer::new(None),
            summary: vec![
                "not configured: no cross-origin access; upstream CORS headers are dropped".to_owned(),
            ],
        });
    };
    let before = p.0.len();
    let top = Fields {
        origins: raw.origins.as_ref(),
        credentials: raw.credentials,
        methods: raw.methods.as_ref(),
        headers: raw.headers.as_ref(),
        expose_headers: raw.expose_headers.as_ref(),
        max_age: raw.max_age,
    };
    let mut summary = Vec::new();
    let default = if raw.origins.is_some() || raw.routes.is_none() {
        let built = build("cors", &top, p);
        if let Some((_, d)) = &built {
            summary.push(format!("default: {d}"));
        }
        built.map(|(c, _)| c)
    } else {
        summary.push("default: none (only the routes below)".to_owned());
        None
    };
    let mut layer = CorsLayer::new(default);
    for (i, r) in raw.routes.unwrap_or_default().iter().enumerate() {
        let at = format!("cors.routes[{i}]");
        let patterns = route_patterns(&at, r, p);
        if r.enabled == Some(false) {
            layer = layer.route(patterns, None);
            summary.push(format!("{}: CORS off", paths_text(r)));
            continue;
        }
        let f = Fields {
            origins: r.origins.as_ref().or(top.origins),
            credentials: r.credentials.or(top.credentials),
            methods: r.methods.as_ref().or(top.methods),
            headers: r.headers.as_ref().or(top.headers),
            expose_headers: r.expose_headers.as_ref().or(top.expose_headers),
            max_age: r.max_age.or(top.max_age),
        };
        if let Some((c, d)) = build(&at, &f, p) {
            summary.push(format!("{}: {d}", paths_text(r)));
            layer = layer.route(patterns, Some(c));
        }
    }
    (p.0.len() == before).then_some(CorsConfig { layer, summary })
}

fn paths_text(r: &RawCorsRoute) -> String {
    r.paths.clone().unwrap_or_default().join(" ")
}

fn route_patterns(at: &str, r: &RawCorsRoute, p: &mut Problems) -> Vec<PathPattern> {
    let paths = r.paths.clone().unwrap_or_default();
    if paths.is_empty() {
        p.push(
            format!("{at}.paths"),
            "list the path patterns this override applies to, e.g. [\"/public/**\"]",
        );
    }
    let mut out = Vec::new();
    for (j, s) in paths.iter().enumerate() {
        match PathPattern::parse(s) {
            Ok(pt) => out.push(pt),
            Err(e) => p.push(format!("{at}.paths[{j}]"), e.message),
        }
    }
    out
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[cors]");
    for line in &c.cors.summary {
        let _ = writeln!(o, "  {line}");
    }
}
