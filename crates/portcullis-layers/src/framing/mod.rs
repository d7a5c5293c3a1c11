//! Request framing checks (C28): no request whose length is ambiguous.
//!
//! # What it stops
//! Request smuggling (CL.TE, TE.CL, TE.TE): a front proxy and a back end that
//! disagree about where a request ends. Portcullis refuses, with 400
//! `ambiguous_framing` and `Connection: close`, any request that carries
//! - `Content-Length` together with `Transfer-Encoding`,
//! - more than one `Content-Length` or `Transfer-Encoding` field,
//! - a `Content-Length` that is not a plain decimal number,
//! - a `Transfer-Encoding` other than exactly `chunked`,
//! - or that the connection-level tracker of the server marked as ambiguous
//!   ([`FramingVerdict`]; hyper itself drops a `Content-Length` that comes with
//!   `Transfer-Encoding`, so only the raw bytes show it).
//!
//! It also refuses, with 400 `invalid_host`, an HTTP/1.1 request without a
//! `Host` field and any request with several (RFC 9112 section 3.2): a
//! back end that picks a virtual host by another rule than ours could
//! serve another site's routes. With [`FramingLayer::host_names`], a
//! request for any other host is refused the same way (Host header
//! attacks: password-reset links and caches poisoned with a host the
//! attacker chose).
//!
//! # Example
//! ```
//! use portcullis_layers::framing::{check_headers, FramingFault};
//! let mut h = http::HeaderMap::new();
//! h.insert("content-length", "5".parse().unwrap());
//! assert_eq!(check_headers(&h), Ok(()));
//! h.insert("transfer-encoding", "chunked".parse().unwrap());
//! assert_eq!(check_headers(&h), Err(FramingFault::ContentLengthWithTransferEncoding));
//! ```

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use tower::{Layer, Service};

use crate::future::OrReject;
use crate::rejection::{RejectionKind, reject};

/// A framing fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingFault {
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthWithTransferEncoding,
    /// Several `Content-Length` fields or a list value.
    MultipleContentLength,
    /// A `Content-Length` that is not `1*DIGIT`.
    MalformedContentLength,
    /// Several `Transfer-Encoding` fields.
    MultipleTransferEncoding,
    /// A coding other than exactly `chunked`.
    UnsupportedTransferEncoding,
    /// The connection tracker lost sync with the byte stream.
    Desync,
}

impl FramingFault {
    /// A short reason for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            FramingFault::ContentLengthWithTransferEncoding => "cl_with_te",
            FramingFault::MultipleContentLength => "multiple_cl",
            FramingFault::MalformedContentLength => "malformed_cl",
            FramingFault::MultipleTransferEncoding => "multiple_te",
            FramingFault::UnsupportedTransferEncoding => "unsupported_te",
            FramingFault::Desync => "desync",
        }
    }
}

/// The verdict of the server's connection-level framing tracker for one
/// request, stored in the request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramingVerdict(pub Result<(), FramingFault>);

/// Checks the framing headers of a request as parsed.
pub fn check_headers(headers: &HeaderMap) -> Result<(), FramingFault> {
    let mut cl = headers.get_all(header::CONTENT_LENGTH).iter();
    let cl_first = cl.next();
    if cl.next().is_some() {
        return Err(FramingFault::MultipleContentLength);
    }
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    let te_first = te.next();
    if te.next().is_some() {
        return Err(FramingFault::MultipleTransferEncoding);
    }
    if cl_first.is_some() && te_first.is_some() {
        return Err(FramingFault::ContentLengthWithTransferEncoding);
    }
    if let Some(v) = cl_first {
        let b = v.as_bytes();
        if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
            return Err(if b.contains(&b',') {
                FramingFault::MultipleContentLength
            } else {
                FramingFault::MalformedContentLength
            });
        }
    }
    if let Some(v) = te_first
        && !v.as_bytes().eq_ignore_ascii_case(b"chunked")
    {
        return Err(FramingFault::UnsupportedTransferEncoding);
    }
    Ok(())
}

