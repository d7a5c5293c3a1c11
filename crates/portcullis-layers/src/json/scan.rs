//! The fast path of [`check_strict`](super::check_strict): one pass over
//! the bytes that says whether a document passes every rule of
//! [`parse_strict`](super::parse_strict), building nothing (issue 16
//! item 4).
//!
//! It only ever answers "passes" or "look closer": a document it does not
//! pass goes to the serde_json-based checker, which decides and names the
//! error and its pointer. So it must never pass what serde_json or a rule
//! refuses (a parser differential there is a bypass); passing less is only
//! slower. Property tests hold it to the serde_json checker's decision on
//! random bytes and JSON-shaped text (`json::tests::scan_*`), and the fuzz
//! target `json_input` does the same on coverage-guided inputs.
//!
//! Where the time goes in a body: strings. A string's first [`SHORT`]
//! bytes are looked at one by one against a table of plain bytes, which
//! ends most keys without a call; past them its end is found with
//! `memchr2` (SIMD) for its quote or a backslash, and its bytes are then
//! checked eight at a time for anything that is not printable ASCII (see
//! [`plain`]); only a string with such bytes is looked at byte by byte
//! (control bytes) and checked as UTF-8. Outside strings the grammar
//! admits ASCII only, so no other UTF-8 check is needed. Keys are kept as
//! positions (in the document, or in one buffer of decoded keys), so an
//! object's keys cost no allocation and no drop.
//!
//! Profile it alone: `cargo build --profile profiling -p
//! portcullis-layers --example json_scan`, then callgrind on
//! `target/profiling/examples/json_scan 11` minus `... 1`, over 10.

use std::collections::HashSet;

use super::subset::{self, Node};
use super::{JsonLimits, PROTOTYPE_KEYS};

/// serde_json refuses the 128th nested array or object whatever
/// `max_depth` allows (its recursion limit): the deepest it parses is 127.
const SERDE_MAX_DEPTH: usize = 127;

/// Objects with more keys than this check repeats with a hash set.
const FEW_KEYS: usize = 16;

/// How many bytes of a string are looked at one by one before the search
/// for its end switches to `memchr2`: most keys and many values end
/// sooner, and a loop over them costs less than the call.
const SHORT: usize = 8;

/// The bytes a string holds as they are with nothing left to check:
/// printable ASCII and DEL, but the quote and the backslash.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c < 0x80 {
        t[c] = c != b'"' as usize && c != b'\\' as usize;
        c += 1;
    }
    t
};

/// Whether `bytes` is one JSON document that passes every rule.
pub(super) fn passes(bytes: &[u8], limits: &JsonLimits) -> bool {
    passes_schema(bytes, limits, None)
}

/// [`passes`], and the document is valid against `schema` (a schema in
/// the [`subset`]).
pub(super) fn passes_schema(bytes: &[u8], limits: &JsonLimits, schema: Option<&Node>) -> bool {
    let mut s = Scanner { b: bytes, i: 0, limits, entries: 0, keys: Vec::new(), decoded: Vec::new() };
    s.document(schema).is_some()
}

struct Scanner<'a, 'l> {
    b: &'a [u8],
    i: usize,
    limits: &'l JsonLimits,
    entries: usize,
    /// The decoded keys of the objects open now, outermost first (an
    /// object's own start in it is on the call stack), compared as bytes:
    /// a key that passed the string checks is UTF-8, so bytes compare as
    /// text.
    keys: Vec<Key>,
    /// The keys written with escapes, decoded, one after the other.
    decoded: Vec<u8>,
}

/// A decoded key: its bytes in the document (no escapes) or in
/// `Scanner::decoded`.
#[derive(Clone, Copy)]
struct Key {
    in_decoded: bool,
    start: usize,
    end: usize,
}

