//! What a parameter schema says about each name: array or not, and the
//! scalar type a string value is coerced to before validation.
//!
//! Query strings, path parameters and headers carry only strings; a schema
//! that says `integer` means "a string spelling an integer". The coercion
//! is strict: `42` and `-7` are integers, `042`, `4e1`, ` 42` and `0x2a`
//! are not (they stay strings and fail the schema's `type`).

use std::collections::HashMap;

use serde_json::Value;

/// The scalar type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// Kept as a string.
    String,
    /// `-?(0|[1-9][0-9]*)`, fitting an i64.
    Integer,
    /// A JSON number spelling.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// One parameter's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The schema allows (requires) an array.
    pub(crate) array: bool,
    /// The scalar (array items for arrays).
    pub(crate) scalar: Scalar,
}

impl Shape {
    /// Coerces one string value.
    pub(crate) fn coerce(&self, s: &str) -> Value {
        match self.scalar {
            Scalar::String => Value::String(s.to_owned()),
            Scalar::Integer => integer(s).map_or_else(|| Value::String(s.to_owned()), Value::from),
            Scalar::Number => number(s).unwrap_or_else(|| Value::String(s.to_owned())),
            Scalar::Boolean => match s {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(s.to_owned()),
            },
        }
    }
}

fn integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

fn number(s: &str) -> Option<Value> {
    if let Some(i) = integer(s) {
        return Some(Value::from(i));
    }
    // A JSON number spelling, nothing else ("inf", "NaN", "1.", ".5" refused).
    let first = s.strip_prefix('-').unwrap_or(s).bytes().next()?;
    if !first.is_ascii_digit() {
        return None;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Number(_)) => Some(v),
        _ => None,
    }
}

/// The shapes of the named properties of an object schema.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shapes {
    by_name: HashMap<String, Shape>,
    /// Names compare ASCII case-insensitively (headers).
    fold_case: bool,
}

impl Shapes {
    pub(crate) fn insert(&mut self, name: &str, shape: Shape) {
        let key = if self.fold_case { name.to_ascii_lowercase() } else { name.to_owned() };
        self.by_name.insert(key, shape);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Shape> {
        if self.fold_case { self.by_name.get(&name.to_ascii_lowercase()) } else { self.by_name.get(name) }
    }

    /// Reads `properties` of an object schema (following local `$ref`s).
    pub(crate) fn of_schema(root: &Value, fold_case: bool) -> Shapes {
        let mut out = Shapes { by_name: HashMap::new(), fold_case };
        let schema = resolve(root, root);
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                out.insert(name, shape_of(root, prop));
            }
        }
        out
    }
}

/// The shape one property schema describes.
pub(crate) fn shape_of(root: &Value, prop: &Value) -> Shape {
    let prop = resolve(root, prop);
    let types = types(prop);
    if types.contains(&"array") {
        let items = prop.get("items").map(|i| resolve(root, i));
        let scalar = items.map_or(Scalar::String, |i| scalar_of(&self::types(i)));
        Shape { array: true, scalar }
    } else {
        Shape { array: false, scalar: scalar_of(&types) }
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn scalar_of(types: &[&str]) -> Scalar {
    if types.contains(&"string") || types.is_empty() {
        Scalar::String
    } else if types.contains(&"integer") {
        Scalar::Integer
    } else if types.contains(&"number") {
        Scalar::Number
    } else if types.contains(&"boolean") {
        Scalar::Boolean
    } else {
        Scalar::String
    }
}

/// Follows local `$ref`s (`#/...`) from `v` within `root`, at most 16 hops;
/// stops at a reference that doesn't resolve (the schema compiler reports it).
pub fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(ptr) => match root.pointer(ptr) {
                Some(target) => v = target,
                None => return v,
            },
            None => return v,
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_coercion_table() {
        let int = Shape { array: false, scalar: Scalar::Integer };
        let num = Shape { array: false, scalar: Scalar::Number };
        let boolean = Shape { array: false, scalar: Scalar::Boolean };
        for (s, want) in [("42", json!(42)), ("-7", json!(-7)), ("0", json!(0))] {
            assert_eq!(int.coerce(s), want, "{s}");
        }
        for s in ["042", "4e1", " 42", "0x2a", "", "-", "1.0", "99999999999999999999", "+1"] {
            assert_eq!(int.coerce(s), json!(s), "{s}");
        }
        assert_eq!(num.coerce("1.5"), json!(1.5));
        assert_eq!(num.coerce("-2e3"), json!(-2000.0));
        for s in ["NaN", "inf", ".5", "1.", "1,5", "Infinity"] {
            assert_eq!(num.coerce(s), json!(s), "{s}");
        }
        assert_eq!(boolean.coerce("true"), json!(true));
        assert_eq!(boolean.coerce("1"), json!("1"));
        assert_eq!(boolean.coerce("TRUE"), json!("TRUE"));
    }

    #[test]
    fn shapes_follow_local_refs() {
        let schema = json!({
            "type": "object",
            "properties": {
                "page": {"type": "integer"},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
                "ids": {"$ref": "#/$defs/ids"},
                "q": {"type": ["string", "null"]}
            },
            "$defs": {"tag": {"type": "string"}, "ids": {"type": "array", "items": {"type": "integer"}}}
        });
        let s = Shapes::of_schema(&schema, false);
        assert_eq!(s.get("page"), Some(&Shape { array: false, scalar: Scalar::Integer }));
        assert_eq!(s.get("tags"), Some(&Shape { array: true, scalar: Scalar::String }));
        assert_eq!(s.get("ids"), Some(&Shape { array: true, scalar: Scalar::Integer }));
        assert_eq!(s.get("q"), Some(&Shape { array: false, scalar: Scalar::String }));
        assert_eq!(s.get("PAGE"), None);
        let h = Shapes::of_schema(&json!({"properties": {"X-Tenant": {"type": "integer"}}}), true);
        assert!(h.get("x-tenant").is_some());
    }
}
