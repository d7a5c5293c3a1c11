//! The schema subset the JSON scan checks (`json/subset.rs`, issue 16)
//! against `jsonschema` (C16 C17): whatever the scan passes, the parser
//! accepts and `jsonschema` finds valid, on random schemas of the subset
//! and random documents, in every dialect and both unknown-field modes;
//! and valid documents are passed by the scan, so the fast path is taken.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Dialect, Schema, UnknownFields};
use crate::json::{JsonLimits, parse_strict, passes_schema_subset};

const NAMES: [&str; 5] = ["a", "b", "cc", "\u{e9}", "d\\"];

fn name() -> impl Strategy<Value = String> {
    proptest::sample::select(&NAMES[..]).prop_map(str::to_owned)
}

fn leaf_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        (proptest::option::of(0u64..4), proptest::option::of(0u64..4)).prop_map(|(min, max)| {
            let mut s = json!({"type": "string"});
            if let Some(m) = min {
                s["minLength"] = json!(m);
            }
            if let Some(m) = max {
                s["maxLength"] = json!(m);
            }
            s
        }),
        (proptest::option::of(-3i64..4), proptest::option::of(-3i64..4)).prop_map(|(min, max)| {
            let mut s = json!({"type": "integer"});
            if let Some(m) = min {
                s["minimum"] = json!(m);
            }
            if let Some(m) = max {
                s["maximum"] = json!(m);
            }
            s
        }),
        Just(json!({"type": "number", "maximum": 2})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"type": ["string", "null"], "maxLength": 2})),
        Just(json!({"type": ["integer", "boolean"]})),
        Just(json!({"maxLength": 1, "minItems": 1, "minimum": 0})),
        Just(json!({})),
        Just(json!({"title": "t", "description": "d"})),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf_schema().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                proptest::collection::btree_map(name(), inner.clone(), 0..4),
                proptest::collection::vec(name(), 0..3),
                proptest::option::of(any::<bool>()),
                any::<bool>(),
            )
                .prop_map(|(props, req, additional, typed)| {
                    let mut s = json!({"properties": props});
                    let mut req: Vec<String> = req.into_iter().filter(|r| props.contains_key(r)).collect();
                    req.dedup();
                    if !req.is_empty() {
                        s["required"] = json!(req);
                    }
                    if let Some(a) = additional {
                        s["additionalProperties"] = json!(a);
                    }
                    if typed {
                        s["type"] = json!("object");
                    }
                    s
                }),
            (inner, proptest::option::of(0u64..3), proptest::option::of(0u64..4)).prop_map(
                |(items, min, max)| {
                    let mut s = json!({"type": "array", "items": items});
                    if let Some(m) = min {
                        s["minItems"] = json!(m);
                    }
                    if let Some(m) = max {
                        s["maxItems"] = json!(m);
                    }
                    s
                }
            ),
        ]
    })
}

