//! Content-Type and Content-Encoding of request bodies (C19).
//!
//! The upstream decodes a compressed body before parsing it (Express'
//! body-parser inflates `gzip`, `deflate` and `br`), so Portcullis must
//! check the *decoded* body or a compressed payload walks past every rule.
//! Bodies are decoded with the same size limit applied to the result (a
//! 1 MB gzip bomb can't become 1 GB here); the original bytes are forwarded.

use std::io::Read;

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

/// What kind of body a Content-Type announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json`, `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else (passed through, not parsed).
    Other,
}

/// A parsed Content-Type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MediaType {
    /// `type/subtype`, lower-case, without parameters.
    pub(crate) essence: String,
    pub(crate) kind: BodyKind,
}

/// Why a header refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MediaError {
    /// Several Content-Type fields, or one that isn't `type/subtype`.
    BadContentType,
    /// A parsed type with a charset other than UTF-8.
    Charset,
    /// An unknown or stacked Content-Encoding.
    Encoding,
}

/// Reads the Content-Type; `Ok(None)` when there is none.
pub(crate) fn content_type(headers: &HeaderMap) -> Result<Option<MediaType>, MediaError> {
    let mut all = headers.get_all(CONTENT_TYPE).iter();
    let Some(v) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err(MediaError::BadContentType);
    }
    let s = v.to_str().map_err(|_| MediaError::BadContentType)?;
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let valid_token =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match essence.split_once('/') {
        Some((t, sub)) if valid_token(t) && valid_token(sub) => {}
        _ => return Err(MediaError::BadContentType),
    }
    let kind = if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    };
    if kind != BodyKind::Other {
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("charset") {
                let value = value.trim().trim_matches('"');
                if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
                    return Err(MediaError::Charset);
                }
            }
        }
    }
    Ok(Some(MediaType { essence, kind }))
}

/// A Content-Encoding Portcullis can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

/// Reads the Content-Encoding: one coding of `identity`, `gzip`, `deflate`,
/// `br`, as body-parser accepts; anything else, or a list, is refused.
pub(crate) fn content_encoding(headers: &HeaderMap) -> Result<Encoding, MediaError> {
    let mut all = headers.get_all(CONTENT_ENCODING).iter();
    let Some(v) = all.next() else { return Ok(Encoding::Identity) };
    if all.next().is_some() {
        return Err(MediaError::Encoding);
    }
    let s = v.to_str().map_err(|_| MediaError::Encoding)?.trim();
    match s.to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(Encoding::Identity),
        "gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        "br" => Ok(Encoding::Brotli),
        _ => Err(MediaError::Encoding),
    }
}

/// Why a body couldn't be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The decoded body is larger than the limit.
    TooLarge,
    /// Not valid data for the coding.
    Corrupt,
}

/// Decodes a whole body, refusing results over `max` bytes.
pub(crate) fn decode(bytes: &[u8], enc: Encoding, max: u64) -> Result<Vec<u8>, DecodeError> {
    let reader: Box<dyn Read + '_> = match enc {
        Encoding::Identity => return Ok(bytes.to_vec()),
        // Every member, as Node's gunzip reads concatenated members: a
        // decoder that stopped after the first would check less than the
        // upstream parses.
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(bytes)),
        Encoding::Brotli => Box::new(brotli_decompressor::Decompressor::new(bytes, 4096)),
    };
    let mut out = Vec::new();
    let n = reader.take(max.saturating_add(1)).read_to_end(&mut out).map_err(|_| DecodeError::Corrupt)?;
    if n as u64 > max {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::io::Write;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn c19_content_type_table() {
        let kind =
            |v: &'static str| content_type(&headers(&[("content-type", v)])).map(|m| m.map(|m| m.kind));
        assert_eq!(kind("application/json"), Ok(Some(BodyKind::Json)));
        assert_eq!(kind("Application/JSON; charset=UTF-8"), Ok(Some(BodyKind::Json)));
        assert_eq!(kind("application/merge-patch+json"), Ok(Some(BodyKind::Json)));
        assert_eq!(kind("application/x-www-form-urlencoded"), Ok(Some(BodyKind::Form)));
        assert_eq!(kind("text/plain"), Ok(Some(BodyKind::Other)));
        assert_eq!(kind("text/plain; charset=latin1"), Ok(Some(BodyKind::Other)));
        assert_eq!(kind("application/json; charset=utf-16"), Err(MediaError::Charset));
        assert_eq!(kind("application/json; charset=\"latin1\""), Err(MediaError::Charset));
        assert_eq!(kind("json"), Err(MediaError::BadContentType));
        assert_eq!(kind("application/json, text/plain"), Err(MediaError::BadContentType));
        assert_eq!(kind("/json"), Err(MediaError::BadContentType));
        let two = headers(&[("content-type", "text/plain"), ("content-type", "application/json")]);
        assert_eq!(content_type(&two), Err(MediaError::BadContentType));
        assert_eq!(content_type(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn c19_content_encoding_table() {
        let enc = |v: &'static str| content_encoding(&headers(&[("content-encoding", v)]));
        assert_eq!(enc("gzip"), Ok(Encoding::Gzip));
        assert_eq!(enc("GZIP"), Ok(Encoding::Gzip));
        assert_eq!(enc("deflate"), Ok(Encoding::Deflate));
        assert_eq!(enc("br"), Ok(Encoding::Brotli));
        assert_eq!(enc("identity"), Ok(Encoding::Identity));
        for bad in ["compress", "zstd", "x-gzip", "gzip, gzip", "gzip;q=1"] {
            assert_eq!(enc(bad), Err(MediaError::Encoding), "{bad}");
        }
        let two = headers(&[("content-encoding", "gzip"), ("content-encoding", "gzip")]);
        assert_eq!(content_encoding(&two), Err(MediaError::Encoding));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn c13_decoded_size_is_limited() {
        let doc = br#"{"__proto__":{"x":1}}"#;
        assert_eq!(decode(&gzip(doc), Encoding::Gzip, 1024).unwrap(), doc);
        // A bomb: 10 MB of zeros in about 10 KB.
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(decode(&bomb, Encoding::Gzip, 1024 * 1024), Err(DecodeError::TooLarge));
        assert_eq!(decode(b"not gzip", Encoding::Gzip, 1024), Err(DecodeError::Corrupt));
        assert_eq!(decode(b"not zlib", Encoding::Deflate, 1024), Err(DecodeError::Corrupt));
        assert_eq!(decode(b"\xff\xff\xff", Encoding::Brotli, 1024), Err(DecodeError::Corrupt));
        // Two gzip members: the second one is checked too.
        let mut two = gzip(br#"{"a":1,"#);
        two.extend(gzip(br#""__proto__":{}}"#));
        assert_eq!(decode(&two, Encoding::Gzip, 1024).unwrap(), br#"{"a":1,"__proto__":{}}"#);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(doc).unwrap();
        assert_eq!(decode(&z.finish().unwrap(), Encoding::Deflate, 1024).unwrap(), doc);
    }
}