/// Exactly one `Host` in HTTP/1.1, at most one otherwise, and the same as
/// the target's authority when the request has one (absolute form, or
/// HTTP/2's `:authority`): a back end that reads the other could be routed
/// to another virtual host than the one the policy saw. The host itself is
/// a DNS name or IP literal with an optional port: no `/`, `@`, spaces,
/// quotes or other bytes a back end might read as a path or a second URL.
fn host_ok<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let authority = req.uri().authority().map(http::uri::Authority::as_str);
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => false,
        (None, None) => req.version() != http::Version::HTTP_11 && authority.is_none_or(valid_host),
        (Some(h), None) => {
            valid_host(h.as_bytes())
                && authority.is_none_or(|a| a.as_bytes().eq_ignore_ascii_case(h.as_bytes()))
        }
    }
}

/// A host as Portcullis accepts it: a DNS name (underscores allowed, as
/// some internal names have them) or an IP literal, with an optional port.
pub fn valid_host(h: impl AsRef<[u8]>) -> bool {
    let b = h.as_ref();
    !b.is_empty()
        && b.len() <= 255
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

/// `host` without its port: `example.com:8080` is `example.com`,
/// `[::1]:443` is `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().map_or(host, |v6| &host[..v6.len() + 2]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Refuses requests with ambiguous framing or an unacceptable host.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct FramingLayer {
    names: std::sync::Arc<[String]>,
}

impl FramingLayer {
    /// Framing and `Host` checks; any host name accepted.
    pub fn new() -> Self {
        FramingLayer::default()
    }

    /// Accepts only requests for these host names (without port, compared
    /// without ASCII case); empty accepts any.
    pub fn host_names(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.names = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        self
    }
}

impl<S> Layer<S> for FramingLayer {
    type Service = FramingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FramingService { inner, names: self.names.clone() }
    }
}

/// The service of [`FramingLayer`].
#[derive(Clone, Debug)]
pub struct FramingService<S> {
    inner: S,
    names: std::sync::Arc<[String]>,
}

/// Whether the request's host (Host, or the target's authority) is one
/// of `names`; true when `names` is empty or the request names no host
/// (HTTP/1.0 without `Host`).
fn host_named<B>(req: &Request<B>, names: &[String]) -> bool {
    if names.is_empty() {
        return true;
    }
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri().authority().map(http::uri::Authority::as_str),
    };
    host.is_none_or(|h| {
        let h = strip_port(h);
        names.iter().any(|n| n.eq_ignore_ascii_case(h))
    })
}