/// Document text: values near every bound of the schemas above, numbers
/// written with fractions and exponents, strings with escapes and
/// non-ASCII characters, keys written escaped.
fn leaf_doc() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        proptest::sample::select(
            &[
                "-4",
                "-3",
                "-1",
                "0",
                "-0",
                "1",
                "2",
                "3",
                "4",
                "1.0",
                "1.5",
                "2e0",
                "1E-1",
                "12345678901234567890",
                "-9223372036854775809"
            ][..]
        )
        .prop_map(str::to_owned),
        proptest::sample::select(
            &[
                "\"\"",
                "\"a\"",
                "\"ab\"",
                "\"abc\"",
                "\"abcd\"",
                "\"\u{e9}\"",
                "\"a\u{e9}\"",
                "\"\\n\"",
                "\"\\u0061b\"",
                "\"\\ud83d\\ude00\"",
                "\"\\ud83d\\ude00\\ud83d\\ude00\""
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn doc() -> impl Strategy<Value = String> {
    let leaf = leaf_doc();
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((name(), any::<bool>(), inner), 0..4).prop_map(|entries| {
                let body: Vec<String> = entries
                    .into_iter()
                    .map(|(k, escaped, v)| {
                        let key = serde_json::to_string(&k).unwrap_or_default();
                        // `\u0061` for `a`: the same key, written escaped.
                        let key = if escaped { key.replacen('a', "\\u0061", 1) } else { key };
                        format!("{key}:{v}")
                    })
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn dialects() -> [(Dialect, UnknownFields); 6] {
    [
        (Dialect::Auto, UnknownFields::Reject),
        (Dialect::Auto, UnknownFields::Allow),
        (Dialect::Draft7, UnknownFields::Reject),
        (Dialect::Draft7, UnknownFields::Allow),
        (Dialect::Draft4, UnknownFields::Reject),
        (Dialect::Draft4, UnknownFields::Allow),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// What the scan passes against a schema, the parser accepts and
    /// `jsonschema` finds valid (the other way round is only slower).
    #[test]
    fn subset_passes_only_what_jsonschema_finds_valid(schema in schema(), text in doc()) {
        let limits = JsonLimits::default();
        for (dialect, unknown) in dialects() {
            let s = Schema::compile(&schema, dialect, unknown).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let Some(subset) = s.subset() else { continue };
            if passes_schema_subset(text.as_bytes(), &limits, subset) {
                let value = parse_strict(text.as_bytes(), &limits);
                prop_assert!(value.is_ok(), "{text} against {schema} ({dialect:?})");
                let mut out = Vec::new();
                prop_assert!(
                    s.check(&value.unwrap_or_default(), "/body", &mut out),
                    "{text} against {schema} ({dialect:?}, {unknown:?}): {out:?}"
                );
            }
        }
    }
}

/// The same property where a random document meets its schema more
/// often: a scalar schema against a scalar, at the root and as a property.
fn holds_for(schema: &Value, text: &str) -> Result<(), TestCaseError> {
    let limits = JsonLimits::default();
    for (dialect, unknown) in dialects() {
        let s =
            Schema::compile(schema, dialect, unknown).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let subset = s.subset().ok_or_else(|| TestCaseError::fail(format!("{schema} is in the subset")))?;
        if passes_schema_subset(text.as_bytes(), &limits, subset) {
            let value = parse_strict(text.as_bytes(), &limits).unwrap_or_default();
            let mut out = Vec::new();
            prop_assert!(
                s.check(&value, "/body", &mut out),
                "{text} against {schema} ({dialect:?}): {out:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn subset_decides_scalars_as_jsonschema(schema in leaf_schema(), text in leaf_doc()) {
        holds_for(&schema, &text)?;
        holds_for(&json!({"type": "object", "properties": {"a": schema.clone()}}), &format!("{{\"a\":{text}}}"))?;
        holds_for(&json!({"type": "array", "items": schema}), &format!("[{text},{text}]"))?;
    }
}

/// Every schema the generator makes is in the subset (so the property
/// above checks the scan, not the fallback), and valid documents pass.
#[test]
fn subset_takes_the_schemas_it_lists_and_passes_valid_documents() {
    let limits = JsonLimits::default();
    let cases = [
        (
            json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
                "type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "maxLength": 2000}, "n": {"type": "integer"}}}}}}),
            r#"{"items":[{"name":"a","n":12345},{"name":"b"},{"n":-1,"name":"c"}]}"#,
        ),
        (
            json!({"type": "object", "properties": {"tags": {"type": "array", "minItems": 1, "maxItems": 2,
                "items": {"type": "string", "minLength": 1, "maxLength": 3}}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "ok": {"type": ["boolean", "null"]}, "x": {"type": "number"}}}),
            r#"{ "tags" : ["ab", "c"], "age": 150, "ok": null, "x": 1.5e3 }"#,
        ),
        (json!({"type": "array", "items": {"type": "integer", "minimum": -5}}), "[-5, 0, 9223372036854775]"),
        (
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "t", "type": "string"}),
            r#""x""#,
        ),
    ];
    for (schema, text) in cases {
        for (dialect, unknown) in dialects() {
            let s = Schema::compile(&schema, dialect, unknown).unwrap_or_else(|e| panic!("{e:?}"));
            let subset = s.subset().unwrap_or_else(|| panic!("{schema} ({dialect:?}) is in the subset"));
            assert!(passes_schema_subset(text.as_bytes(), &limits, subset), "{text} against {schema}");
        }
    }
}

/// The cases the scan must not pass although the bytes look right:
/// lengths in characters, integers as each draft reads them.
#[test]
fn subset_does_not_pass_what_jsonschema_refuses() {
    let limits = JsonLimits::default();
    let cases = [
        (json!({"type": "string", "minLength": 2}), r#""\ud83d\ude00""#),
        (json!({"type": "string", "minLength": 2}), "\"\u{e9}\""),
        (json!({"type": "string", "maxLength": 1}), r#""\u0061b""#),
        (json!({"type": "integer"}), "1.5"),
        (json!({"type": "integer"}), "-0.5"),
        (json!({"type": "integer", "maximum": 5}), "6"),
        (json!({"type": "integer", "minimum": -5}), "-6"),
        (json!({"type": "object", "required": ["a"], "properties": {"a": {}}}), "{}"),
        (json!({"type": "object", "required": ["a"], "properties": {"a": {}}}), r#"{"b":1}"#),
        (json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false}), r#"{"b":1}"#),
        (json!({"type": "array", "minItems": 1}), "[]"),
        (json!({"type": "array", "maxItems": 1}), "[1,2]"),
        (json!({"type": "array", "items": {"type": "string"}}), r#"["a",1]"#),
        (json!({"type": ["string", "null"]}), "true"),
    ];
    for (schema, text) in cases {
        for (dialect, unknown) in dialects() {
            let s = Schema::compile(&schema, dialect, unknown).unwrap_or_else(|e| panic!("{e:?}"));
            let subset = s.subset().unwrap_or_else(|| panic!("{schema} is in the subset"));
            assert!(!passes_schema_subset(text.as_bytes(), &limits, subset), "{text} against {schema}");
            let value = parse_strict(text.as_bytes(), &limits).unwrap_or_default();
            assert!(!s.check(&value, "/body", &mut Vec::new()), "{text} against {schema}: jsonschema agrees");
        }
    }
    // Draft 4 reads `1.0` and `-0` as numbers, not integers; the scan
    // passes neither as an integer in any draft.
    for text in ["1.0", "-0"] {
        let s = Schema::compile(&json!({"type": "integer"}), Dialect::Draft4, UnknownFields::Reject)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!passes_schema_subset(
            text.as_bytes(),
            &limits,
            s.subset().unwrap_or_else(|| panic!("in the subset"))
        ));
        let value = parse_strict(text.as_bytes(), &limits).unwrap_or_default();
        assert!(!s.check(&value, "/body", &mut Vec::new()), "{text}: draft 4 refuses it");
    }
}

/// `unevaluatedProperties: false` written by the user (2020-12, no
/// composition) closes the object as `additionalProperties: false` does;
/// an empty schema (`{}`, or `true`) takes any value, objects with any
/// keys included.
#[test]
fn subset_reads_unevaluated_properties_and_empty_schemas() {
    let limits = JsonLimits::default();
    let closed = json!({"type": "object", "properties": {"a": {}}, "unevaluatedProperties": false});
    let s = Schema::compile(&closed, Dialect::Auto, UnknownFields::Allow).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.subset().is_some());
    assert!(!s.scan_passes(br#"{"a":1,"b":2}"#, &limits));
    assert!(!s.check(&json!({"a": 1, "b": 2}), "/body", &mut Vec::new()), "jsonschema agrees");
    assert!(s.scan_passes(br#"{"a":{"x":[1,{"y":null}]}}"#, &limits));
    let open = json!({"properties": {"a": {}, "t": true}});
    let s = Schema::compile(&open, Dialect::Auto, UnknownFields::Allow).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.scan_passes(br#"{"a":{"x":1},"t":{"y":2},"b":{"c":"d"}}"#, &limits));
}

/// Keywords outside the subset anywhere leave the whole schema to
/// `jsonschema`; so do forms of listed keywords the scan does not check.
#[test]
fn subset_leaves_every_other_keyword_to_jsonschema() {
    for schema in [
        json!({"type": "string", "format": "email"}),
        json!({"type": "string", "pattern": "^a$"}),
        json!({"enum": ["a"]}),
        json!({"const": 1}),
        json!({"properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"type": "string"}}}),
        json!({"allOf": [{"type": "object"}]}),
        json!({"type": "object", "properties": {"a": {"type": "integer", "exclusiveMinimum": 0}}}),
        json!({"type": "integer", "multipleOf": 2}),
        json!({"type": "number", "minimum": 0.5}),
        json!({"type": "array", "items": [{"type": "string"}]}),
        json!({"type": "array", "uniqueItems": true}),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
        json!({"type": "object", "required": ["a"]}),
        json!({"type": "object", "patternProperties": {"^a": {}}}),
        json!({"type": "object", "propertyNames": {"maxLength": 3}}),
        json!({"type": "object", "properties": {"a": {"type": "string", "nullable": true}}}),
        json!({"type": "object", "properties": {"a": false}}),
    ] {
        for (dialect, unknown) in dialects() {
            let Ok(s) = Schema::compile(&schema, dialect, unknown) else { continue };
            assert!(s.subset().is_none(), "{schema} ({dialect:?}) is not in the subset");
        }
    }
}
