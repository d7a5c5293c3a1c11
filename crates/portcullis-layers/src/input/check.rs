//! The pure decisions of the input layer: the request head (query, path
//! parameters, headers, media type), then the body bytes.

use http::request::Parts;
use serde_json::{Map, Value};

use super::media::{self, BodyKind, DecodeError, Encoding, MediaError};
use super::query::{self, coerce_single};
use super::{Finding, InjectionClass, InjectionMode, InputPolicy, ParamSchema, detect, reason};
use crate::json::{JsonError, check_strict, parse_strict, push_segment};
use crate::rejection::{RejectionKind, Violation};
use crate::route::MatchedRoute;

/// What the head says about the body, for the body check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyPlan {
    pub(crate) kind: BodyKind,
    pub(crate) encoding: Encoding,
}

impl BodyPlan {
    /// Whether the body must be read before forwarding.
    pub(crate) fn buffers(&self) -> bool {
        self.kind != BodyKind::Other || self.encoding != Encoding::Identity
    }
}

/// Injection findings in report mode: (location, class).
pub(crate) type Reports = Vec<(String, InjectionClass)>;

/// Checks everything but the body. `has_body`: the request carries one.
/// Returns the plan for the body (`None`: no body to check).
pub(crate) fn head(
    policy: &InputPolicy,
    parts: &Parts,
    has_body: bool,
    reports: &mut Reports,
) -> Result<Option<BodyPlan>, Finding> {
    let matched = parts.extensions.get::<MatchedRoute>();
    if let Some(q) = parts.uri.query() {
        let pairs = query::parse(q.as_bytes(), &policy.query, "/query")?;
        let shapes = policy.query_schema.as_ref().map(|s| &s.shapes);
        let obj = query::to_object(pairs, shapes, "/query")?;
        validate(policy.query_schema.as_ref(), &obj, "/query")?;
        scan(policy.injection, &obj, "/query", reports)?;
    } else if let Some(s) = &policy.query_schema {
        validate(Some(s), &Value::Object(Map::new()), "/query")?;
    }
    if policy.params.is_some() || policy.injection != InjectionMode::Off {
        let mut obj = Map::new();
        for (name, value) in matched.into_iter().flat_map(MatchedRoute::params) {
            match value {
                Some(v) => {
                    let shape = policy.params.as_ref().and_then(|s| s.shapes.get(name));
                    obj.insert(name.to_owned(), coerce_single(v, shape));
                }
                // Not UTF-8 once decoded: a schema can't judge it.
                None if policy.params.is_some() => {
                    return Err(Finding::one(
                        RejectionKind::MalformedInput,
                        Violation::field("/params", name, reason::MALFORMED_ENCODING),
                    ));
                }
                None => {}
            }
        }
        let obj = Value::Object(obj);
        validate(policy.params.as_ref(), &obj, "/params")?;
        scan(policy.injection, &obj, "/params", reports)?;
    }
    if let Some(s) = &policy.headers {
        let mut obj = Map::new();
        // The schema's own spelling of each name; the lookup ignores case.
        for name in s.property_names() {
            let mut values = parts.headers.get_all(name).iter();
            let Some(v) = values.next() else { continue };
            if values.next().is_some() {
                return Err(Finding::one(
                    RejectionKind::InvalidInput,
                    Violation::field("/headers", name, reason::REPEATED_PARAMETER),
                ));
            }
            let Ok(v) = v.to_str() else {
                return Err(Finding::one(
                    RejectionKind::MalformedInput,
                    Violation::field("/headers", name, reason::MALFORMED_ENCODING),
                ));
            };
            obj.insert(name.to_owned(), coerce_single(v, s.shapes.get(name)));
        }
        let obj = Value::Object(obj);
        validate(Some(s), &obj, "/headers")?;
        scan(policy.injection, &obj, "/headers", reports)?;
    }
    if let Some(s) = &policy.cookies {
        let mut obj = Map::new();
        for (name, value) in cookies(&parts.headers)? {
            if s.shapes.get(name).is_none() {
                continue;
            }
            if obj.insert(name.to_owned(), coerce_single(value, s.shapes.get(name))).is_some() {
                return Err(Finding::one(
                    RejectionKind::InvalidInput,
                    Violation::field("/cookies", name, reason::REPEATED_PARAMETER),
                ));
            }
        }
        let obj = Value::Object(obj);
        validate(Some(s), &obj, "/cookies")?;
        scan(policy.injection, &obj, "/cookies", reports)?;
    }

    if !has_body {
        if policy.body_required {
            return Err(Finding::one(
                RejectionKind::InvalidInput,
                Violation::new("/body", "", reason::REQUIRED),
            ));
        }
        return Ok(None);
    }
    let unsupported =
        |r: &'static str| Finding::one(RejectionKind::UnsupportedMediaType, Violation::new("/body", "", r));
    let media = match media::content_type(&parts.headers) {
        Ok(m) => m,
        Err(MediaError::Charset) => return Err(unsupported(reason::CHARSET)),
        Err(_) => return Err(unsupported(reason::CONTENT_TYPE)),
    };
    let kind = match &media {
        Some(m) if policy.accepts(&m.essence) => m.kind,
        None if policy.content_types.is_none() => BodyKind::Other,
        _ => return Err(unsupported(reason::CONTENT_TYPE)),
    };
    let encoding =
        media::content_encoding(&parts.headers).map_err(|_| unsupported(reason::CONTENT_ENCODING))?;
    Ok(Some(BodyPlan { kind, encoding }))
}

