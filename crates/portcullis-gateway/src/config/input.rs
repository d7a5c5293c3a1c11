//! `[input]` and the input keys of `[[route]]`: strict parsing defaults
//! and per-route schemas (C16-C20).

use std::path::Path;

use portcullis_layers::input::{
    Dialect, InjectionMode, InputPolicy, ParamSchema, QueryLimits, Schema, UnknownFields,
};
use portcullis_layers::json::JsonLimits;
use serde_json::Value;

use super::Problems;
use serde::Deserialize;

use super::routes::RawRoute;
use super::units::{Size, within};

/// A JSON Schema: a file (`.json`, `.yaml`, `.yml`) or an inline table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSchema {
    File(String),
    Inline(serde_json::Value),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawInput {
    pub(crate) max_depth: Option<u64>,
    pub(crate) max_entries: Option<u64>,
    pub(crate) max_string_length: Option<Size>,
    pub(crate) max_params: Option<u64>,
    pub(crate) unknown_fields: Option<Unknown>,
    pub(crate) injection: Option<Injection>,
}

/// `[input]`, validated: what every route gets unless it says otherwise.
#[derive(Clone, Debug)]
pub struct InputDefaults {
    /// JSON body bounds.
    pub json: JsonLimits,
    /// Query and form bounds.
    pub query: QueryLimits,
    /// Whether schemas are closed by default.
    pub unknown: UnknownFields,
    /// Injection detection.
    pub injection: InjectionMode,
}

/// The input policies of a configuration.
#[derive(Clone, Debug)]
pub struct InputConfig {
    /// The defaults.
    pub defaults: InputDefaults,
    /// The policy of routes without their own (a route's own policy is
    /// attached to the route, see [`portcullis_layers::input::InputLayer::policy_of`]).
    pub default_policy: InputPolicy,
}

fn bounded(at: &str, v: Option<u64>, default: usize, max: u64, p: &mut Problems) -> usize {
    usize::try_from(within(at, v, default as u64, 1, max, p)).unwrap_or(default)
}

super::units::keywords! {
    /// `injection`: what to do with SQL/NoSQL/command injection patterns.
    Injection => InjectionMode { "off" => InjectionMode::Off, "report" => InjectionMode::Report, "block" => InjectionMode::Block }
}

super::units::keywords! {
    /// `unknown_fields`: whether a schema's undeclared fields are refused.
    Unknown => UnknownFields { "reject" => UnknownFields::Reject, "allow" => UnknownFields::Allow }
}

/// Validates `[input]`.
pub(crate) fn validate_defaults(raw: RawInput, p: &mut Problems) -> InputDefaults {
    let d = JsonLimits::default();
    let longest = Size(d.max_string_len as u64);
    let max_string_len =
        within("input.max_string_length", raw.max_string_length, longest, Size(1), Size(1 << 30), p);
    let max_string_len = usize::try_from(max_string_len.0).unwrap_or(d.max_string_len);
    InputDefaults {
        json: JsonLimits {
            max_depth: bounded("input.max_depth", raw.max_depth, d.max_depth, 1000, p),
            max_entries: bounded("input.max_entries", raw.max_entries, d.max_entries, 10_000_000, p),
            max_string_len,
            forbid_prototype_keys: true,
        },
        query: QueryLimits {
            max_params: bounded(
                "input.max_params",
                raw.max_params,
                QueryLimits::default().max_params,
                100_000,
                p,
            ),
            forbid_prototype_keys: true,
        },
        unknown: raw.unknown_fields.map_or(UnknownFields::Reject, |k| k.0),
        injection: raw.injection.map_or(InjectionMode::Off, |k| k.0),
    }
}

/// The policy of a route without input keys.
pub(crate) fn default_policy(d: &InputDefaults, max_body: u64) -> InputPolicy {
    InputPolicy::default().json_limits(d.json).query_limits(d.query).max_body(max_body).injection(d.injection)
}

/// Reads a JSON or YAML document (by extension; JSON otherwise).
pub(crate) fn read_document(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("can't read {}: {e}", path.display()))?;
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if yaml {
        serde_saphyr::from_str::<Value>(&text).map_err(|e| format!("{}: not valid YAML: {e}", path.display()))
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
    }
}

fn schema(
    at: &str,
    raw: &RawSchema,
    base: &Path,
    unknown: UnknownFields,
    p: &mut Problems,
) -> Option<Schema> {
    let doc = match raw {
        RawSchema::Inline(v) => v.clone(),
        RawSchema::File(f) => match read_document(&base.join(f)) {
            Ok(v) => v,
            Err(e) => {
                p.push(at, e);
                return None;
            }
        },
    };
    match Schema::compile(&doc, Dialect::Auto, unknown) {
        Ok(s) => Some(s),
        Err(e) => {
            p.push(format!("{at}: {}", e.at), e.message);
            None
        }
    }
}

fn media_types(at: &str, types: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let lower = t.trim().to_ascii_lowercase();
        let ok = lower.split_once('/').is_some_and(|(a, b)| {
            let tok = |s: &str| {
                !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
            };
            tok(a) && (tok(b) || b == "*")
        });
        if ok {
            out.push(lower);
        } else {
            p.push(
                format!("{at}[{i}]"),
                "expected a media type without parameters, e.g. \"application/json\"",
            );
        }
    }
    out
}

