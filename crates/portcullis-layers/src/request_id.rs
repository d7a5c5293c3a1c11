//! Request ids (C30): accepted from trusted proxies, generated otherwise,
//! returned to the client and forwarded upstream.

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::client::ClientInfo;

/// The header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a trusted proxy.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A validated request id: 1 to 128 characters of `[A-Za-z0-9._:-]`. Held
/// as the header value only (cloning it is a reference-count increment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

/// Random bytes for request ids, drawn from the operating system 4 KiB at a
/// time: one `getrandom` call per 256 ids instead of one per request
/// (docs/performance.md). The ids are correlation handles, not secrets; the
/// bytes are still the system CSPRNG's.
struct RandomPool {
    buf: [u8; 4096],
    used: usize,
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomPool> =
        const { std::cell::RefCell::new(RandomPool { buf: [0; 4096], used: 4096 }) };
}

fn random_16() -> [u8; 16] {
    RANDOM.with(|cell| {
        let mut pool = cell.borrow_mut();
        if pool.used + 16 > pool.buf.len() {
            if getrandom::fill(&mut pool.buf).is_err() {
                // No system randomness (never seen on Linux): fall back to
                // the uuid crate, which asks the same source per id.
                return *uuid::Uuid::new_v4().as_bytes();
            }
            pool.used = 0;
        }
        let mut out = [0u8; 16];
        let at = pool.used;
        out.copy_from_slice(&pool.buf[at..at + 16]);
        // Used bytes are wiped so no later read of the buffer sees them.
        pool.buf[at..at + 16].fill(0);
        pool.used += 16;
        out
    })
}

impl RequestId {
    /// A fresh random (UUID v4) id.
    pub fn new_random() -> Self {
        let uuid = uuid::Builder::from_random_bytes(random_16()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let s = uuid.hyphenated().encode_lower(&mut text);
        // A hyphenated UUID is always a valid header value.
        RequestId(HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// Accepts an id from a header when it has the allowed shape.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_REQUEST_ID_LEN {
            return None;
        }
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
            return None;
        }
        Some(RequestId(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever admitted (`parse`, `new_random`).
        self.0.to_str().unwrap_or("")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Decides the id of a request: the incoming one only from a trusted peer.
pub fn decide<B>(req: &Request<B>) -> RequestId {
    let trusted = req.extensions().get::<ClientInfo>().is_some_and(|c| c.peer_trusted);
    if trusted {
        let mut values = req.headers().get_all(REQUEST_ID_HEADER).iter();
        if let (Some(v), None) = (values.next(), values.next())
            && let Some(id) = RequestId::parse(v)
        {
            return id;
        }
    }
    RequestId::new_random()
}

/// Sets a [`RequestId`] on every request (extension and header) and returns it
/// on every response.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = crate::future::MapResponse<S::Future, RequestId>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = decide(&req);
        req.headers_mut().insert(REQUEST_ID_HEADER, id.header_value().clone());
        req.extensions_mut().insert(id.clone());
        crate::future::MapResponse::new(self.inner.call(req), id)
    }
}

impl<B> crate::future::ResponseMapper<B> for RequestId {
    fn map(self, res: &mut Response<B>) {
        res.headers_mut().insert(REQUEST_ID_HEADER, self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn req(trusted: bool, id: Option<&'static str>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(id) = id {
            b = b.header(REQUEST_ID_HEADER, id);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(ClientInfo {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https: false,
            peer_trusted: trusted,
        });
        r
    }

    #[test]
    fn accepted_only_from_trusted_peer() {
        assert_eq!(decide(&req(true, Some("abc-123"))).as_str(), "abc-123");
        assert_ne!(decide(&req(false, Some("abc-123"))).as_str(), "abc-123");
    }

    #[test]
    fn bad_shapes_are_replaced() {
        for bad in ["", "a b", "a\"b", "<script>", "x/y"] {
            let r = Request::builder().header(REQUEST_ID_HEADER, bad).body(()).unwrap();
            let v = r.headers().get(REQUEST_ID_HEADER).unwrap();
            assert!(RequestId::parse(v).is_none(), "{bad}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert!(RequestId::parse(&long).is_none());
    }

    #[test]
    fn generated_ids_are_unique() {
        assert_ne!(RequestId::new_random(), RequestId::new_random());
        assert_eq!(RequestId::new_random().as_str().len(), 36);
    }

    #[test]
    fn c30_generated_ids_are_version_4_and_distinct_across_pool_refills() {
        // 1000 ids span four refills of the 256-id random pool.
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::new_random()).collect();
        let distinct: std::collections::HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let u = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(u.get_version_num(), 4, "{}", id.as_str());
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert!(RequestId::parse(id.header_value()).is_some());
        }
    }
}
