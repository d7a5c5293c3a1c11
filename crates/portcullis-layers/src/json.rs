//! Strict, bounded JSON parsing (C17 C18 C22).
//!
//! Node's `JSON.parse` keeps the *last* of two equal keys; a checker that
//! looks at the first one (or any other) can be bypassed by sending both.
//! Portcullis therefore refuses duplicate keys outright, and bounds depth,
//! member count and string length before the document is built. Invalid
//! UTF-8, lone surrogates (`"\ud800"`) and trailing bytes after the value are
//! refused by the underlying parser.
//!
//! ```
//! use portcullis_layers::json::{parse_strict, JsonError, JsonLimits};
//! let l = JsonLimits::default();
//! assert!(parse_strict(br#"{"a":1}"#, &l).is_ok());
//! assert_eq!(parse_strict(br#"{"a":1,"a":2}"#, &l).unwrap_err(), JsonError::DuplicateKey("/a".into()));
//! assert_eq!(parse_strict(br#"{"a":1} x"#, &l).unwrap_err(), JsonError::Syntax);
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

mod scan;
mod subset;

#[cfg(feature = "input")]
pub(crate) use subset::Node as SchemaSubset;

/// Bounds applied while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    /// Maximum nesting of arrays and objects (the top-level value is depth 1).
    pub max_depth: usize,
    /// Maximum number of object members and array elements in the document.
    pub max_entries: usize,
    /// Maximum length in bytes of one string (keys included), after unescaping.
    pub max_string_len: usize,
    /// Refuse the keys `__proto__`, `constructor` and `prototype` at any
    /// depth (C18), compared after unescaping (`"\u005f_proto__"` is
    /// `__proto__`).
    pub forbid_prototype_keys: bool,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 32,
            max_entries: 10_000,
            max_string_len: 64 * 1024,
            forbid_prototype_keys: true,
        }
    }
}

/// The keys that reach `Object.prototype` in JavaScript when an upstream
/// merges or assigns request data (C18).
pub const PROTOTYPE_KEYS: [&str; 3] = ["__proto__", "constructor", "prototype"];

/// Appends `/seg` to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub fn push_segment(pointer: &mut String, seg: &str) {
    pointer.push('/');
    for c in seg.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Whether a decoded key is one of [`PROTOTYPE_KEYS`].
pub fn is_prototype_key(key: &str) -> bool {
    PROTOTYPE_KEYS.contains(&key)
}

/// Why a document was refused. Paths are JSON pointers to the offending
/// place; they name keys of the document, never values.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// Not one well-formed JSON value (incl. invalid UTF-8, lone surrogates,
    /// trailing bytes).
    Syntax,
    /// The same key twice in one object.
    DuplicateKey(String),
    /// Nested deeper than [`JsonLimits::max_depth`].
    TooDeep(String),
    /// More entries than [`JsonLimits::max_entries`].
    TooManyEntries,
    /// A string longer than [`JsonLimits::max_string_len`].
    StringTooLong(String),
    /// A key of [`PROTOTYPE_KEYS`] (C18); the path ends with it.
    PrototypeKey(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax => f.write_str("malformed JSON"),
            JsonError::DuplicateKey(p) => write!(f, "duplicate key at {p}"),
            JsonError::TooDeep(p) => write!(f, "nested too deeply at {p}"),
            JsonError::TooManyEntries => f.write_str("too many entries"),
            JsonError::StringTooLong(p) => write!(f, "string too long at {p}"),
            JsonError::PrototypeKey(p) => write!(f, "forbidden key at {p}"),
        }
    }
}

impl std::error::Error for JsonError {}

impl JsonError {
    /// The JSON pointer of the offending place, when there is one.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            JsonError::DuplicateKey(p)
            | JsonError::TooDeep(p)
            | JsonError::StringTooLong(p)
            | JsonError::PrototypeKey(p) => Some(p),
            JsonError::Syntax | JsonError::TooManyEntries => None,
        }
    }
}

