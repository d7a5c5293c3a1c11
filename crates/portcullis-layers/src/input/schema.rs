//! JSON Schema per route (C16 C17), compiled once at startup.
//!
//! - Drafts 2020-12 (the default), 2019-09, 7, 6 and 4 (`$schema` picks;
//!   OpenAPI 3.0 documents use draft 4 semantics, 3.1 use 2020-12).
//! - `$ref`s resolve inside the document only: no network, no files
//!   (the `jsonschema` crate is built without its resolvers), so a schema
//!   can't be turned into an SSRF or a file read.
//! - `pattern` runs on a linear-time regex engine (no catastrophic
//!   backtracking on attacker-chosen strings).
//! - Unknown fields are refused by default: every object schema that lists
//!   `properties` and says nothing about `additionalProperties`,
//!   `patternProperties` or `unevaluatedProperties` gets
//!   `additionalProperties: false` ([`UnknownFields::Reject`]). Subschemas
//!   of `allOf`/`anyOf`/`oneOf`/`not`/`if`/`then`/`else` are left alone
//!   (closing them would refuse the fields of their siblings); a 2019-09
//!   or 2020-12 schema that composes them gets `unevaluatedProperties:
//!   false` instead.
//! - Errors become [`Violation`]s naming the instance location and the
//!   keyword, never the value.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::{Map, Value};

use super::reason;
use crate::config_error::ConfigError;
use crate::json::{SchemaSubset, push_segment, schema_subset};
use crate::rejection::Violation;

/// Which JSON Schema dialect a document is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// From `$schema`; 2020-12 when absent.
    #[default]
    Auto,
    /// JSON Schema 2020-12 (OpenAPI 3.1).
    Draft202012,
    /// JSON Schema draft-07.
    Draft7,
    /// JSON Schema draft-04 (OpenAPI 3.0's base).
    Draft4,
}

/// Whether objects accept properties their schema doesn't list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Closed unless the schema says otherwise (the default, C17).
    #[default]
    Reject,
    /// Open unless the schema says otherwise (JSON Schema's own default).
    Allow,
}

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    validator: Validator,
    /// The document after defaults were applied (for parameter shapes).
    doc: Value,
    /// The same schema as the JSON scan checks it, when it is written in
    /// that subset (issue 16: a body checked without building it).
    subset: Option<SchemaSubset>,
}

impl Schema {
    /// Compiles `doc`. Remote and file `$ref`s are refused here, with the
    /// JSON pointer of the reference.
    pub fn compile(doc: &Value, dialect: Dialect, unknown: UnknownFields) -> Result<Schema, ConfigError> {
        let draft = match dialect {
            Dialect::Draft202012 => Draft::Draft202012,
            Dialect::Draft7 => Draft::Draft7,
            Dialect::Draft4 => Draft::Draft4,
            Dialect::Auto => match doc.get("$schema").and_then(Value::as_str) {
                None => Draft::Draft202012,
                Some(s) if s.contains("2020-12") => Draft::Draft202012,
                Some(s) if s.contains("2019-09") => Draft::Draft201909,
                Some(s) if s.contains("draft-07") => Draft::Draft7,
                Some(s) if s.contains("draft-06") => Draft::Draft6,
                Some(s) if s.contains("draft-04") => Draft::Draft4,
                Some(_) => return Err(ConfigError::new("$schema", "unknown JSON Schema dialect")),
            },
        };
        let mut problems = Vec::new();
        remote_refs(doc, &mut String::new(), &mut problems);
        if let Some(at) = problems.into_iter().next() {
            return Err(ConfigError::new(
                at,
                "only local references (\"#/...\") are allowed; Portcullis never fetches schemas",
            ));
        }
        let mut doc = doc.clone();
        let modern = matches!(draft, Draft::Draft201909 | Draft::Draft202012);
        if unknown == UnknownFields::Reject {
            close_objects(&mut doc, modern, false);
        }
        let validator = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(true)
            .with_pattern_options(PatternOptions::regex())
            .build(&doc)
            .map_err(|e| {
                let at = e.instance_path().as_str().to_owned();
                // The error names the schema's keyword; the schema is ours, not request data.
                ConfigError::new(
                    if at.is_empty() { "/".to_owned() } else { at },
                    format!("invalid schema: {e}"),
                )
            })?;
        let subset = schema_subset(&doc, modern);
        Ok(Schema { validator, doc, subset })
    }

