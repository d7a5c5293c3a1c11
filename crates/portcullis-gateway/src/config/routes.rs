//! `[routes]` and `[[route]]`: the route table, deny by default (C21),
//! roles and ownership (C26 C27); each route carries its policies.

use http::Method;
use portcullis_layers::input::{InputLayer, InputPolicy};
use portcullis_layers::pattern::{MatchOptions, PathPattern};
use portcullis_layers::route::{Access, Authz, Route, RouteTable, Unmatched};
use serde::Deserialize;

use super::Problems;
use super::input::RawSchema;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRoutes {
    pub(crate) unmatched: Option<UnmatchedKeyword>,
    pub(crate) case_sensitive: Option<bool>,
    pub(crate) strict_trailing_slash: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRoute {
    pub(crate) path: Option<String>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) public: Option<bool>,
    pub(crate) allow: Option<RawAllow>,
    pub(crate) websocket: Option<bool>,
    pub(crate) insecure_method_fallthrough: Option<bool>,
    // Input validation (C16-C20).
    pub(crate) body_schema: Option<RawSchema>,
    pub(crate) body_required: Option<bool>,
    pub(crate) query_schema: Option<RawSchema>,
    pub(crate) params_schema: Option<RawSchema>,
    pub(crate) headers_schema: Option<RawSchema>,
    pub(crate) cookies_schema: Option<RawSchema>,
    pub(crate) content_types: Option<Vec<String>>,
    pub(crate) unknown_fields: Option<super::input::Unknown>,
    pub(crate) injection: Option<super::input::Injection>,
    pub(crate) insecure_allow_prototype_keys: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAllow {
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) owner: Option<String>,
}

/// `[routes]` and `[[route]]`, built.
#[derive(Clone, Debug)]
pub struct RoutesConfig {
    /// The table, in file order.
    pub table: RouteTable,
    /// How unmatched requests are treated.
    pub unmatched: Unmatched,
    /// How patterns compare to paths.
    pub matching: MatchOptions,
}

super::units::keywords! {
    /// `routes.unmatched`: deny by default, or the loudly named opt-out.
    UnmatchedKeyword => Unmatched { "not_found" => Unmatched::NotFound, "insecure_pass_through" => Unmatched::InsecurePassThrough }
}

/// Which of Portcullis' own endpoints are on.
#[derive(Clone, Copy, Debug)]
pub(super) struct OwnEndpoints {
    /// `[identity]`: login, refresh, logout, JWKS.
    pub(super) identity: bool,
    /// `[sessions]`: `/auth/session`.
    pub(super) sessions: bool,
}