/// What went wrong, before the place is known: the pointer is assembled
/// from `trail` as the error unwinds, so a document that parses costs no
/// path bookkeeping at all.
#[derive(Clone, Copy)]
enum Pending {
    Duplicate,
    Deep,
    Many,
    Long,
    Prototype,
}

struct State<'l> {
    limits: &'l JsonLimits,
    entries: Cell<usize>,
    error: Cell<Option<Pending>>,
    /// Segments from the failure up to the root, innermost first.
    trail: RefCell<Vec<String>>,
}

impl State<'_> {
    fn fail<E: de::Error>(&self, e: Pending, last: Option<&str>) -> E {
        self.error.set(Some(e));
        if let Some(k) = last {
            self.trail.borrow_mut().push(k.to_owned());
        }
        E::custom("refused")
    }

    /// Records the segment of a child that failed, on the way up.
    fn unwind(&self, seg: impl FnOnce() -> String) {
        if self.error.get().is_some() {
            self.trail.borrow_mut().push(seg());
        }
    }

    /// The error of a document that failed: the pending refusal with its
    /// pointer, or a syntax error when no check refused it.
    fn error(&self) -> JsonError {
        match self.error.get() {
            None => JsonError::Syntax,
            Some(Pending::Many) => JsonError::TooManyEntries,
            Some(Pending::Duplicate) => JsonError::DuplicateKey(self.pointer()),
            Some(Pending::Deep) => JsonError::TooDeep(self.pointer()),
            Some(Pending::Long) => JsonError::StringTooLong(self.pointer()),
            Some(Pending::Prototype) => JsonError::PrototypeKey(self.pointer()),
        }
    }

    fn pointer(&self) -> String {
        let trail = self.trail.borrow();
        let mut out = String::new();
        for seg in trail.iter().rev() {
            push_segment(&mut out, seg);
        }
        if out.is_empty() { "/".to_owned() } else { out }
    }

    fn string<E: de::Error>(&self, s: &str, last: Option<&str>) -> Result<(), E> {
        if s.len() > self.limits.max_string_len {
            return Err(self.fail(Pending::Long, last));
        }
        Ok(())
    }

    fn entry<E: de::Error>(&self) -> Result<(), E> {
        let n = self.entries.get() + 1;
        self.entries.set(n);
        if n > self.limits.max_entries {
            return Err(self.fail(Pending::Many, None));
        }
        Ok(())
    }

    /// The depth rule for an array or object opened at `depth`. This and
    /// [`State::key`] are the container rules of both `parse_strict` and
    /// `check_strict`, written once so the two can't disagree.
    fn open<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.limits.max_depth {
            return Err(self.fail(Pending::Deep, None));
        }
        Ok(())
    }

    /// The rules of an object key: its length, one more entry, no
    /// prototype key (when forbidden), no repeat (`repeated`: the object
    /// already has it).
    fn key<E: de::Error>(&self, key: &str, repeated: bool) -> Result<(), E> {
        self.string(key, Some(key))?;
        self.entry()?;
        if self.limits.forbid_prototype_keys && is_prototype_key(key) {
            return Err(self.fail(Pending::Prototype, Some(key)));
        }
        if repeated {
            return Err(self.fail(Pending::Duplicate, Some(key)));
        }
        Ok(())
    }
}

/// Parses one JSON document strictly; see the module documentation.
pub fn parse_strict(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    let state =
        State { limits, entries: Cell::new(0), error: Cell::new(None), trail: RefCell::new(Vec::new()) };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Seed { state: &state, depth: 1 };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    result.map_err(|_| state.error())
}

