//! `[openapi]`: an OpenAPI 3.0 or 3.1 document (YAML or JSON) as the
//! source of routes and their input schemas (C16 C17 C21).
//!
//! Every operation becomes a route, after the `[[route]]`s of the file:
//! its path (under the server's base path), its method, its path, query
//! and header parameters, its request body and its security. Operations
//! the document doesn't list are refused like any unmatched request (deny
//! by default). `$ref`s resolve inside the document only.
//!
//! - Parameters: `in: path | query | header | cookie` with a `schema`;
//!   query arrays use the default `style: form, explode: true`
//!   (`?tag=a&tag=b`). `content`-style parameters are not validated.
//! - Request bodies: the JSON (`application/json`, `*+json`) schema, else
//!   the `application/x-www-form-urlencoded` one; the media types listed
//!   are the only ones accepted; an operation without `requestBody`
//!   refuses bodies.
//! - Security: none, `[]` or an empty requirement `{}` make the operation
//!   public; HTTP bearer, OAuth 2 and OpenID Connect schemes make it
//!   protected by `[auth.jwt]`, their scopes being the roles that admit
//!   (any of them). API-key and basic schemes are refused at startup:
//!   Portcullis can't verify them.
//! - OpenAPI 3.0 schemas are draft-04 with `nullable`; 3.1 are 2020-12.

use std::path::Path;

use http::Method;
use portcullis_layers::input::{
    Dialect, InputPolicy, ParamSchema, Schema, UnknownFields, resolve_local_ref as resolve,
};
use portcullis_layers::json::push_segment;
use portcullis_layers::pattern::PathPattern;
use portcullis_layers::route::{Access, Authz, Route};
use serde_json::{Map, Value, json};

use super::Problems;
use super::input::{InputDefaults, default_policy, read_document};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOpenApi {
    pub(crate) spec: Option<String>,
    pub(crate) base_path: Option<String>,
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The routes of a document, in matching order, with their policies.
pub(crate) struct OpenApiRoutes {
    /// (where in the document, route, policy).
    pub(crate) routes: Vec<(String, Route, InputPolicy)>,
}

/// Loads `[openapi]`.
pub(crate) fn load(
    raw: RawOpenApi,
    base: &Path,
    d: &InputDefaults,
    max_body: u64,
    jwt_configured: bool,
    p: &mut Problems,
) -> Option<OpenApiRoutes> {
    let Some(spec) = raw.spec else {
        p.push("openapi.spec", "missing: the path of the OpenAPI document, e.g. \"openapi.yaml\"");
        return None;
    };
    let mut doc = match read_document(&base.join(&spec)) {
        Ok(v) => v,
        Err(e) => {
            p.push("openapi.spec", e);
            return None;
        }
    };
    let at = |loc: &str| format!("openapi.spec: {loc}");
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let dialect = if version.starts_with("3.0.") {
        nullable_to_types(&mut doc);
        Dialect::Draft4
    } else if version.starts_with("3.1.") {
        Dialect::Draft202012
    } else {
        p.push(at("openapi"), "expected an OpenAPI 3.0.x or 3.1.x document");
        return None;
    };
    let base_path = match raw.base_path {
        Some(b) => b,
        None => match server_path(&doc) {
            Ok(b) => b,
            Err(m) => {
                p.push(at("servers[0].url"), m);
                return None;
            }
        },
    };
    let base_path = base_path.trim_end_matches('/').to_owned();
    if !base_path.is_empty() && !base_path.starts_with('/') {
        p.push("openapi.base_path", "must start with /");
        return None;
    }
    let global_security = doc.get("security").cloned();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        p.push(at("paths"), "missing or not an object");
        return None;
    };
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = resolve(&doc, item);
        let shared_params =
            item.get("parameters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            let loc = format!("paths.{path}.{m}");
            let pattern = match PathPattern::parse(&format!("{base_path}{path}")) {
                Ok(pat) => pat,
                Err(e) => {
                    p.push(at(&loc), e.message);
                    continue;
                }
            };
            let method = match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(method) => method,
                Err(_) => continue,
            };
            let security = op.get("security").cloned().or_else(|| global_security.clone());
            let access = match access(&doc, security.as_ref()) {
                Ok(a) => a,
                Err(e) => {
                    p.push(at(&format!("{loc}.security")), e);
                    continue;
                }
            };
            if matches!(access, Access::Protected(_)) && !jwt_configured {
                p.push(
                    at(&format!("{loc}.security")),
                    "a bearer-protected operation needs [auth.jwt] to admit anyone",
                );
            }
            let own_params =
                op.get("parameters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let raw_params: Vec<&Value> = shared_params.iter().chain(own_params).collect();
            let policy = match policy(&doc, &raw_params, op, dialect, d, max_body) {
                Ok(pol) => pol,
                Err((where_, e)) => {
                    p.push(at(&format!("{loc}{where_}")), e);
                    continue;
                }
            };
            out.push((path_rank(path), at(&loc), Route::new(pattern, access).methods(vec![method]), policy));
        }
    }
    // Concrete paths before templated ones, as OpenAPI matches them
    // (/users/me before /users/{id}); the sort is stable.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(OpenApiRoutes { routes: out.into_iter().map(|(_, name, r, pol)| (name, r, pol)).collect() })
}