/// Validates `[routes]` and the `[[route]]` list. `jwt_configured` says
/// whether tokens can be verified (`[auth.jwt]` or `[identity]`): a
/// protected route without either could never be reached, which is refused
/// as a mistake. Portcullis' own endpoints ([`OwnEndpoints`]) come first
/// in the table; their requests never reach the upstream.
#[allow(clippy::too_many_arguments)]
pub(super) fn validate(
    opts: RawRoutes,
    routes: Vec<RawRoute>,
    policies: Vec<Option<InputPolicy>>,
    extra: Vec<(String, Route)>,
    jwt_configured: bool,
    own: OwnEndpoints,
    p: &mut Problems,
    warnings: &mut Problems,
) -> Option<RoutesConfig> {
    let before = p.0.len();
    let unmatched = opts.unmatched.map_or(Unmatched::NotFound, |k| k.0);
    let matching = MatchOptions {
        case_sensitive: opts.case_sensitive.unwrap_or(false),
        strict_trailing_slash: opts.strict_trailing_slash.unwrap_or(false),
    };
    let mut built = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (endpoint, method, path) in crate::identity::service::Endpoint::ALL {
        let on = if endpoint.is_session() { own.sessions } else { own.identity };
        let Ok(pattern) = PathPattern::parse(path) else { continue };
        if on {
            built.push(
                Route::new(pattern, endpoint.access()).methods(vec![method.clone()]).with_policy(endpoint),
            );
            names.push(format!("the identity endpoint {method} {path}"));
        }
    }
    let mut policies = policies.into_iter();
    for (i, r) in routes.into_iter().enumerate() {
        let policy = policies.next().flatten();
        let at = format!("route[{i}]");
        let pattern = match r.path.as_deref().map(PathPattern::parse) {
            None => {
                p.push(format!("{at}.path"), "missing: a path pattern, e.g. \"/api/users/{id}\"");
                None
            }
            Some(Err(e)) => {
                p.push(format!("{at}.path"), e.message);
                None
            }
            Some(Ok(pat)) => Some(pat),
        };
        if r.methods.as_ref().is_some_and(Vec::is_empty) {
            p.push(
                format!("{at}.methods"),
                "an empty list matches nothing; leave it out to match every method",
            );
        }
        let methods = r.methods.map(|ms| {
            let mut out = Vec::new();
            for (j, m) in ms.iter().enumerate() {
                match Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => out.push(method),
                    _ => p.push(
                        format!("{at}.methods[{j}]"),
                        "expected an upper-case method name, e.g. \"GET\"",
                    ),
                }
            }
            out
        });
        let public = r.public.unwrap_or(false);
        let access = match (public, r.allow) {
            (true, Some(_)) => {
                p.push(format!("{at}.allow"), "a public route admits everyone; remove `allow` or `public`");
                Access::Public
            }
            (true, None) => Access::Public,
            (false, allow) => {
                let allow = allow.unwrap_or_default();
                let roles = allow.roles.unwrap_or_default();
                for (j, role) in roles.iter().enumerate() {
                    if role.is_empty() || role.chars().any(char::is_whitespace) {
                        p.push(format!("{at}.allow.roles[{j}]"), "a role is a non-empty word");
                    }
                }
                if let (Some(owner), Some(pat)) = (&allow.owner, &pattern)
                    && !pat.params().any(|n| n == owner)
                {
                    p.push(
                        format!("{at}.allow.owner"),
                        format!("names no {{{owner}}} parameter of the path pattern"),
                    );
                }
                if !jwt_configured {
                    p.push(
                        at.clone(),
                        "a protected route (no `public = true`) needs [auth.jwt] to admit anyone; configure it, or mark the route public",
                    );
                }
                Access::Protected(Authz { roles, owner: allow.owner })
            }
        };
        if r.websocket == Some(true) && methods.as_ref().is_some_and(|ms| !ms.contains(&Method::GET)) {
            p.push(format!("{at}.websocket"), "a WebSocket handshake is a GET; add \"GET\" to `methods`");
        }
        if let Some(pattern) = pattern {
            let mut route = Route::new(pattern, access)
                .websocket(r.websocket.unwrap_or(false))
                .insecure_method_fallthrough(r.insecure_method_fallthrough.unwrap_or(false));
            if let Some(ms) = methods {
                route = route.methods(ms);
            }
            if let Some(policy) = policy {
                route = InputLayer::policy_of(route, policy);
            }
            built.push(route);
            names.push(format!("route[{i}]"));
        }
    }
    let (extra_names, extra_routes): (Vec<String>, Vec<Route>) = extra.into_iter().unzip();
    built.extend(extra_routes);
    names.extend(extra_names);
    let table = RouteTable::new(built).match_options(matching).unmatched(unmatched);
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    let describe = |r: &Route| {
        let methods = match &r.methods {
            None => "any method".to_owned(),
            Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", "),
        };
        format!("path \"{}\", {methods}", r.pattern.as_str())
    };
    for (i, j) in table.shadowed() {
        let routes = table.routes();
        let (earlier, later) = (describe(&routes[i]), describe(&routes[j]));
        p.push(
            name(j),
            format!(
                "can never match ({later}): {} ({earlier}) comes first and takes every request this route would, with its own policy; put the more specific route first",
                name(i)
            ),
        );
    }
    for (i, j, methods) in table.weaker_fallthroughs() {
        let methods: Vec<&str> = methods.iter().map(Method::as_str).collect();
        warnings.push(
            name(j),
            format!(
                "takes {} requests for paths {} matches but leaves out, and admits more callers than {}; list those methods on {} too, or narrow this route",
                methods.join(", "),
                name(i),
                name(i),
                name(i),
            ),
        );
    }
    (p.0.len() == before).then_some(RoutesConfig { table, unmatched, matching })
}

/// `[routes]` and `[[route]]` as `portcullis check` prints them.
pub(super) fn render(c: &super::Config, o: &mut String) {
    use portcullis_layers::route::{Access, Unmatched};
    use std::fmt::Write;
    let r = &c.routes;
    let _ = writeln!(
        o,
        "[routes] first match wins, on the canonical path; a route owns its paths (other methods: 405)"
    );
    let _ = writeln!(
        o,
        "  matching          {}, {}",
        if r.matching.case_sensitive { "case-sensitive" } else { "case-insensitive (Express)" },
        if r.matching.strict_trailing_slash {
            "trailing slash significant"
        } else {
            "trailing slash ignored"
        }
    );
    for (i, route) in r.table.routes().iter().enumerate() {
        let methods = route.methods.as_ref().map_or_else(
            || "*".to_owned(),
            |m| m.iter().map(http::Method::as_str).collect::<Vec<_>>().join(","),
        );
        let access = match &route.access {
            Access::Public => "public".to_owned(),
            Access::Protected(a) if a.roles.is_empty() && a.owner.is_none() => "any valid token".to_owned(),
            Access::Protected(a) => {
                let mut parts = Vec::new();
                if !a.roles.is_empty() {
                    parts.push(format!("role {}", a.roles.join(" | ")));
                }
                if let Some(o) = &a.owner {
                    parts.push(format!("subject == {{{o}}}"));
                }
                format!("token + ({})", parts.join(" OR "))
            }
        };
        let input = portcullis_layers::input::InputLayer::route_policy(route)
            .map(super::input::input_summary)
            .unwrap_or_default();
        let mut flags = String::new();
        if route.websocket {
            flags.push_str("; WebSocket upgrades");
        }
        if route.insecure_method_fallthrough {
            flags.push_str("; OTHER METHODS FALL THROUGH TO LATER ROUTES (insecure_method_fallthrough)");
        }
        let _ = writeln!(
            o,
            "  {:<18}{methods} {} -> {access}{input}{flags}",
            format!("route #{}", i + 1),
            route.pattern.as_str()
        );
    }
    let _ = writeln!(
        o,
        "  unmatched         {}",
        match r.unmatched {
            Unmatched::NotFound => "404 not_found (deny by default)",
            Unmatched::InsecurePassThrough => "FORWARDED WITHOUT AUTHENTICATION (insecure_pass_through)",
        }
    );
}
