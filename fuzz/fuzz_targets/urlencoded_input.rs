//! Query-string and form hardening (C17 C18): never panics, and an
//! accepted input has no prototype key in any bracket or dot segment and
//! no repeated or bracketed name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_layers::input::{QueryLimits, parse_urlencoded};
use portcullis_layers::json::is_prototype_key;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_urlencoded(data, &QueryLimits::default()) {
        for (k, value) in v.as_object().expect("an object") {
            assert!(!k.split(['[', ']', '.']).any(is_prototype_key), "prototype key accepted");
            assert!(!k.contains('[') && !k.contains(']'), "bracket syntax accepted");
            assert!(value.is_string(), "no arrays or objects without a schema");
        }
    }
});
