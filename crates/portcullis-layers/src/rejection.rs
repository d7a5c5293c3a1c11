//! The one table of Portcullis' own error responses (C19, C29).
//!
//! Every response Portcullis writes itself comes from [`RejectionKind`]: a
//! fixed status, a fixed machine code and a fixed public message. Nothing from
//! the request is ever echoed. The rejection is also stored in the response
//! extensions, so the access log and metrics read the reason without parsing
//! bodies.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::request_id::RequestId;

/// Why Portcullis answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// Content-Length with Transfer-Encoding, conflicting or malformed lengths (C28).
    AmbiguousFraming,
    /// A request target that cannot be canonicalised unambiguously (C28).
    InvalidPath,
    /// A Host header that is not a valid host name.
    InvalidHost,
    /// The request body is larger than the limit (C13).
    BodyTooLarge,
    /// The request headers are too large or too many (C14).
    HeadersTooLarge,
    /// The client was too slow sending the request body (C14).
    RequestTimeout,
    /// The request matched no route (C21).
    NotFound,
    /// A protected route without a bearer token (C21 C22).
    Unauthenticated,
    /// A bearer token that is malformed, unverifiable, expired or not for us (C22).
    InvalidToken,
    /// A verified identity without the route's role or ownership (C26 C27).
    Forbidden,
    /// A CORS preflight for an origin, method or header the policy refuses (C8).
    CorsForbidden,
    /// A rate limit was exceeded (C11).
    RateLimited,
    /// The upstream did not answer in time (C14).
    UpstreamTimeout,
    /// The upstream could not be reached.
    UpstreamUnavailable,
    /// The upstream answered with a server error or an HTML error page (C29).
    UpstreamError,
    /// Portcullis is shutting down or otherwise not able to serve.
    Unavailable,
    /// A fault inside Portcullis.
    Internal,
}

impl RejectionKind {
    /// All kinds, for documentation and tests.
    pub const ALL: &'static [RejectionKind] = &[
        RejectionKind::AmbiguousFraming,
        RejectionKind::InvalidPath,
        RejectionKind::InvalidHost,
        RejectionKind::BodyTooLarge,
        RejectionKind::HeadersTooLarge,
        RejectionKind::RequestTimeout,
        RejectionKind::NotFound,
        RejectionKind::Unauthenticated,
        RejectionKind::InvalidToken,
        RejectionKind::Forbidden,
        RejectionKind::CorsForbidden,
        RejectionKind::RateLimited,
        RejectionKind::UpstreamTimeout,
        RejectionKind::UpstreamUnavailable,
        RejectionKind::UpstreamError,
        RejectionKind::Unavailable,
        RejectionKind::Internal,
    ];

    /// The row of the error table: status, code, public message.
    pub const fn row(self) -> (StatusCode, &'static str, &'static str) {
        use RejectionKind::*;
        match self {
            AmbiguousFraming => (StatusCode::BAD_REQUEST, "ambiguous_framing", "Bad Request"),
            InvalidPath => (StatusCode::BAD_REQUEST, "invalid_path", "Bad Request"),
            InvalidHost => (StatusCode::BAD_REQUEST, "invalid_host", "Bad Request"),
            BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "Payload Too Large"),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request Header Fields Too Large",
            ),
            RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", "Request Timeout"),
            NotFound => (StatusCode::NOT_FOUND, "not_found", "Not Found"),
            Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "Unauthorized"),
            InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            CorsForbidden => (StatusCode::FORBIDDEN, "cors_forbidden", "Forbidden"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too Many Requests"),
            UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "Gateway Timeout"),
            UpstreamUnavailable => (StatusCode::BAD_GATEWAY, "upstream_unavailable", "Bad Gateway"),
            UpstreamError => (StatusCode::INTERNAL_SERVER_ERROR, "upstream_error", "Internal Server Error"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error"),
        }
    }

    /// The machine-readable code, e.g. `invalid_path`.
    pub const fn code(self) -> &'static str {
        self.row().1
    }

    /// The default status of this kind.
    pub const fn status(self) -> StatusCode {
        self.row().0
    }

    /// Whether the connection must be closed after the response (framing faults:
    /// the byte stream can no longer be trusted).
    pub const fn closes_connection(self) -> bool {
        matches!(self, RejectionKind::AmbiguousFraming)
    }
}