/// `None` everywhere below: not passed here (the serde_json checker looks).
impl<'a> Scanner<'a, '_> {
    fn document(&mut self, schema: Option<&Node>) -> Option<()> {
        self.ws();
        self.value(1, schema)?;
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// JSON's four whitespace bytes, and no other.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Scalars here, containers in calls of their own: the recursion goes
    /// through `object` and `array` only, so a scalar costs no call.
    /// `schema`: what the value must also be (`None`: anything).
    #[inline(always)]
    fn value(&mut self, depth: usize, schema: Option<&Node>) -> Option<()> {
        let allows = |t| schema.is_none_or(|n| n.allows(t));
        match self.peek()? {
            b'{' if allows(subset::OBJECT) => self.object(depth, schema),
            b'[' if allows(subset::ARRAY) => self.array(depth, schema),
            b'"' if allows(subset::STRING) => {
                let s = self.string()?;
                if s.len > self.limits.max_string_len {
                    return None;
                }
                match schema {
                    // A length counts characters: bytes only when ASCII.
                    Some(n) if n.counts_strings() => {
                        (s.ascii && (n.min_len..=n.max_len).contains(&s.len)).then_some(())
                    }
                    _ => Some(()),
                }
            }
            b't' if allows(subset::BOOLEAN) => self.literal(b"true"),
            b'f' if allows(subset::BOOLEAN) => self.literal(b"false"),
            b'n' if allows(subset::NULL) => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                let integer = self.number()?;
                let Some(n) = schema else { return Some(()) };
                let typed = n.allows(subset::NUMBER) || (integer && n.allows(subset::INTEGER));
                if !typed {
                    return None;
                }
                if n.bounds_numbers() {
                    let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
                    return (integer && n.in_bounds(text.parse().ok()?)).then_some(());
                }
                Some(())
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    fn entry(&mut self) -> Option<()> {
        self.entries += 1;
        (self.entries <= self.limits.max_entries).then_some(())
    }

    fn open(&mut self, depth: usize) -> Option<()> {
        (depth <= self.limits.max_depth && depth <= SERDE_MAX_DEPTH).then(|| self.i += 1)
    }

    #[inline(never)]
    fn array(&mut self, depth: usize, schema: Option<&Node>) -> Option<()> {
        self.open(depth)?;
        self.ws();
        let items = schema.and_then(|n| n.items.as_deref());
        let mut count = 0;
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                self.value(depth + 1, items)?;
                self.entry()?;
                count += 1;
                if self.after_member(b']')? {
                    break;
                }
            }
        }
        schema.is_none_or(|n| (n.min_items..=n.max_items).contains(&count)).then_some(())
    }

    #[inline(never)]
    fn object(&mut self, depth: usize, schema: Option<&Node>) -> Option<()> {
        self.open(depth)?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return schema.is_none_or(|n| n.required == 0).then_some(());
        }
        let mut seen = 0;
        let start = self.keys.len();
        let decoded_start = self.decoded.len();
        let mut many: Option<Box<Many<'a>>> = None;
        let done = loop {
            if self.peek()? != b'"' {
                break None;
            }
            let key = self.key()?;
            self.entry()?;
            let bytes = self.bytes(key);
            if bytes.len() > self.limits.max_string_len
                || (self.limits.forbid_prototype_keys
                    && matches!(bytes.len(), 9 | 11)
                    && PROTOTYPE_KEYS.iter().any(|p| p.as_bytes() == bytes))
            {
                break None;
            }
            let repeated = match &mut many {
                Some(set) => !set.insert(self.b, &self.decoded, key),
                None => self.keys[start..].iter().any(|&k| self.bytes(k) == bytes),
            };
            if repeated {
                break None;
            }
            if many.is_none() {
                self.keys.push(key);
                if self.keys.len() - start > FEW_KEYS {
                    let mut set = Box::<Many<'a>>::default();
                    for k in self.keys.drain(start..) {
                        set.insert(self.b, &self.decoded, k);
                    }
                    many = Some(set);
                }
            }
            // The value's schema: its property's, or none when the object
            // allows others (a repeat was refused above, so `seen` counts
            // each name once).
            let child = match schema {
                None => None,
                Some(n) => match n.property(self.bytes(key)) {
                    Some(p) => {
                        seen |= p.required;
                        Some(&p.node)
                    }
                    None if n.additional => None,
                    None => break None,
                },
            };
            self.ws();
            if self.peek()? != b':' {
                break None;
            }
            self.i += 1;
            self.ws();
            self.value(depth + 1, child)?;
            match self.after_member(b'}') {
                Some(false) => {}
                Some(true) => break schema.is_none_or(|n| seen == n.required).then_some(()),
                None => break None,
            }
        };
        self.keys.truncate(start);
        self.decoded.truncate(decoded_start);
        done
    }

    /// After an array's or an object's member: `,` and more to come
    /// (`false`), or `close` and the container ends (`true`).
    #[inline(always)]
    fn after_member(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let c = self.peek()?;
        if c == b',' {
            self.i += 1;
            self.ws();
            return Some(false);
        }
        (c == close).then(|| {
            self.i += 1;
            true
        })
    }

    fn bytes(&self, k: Key) -> &[u8] {
        if k.in_decoded { &self.decoded[k.start..k.end] } else { &self.b[k.start..k.end] }
    }

    /// A string as a key, decoded: where it is in the document unless it
    /// has escapes.
    fn key(&mut self) -> Option<Key> {
        let s = self.string()?;
        if !s.escaped {
            return Some(Key { in_decoded: false, start: s.start, end: s.end });
        }
        let start = self.decoded.len();
        let mut rest = &self.b[s.start..s.end];
        while let Some(at) = memchr::memchr(b'\\', rest) {
            self.decoded.extend_from_slice(&rest[..at]);
            let (c, used) = escape(&rest[at..])?;
            self.decoded.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            rest = &rest[at + used..];
        }
        self.decoded.extend_from_slice(rest);
        Some(Key { in_decoded: true, start, end: self.decoded.len() })
    }

    /// Scans the string the cursor is on (at its quote) to just past its
    /// closing quote: no control byte, valid UTF-8, every escape valid.
    #[inline(always)]
    fn string(&mut self) -> Option<Str> {
        let start = self.i + 1;
        // Its first bytes one by one: a short plain string ends here.
        let stop = self.b.len().min(start + SHORT);
        let mut i = start;
        while i < stop && PLAIN[usize::from(self.b[i])] {
            i += 1;
        }
        if self.b.get(i) == Some(&b'"') {
            self.i = i + 1;
            return Some(Str { start, end: i, len: i - start, escaped: false, ascii: true });
        }
        self.string_rest(start, i)
    }

    /// The rest of a string from `i`, its bytes before `i` plain.
    #[inline(never)]
    fn string_rest(&mut self, start: usize, mut i: usize) -> Option<Str> {
        let from = i;
        let mut len = i - start;
        let mut escaped = false;
        let end = loop {
            let at = i + memchr::memchr2(b'"', b'\\', self.b.get(i..)?)?;
            len += at - i;
            if self.b[at] == b'"' {
                break at;
            }
            let (c, used) = escape(&self.b[at..])?;
            len += c.len_utf8();
            escaped = true;
            i = at + used;
        };
        let raw = &self.b[from..end];
        let plain = plain(raw);
        if !plain && (raw.iter().any(|&c| c < 0x20) || std::str::from_utf8(raw).is_err()) {
            return None;
        }
        self.i = end + 1;
        Some(Str { start, end, len, escaped, ascii: plain && !escaped })
    }

    /// A number as RFC 8259 writes it. serde_json refuses one whose value
    /// is not a finite f64; that needs an exponent or more than 300
    /// integer digits, and such a number is parsed by serde_json itself.
    /// `Some(true)`: an integer of at most 18 digits, no fraction, no
    /// exponent, not `-0` (an `i64` whatever its digits, and an integer
    /// to every JSON Schema draft).
    fn number(&mut self) -> Option<bool> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let long = self.i - int_start > 300;
        let fraction = self.peek() == Some(b'.');
        if fraction {
            self.i += 1;
            self.some_digits()?;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
            exponent = true;
        }
        if exponent || long {
            serde_json::from_slice::<serde_json::Value>(&self.b[start..self.i]).ok()?;
        }
        // serde_json reads `-0` as the float -0.0, which draft 4 does not
        // take for an integer.
        let negative_zero = int_start > start && self.b[int_start] == b'0';
        Some(!exponent && !fraction && !negative_zero && self.i - int_start <= 18)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let from = self.i;
        self.digits();
        (self.i > from).then_some(())
    }
}