impl<S, B, ResBody> Service<Request<B>> for FramingService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OrReject<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !host_ok(&req) || !host_named(&req, &self.names) {
            return OrReject::Rejected { res: Some(reject(&req, RejectionKind::InvalidHost)) };
        }
        let verdict = req.extensions().get::<FramingVerdict>().map_or(Ok(()), |v| v.0);
        match verdict.and_then(|()| check_headers(req.headers())) {
            Ok(()) => OrReject::Inner { fut: self.inner.call(req) },
            Err(fault) => {
                tracing::debug!(reason = fault.as_str(), "framing refused");
                OrReject::Rejected { res: Some(reject(&req, RejectionKind::AmbiguousFraming)) }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<(), FramingFault> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        check_headers(&h)
    }

    // C28: smuggling shapes from the public record (CL.TE, TE.TE obfuscation).
    #[test]
    fn c28_framing_table() {
        use FramingFault::*;
        let table: &[(&[(&str, &str)], Result<(), FramingFault>)] = &[
            (&[], Ok(())),
            (&[("content-length", "10")], Ok(())),
            (&[("transfer-encoding", "chunked")], Ok(())),
            (&[("transfer-encoding", "Chunked")], Ok(())),
            (
                &[("content-length", "10"), ("transfer-encoding", "chunked")],
                Err(ContentLengthWithTransferEncoding),
            ),
            (&[("content-length", "10"), ("content-length", "10")], Err(MultipleContentLength)),
            (&[("content-length", "10, 11")], Err(MultipleContentLength)),
            (&[("content-length", "+10")], Err(MalformedContentLength)),
            (&[("content-length", "0x10")], Err(MalformedContentLength)),
            (&[("content-length", "")], Err(MalformedContentLength)),
            (
                &[("transfer-encoding", "chunked"), ("transfer-encoding", "identity")],
                Err(MultipleTransferEncoding),
            ),
            (&[("transfer-encoding", "gzip, chunked")], Err(UnsupportedTransferEncoding)),
            (&[("transfer-encoding", "xchunked")], Err(UnsupportedTransferEncoding)),
            (&[("transfer-encoding", "chunked ,")], Err(UnsupportedTransferEncoding)),
            (&[("transfer-encoding", "identity")], Err(UnsupportedTransferEncoding)),
        ];
        for (headers, want) in table {
            assert_eq!(check(headers), *want, "{headers:?}");
        }
    }

    /// C28: with host names set, only those hosts are served, by Host or
    /// by the target's authority, whatever the port or case.
    #[test]
    fn c28_host_names() {
        let names: Vec<String> = vec!["api.example.com".into(), "[::1]".into()];
        let with_host = |h: &str| Request::builder().uri("/").header("host", h).body(()).unwrap();
        for ok in ["api.example.com", "API.Example.com:8443", "[::1]:443", "[::1]"] {
            assert!(host_named(&with_host(ok), &names), "{ok}");
        }
        for bad in ["evil.test", "api.example.com.evil.test", "example.com", "api.example.co", "[::2]"] {
            assert!(!host_named(&with_host(bad), &names), "{bad}");
        }
        let h2 = Request::builder().uri("https://evil.test/x").body(()).unwrap();
        assert!(!host_named(&h2, &names));
        assert!(host_named(&with_host("anything.test"), &[]));
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    // C28: RFC 9112 section 3.2, a missing or repeated Host.
    #[test]
    fn c28_host_table() {
        use http::Version;
        let req = |v: Version, hosts: &[&str]| {
            let mut r = Request::builder().version(v).uri("/");
            for h in hosts {
                r = r.header("host", *h);
            }
            r.body(()).unwrap()
        };
        assert!(host_ok(&req(Version::HTTP_11, &["a"])));
        assert!(!host_ok(&req(Version::HTTP_11, &[])));
        assert!(!host_ok(&req(Version::HTTP_11, &["a", "b"])));
        assert!(!host_ok(&req(Version::HTTP_11, &["a", "a"])));
        assert!(host_ok(&req(Version::HTTP_10, &[])));
        assert!(!host_ok(&req(Version::HTTP_10, &["a", "b"])));
        assert!(host_ok(&req(Version::HTTP_2, &[])));
        // Absolute form / :authority against Host.
        let abs = |uri: &str, host: &str| Request::builder().uri(uri).header("host", host).body(()).unwrap();
        assert!(host_ok(&abs("http://gw.test/ok", "gw.test")));
        assert!(host_ok(&abs("http://GW.test:8080/ok", "gw.test:8080")));
        assert!(!host_ok(&abs("http://other.test/ok", "gw.test")));
        assert!(!host_ok(&abs("http://gw.test:8080/ok", "gw.test")));
        // The host's own spelling: a name or an IP literal, with a port.
        for good in ["gw.test", "GW.Test:8080", "10.0.0.1", "[::1]:443", "svc_internal.local"] {
            assert!(host_ok(&req(Version::HTTP_11, &[good])), "{good}");
        }
        for bad in [
            "",
            "gw.test/admin",
            "user@gw.test",
            "gw test",
            "gw.test\\x",
            "gw.test?x",
            "gw.test#x",
            "\"gw\"",
            "%67w.test",
        ] {
            assert!(!host_ok(&req(Version::HTTP_11, &[bad])), "{bad:?}");
        }
        assert!(!host_ok(&req(Version::HTTP_11, &[&"a".repeat(256)])));
    }
}