    /// The schema in the subset the JSON scan checks, if it is written in it.
    #[cfg(test)]
    pub(crate) fn subset(&self) -> Option<&SchemaSubset> {
        self.subset.as_ref()
    }

    /// Whether the JSON scan passes `bytes` as a strict document valid
    /// against this schema, without building it: what the input layer
    /// does first with a body. `false` decides nothing (the schema is not
    /// in the scan's subset, or the scan defers): parse and [`check`]
    /// to know. Public for the fuzz target `json_input`.
    ///
    /// [`check`]: Schema::check
    pub fn scan_passes(&self, bytes: &[u8], limits: &crate::json::JsonLimits) -> bool {
        self.subset.as_ref().is_some_and(|n| crate::json::passes_schema_subset(bytes, limits, n))
    }

    /// The document as compiled.
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// Validates `instance`; violations are rooted at `root` (`/body`).
    /// Returns whether it is valid.
    pub fn check(&self, instance: &Value, root: &str, out: &mut Vec<Violation>) -> bool {
        if self.validator.is_valid(instance) {
            return true;
        }
        for e in self.validator.iter_errors(instance).take(crate::rejection::MAX_VIOLATIONS) {
            let at = e.instance_path().as_str();
            match e.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    for name in unexpected {
                        let mut p = Violation::new(root, at, reason::UNKNOWN_FIELD);
                        let field = Violation::field("", name, reason::UNKNOWN_FIELD);
                        p.path.push_str(&field.path);
                        out.push(p);
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let mut p = Violation::new(root, at, reason::REQUIRED);
                    if let Some(name) = property.as_str() {
                        p.path.push_str(&Violation::field("", name, reason::REQUIRED).path);
                    }
                    out.push(p);
                }
                kind => out.push(Violation::new(root, at, keyword_reason(kind))),
            }
        }
        if out.is_empty() {
            out.push(Violation::new(root, "", reason::SCHEMA));
        }
        false
    }
}

/// The fixed reason for a keyword.
fn keyword_reason(kind: &ValidationErrorKind) -> &'static str {
    use ValidationErrorKind as K;
    match kind {
        K::Type { .. } => "type",
        K::Enum { .. } => "enum",
        K::Constant { .. } => "const",
        K::Format { .. } => "format",
        K::Pattern { .. } | K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => "pattern",
        K::Minimum { .. } | K::ExclusiveMinimum { .. } => "minimum",
        K::Maximum { .. } | K::ExclusiveMaximum { .. } => "maximum",
        K::MinLength { .. } => "min_length",
        K::MaxLength { .. } => "max_length",
        K::MinItems { .. } => "min_items",
        K::MaxItems { .. } | K::AdditionalItems { .. } | K::UnevaluatedItems { .. } => "max_items",
        K::MinProperties { .. } => "min_properties",
        K::MaxProperties { .. } => "max_properties",
        K::UniqueItems => "unique_items",
        K::MultipleOf { .. } => "multiple_of",
        K::AnyOf { .. } => "any_of",
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => "one_of",
        K::Not { .. } | K::FalseSchema => "not_allowed",
        K::Contains => "contains",
        K::PropertyNames { .. } => "property_names",
        _ => reason::SCHEMA,
    }
}

