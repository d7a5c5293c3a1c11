//! Path canonicalisation before any policy looks at the path (C28).
//!
//! # What it stops
//! Route-bypass attacks that spell a protected path differently from how the
//! policy spells it but the same as how the upstream reads it: `/admin/../`,
//! `//admin`, `%2e%2e`, `%2f`, `%5c`, `;jsessionid` segments, double encoding
//! (`%252e`), NUL bytes, backslashes.
//!
//! # Decision rules
//! - The path must be in origin form (starts with `/`).
//! - Percent-encoded unreserved characters (`%41` -> `A`, `%7E` -> `~`) are
//!   decoded; other escapes are kept with upper-case hex.
//! - Refused (400 `invalid_path`): an encoded `/`, `\`, `.`, NUL or `%`
//!   (double encoding); a malformed escape; a literal `\` or `;`; any byte
//!   outside RFC 3986 `pchar`; `..` above the root.
//! - Dot segments are resolved and repeated slashes merged; both can be made
//!   stricter (refused instead) with [`PathPolicy`], never laxer.
//!
//! The canonical path replaces the request URI's path, so what later layers
//! match is byte for byte what is forwarded.
//!
//! # Example
//! ```
//! use portcullis_layers::path::{canonicalize, PathPolicy, PathError};
//! let p = PathPolicy::default();
//! assert_eq!(canonicalize("/api//users/./%61dmin/../7", &p).unwrap(), "/api/users/7");
//! assert_eq!(canonicalize("/api/%2e%2e/admin", &p), Err(PathError::EncodedDot));
//! ```

mod layer;

pub use layer::{CanonicalPathLayer, CanonicalPathService};

use std::borrow::Cow;

/// How strictly paths are canonicalised. The defaults are the laxest allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPolicy {
    /// Merge `//` into `/` (true) or refuse such paths (false).
    pub merge_slashes: bool,
    /// Resolve `.` and `..` segments (true) or refuse such paths (false).
    pub resolve_dot_segments: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy { merge_slashes: true, resolve_dot_segments: true }
    }
}

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Not origin form (`*`, empty, relative).
    NotOriginForm,
    /// `%2F`.
    EncodedSlash,
    /// `%5C`.
    EncodedBackslash,
    /// `%2E`.
    EncodedDot,
    /// `%00`.
    EncodedNul,
    /// `%25`: an escape of an escape.
    DoubleEncoding,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// A literal `\`.
    Backslash,
    /// A literal `;` (path parameters).
    Semicolon,
    /// A byte outside RFC 3986 `pchar`.
    DisallowedByte,
    /// `..` above the root.
    AboveRoot,
    /// `//` with `merge_slashes = false`.
    EmptySegment,
    /// `.` or `..` with `resolve_dot_segments = false`.
    DotSegment,
}

impl PathError {
    /// A short reason for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "not_origin_form",
            PathError::EncodedSlash => "encoded_slash",
            PathError::EncodedBackslash => "encoded_backslash",
            PathError::EncodedDot => "encoded_dot",
            PathError::EncodedNul => "encoded_nul",
            PathError::DoubleEncoding => "double_encoding",
            PathError::MalformedEscape => "malformed_escape",
            PathError::Backslash => "backslash",
            PathError::Semicolon => "semicolon",
            PathError::DisallowedByte => "disallowed_byte",
            PathError::AboveRoot => "above_root",
            PathError::EmptySegment => "empty_segment",
            PathError::DotSegment => "dot_segment",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` minus `%` (handled apart) and `;` (refused), plus `/`.
fn is_allowed_literal(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@' | b'/'
        )
}

/// The value of one hex digit.
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Canonicalises a request path, or says why it can't be done unambiguously.
/// Returns the input unchanged (borrowed) when it is already canonical.
pub fn canonicalize<'a>(path: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    // Pass 1: escapes and characters.
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(PathError::MalformedEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    b'.' => return Err(PathError::EncodedDot),
                    0 => return Err(PathError::EncodedNul),
                    b'%' => return Err(PathError::DoubleEncoding),
                    v if is_unreserved(v) => decoded.push(v),
                    v => decoded.extend_from_slice(&[
                        b'%',
                        HEX_UPPER[usize::from(v >> 4)],
                        HEX_UPPER[usize::from(v & 15)],
                    ]),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b if is_allowed_literal(b) => {
                decoded.push(b);
                i += 1;
            }
            _ => return Err(PathError::DisallowedByte),
        }
    }
    // Pass 2: segments. `decoded` starts with '/'.
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (idx, seg) in segments.iter().enumerate() {
        match *seg {
            b"" if idx == last => trailing_slash = true,
            b"" => {
                if !policy.merge_slashes {
                    return Err(PathError::EmptySegment);
                }
            }
            b"." | b".." if !policy.resolve_dot_segments => return Err(PathError::DotSegment),
            b"." => trailing_slash = idx == last,
            b".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = idx == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut canon = Vec::with_capacity(decoded.len());
    for s in &out {
        canon.push(b'/');
        canon.extend_from_slice(s);
    }
    if canon.is_empty() || trailing_slash {
        canon.push(b'/');
    }
    if canon == bytes {
        return Ok(Cow::Borrowed(path));
    }
    // Only ASCII bytes were pushed.
    String::from_utf8(canon).map(Cow::Owned).map_err(|_| PathError::DisallowedByte)
}

#[cfg(test)]
mod tests;