/// Checks one JSON document as [`parse_strict`] would, refusing exactly
/// what it refuses with the same error, without building the document:
/// no allocation for a string or key written without escapes. For bodies
/// nothing else looks into (no schema, no injection scan), which is every
/// JSON body under the default policy (issue 16).
///
/// A document that passes is decided by one scan of our own (see
/// `json/scan.rs`: strings eight bytes at a time, no serde machinery);
/// one it does not pass is checked again by the serde_json-based checker,
/// which names the error, so the scan only has to be right about passing.
pub fn check_strict(bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonError> {
    if scan::passes(bytes, limits) {
        return Ok(());
    }
    check_with_serde(bytes, limits)
}

/// Whether `bytes` passes [`check_strict`] and is valid against a schema
/// in the subset the scan checks (`json/subset.rs`). `false` decides
/// nothing: parse the document and validate it to know, and why.
#[cfg(feature = "input")]
pub(crate) fn passes_schema_subset(bytes: &[u8], limits: &JsonLimits, schema: &SchemaSubset) -> bool {
    scan::passes_schema(bytes, limits, Some(schema))
}

/// The subset form of a compiled schema document, or `None` when it uses
/// a keyword outside the subset. `modern`: draft 2019-09 or 2020-12.
#[cfg(feature = "input")]
pub(crate) fn schema_subset(doc: &Value, modern: bool) -> Option<SchemaSubset> {
    subset::compile(doc, modern)
}

/// [`check_strict`]'s decision with serde_json's tokenizer: the error and
/// its pointer when the scan does not pass a document.
fn check_with_serde(bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonError> {
    let state =
        State { limits, entries: Cell::new(0), error: Cell::new(None), trail: RefCell::new(Vec::new()) };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Check { state: &state, depth: 1 };
    seed.deserialize(&mut de).and_then(|()| de.end()).map_err(|_| state.error())
}

/// [`Seed`]'s checks, in the same order, building nothing.
struct Check<'s, 'l> {
    state: &'s State<'l>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Check<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // As `Seed`: serde_json::Number refuses what is not finite.
        if v.is_finite() { Ok(()) } else { Err(E::custom("non-finite number")) }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.state.string(v, None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.state;
        st.open(self.depth)?;
        let mut len = 0usize;
        loop {
            match seq.next_element_seed(Check { state: st, depth: self.depth + 1 }) {
                Ok(Some(())) => {
                    st.entry()?;
                    len += 1;
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    st.unwind(|| len.to_string());
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.state;
        st.open(self.depth)?;
        let mut seen = Keys::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            st.key(&key, seen.contains(&key))?;
            match map.next_value_seed(Check { state: st, depth: self.depth + 1 }) {
                Ok(()) => seen.insert(key),
                Err(e) => {
                    st.unwind(|| key.into_owned());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// The decoded keys of one object: borrowed from the document unless
/// written with escapes.
#[derive(Default)]
enum Keys<'de> {
    /// Small objects: a linear scan beats hashing.
    #[default]
    Empty,
    Few(Vec<Cow<'de, str>>),
    Many(HashSet<Cow<'de, str>>),
}

impl<'de> Keys<'de> {
    const FEW: usize = 16;

    fn contains(&self, k: &str) -> bool {
        match self {
            Keys::Empty => false,
            Keys::Few(v) => v.iter().any(|x| x == k),
            Keys::Many(s) => s.contains(k),
        }
    }

    fn insert(&mut self, k: Cow<'de, str>) {
        match self {
            Keys::Empty => {
                let mut v = Vec::with_capacity(4);
                v.push(k);
                *self = Keys::Few(v);
            }
            Keys::Few(v) if v.len() < Self::FEW => v.push(k),
            Keys::Few(v) => {
                let mut s: HashSet<Cow<'de, str>> = v.drain(..).collect();
                s.insert(k);
                *self = Keys::Many(s);
            }
            Keys::Many(s) => {
                s.insert(k);
            }
        }
    }
}

/// A key, borrowed when the document spells it without escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

struct Seed<'s, 'l> {
    state: &'s State<'l>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.string(v, None)?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.string(&v, None)?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let st = self.state;
        st.open(self.depth)?;
        let mut out = Vec::new();
        loop {
            match seq.next_element_seed(Seed { state: st, depth: self.depth + 1 }) {
                Ok(Some(v)) => {
                    st.entry()?;
                    out.push(v);
                }
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    st.unwind(|| out.len().to_string());
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let st = self.state;
        st.open(self.depth)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            st.key(&key, out.contains_key(&key))?;
            match map.next_value_seed(Seed { state: st, depth: self.depth + 1 }) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => {
                    st.unwind(|| key);
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(doc: &str, limits: &JsonLimits) -> JsonError {
        parse_strict(doc.as_bytes(), limits).unwrap_err()
    }

    #[test]
    fn refusals_table() {
        let l = JsonLimits::default();
        let cases: &[(&str, JsonError)] = &[
            (r#"{"a":1,"a":2}"#, JsonError::DuplicateKey("/a".into())),
            (r#"{"x":{"b":1,"b":1}}"#, JsonError::DuplicateKey("/x/b".into())),
            // The escaped spelling is the same key after decoding.
            (r#"{"a":1,"\u0061":2}"#, JsonError::DuplicateKey("/a".into())),
            // C18: prototype keys at any depth, in any escaped spelling.
            (r#"{"__proto__":{"polluted":true}}"#, JsonError::PrototypeKey("/__proto__".into())),
            (r#"{"\u005f_proto__":{"x":1}}"#, JsonError::PrototypeKey("/__proto__".into())),
            (
                r#"{"a":[{"constructor":{"prototype":{"x":1}}}]}"#,
                JsonError::PrototypeKey("/a/0/constructor".into()),
            ),
            (r#"{"x":{"prototyp\u0065":1}}"#, JsonError::PrototypeKey("/x/prototype".into())),
            (r#"[{"a/b":{"c":1,"c":2}}]"#, JsonError::DuplicateKey("/0/a~1b/c".into())),
            (r#""\ud800""#, JsonError::Syntax),
            (r#"{"a":1} {"#, JsonError::Syntax),
            (r#"{"a":1,}"#, JsonError::Syntax),
            ("{'a':1}", JsonError::Syntax),
            ("NaN", JsonError::Syntax),
            ("", JsonError::Syntax),
        ];
        for (doc, want) in cases {
            assert_eq!(&err(doc, &l), want, "{doc}");
        }
        assert_eq!(parse_strict(b"\"\xff\"", &l).unwrap_err(), JsonError::Syntax);
    }

    /// C17: every limit is exact: at the limit passes, one past it fails.
    #[test]
    fn c17_limits_are_exact() {
        let l = JsonLimits { max_depth: 3, max_entries: 4, max_string_len: 5, forbid_prototype_keys: true };
        assert!(parse_strict(br#"["12345"]"#, &l).is_ok());
        assert!(parse_strict(br#"{"12345":1}"#, &l).is_ok());
        assert_eq!(err(r#"["123456"]"#, &l), JsonError::StringTooLong("/0".into()));
        assert!(parse_strict(br#"[1,2,3,4]"#, &l).is_ok());
        assert!(
            parse_strict(br#"{"a":1,"b":[2,3],"c":4}"#.as_slice(), &JsonLimits { max_entries: 5, ..l })
                .is_ok()
        );
        assert_eq!(err(r#"[1,2,3,4,5]"#, &l), JsonError::TooManyEntries);
        // Entries count across the whole document, not per container.
        assert_eq!(err(r#"[[1,2],[3,4]]"#, &l), JsonError::TooManyEntries);
        assert_eq!(err(r#"[1,2,3,4,5,6,7,8,9]"#, &l), JsonError::TooManyEntries);
    }

    /// The messages logged for each refusal name the place, never the value.
    #[test]
    fn error_messages() {
        let cases = [
            (JsonError::Syntax, "malformed JSON"),
            (JsonError::DuplicateKey("/a".into()), "duplicate key at /a"),
            (JsonError::TooDeep("/a/b".into()), "nested too deeply at /a/b"),
            (JsonError::TooManyEntries, "too many entries"),
            (JsonError::StringTooLong("/k".into()), "string too long at /k"),
            (JsonError::PrototypeKey("/__proto__".into()), "forbidden key at /__proto__"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn limits_are_enforced() {
        let l = JsonLimits { max_depth: 3, max_entries: 4, max_string_len: 5, forbid_prototype_keys: true };
        assert!(parse_strict(br#"[[["x"]]]"#, &l).is_ok());
        assert_eq!(err(r#"[[[[1]]]]"#, &l), JsonError::TooDeep("/0/0/0".into()));
        assert_eq!(err(r#"[1,2,3,4,5]"#, &l), JsonError::TooManyEntries);
        assert_eq!(err(r#"{"k":"123456"}"#, &l), JsonError::StringTooLong("/k".into()));
        assert_eq!(err(r#"{"123456":1}"#, &l), JsonError::StringTooLong("/123456".into()));
    }

    /// C17: depth counts objects as well as arrays, in every mix, and the
    /// limit is exact (depth `max_depth` passes, one more fails). Objects
    /// matter most: a JSON body is an object of objects far more often than
    /// an array of arrays.
    #[test]
    fn c17_depth_counts_objects_and_arrays_alike() {
        let l = JsonLimits { max_depth: 3, ..JsonLimits::default() };
        let ok =
            [r#"{"a":{"b":{"c":1}}}"#, r#"{"a":[{"c":1}]}"#, r#"[{"b":[1]}]"#, r#"{"a":{"b":[]}}"#, "{}"];
        for doc in ok {
            assert!(parse_strict(doc.as_bytes(), &l).is_ok(), "{doc} is within depth 3");
        }
        let deep: &[(&str, &str)] = &[
            (r#"{"a":{"b":{"c":{"d":1}}}}"#, "/a/b/c"),
            (r#"{"a":{"b":{"c":{}}}}"#, "/a/b/c"),
            (r#"{"a":[{"c":[1]}]}"#, "/a/0/c"),
            (r#"[{"b":[{"d":1}]}]"#, "/0/b/0"),
            (r#"{"x":1,"a":{"y":2,"b":{"c":{"d":1}}}}"#, "/a/b/c"),
        ];
        for (doc, at) in deep {
            assert_eq!(err(doc, &l), JsonError::TooDeep((*at).into()), "{doc}");
        }
        // Siblings do not add depth: ten objects side by side are depth 2.
        let wide = format!("{{{}}}", (0..10).map(|i| format!("\"k{i}\":{{}}")).collect::<Vec<_>>().join(","));
        assert!(parse_strict(wide.as_bytes(), &JsonLimits { max_depth: 2, ..l }).is_ok());
        // A depth of 1 allows only a flat document.
        let flat = JsonLimits { max_depth: 1, ..l };
        assert!(parse_strict(br#"{"a":1}"#, &flat).is_ok());
        assert_eq!(err(r#"{"a":{}}"#, &flat), JsonError::TooDeep("/a".into()));
    }

    #[test]
    fn c18_prototype_keys_are_values_elsewhere() {
        let l = JsonLimits::default();
        // As values and as parts of longer keys they are harmless.
        assert!(parse_strict(br#"{"k":"__proto__","constructors":1,"x__proto__":2}"#, &l).is_ok());
        let off = JsonLimits { forbid_prototype_keys: false, ..l };
        assert!(parse_strict(br#"{"constructor":"Williams"}"#, &off).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_strict(&bytes, &JsonLimits::default());
        }

        #[test]
        fn agrees_with_serde_on_valid_documents(v in arb_json()) {
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse_strict(&text, &JsonLimits::default()).unwrap(), v);
            prop_assert_eq!(check_strict(&text, &JsonLimits::default()), Ok(()));
        }

        /// C17 C18: the check-only path refuses exactly what the parser
        /// refuses, with the same error and pointer, on random bytes...
        #[test]
        fn check_strict_decides_as_parse_strict_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let l = JsonLimits::default();
            prop_assert_eq!(check_strict(&bytes, &l), parse_strict(&bytes, &l).map(|_| ()));
        }

        /// ... and on JSON-shaped text near every refusal: repeated and
        /// escaped keys, prototype keys, depth, entries and string limits,
        /// broken syntax.
        #[test]
        fn check_strict_decides_as_parse_strict_on_json_shaped_text(
            tokens in proptest::collection::vec(prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"),
                Just("\"a\""), Just("\"\\u0061\""), Just("\"b\""), Just("\"__proto__\""),
                Just("\"\\u005f_proto__\""), Just("\"constructor\""), Just("\"abcdefgh\""),
                Just("\"\\ud800\""), Just("1"), Just("-0.5e3"), Just("1e999"), Just("true"), Just("null"),
                Just(" "), Just("\"a/b~c\""),
            ], 0..40),
            depth in 1usize..6,
            entries in 1usize..12,
            len in 1usize..10,
            proto: bool,
        ) {
            let l = JsonLimits { max_depth: depth, max_entries: entries, max_string_len: len, forbid_prototype_keys: proto };
            let text = tokens.concat();
            prop_assert_eq!(check_strict(text.as_bytes(), &l), parse_strict(text.as_bytes(), &l).map(|_| ()), "{}", text);
        }

        /// Objects past the linear key scan switch to a set: duplicates are
        /// still found at any position.
        #[test]
        fn check_strict_finds_a_duplicate_in_a_large_object(n in 1usize..60, dup in 0usize..60) {
            let mut doc = String::from("{");
            for i in 0..n {
                doc.push_str(&format!("\"k{i}\":{i},"));
            }
            doc.push_str(&format!("\"k{}\":0}}", dup));
            let l = JsonLimits::default();
            let got = check_strict(doc.as_bytes(), &l);
            prop_assert_eq!(&got, &parse_strict(doc.as_bytes(), &l).map(|_| ()));
            prop_assert_eq!(got.is_err(), dup < n);
        }
    }

    proptest! {
        /// Issue 16 item 4: the scan passes exactly what the serde_json
        /// checker passes: never more (that would be a bypass), and no
        /// less (every document it does not pass is checked twice), on
        /// random bytes...
        #[test]
        fn scan_passes_as_serde_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let l = JsonLimits::default();
            prop_assert_eq!(scan::passes(&bytes, &l), check_with_serde(&bytes, &l).is_ok());
        }

        /// ... on JSON-shaped text around every rule and every corner of
        /// the grammar (numbers, escapes, surrogates, whitespace, UTF-8,
        /// control bytes) ...
        #[test]
        fn scan_passes_as_serde_on_json_shaped_text(
            tokens in proptest::collection::vec(prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"),
                Just("\"a\""), Just("\"\\u0061\""), Just("\"__proto__\""), Just("\"\\u005f_proto__\""),
                Just("\"constructor\""), Just("\"abcdefghijk\""), Just("\"\\ud800\""), Just("\"\\udc00\""),
                Just("\"\\ud83d\\ude00\""), Just("\"\\ud83d\\u0041\""), Just("\"\\n\\/\\\"\""), Just("\"\\x\""),
                Just("\"\u{e9}\u{1f600}\""), Just("\"a\u{1}\""), Just("\"a\tb\""), Just("\"\u{7f}\""), Just("\""),
                Just("0"), Just("01"), Just("-"), Just("-0"), Just("1."), Just("1.5"), Just(".5"), Just("1e5"),
                Just("1E+5"), Just("2e-400"), Just("1e999"), Just("-1e309"), Just("1.7976931348623157e308"),
                Just("123456789012345678901234567890"), Just("+1"),
                Just("true"), Just("tru"), Just("false"), Just("null"), Just("nul"), Just("NaN"),
                Just(" "), Just("\t"), Just("\r\n"), Just("\u{a0}"), Just("\u{feff}"), Just("\"a/b~c\""),
            ], 0..40),
            depth in 1usize..6,
            entries in 1usize..12,
            len in 1usize..10,
            proto: bool,
        ) {
            let l = JsonLimits { max_depth: depth, max_entries: entries, max_string_len: len, forbid_prototype_keys: proto };
            let text = tokens.concat();
            prop_assert_eq!(scan::passes(text.as_bytes(), &l), check_with_serde(text.as_bytes(), &l).is_ok(), "{}", text);
        }

        /// ... and on every valid document, which it must pass by itself
        /// (the figure in docs/performance.md depends on it).
        #[test]
        fn scan_passes_valid_documents(v in arb_json()) {
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert!(scan::passes(&text, &JsonLimits::default()));
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            prop_assert!(scan::passes(&pretty, &JsonLimits::default()));
        }

        /// Objects past the linear key scan: a repeat anywhere, decided
        /// as the serde_json checker does.
        #[test]
        fn scan_finds_a_repeat_in_a_large_object(
            n in 1usize..60,
            dup in 0usize..60,
            escaped: bool,
            escaped_first: bool,
        ) {
            // Keys written with escapes and without, on either side of
            // the repeat (they are kept apart once the object has many).
            let k = if escaped_first { "\\u006b" } else { "k" };
            let mut doc = String::from("{");
            for i in 0..n {
                doc.push_str(&format!("\"{k}{i}\":{{\"k{i}\":[{i}]}},"));
            }
            let last = if escaped { format!("\"\\u006b{dup}\":0}}") } else { format!("\"k{dup}\":0}}") };
            doc.push_str(&last);
            let l = JsonLimits::default();
            prop_assert_eq!(scan::passes(doc.as_bytes(), &l), dup >= n);
            prop_assert_eq!(check_with_serde(doc.as_bytes(), &l).is_ok(), dup >= n);
        }
    }

    /// Strings of every length around the scan's byte-by-byte start
    /// (`SHORT`), with an escape, a non-ASCII character, DEL or a control
    /// byte at every position, as a key and as a value: the scan decides
    /// as the serde_json checker does, and passes what it accepts.
    #[test]
    fn scan_decides_strings_of_every_length_as_serde() {
        let l = JsonLimits::default();
        let specials: [&[u8]; 8] =
            [b"\\n", b"\\\"", b"\\u00e9", b"\xc3\xa9", b"\x7f", b"\x01", b"\xff", b"\\"];
        for len in 0..24 {
            for at in 0..=len {
                for sp in specials {
                    let mut s = vec![b'a'; len];
                    s.splice(at..at, sp.iter().copied());
                    for doc in [
                        [&b"{\""[..], &s, b"\":1}"].concat(),
                        [&b"[\""[..], &s, b"\",2]"].concat(),
                        [&b"{\""[..], &s, b"\":\"", &s, b"\"}"].concat(),
                    ] {
                        let serde = check_with_serde(&doc, &l).is_ok();
                        assert_eq!(scan::passes(&doc, &l), serde, "{}", String::from_utf8_lossy(&doc));
                    }
                }
            }
        }
    }

    /// Bytes that are not UTF-8, inside a string or out of one, and
    /// control bytes written raw: none passes, as serde_json passes none.
    #[test]
    fn scan_refuses_what_is_not_utf8_or_is_a_raw_control_byte() {
        let l = JsonLimits::default();
        for doc in [
            &b"\"\xff\""[..],
            b"\"abcdefgh\xc3\"",
            b"[\"\xed\xa0\x80\"]",
            b"{\"\xc0\xaf\":1}",
            b"\"\xf4\x90\x80\x80\"",
            b"\xef\xbb\xbf{}",
            b"[1]\xc2\xa0",
            b"\"tab\there\"",
            b"\"abcdefghijklmnop\x7f\x00\"",
            b"{\"k\n\":1}",
        ] {
            assert!(!scan::passes(doc, &l), "{}", String::from_utf8_lossy(doc));
            assert!(check_with_serde(doc, &l).is_err(), "{}", String::from_utf8_lossy(doc));
        }
        for doc in [&b"\"\xc3\xa9\xf0\x9f\x98\x80 \x7f\""[..], b"{\"\xc3\xa9\":\"\xe2\x82\xac\"}"] {
            assert!(scan::passes(doc, &l), "{}", String::from_utf8_lossy(doc));
            assert!(check_with_serde(doc, &l).is_ok(), "{}", String::from_utf8_lossy(doc));
        }
    }

    /// serde_json's own recursion limit (it refuses the 128th nested
    /// container whatever `max_depth` allows): the scan stops where it
    /// stops, through arrays and objects.
    #[test]
    fn scan_stops_at_serde_s_recursion_limit() {
        let l = JsonLimits { max_depth: 1000, ..JsonLimits::default() };
        for d in 120..=132 {
            let arrays = format!("{}{}", "[".repeat(d), "]".repeat(d));
            let objects = format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d));
            for doc in [arrays, objects] {
                let serde = check_with_serde(doc.as_bytes(), &l).is_ok();
                assert_eq!(serde, d <= 127, "depth {d}");
                assert_eq!(scan::passes(doc.as_bytes(), &l), serde, "depth {d}");
            }
        }
    }

    /// The bench's 1 MB document (bench/instructions) is passed by the
    /// scan alone, and a string's length counts its unescaped bytes.
    #[test]
    fn scan_passes_the_bench_document_and_counts_unescaped_lengths() {
        let item = format!("{{\"name\":\"{}\",\"n\":12345}}", "y".repeat(300));
        let big = format!("{{\"items\":[{}]}}", vec![item; 3125].join(","));
        assert!(scan::passes(big.as_bytes(), &JsonLimits::default()));
        let l = JsonLimits { max_string_len: 4, ..JsonLimits::default() };
        // "\u00e9\u00e9" is 4 bytes unescaped (12 written); the pair is 4.
        for (doc, ok) in [
            (r#"["\u00e9\u00e9"]"#, true),
            (r#"["\u00e9\u00e9a"]"#, false),
            (r#"["\ud83d\ude00"]"#, true),
            (r#"["\ud83d\ude00a"]"#, false),
            (r#"{"\u0061bcd":1}"#, true),
            (r#"{"\u0061bcde":1}"#, false),
        ] {
            assert_eq!(scan::passes(doc.as_bytes(), &l), ok, "{doc}");
            assert_eq!(check_with_serde(doc.as_bytes(), &l).is_ok(), ok, "{doc}");
        }
    }

    #[test]
    fn check_strict_refuses_the_table_as_parse_strict_does() {
        let l = JsonLimits::default();
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"__proto__":{"polluted":true}}"#,
            r#"{"a":[{"constructor":{"prototype":{"x":1}}}]}"#,
            r#"[{"a/b":{"c":1,"c":2}}]"#,
            r#""\ud800""#,
            r#"{"a":1} {"#,
            "NaN",
            "",
            r#"{"a":1e999}"#,
        ] {
            assert!(check_strict(doc.as_bytes(), &l).is_err(), "{doc}");
            assert_eq!(
                check_strict(doc.as_bytes(), &l),
                parse_strict(doc.as_bytes(), &l).map(|_| ()),
                "{doc}"
            );
        }
        assert_eq!(check_strict(b"\"\xff\"", &l), Err(JsonError::Syntax));
        // The pointer counts array positions (found by scripts/mutants: a
        // count that stayed 0 passed the property tests).
        for (doc, want) in [
            (r#"[1,{"a":1,"a":2}]"#, JsonError::DuplicateKey("/1/a".into())),
            (r#"{"x":[0,[1,2,{"__proto__":1}]]}"#, JsonError::PrototypeKey("/x/1/2/__proto__".into())),
        ] {
            assert_eq!(check_strict(doc.as_bytes(), &l), Err(want.clone()), "{doc}");
            assert_eq!(parse_strict(doc.as_bytes(), &l).map(|_| ()), Err(want), "{doc}");
        }
        // Depth grows through objects and arrays alike.
        let shallow = JsonLimits { max_depth: 3, ..JsonLimits::default() };
        for (doc, want) in [
            (r#"{"a":{"b":{"c":1}}}"#, Ok(())),
            (r#"{"a":{"b":{"c":{}}}}"#, Err(JsonError::TooDeep("/a/b/c".into()))),
            (r#"[[[1]]]"#, Ok(())),
            (r#"[[[[1]]]]"#, Err(JsonError::TooDeep("/0/0/0".into()))),
        ] {
            assert_eq!(check_strict(doc.as_bytes(), &shallow), want.clone(), "{doc}");
            assert_eq!(parse_strict(doc.as_bytes(), &shallow).map(|_| ()), want, "{doc}");
        }
        assert_eq!(check_strict(br#"{"a":[1,{"b":"c"}],"d":null}"#, &l), Ok(()));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\\\"\u{e9}\u{1f600}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
