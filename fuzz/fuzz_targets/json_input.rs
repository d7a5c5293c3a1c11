//! The strict JSON parser of the input layer (C17 C18 C19): never panics,
//! and what it accepts is a JSON document serde_json agrees with, with no
//! prototype key and no duplicate key anywhere. The check-only path
//! (`check_strict`, whose fast scan decides every document it passes)
//! decides exactly as the parser does, error and pointer included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_layers::json::{JsonLimits, check_strict, is_prototype_key, parse_strict};
use serde_json::Value;

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
});