/// Checks a body read whole; `raw` is as received (maybe compressed).
pub(crate) fn body(
    policy: &InputPolicy,
    plan: BodyPlan,
    raw: &[u8],
    reports: &mut Reports,
) -> Result<(), Finding> {
    let decoded;
    let bytes = if plan.encoding == Encoding::Identity {
        raw
    } else {
        decoded = media::decode(raw, plan.encoding, policy.max_body).map_err(|e| match e {
            DecodeError::TooLarge => Finding { kind: RejectionKind::BodyTooLarge, violations: Vec::new() },
            DecodeError::Corrupt => Finding::one(
                RejectionKind::MalformedInput,
                Violation::new("/body", "", reason::MALFORMED_ENCODING),
            ),
        })?;
        &decoded[..]
    };
    let value = match plan.kind {
        BodyKind::Other => return Ok(()),
        // Nothing will look into the document: check it without building
        // it (the same refusals; issue 16).
        BodyKind::Json if policy.body.is_none() && policy.injection == InjectionMode::Off => {
            return check_strict(bytes, &policy.json).map_err(json_finding);
        }
        // A schema the scan can check: passed without building the
        // document; anything else, or a document it does not pass, is
        // parsed and validated below, which decides and says why.
        BodyKind::Json
            if policy.injection == InjectionMode::Off
                && policy.body.as_ref().is_some_and(|s| s.schema.scan_passes(bytes, &policy.json)) =>
        {
            return Ok(());
        }
        BodyKind::Json => parse_strict(bytes, &policy.json).map_err(json_finding)?,
        BodyKind::Form => {
            let pairs = query::parse(bytes, &policy.query, "/body")?;
            query::to_object(pairs, policy.body.as_ref().map(|s| &s.shapes), "/body")?
        }
    };
    validate(policy.body.as_ref(), &value, "/body")?;
    scan(policy.injection, &value, "/body", reports)
}

/// The `name=value` pairs of every `Cookie` field (RFC 6265: `; `
/// separated, values optionally in double quotes, which are removed).
fn cookies(headers: &http::HeaderMap) -> Result<Vec<(&str, &str)>, Finding> {
    let mut out = Vec::new();
    for v in headers.get_all(http::header::COOKIE) {
        let Ok(v) = v.to_str() else {
            return Err(Finding::one(
                RejectionKind::MalformedInput,
                Violation::new("/cookies", "", reason::MALFORMED_ENCODING),
            ));
        };
        for pair in v.split(';') {
            let pair = pair.trim();
            let Some((name, value)) = pair.split_once('=') else { continue };
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            out.push((name.trim(), value));
        }
    }
    Ok(out)
}

fn json_finding(e: JsonError) -> Finding {
    let ptr = e.pointer().filter(|p| *p != "/").unwrap_or("");
    let (kind, r) = match e {
        JsonError::PrototypeKey(_) => (RejectionKind::PrototypePollution, reason::PROTOTYPE_KEY),
        JsonError::DuplicateKey(_) => (RejectionKind::MalformedInput, reason::DUPLICATE_KEY),
        JsonError::TooDeep(_) => (RejectionKind::MalformedInput, reason::TOO_DEEP),
        JsonError::TooManyEntries => (RejectionKind::MalformedInput, reason::TOO_MANY_ENTRIES),
        JsonError::StringTooLong(_) => (RejectionKind::MalformedInput, reason::STRING_TOO_LONG),
        _ => (RejectionKind::MalformedInput, reason::MALFORMED_JSON),
    };
    Finding::one(kind, Violation::new("/body", ptr, r))
}

fn validate(schema: Option<&ParamSchema>, value: &Value, root: &str) -> Result<(), Finding> {
    let Some(s) = schema else { return Ok(()) };
    let mut violations = Vec::new();
    if s.schema.check(value, root, &mut violations) {
        Ok(())
    } else {
        Err(Finding { kind: RejectionKind::InvalidInput, violations })
    }
}

/// Scans every string (values and keys) for injection payloads.
fn scan(mode: InjectionMode, value: &Value, root: &str, reports: &mut Reports) -> Result<(), Finding> {
    if mode == InjectionMode::Off {
        return Ok(());
    }
    let mut found = Vec::new();
    walk(value, &mut String::new(), &mut found);
    if found.is_empty() {
        return Ok(());
    }
    let violations: Vec<Violation> = found.iter().map(|(p, c)| Violation::new(root, p, c.reason())).collect();
    if mode == InjectionMode::Block {
        return Err(Finding { kind: RejectionKind::InjectionDetected, violations });
    }
    reports.extend(violations.into_iter().zip(found).map(|(v, (_, c))| (v.path, c)));
    Ok(())
}

fn walk(v: &Value, at: &mut String, out: &mut Vec<(String, InjectionClass)>) {
    if out.len() >= crate::rejection::MAX_VIOLATIONS {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(c) = detect(s) {
                out.push((at.clone(), c));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                walk(item, at, out);
                at.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                let len = at.len();
                push_segment(at, k);
                if let Some(c) = detect(k) {
                    out.push((at.clone(), c));
                }
                walk(item, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}
