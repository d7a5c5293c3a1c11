//! `application/x-www-form-urlencoded` parsing for query strings and form
//! bodies (C17 C18), and the shape rules that stop `qs`-style type confusion.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::shape::{Shape, Shapes};
use super::{Finding, reason};
use crate::json::is_prototype_key;
use crate::path::hex_val;
use crate::rejection::{RejectionKind, Violation};

/// Bounds on a query string or form body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most `name=value` pairs (qs' `parameterLimit` is 1000; Portcullis is stricter).
    pub max_params: usize,
    /// Refuse prototype keys in names (C18).
    pub forbid_prototype_keys: bool,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_params: 100, forbid_prototype_keys: true }
    }
}

/// One decoded `name=value` pair.
pub(crate) type Pair = (String, String);

/// Splits and decodes `a=1&b=2` (`+` is a space, `%XX` a byte). Refuses
/// malformed escapes and non-UTF-8 results (`malformed_encoding`), more than
/// `max_params` pairs, and prototype keys in any bracket or dot segment of a
/// name (`a[__proto__][x]`, `constructor.prototype`), checked after decoding.
pub(crate) fn parse(raw: &[u8], limits: &QueryLimits, root: &'static str) -> Result<Vec<Pair>, Finding> {
    let mut out = Vec::new();
    for piece in raw.split(|b| *b == b'&') {
        if piece.is_empty() {
            continue;
        }
        if out.len() == limits.max_params {
            return Err(Finding::one(
                RejectionKind::MalformedInput,
                Violation::new(root, "", reason::TOO_MANY_PARAMETERS),
            ));
        }
        let (k, v) = match piece.iter().position(|b| *b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &b""[..]),
        };
        let bad = |name: Option<&str>| {
            let v = match name {
                Some(n) => Violation::field(root, n, reason::MALFORMED_ENCODING),
                None => Violation::new(root, "", reason::MALFORMED_ENCODING),
            };
            Finding::one(RejectionKind::MalformedInput, v)
        };
        let key = decode(k).ok_or_else(|| bad(None))?;
        let value = decode(v).ok_or_else(|| bad(Some(&key)))?;
        if limits.forbid_prototype_keys && key.split(['[', ']', '.']).any(is_prototype_key) {
            return Err(Finding::one(
                RejectionKind::PrototypePollution,
                Violation::field(root, &key, reason::PROTOTYPE_KEY),
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Percent-decodes one name or value; `None` for a malformed escape or a
/// result that is not UTF-8.
fn decode(b: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Turns pairs into one JSON object for schema validation, enforcing the
/// shape rules (C17):
/// - `name[]` is the only bracket syntax, and only where `shapes` says the
///   parameter is an array; `a[b]`, `a[0]`, `a][` are `bracket_syntax`.
/// - A repeated name is `repeated_parameter` unless it is an array.
/// - Values are coerced to the scalar type `shapes` declares ("42" to 42
///   for an integer); anything else stays a string, for the schema to judge.
///
/// Without `shapes` (no schema) every parameter is a single string.
pub(crate) fn to_object(
    pairs: Vec<Pair>,
    shapes: Option<&Shapes>,
    root: &'static str,
) -> Result<Value, Finding> {
    let mut grouped: Map<String, Value> = Map::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut violations = Vec::new();
    for (key, value) in pairs {
        let (name, bracketed) = match key.strip_suffix("[]") {
            Some(n) => (n.to_owned(), true),
            None => (key, false),
        };
        if name.contains(['[', ']']) {
            violations.push(Violation::field(root, &name, reason::BRACKET_SYNTAX));
            continue;
        }
        let shape = shapes.and_then(|s| s.get(&name));
        let is_array = shape.is_some_and(|s| s.array);
        if bracketed && !is_array {
            violations.push(Violation::field(root, &name, reason::BRACKET_SYNTAX));
            continue;
        }
        let n = counts.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 && !is_array {
            violations.push(Violation::field(root, &name, reason::REPEATED_PARAMETER));
            continue;
        }
        let v = match shape {
            Some(s) => s.coerce(&value),
            None => Value::String(value),
        };
        if is_array {
            match grouped.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(items) => items.push(v),
                // Only arrays are inserted for array names.
                other => *other = Value::Array(vec![v]),
            }
        } else {
            grouped.insert(name, v);
        }
    }
    if violations.is_empty() {
        Ok(Value::Object(grouped))
    } else {
        violations.dedup();
        Err(Finding { kind: RejectionKind::InvalidInput, violations })
    }
}

/// Coerces one parameter given as a string (path parameter, header).
pub(crate) fn coerce_single(value: &str, shape: Option<&Shape>) -> Value {
    match shape {
        Some(s) if s.array => Value::Array(value.split(',').map(|v| s.coerce(v)).collect()),
        Some(s) => s.coerce(value),
        None => Value::String(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::shape::Scalar;
    use proptest::prelude::*;

    fn q(s: &str) -> Result<Vec<Pair>, Finding> {
        parse(s.as_bytes(), &QueryLimits::default(), "/query")
    }

    fn first(f: Finding) -> (RejectionKind, String, &'static str) {
        (f.kind, f.violations[0].path.clone(), f.violations[0].reason)
    }

    #[test]
    fn c18_prototype_keys_after_decoding() {
        let cases = [
            "__proto__[polluted]=1",
            "a[__proto__][x]=1",
            "constructor[prototype][polluted]=1",
            "%5F_proto__=1",
            "a%5B__proto__%5D=1",
            "constructor.prototype.x=1",
            "x=1&prototype=2",
            "__pro%74o__=1",
        ];
        for c in cases {
            let (kind, _, reason) = first(q(c).unwrap_err());
            assert_eq!((kind, reason), (RejectionKind::PrototypePollution, reason::PROTOTYPE_KEY), "{c}");
        }
        // As values, or inside longer names, they are data.
        assert!(q("q=__proto__&constructors=1&my_prototype=2").is_ok());
    }

    #[test]
    fn c17_decoding_table() {
        assert_eq!(
            q("a=1+2&b=%C3%A9&c&=x").unwrap(),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "\u{e9}".into()),
                ("c".into(), String::new()),
                (String::new(), "x".into()),
            ]
        );
        for bad in ["a=%", "a=%zz", "a=%C3", "%FF=1", "a=%4"] {
            let (kind, _, reason) = first(q(bad).unwrap_err());
            assert_eq!((kind, reason), (RejectionKind::MalformedInput, reason::MALFORMED_ENCODING), "{bad}");
        }
        let many = (0..101).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
        assert_eq!(first(q(&many).unwrap_err()).2, reason::TOO_MANY_PARAMETERS);
    }

    #[test]
    fn c17_shape_rules_without_schema() {
        let obj = |s: &str| to_object(q(s).unwrap(), None, "/query");
        assert_eq!(obj("a=1&b=x").unwrap(), serde_json::json!({"a": "1", "b": "x"}));
        let cases = [
            ("a=1&a=2", "/query/a", reason::REPEATED_PARAMETER),
            ("a[]=1", "/query/a", reason::BRACKET_SYNTAX),
            ("a[b]=1", "/query/*", reason::BRACKET_SYNTAX),
            ("a[0]=1", "/query/*", reason::BRACKET_SYNTAX),
            ("a]=1", "/query/*", reason::BRACKET_SYNTAX),
        ];
        for (c, path, r) in cases {
            let (kind, p, reason) = first(obj(c).unwrap_err());
            assert_eq!((kind, p.as_str(), reason), (RejectionKind::InvalidInput, path, r), "{c}");
        }
    }

    #[test]
    fn c17_shape_rules_with_schema() {
        let mut shapes = Shapes::default();
        shapes.insert("tags", Shape { array: true, scalar: Scalar::String });
        shapes.insert("ids", Shape { array: true, scalar: Scalar::Integer });
        shapes.insert("page", Shape { array: false, scalar: Scalar::Integer });
        shapes.insert("ok", Shape { array: false, scalar: Scalar::Boolean });
        let obj = |s: &str| to_object(q(s).unwrap(), Some(&shapes), "/query");
        assert_eq!(
            obj("tags=a&tags[]=b&ids=1&ids=x&page=042&ok=true").unwrap(),
            serde_json::json!({"tags": ["a", "b"], "ids": [1, "x"], "page": "042", "ok": true})
        );
        assert_eq!(obj("tags=a").unwrap(), serde_json::json!({"tags": ["a"]}));
        assert_eq!(first(obj("page=1&page=2").unwrap_err()).2, reason::REPEATED_PARAMETER);
        assert_eq!(first(obj("page[]=1").unwrap_err()).2, reason::BRACKET_SYNTAX);
        assert_eq!(first(obj("tags[x]=1").unwrap_err()).2, reason::BRACKET_SYNTAX);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(pairs) = parse(&bytes, &QueryLimits::default(), "/query") {
                let _ = to_object(pairs, None, "/query");
            }
        }

        #[test]
        fn encoded_names_round_trip(name in "[a-z_\\[\\]]{1,12}", value in "\\PC{0,12}") {
            let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
            let raw = format!("{}={}", enc(&name), enc(&value));
            match parse(raw.as_bytes(), &QueryLimits::default(), "/query") {
                Ok(pairs) => prop_assert_eq!(pairs, vec![(name, value)]),
                Err(f) => {
                    prop_assert_eq!(f.kind, RejectionKind::PrototypePollution);
                    prop_assert!(name.split(['[', ']', '.']).any(is_prototype_key));
                }
            }
        }
    }
}
