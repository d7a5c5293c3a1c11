//! The JSON Schema subset the scan checks while it passes over a body
//! (issue 16 item 4): a route's schema written only with these keywords
//! is checked on the bytes, without building the document.
//!
//! - `type` (one name or a list), `properties`, `required` (names that
//!   `properties` lists), `additionalProperties` as `true` or `false`,
//!   `unevaluatedProperties` likewise (2019-09 and 2020-12 only),
//!   `items` as one schema;
//! - `minLength`, `maxLength`, `minItems`, `maxItems`; `minimum` and
//!   `maximum` with integer bounds;
//! - annotations that never decide anything (`title`, `description`,
//!   `$comment`, `examples`, `default`, `deprecated`, `readOnly`,
//!   `writeOnly`, and `$schema` at the root).
//!
//! A schema with any other keyword anywhere (`format`, `pattern`, `enum`,
//! `$ref`, `allOf`, ...) gets no subset: its bodies are parsed and
//! validated by `jsonschema` as before. Like the scan, the subset only
//! ever says "passes" or "look closer": where it is unsure (a number with
//! a fraction or an exponent against `integer` or a bound, a string with
//! escapes or non-ASCII characters against a length) it does not pass,
//! and the document goes to the parser and `jsonschema`, which decide and
//! name the error. Property tests hold it to `jsonschema`'s decision
//! (`input::schema::subset_tests`).

// Compiled only by the input layer's schemas; the scan takes a `Node`
// in every build.
#![cfg_attr(not(feature = "input"), allow(dead_code))]

use serde_json::Value;

/// One subschema. Every keyword is optional, as in JSON Schema: a
/// keyword applies only to values of its own type.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    /// The `type` bits ([`OBJECT`] ...); 0: any type.
    pub(super) types: u8,
    pub(super) properties: Vec<Prop>,
    /// The bits of `Prop::required` that must all be seen.
    pub(super) required: u64,
    /// Whether properties not in `properties` are allowed.
    pub(super) additional: bool,
    pub(super) items: Option<Box<Node>>,
    pub(super) min_len: usize,
    pub(super) max_len: usize,
    pub(super) min_items: usize,
    pub(super) max_items: usize,
    pub(super) minimum: Option<i64>,
    pub(super) maximum: Option<i64>,
}

/// A property: its name as bytes, its schema, its `required` bit (0 when
/// not required).
#[derive(Clone, Debug)]
pub(super) struct Prop {
    pub(super) name: Box<[u8]>,
    pub(super) node: Node,
    pub(super) required: u64,
}

pub(super) const OBJECT: u8 = 1;
pub(super) const ARRAY: u8 = 2;
pub(super) const STRING: u8 = 4;
pub(super) const INTEGER: u8 = 8;
pub(super) const NUMBER: u8 = 16;
pub(super) const BOOLEAN: u8 = 32;
pub(super) const NULL: u8 = 64;

impl Node {
    /// Whether a value of type `t` may be here.
    pub(super) fn allows(&self, t: u8) -> bool {
        self.types == 0 || self.types & t != 0
    }

    pub(super) fn property(&self, name: &[u8]) -> Option<&Prop> {
        self.properties.iter().find(|p| &*p.name == name)
    }

    /// Whether a number needs looking at beyond its type.
    pub(super) fn bounds_numbers(&self) -> bool {
        self.minimum.is_some() || self.maximum.is_some()
    }

    pub(super) fn in_bounds(&self, n: i64) -> bool {
        self.minimum.is_none_or(|m| n >= m) && self.maximum.is_none_or(|m| n <= m)
    }

    /// Whether strings need counting.
    pub(super) fn counts_strings(&self) -> bool {
        self.min_len > 0 || self.max_len < usize::MAX
    }
}

/// The subset form of a compiled schema document (defaults applied), or
/// `None` when it uses anything outside the subset. `modern`: the draft
/// is 2019-09 or 2020-12.
pub(crate) fn compile(doc: &Value, modern: bool) -> Option<Node> {
    node(doc, modern, true)
}

fn node(v: &Value, modern: bool, root: bool) -> Option<Node> {
    let m = match v {
        // Boolean schemas: draft 6 on; only the drafts we know as modern.
        Value::Bool(true) if modern => return Some(any()),
        Value::Object(m) => m,
        _ => return None,
    };
    let mut n = any();
    let mut additional = None;
    let mut unevaluated = None;
    for (k, v) in m {
        match k.as_str() {
            "type" => n.types = types(v)?,
            "properties" => {
                for (name, s) in v.as_object()? {
                    let node = node(s, modern, false)?;
                    n.properties.push(Prop { name: name.as_bytes().into(), node, required: 0 });
                }
            }
            "required" => {}
            "additionalProperties" => additional = Some(v.as_bool()?),
            "unevaluatedProperties" if modern => unevaluated = Some(v.as_bool()?),
            "items" if v.is_object() || v.is_boolean() => n.items = Some(Box::new(node(v, modern, false)?)),
            "minLength" => n.min_len = count(v)?,
            "maxLength" => n.max_len = count(v)?,
            "minItems" => n.min_items = count(v)?,
            "maxItems" => n.max_items = count(v)?,
            "minimum" => n.minimum = Some(v.as_i64()?),
            "maximum" => n.maximum = Some(v.as_i64()?),
            "title" | "description" | "$comment" | "examples" | "default" | "deprecated" | "readOnly"
            | "writeOnly" => {}
            "$schema" if root => {}
            _ => return None,
        }
    }
    if let Some(req) = m.get("required") {
        required(&mut n, req.as_array()?)?;
    }
    // `additionalProperties` decides when present; `unevaluatedProperties`
    // sees only what nothing else evaluated, which without composition
    // or references is the same set.
    n.additional = additional.or(unevaluated).unwrap_or(true);
    Some(n)
}

fn any() -> Node {
    Node { additional: true, max_len: usize::MAX, max_items: usize::MAX, ..Node::default() }
}

fn types(v: &Value) -> Option<u8> {
    let one = |s: &Value| -> Option<u8> {
        Some(match s.as_str()? {
            "object" => OBJECT,
            "array" => ARRAY,
            "string" => STRING,
            "integer" => INTEGER,
            "number" => NUMBER,
            "boolean" => BOOLEAN,
            "null" => NULL,
            _ => return None,
        })
    };
    match v {
        Value::Array(list) if !list.is_empty() => list.iter().try_fold(0, |t, s| Some(t | one(s)?)),
        Value::Array(_) => None,
        s => one(s),
    }
}

fn count(v: &Value) -> Option<usize> {
    usize::try_from(v.as_u64()?).ok()
}

/// Gives each required name a bit; a name `properties` does not list, a
/// repeated one or more than 64 leave the subset.
fn required(n: &mut Node, names: &[Value]) -> Option<()> {
    for (i, name) in names.iter().enumerate() {
        let bit = 1u64.checked_shl(u32::try_from(i).ok()?)?;
        let name = name.as_str()?.as_bytes();
        let prop = n.properties.iter_mut().find(|p| &*p.name == name)?;
        if prop.required != 0 {
            return None;
        }
        prop.required = bit;
        n.required |= bit;
    }
    Some(())
}