/// The input policy of `[[route]]` number `i`; `None` when it has no input keys.
pub(crate) fn route_policy(
    i: usize,
    r: &RawRoute,
    d: &InputDefaults,
    max_body: u64,
    base: &Path,
    p: &mut Problems,
) -> Option<InputPolicy> {
    let any = r.body_schema.is_some()
        || r.body_required.is_some()
        || r.query_schema.is_some()
        || r.params_schema.is_some()
        || r.headers_schema.is_some()
        || r.cookies_schema.is_some()
        || r.content_types.is_some()
        || r.unknown_fields.is_some()
        || r.injection.is_some()
        || r.insecure_allow_prototype_keys.is_some();
    if !any {
        return None;
    }
    let at = format!("route[{i}]");
    let unknown = r.unknown_fields.map_or(d.unknown, |k| k.0);
    let mut policy = default_policy(d, max_body).injection(r.injection.map_or(d.injection, |k| k.0));
    let body = r.body_schema.as_ref().and_then(|s| schema(&format!("{at}.body_schema"), s, base, unknown, p));
    match (&r.content_types, &r.body_schema) {
        (Some(types), _) => {
            policy = policy.content_types(media_types(&format!("{at}.content_types"), types, p));
        }
        // A schema describes JSON: other types would skip it.
        (None, Some(_)) => policy = policy.content_types(vec!["application/json".to_owned()]),
        (None, None) => {}
    }
    if r.body_required.is_some() && r.body_schema.is_none() && r.content_types.is_none() {
        p.push(format!("{at}.body_required"), "needs body_schema or content_types");
    }
    if let Some(s) = body {
        policy = policy.body_schema(s, false);
    }
    policy.body_required = r.body_required.unwrap_or(false);
    if r.insecure_allow_prototype_keys == Some(true) {
        policy = policy.insecure_allow_prototype_keys();
    }
    if let Some(s) =
        r.query_schema.as_ref().and_then(|s| schema(&format!("{at}.query_schema"), s, base, unknown, p))
    {
        policy = policy.query_schema(ParamSchema::new(s));
    }
    if let Some(s) =
        r.params_schema.as_ref().and_then(|s| schema(&format!("{at}.params_schema"), s, base, unknown, p))
    {
        policy = policy.params_schema(ParamSchema::new(s));
    }
    // Only the headers a header schema names are validated: closing it would
    // add nothing (the instance holds only those).
    if let Some(s) = r
        .headers_schema
        .as_ref()
        .and_then(|s| schema(&format!("{at}.headers_schema"), s, base, UnknownFields::Allow, p))
    {
        policy = policy.headers_schema(ParamSchema::headers(s));
    }
    if let Some(s) = r
        .cookies_schema
        .as_ref()
        .and_then(|s| schema(&format!("{at}.cookies_schema"), s, base, UnknownFields::Allow, p))
    {
        policy = policy.cookies_schema(ParamSchema::new(s));
    }
    Some(policy)
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let d = &c.input.defaults;
    let _ = writeln!(o, "[input] always on (C17 C18 C19)");
    let _ = writeln!(
        o,
        "  json              strict: duplicate keys refused, depth {}, {} entries, strings {} bytes",
        d.json.max_depth, d.json.max_entries, d.json.max_string_len
    );
    let _ =
        writeln!(o, "  prototype keys    __proto__, constructor, prototype refused in JSON, query and forms");
    let _ = writeln!(
        o,
        "  query, forms      {} parameters; a[]=, a[b]=, repeats refused unless a schema declares an array",
        d.query.max_params
    );
    let _ = writeln!(o, "  encodings         gzip, deflate, br decoded and checked; others 415");
    let _ = writeln!(
        o,
        "  injection         {} unless a route says otherwise (C20)",
        format!("{:?}", d.injection).to_lowercase()
    );
}

/// `; body schema, query schema, json only, injection Block`, or nothing.
pub(super) fn input_summary(p: &portcullis_layers::input::InputPolicy) -> String {
    let mut parts = Vec::new();
    if p.body.is_some() {
        parts.push(if p.body_required {
            "body schema (required)".to_owned()
        } else {
            "body schema".to_owned()
        });
    }
    if p.query_schema.is_some() {
        parts.push("query schema".to_owned());
    }
    if p.params.is_some() {
        parts.push("params schema".to_owned());
    }
    if p.headers.is_some() {
        parts.push("headers schema".to_owned());
    }
    match &p.content_types {
        Some(t) if t.is_empty() => parts.push("no body".to_owned()),
        Some(t) => parts.push(format!("bodies {}", t.join(", "))),
        None => {}
    }
    if !p.json.forbid_prototype_keys {
        parts.push("PROTOTYPE KEYS ALLOWED (insecure)".to_owned());
    }
    if p.injection != portcullis_layers::input::InjectionMode::Off {
        parts.push(format!("injection {}", format!("{:?}", p.injection).to_lowercase()));
    }
    if parts.is_empty() { String::new() } else { format!("; {}", parts.join(", ")) }
}