/// The keys of an object with many, to find a repeat: the set a key
/// goes in depends on where its bytes are, and a key is looked for in
/// both.
#[derive(Default)]
struct Many<'a> {
    doc: HashSet<&'a [u8]>,
    decoded: HashSet<Vec<u8>>,
}

impl<'a> Many<'a> {
    /// Whether `k` is new (it is added then).
    fn insert(&mut self, doc: &'a [u8], decoded: &[u8], k: Key) -> bool {
        if k.in_decoded {
            let bytes = &decoded[k.start..k.end];
            !self.doc.contains(bytes) && self.decoded.insert(bytes.to_vec())
        } else {
            let bytes = &doc[k.start..k.end];
            !self.decoded.contains(bytes) && self.doc.insert(bytes)
        }
    }
}

/// A scanned string: its raw bytes between the quotes, its length once
/// unescaped, whether it has escapes.
struct Str {
    start: usize,
    end: usize,
    len: usize,
    escaped: bool,
    /// Printable ASCII written as it is: its length is its character count.
    ascii: bool,
}

/// One escape at the start of `b` (on its backslash): the character and
/// the bytes it took. A surrogate must come as a pair (`\ud83d\ude00`);
/// one alone is refused, as serde_json refuses it.
fn escape(b: &[u8]) -> Option<(char, usize)> {
    let c = match *b.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b.get(2..6)?)?;
            return match hi {
                0xD800..=0xDBFF => {
                    if b.get(6..8)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(b.get(8..12)?)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return None;
                    }
                    let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                    Some((char::from_u32(c)?, 12))
                }
                _ => Some((char::from_u32(u32::from(hi))?, 6)),
            };
        }
        _ => return None,
    };
    Some((c, 2))
}