/// A rejection, stored in the extensions of the response that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// What was refused.
    pub kind: RejectionKind,
    /// The status sent; the kind's default unless an upstream status is kept (C29).
    pub status: StatusCode,
}

impl Rejection {
    /// A rejection with its kind's status.
    pub const fn new(kind: RejectionKind) -> Self {
        Rejection { kind, status: kind.status() }
    }

    /// A rejection with an explicit status (used to keep the upstream's status).
    pub const fn with_status(kind: RejectionKind, status: StatusCode) -> Self {
        Rejection { kind, status }
    }

    /// The public message: the canonical reason of the status for kept upstream
    /// statuses, the table's message otherwise. Never request data.
    pub fn message(&self) -> &'static str {
        if self.status == self.kind.status() {
            self.kind.row().2
        } else {
            self.status.canonical_reason().unwrap_or("Error")
        }
    }

    /// Renders the JSON body `{"error", "code", "request_id"}`.
    pub fn body_json(&self, request_id: Option<&RequestId>) -> String {
        let id = request_id.map(RequestId::as_str).unwrap_or("");
        // Every part is either a fixed table string or a validated request id;
        // serde_json's string escaping is belt and braces. Field order is
        // fixed: error, code, request_id.
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        format!(
            "{{\"error\":{},\"code\":{},\"request_id\":{}}}",
            q(self.message()),
            q(self.kind.code()),
            q(id)
        )
    }

    /// Builds the response for this rejection.
    pub fn into_response<B: From<Bytes>>(self, request_id: Option<&RequestId>) -> Response<B> {
        let body = self.body_json(request_id);
        let mut res = Response::new(B::from(Bytes::from(body)));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.kind.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(id) = request_id {
            headers.insert(crate::request_id::REQUEST_ID_HEADER, id.header_value().clone());
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// Builds the rejection response for a request, reading its request id.
pub fn reject<B: From<Bytes>, T>(req: &http::Request<T>, kind: RejectionKind) -> Response<B> {
    Rejection::new(kind).into_response(req.extensions().get::<RequestId>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for kind in RejectionKind::ALL {
            let code = kind.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn statuses_follow_fault() {
        for kind in RejectionKind::ALL {
            let status = kind.status();
            match kind {
                RejectionKind::UpstreamTimeout | RejectionKind::UpstreamUnavailable => {
                    assert!(status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT)
                }
                RejectionKind::UpstreamError | RejectionKind::Internal | RejectionKind::Unavailable => {
                    assert!(status.is_server_error())
                }
                _ => assert!(status.is_client_error(), "{kind:?}"),
            }
        }
    }

    #[test]
    fn docs_list_every_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
        let docs = std::fs::read_to_string(path).unwrap();
        for kind in RejectionKind::ALL {
            let (status, code, message) = kind.row();
            let row = format!("| {} | `{code}` | {message} |", status.as_u16());
            let upstream = format!("| 5xx/4xx | `{code}` |");
            assert!(docs.contains(&row) || docs.contains(&upstream), "docs/errors.md lacks the row {row}");
        }
    }

    #[test]
    fn body_has_fixed_fields_only() {
        let id = RequestId::new_random();
        let r = Rejection::with_status(RejectionKind::UpstreamError, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&r.body_json(Some(&id))).unwrap();
        assert_eq!(v["error"], "Service Unavailable");
        assert_eq!(v["code"], "upstream_error");
        assert_eq!(v["request_id"], id.as_str());
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
}