/// Per segment: 0 for a literal, 1 for a template.
fn path_rank(path: &str) -> Vec<u8> {
    path.split('/').map(|s| u8::from(s.contains('{'))).collect()
}

fn server_path(doc: &Value) -> Result<String, String> {
    let Some(url) = doc.pointer("/servers/0/url").and_then(Value::as_str) else { return Ok(String::new()) };
    if url.contains('{') {
        return Err("server URL variables can't be resolved; set [openapi] base_path".to_owned());
    }
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
        None => url,
    };
    Ok(path.to_owned())
}

fn access(doc: &Value, security: Option<&Value>) -> Result<Access, String> {
    let Some(reqs) = security.and_then(Value::as_array) else { return Ok(Access::Public) };
    if reqs.is_empty() || reqs.iter().any(|r| r.as_object().is_some_and(Map::is_empty)) {
        return Ok(Access::Public);
    }
    let mut roles = Vec::new();
    let mut any_token = false;
    for req in reqs {
        let Some(req) = req.as_object() else {
            return Err("a security requirement must be an object".into());
        };
        for (name, scopes) in req {
            let mut ptr = "/components/securitySchemes".to_owned();
            push_segment(&mut ptr, name);
            let scheme = doc.pointer(&ptr);
            let scheme = scheme.map(|s| resolve(doc, s));
            let kind = scheme.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("");
            let bearer = match kind {
                "http" => scheme
                    .and_then(|s| s.get("scheme"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer")),
                "oauth2" | "openIdConnect" => true,
                _ => false,
            };
            if !bearer {
                return Err(format!(
                    "security scheme {name:?} is not a bearer token scheme (http bearer, oauth2, openIdConnect); Portcullis can't verify it"
                ));
            }
            let scopes: Vec<String> = scopes
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            if scopes.is_empty() {
                any_token = true;
            }
            roles.extend(scopes);
        }
    }
    if any_token {
        roles.clear();
    }
    roles.sort();
    roles.dedup();
    Ok(Access::Protected(Authz { roles, owner: None }))
}

type Located = (String, String);

/// The input policy of one operation. `raw_params`: the path item's
/// parameters, then the operation's (maybe `$ref`s).
fn policy(
    doc: &Value,
    raw_params: &[&Value],
    op: &Value,
    dialect: Dialect,
    d: &InputDefaults,
    max_body: u64,
) -> Result<InputPolicy, Located> {
    // Each compiled schema carries the document's components, so that
    // `#/components/...` references resolve inside it.
    let components = doc.get("components").cloned().unwrap_or_else(|| json!({}));
    let compile = |schema: Value, unknown: UnknownFields, where_: &str| {
        let mut s = schema;
        if let Value::Object(m) = &mut s {
            m.insert("components".into(), components.clone());
        }
        Schema::compile(&s, dialect, unknown).map_err(|e| (format!("{where_} {}", e.at), e.message))
    };
    // Operation parameters override path-item ones with the same name and place.
    let mut params: Vec<&Value> = Vec::new();
    for raw in raw_params {
        let prm = resolve(doc, raw);
        let key = (prm.get("name"), prm.get("in"));
        params.retain(|q| (q.get("name"), q.get("in")) != key);
        params.push(prm);
    }
    let mut groups: [(Map<String, Value>, Vec<Value>); 4] = Default::default();
    for prm in params {
        let (Some(name), Some(place)) =
            (prm.get("name").and_then(Value::as_str), prm.get("in").and_then(Value::as_str))
        else {
            return Err((".parameters".into(), "a parameter needs `name` and `in`".into()));
        };
        let g = match place {
            "path" => 0,
            "query" => 1,
            "header" => 2,
            "cookie" => 3,
            _ => continue,
        };
        let Some(schema) = prm.get("schema") else { continue };
        groups[g].0.insert(name.to_owned(), schema.clone());
        if prm.get("required").and_then(Value::as_bool).unwrap_or(place == "path") {
            groups[g].1.push(Value::String(name.to_owned()));
        }
    }
    let [path_g, query_g, header_g, cookie_g] = groups;
    let object = |(props, required): (Map<String, Value>, Vec<Value>)| {
        let mut o = json!({"type": "object", "properties": props});
        // Draft 4 (OpenAPI 3.0) refuses an empty `required`.
        if !required.is_empty() {
            o["required"] = Value::Array(required);
        }
        o
    };
    let mut policy = default_policy(d, max_body).query_schema(ParamSchema::new(compile(
        object(query_g),
        d.unknown,
        ".parameters (query)",
    )?));
    if !path_g.0.is_empty() {
        policy =
            policy.params_schema(ParamSchema::new(compile(object(path_g), d.unknown, ".parameters (path)")?));
    }
    if !header_g.0.is_empty() {
        policy = policy.headers_schema(ParamSchema::headers(compile(
            object(header_g),
            UnknownFields::Allow,
            ".parameters (header)",
        )?));
    }
    if !cookie_g.0.is_empty() {
        policy = policy.cookies_schema(ParamSchema::new(compile(
            object(cookie_g),
            UnknownFields::Allow,
            ".parameters (cookie)",
        )?));
    }
    match op.get("requestBody").map(|b| resolve(doc, b)) {
        None => policy = policy.content_types(Vec::new()),
        Some(body) => {
            let content = body.get("content").and_then(Value::as_object).cloned().unwrap_or_default();
            let types: Vec<String> = content
                .keys()
                .map(|k| k.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
                .collect();
            let json_schema = content
                .iter()
                .find(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    k.starts_with("application/json") || k.contains("+json")
                })
                .or_else(|| content.iter().find(|(k, _)| k.starts_with("application/x-www-form-urlencoded")))
                .and_then(|(_, c)| c.get("schema").cloned());
            policy = policy.content_types(types);
            if let Some(s) = json_schema {
                policy = policy.body_schema(compile(s, d.unknown, ".requestBody")?, false);
            }
            policy.body_required = body.get("required").and_then(Value::as_bool).unwrap_or(false);
        }
    }
    Ok(policy)
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: `null` added to `type`
/// (and to `enum`).
fn nullable_to_types(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.remove("nullable") == Some(Value::Bool(true)) {
                match m.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = std::mem::take(t);
                        m.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(ts)) if !ts.contains(&json!("null")) => ts.push(json!("null")),
                    _ => {}
                }
                if let Some(Value::Array(e)) = m.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
            }
            for child in m.values_mut() {
                nullable_to_types(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_types),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_becomes_a_type_union() {
        let mut v = json!({"properties": {"a": {"type": "string", "nullable": true, "enum": ["x"]}}});
        nullable_to_types(&mut v);
        assert_eq!(v, json!({"properties": {"a": {"type": ["string", "null"], "enum": ["x", null]}}}));
    }

    #[test]
    fn server_paths() {
        assert_eq!(server_path(&json!({"servers": [{"url": "https://api.test/v1"}]})).unwrap(), "/v1");
        assert_eq!(server_path(&json!({"servers": [{"url": "/api"}]})).unwrap(), "/api");
        assert_eq!(server_path(&json!({"servers": [{"url": "http://api.test"}]})).unwrap(), "");
        assert_eq!(server_path(&json!({})).unwrap(), "");
        assert!(server_path(&json!({"servers": [{"url": "https://{env}.test"}]})).is_err());
    }

    #[test]
    fn c21_security_maps_to_access() {
        let doc = json!({"components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "oauth": {"type": "oauth2"},
            "key": {"type": "apiKey", "in": "header", "name": "X-Key"},
            "basic": {"type": "http", "scheme": "basic"}
        }}});
        assert_eq!(access(&doc, None).unwrap(), Access::Public);
        assert_eq!(access(&doc, Some(&json!([]))).unwrap(), Access::Public);
        assert_eq!(access(&doc, Some(&json!([{}, {"bearer": []}]))).unwrap(), Access::Public);
        assert_eq!(
            access(&doc, Some(&json!([{"bearer": []}]))).unwrap(),
            Access::Protected(Authz::default())
        );
        assert_eq!(
            access(&doc, Some(&json!([{"oauth": ["admin"]}, {"oauth": ["ops", "admin"]}]))).unwrap(),
            Access::Protected(Authz { roles: vec!["admin".into(), "ops".into()], owner: None })
        );
        assert!(access(&doc, Some(&json!([{"key": []}]))).is_err());
        assert!(access(&doc, Some(&json!([{"basic": []}]))).is_err());
        assert!(access(&doc, Some(&json!([{"missing": []}]))).is_err());
    }

    #[test]
    fn concrete_paths_sort_first() {
        let mut v = ["/users/{id}", "/users/me", "/a/{x}/b", "/a/y/{z}"];
        v.sort_by_key(|p| path_rank(p));
        // Paths of different lengths never match the same request; equal ranks keep their order.
        assert_eq!(v, ["/users/me", "/a/y/{z}", "/users/{id}", "/a/{x}/b"]);
    }
}