/// Collects JSON pointers of `$ref`s that leave the document.
fn remote_refs(v: &Value, at: &mut String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = at.len();
                push_segment(at, k);
                if (k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef")
                    && child.as_str().is_some_and(|r| !r.starts_with('#'))
                {
                    out.push(at.clone());
                }
                remote_refs(child, at, out);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                remote_refs(child, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

const COMPOSITION: &[&str] = &["allOf", "anyOf", "oneOf", "not", "if", "then", "else"];
const OPENNESS: &[&str] = &["additionalProperties", "patternProperties", "unevaluatedProperties"];

/// Applies [`UnknownFields::Reject`] (see the module docs). `in_branch`:
/// this schema is a branch of a composition.
fn close_objects(v: &mut Value, unevaluated: bool, in_branch: bool) {
    let Value::Object(m) = v else { return };
    let composes = COMPOSITION.iter().any(|k| m.contains_key(*k));
    let says = OPENNESS.iter().any(|k| m.contains_key(*k));
    let objectish = |s: &Value| s.get("properties").is_some() || s.get("type").is_some_and(|t| t == "object");
    let branch_is_object = ["allOf", "anyOf", "oneOf"]
        .iter()
        .filter_map(|k| m.get(*k).and_then(Value::as_array))
        .flatten()
        .any(objectish);
    let is_object =
        m.contains_key("properties") || m.get("type").is_some_and(|t| t == "object") || branch_is_object;
    if !says && !in_branch && is_object {
        if composes {
            if unevaluated {
                m.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
        } else if m.contains_key("properties") {
            m.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    for (k, child) in m.iter_mut() {
        let branch = COMPOSITION.contains(&k.as_str());
        match (k.as_str(), child) {
            // Keyword maps: their values are schemas.
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                Value::Object(map),
            ) => {
                close_map(map, unevaluated);
            }
            (_, Value::Array(items)) if branch || k == "prefixItems" || k == "items" => {
                for item in items {
                    close_objects(item, unevaluated, branch);
                }
            }
            (
                "items"
                | "additionalItems"
                | "contains"
                | "additionalProperties"
                | "unevaluatedProperties"
                | "propertyNames"
                | "unevaluatedItems"
                | "not"
                | "if"
                | "then"
                | "else",
                child @ Value::Object(_),
            ) => close_objects(child, unevaluated, branch),
            // Schemas under other keys (components, x-extensions) are reached
            // through $ref; close them as top-level schemas.
            ("components", Value::Object(map)) => {
                for (_, section) in map.iter_mut() {
                    if let Value::Object(s) = section {
                        close_map(s, unevaluated);
                    }
                }
            }
            _ => {}
        }
    }
}

fn close_map(map: &mut Map<String, Value>, unevaluated: bool) {
    for (_, schema) in map.iter_mut() {
        close_objects(schema, unevaluated, false);
    }
}

#[cfg(test)]
#[path = "subset_tests.rs"]
mod subset_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn violations(schema: &Schema, v: Value) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        schema.check(&v, "/body", &mut out);
        out.into_iter().map(|v| (v.path, v.reason)).collect()
    }

    fn user() -> Value {
        json!({
            "type": "object",
            "required": ["email"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
                "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}
            }
        })
    }

    #[test]
    fn c16_c17_rules_table() {
        let s = Schema::compile(&user(), Dialect::Auto, UnknownFields::Reject).unwrap();
        assert!(violations(&s, json!({"email": "a@example.com", "age": 3, "tags": ["x"]})).is_empty());
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (json!({}), vec![("/body/email", "required")]),
            (json!({"email": "a@example.com", "age": "3"}), vec![("/body/age", "type")]),
            (json!({"email": "a@example.com", "tags": "x"}), vec![("/body/tags", "type")]),
            (json!({"email": ["a@example.com"]}), vec![("/body/email", "type")]),
            (json!({"email": "not an email"}), vec![("/body/email", "format")]),
            (json!({"email": "a@example.com", "age": -1}), vec![("/body/age", "minimum")]),
            (json!({"email": "a@example.com", "isAdmin": true}), vec![("/body/isAdmin", "unknown_field")]),
            (
                json!({"email": "a@example.com", "address": {"zip": "1", "role": "admin"}}),
                vec![("/body/address/role", "unknown_field"), ("/body/address/zip", "pattern")],
            ),
            (json!([1]), vec![("/body", "type")]),
        ];
        for (doc, want) in cases {
            let mut got = violations(&s, doc.clone());
            got.sort();
            let mut want: Vec<(String, &str)> = want.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
            want.sort();
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn c19_violations_never_carry_values() {
        let s = Schema::compile(&user(), Dialect::Auto, UnknownFields::Reject).unwrap();
        let v = violations(&s, json!({"email": "<script>x</script>", "<img onerror=x>": 1}));
        let text = format!("{v:?}");
        assert!(!text.contains("script") && !text.contains("onerror"), "{text}");
    }

    #[test]
    fn c17_unknown_fields_opt_out_and_explicit_schemas() {
        let s = Schema::compile(&user(), Dialect::Auto, UnknownFields::Allow).unwrap();
        assert!(violations(&s, json!({"email": "a@example.com", "extra": 1})).is_empty());
        // A schema that says additionalProperties keeps its word.
        let open =
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "integer"}});
        let s = Schema::compile(&open, Dialect::Auto, UnknownFields::Reject).unwrap();
        assert!(violations(&s, json!({"b": 1})).is_empty());
        assert_eq!(violations(&s, json!({"b": "x"})), vec![("/body/b".to_owned(), "type")]);
    }

    #[test]
    fn c17_composition_is_closed_with_unevaluated_properties() {
        let doc = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"type": "object", "properties": {"b": {"type": "string"}}}
            ]
        });
        let s = Schema::compile(&doc, Dialect::Auto, UnknownFields::Reject).unwrap();
        assert!(violations(&s, json!({"a": "x", "b": "y"})).is_empty());
        assert_eq!(violations(&s, json!({"a": "x", "c": 1})), vec![("/body/c".to_owned(), "unknown_field")]);
    }

    #[test]
    fn draft7_and_local_refs() {
        let doc = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"id": {"type": "integer"}},
            "type": "object",
            "properties": {"id": {"$ref": "#/definitions/id"}}
        });
        let s = Schema::compile(&doc, Dialect::Auto, UnknownFields::Reject).unwrap();
        assert!(violations(&s, json!({"id": 1})).is_empty());
        assert_eq!(violations(&s, json!({"id": "1"})), vec![("/body/id".to_owned(), "type")]);
        assert_eq!(violations(&s, json!({"x": 1})), vec![("/body/x".to_owned(), "unknown_field")]);
    }

    #[test]
    fn remote_refs_are_refused_at_compile_time() {
        for r in ["https://evil.test/schema.json", "file:///etc/passwd", "other.json#/a"] {
            let doc = json!({"properties": {"a": {"$ref": r}}});
            let e = Schema::compile(&doc, Dialect::Auto, UnknownFields::Reject).unwrap_err();
            assert_eq!(e.at, "/properties/a/$ref", "{r}");
        }
        let bad = json!({"type": "no-such-type"});
        assert!(Schema::compile(&bad, Dialect::Auto, UnknownFields::Reject).is_err());
        let e = Schema::compile(
            &json!({"$schema": "https://example.test/mine"}),
            Dialect::Auto,
            UnknownFields::Reject,
        )
        .unwrap_err();
        assert_eq!(e.at, "$schema");
    }

    #[test]
    fn patterns_run_in_linear_time() {
        // (a+)+$ is the classic catastrophic-backtracking pattern.
        let doc = json!({"type": "string", "pattern": "^(a+)+$"});
        let s = Schema::compile(&doc, Dialect::Auto, UnknownFields::Reject).unwrap();
        let evil = format!("{}!", "a".repeat(10_000));
        assert_eq!(violations(&s, json!(evil)), vec![("/body".to_owned(), "pattern")]);
    }
}
