//! The strict JSON parser of the input layer (C17 C18 C19): never panics,
//! and what it accepts is a JSON document serde_json agrees with, with no
//! prototype key and no duplicate key anywhere. The check-only path
//! (`check_strict`, whose fast scan decides every document it passes)
//! decides exactly as the parser does, error and pointer included. What
//! the scan passes against a schema in its subset (`Schema::scan_passes`),
//! the parser accepts and `jsonschema` finds valid.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_layers::input::{Dialect, Schema, UnknownFields};
use portcullis_layers::json::{JsonLimits, check_strict, is_prototype_key, parse_strict};
use serde_json::{Value, json};

/// Schemas of the scan's subset, in three dialects and both
/// unknown-field modes.
fn schemas() -> &'static [Schema] {
    static SCHEMAS: OnceLock<Vec<Schema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let docs = [
            json!({"type": "object", "required": ["a"], "properties": {
                "a": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
                    "s": {"type": "string", "minLength": 1, "maxLength": 4}, "n": {"type": "integer", "minimum": -2, "maximum": 9}}}},
                "b": {"type": ["string", "null"]}, "c": {"type": "number"}, "d": {"type": "boolean"}}}),
            json!({"type": "array", "minItems": 1, "items": {"type": "integer", "maximum": 100}}),
            json!({"properties": {"x": {}, "y": {"maxLength": 2}}, "additionalProperties": true}),
        ];
        let mut out = Vec::new();
        for doc in &docs {
            for dialect in [Dialect::Auto, Dialect::Draft7, Dialect::Draft4] {
                for unknown in [UnknownFields::Reject, UnknownFields::Allow] {
                    out.push(Schema::compile(doc, dialect, unknown).expect("a valid schema"));
                }
            }
        }
        out
    })
}

fn keys_ok(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().all(|(k, v)| !is_prototype_key(k) && keys_ok(v)),
        Value::Array(a) => a.iter().all(keys_ok),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_strict(data, &JsonLimits::default());
    assert_eq!(check_strict(data, &JsonLimits::default()), parsed.as_ref().map(|_| ()).map_err(Clone::clone));
    if let Ok(v) = parsed {
        assert!(keys_ok(&v), "a prototype key was accepted");
        let reference: Value = serde_json::from_slice(data).expect("accepted, so serde_json parses it too");
        assert_eq!(v, reference);
    }
    for s in schemas() {
        if s.scan_passes(data, &JsonLimits::default()) {
            let v = parse_strict(data, &JsonLimits::default()).expect("the scan passed it, so the parser accepts it");
            assert!(s.check(&v, "/body", &mut Vec::new()), "the scan passed what jsonschema refuses");
        }
    }
});