fn hex4(b: &[u8]) -> Option<u16> {
    b.iter().try_fold(0u16, |n, &c| Some(n << 4 | char::from(c).to_digit(16)? as u16))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether every byte is printable ASCII or DEL (0x20..=0x7F), eight at a
/// time: in `(w - ONES * 0x20) | w`, a byte's high bit is set when it is
/// 0x80 or more, or when it is under 0x20 (its subtraction borrows). A
/// borrow only starts at a byte under 0x20, so a word without one has no
/// false flag, and a word with one is flagged anyway.
fn plain(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    let mut flags = 0;
    for w in words.by_ref() {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8]));
        flags |= w.wrapping_sub(ONES * 0x20) | w;
    }
    flags & HIGHS == 0 && words.remainder().iter().all(|&c| (0x20..0x80).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word trick agrees with a byte loop for every byte value at
    /// every position of every length up to three words.
    #[test]
    fn plain_is_exactly_printable_ascii() {
        let by_byte = |b: &[u8]| b.iter().all(|&c| (0x20..0x80).contains(&c));
        for len in 0..24 {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(plain(&b), by_byte(&b), "{b:?}");
                    // A borrow from a low byte into its neighbour.
                    if at + 1 < len {
                        b[at + 1] = 0x20;
                        assert_eq!(plain(&b), by_byte(&b), "{b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn escapes_decode_as_json_says() {
        assert_eq!(escape(br#"\u0041"#), Some(('A', 6)));
        assert_eq!(escape(br#"\ud83d\ude00"#), Some(('\u{1F600}', 12)));
        assert_eq!(escape(br#"\u00e9x"#), Some(('\u{e9}', 6)));
        assert_eq!(escape(br#"\n"#), Some(('\n', 2)));
        for bad in [
            &br#"\ud800"#[..],
            br#"\udc00"#,
            br#"\ud83d\u0041"#,
            br#"\ud83dx\ude00"#,
            br#"\u12g4"#,
            br#"\x"#,
            br#"\"#,
            br#"\u12"#,
        ] {
            assert_eq!(escape(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
