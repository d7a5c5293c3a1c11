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
    /// A Host header that is not a valid host name, several of them, or
    /// none in an HTTP/1.1 request (RFC 9112 section 3.2).
    InvalidHost,
    /// A request the HTTP parser can't read: an invalid request line or
    /// header field, or a malformed chunked body (C19 C28).
    MalformedRequest,
    /// A request line longer than the head limit (C14).
    UriTooLong,
    /// The request body is larger than the limit (C13).
    BodyTooLarge,
    /// The request headers are too large or too many (C14).
    HeadersTooLarge,
    /// The client was too slow sending the request body (C14).
    RequestTimeout,
    /// The request matched no route (C21).
    NotFound,
    /// Routes exist for the path, none for the method (C21); with `Allow`.
    MethodNotAllowed,
    /// A protected route without a bearer token (C21 C22).
    Unauthenticated,
    /// A bearer token that is malformed, unverifiable, expired or not for us (C22).
    InvalidToken,
    /// A verified identity without the route's role or ownership (C26 C27).
    Forbidden,
    /// A CORS preflight for an origin, method or header the policy refuses (C8).
    CorsForbidden,
    /// Input that can't be read: malformed JSON, bad percent-encoding or
    /// UTF-8, duplicate keys, nesting, size or count limits (C17 C19).
    MalformedInput,
    /// Input that doesn't satisfy the route's schema or the query-shape
    /// rules: wrong type, unknown field, repeated parameter (C16 C17).
    InvalidInput,
    /// A `__proto__`, `constructor` or `prototype` key (C18).
    PrototypePollution,
    /// A Content-Type or Content-Encoding the route doesn't accept (C19).
    UnsupportedMediaType,
    /// A SQL injection or XSS payload, with detection in block mode (C20).
    InjectionDetected,
    /// A rate limit was exceeded (C11).
    RateLimited,
    /// A login with an unknown user, a wrong password or a disabled
    /// account: one answer for all three (C24).
    InvalidCredentials,
    /// Logins for this account or from this client are locked after
    /// repeated failures (C15); with `Retry-After`.
    LoginLocked,
    /// A refresh token that is unknown, expired, revoked or used before (C24).
    InvalidGrant,
    /// A cookie-authenticated unsafe request without the session's CSRF
    /// token, or from another origin (C10).
    CsrfFailed,
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
        RejectionKind::MalformedRequest,
        RejectionKind::UriTooLong,
        RejectionKind::BodyTooLarge,
        RejectionKind::HeadersTooLarge,
        RejectionKind::RequestTimeout,
        RejectionKind::NotFound,
        RejectionKind::MethodNotAllowed,
        RejectionKind::Unauthenticated,
        RejectionKind::InvalidToken,
        RejectionKind::Forbidden,
        RejectionKind::CorsForbidden,
        RejectionKind::MalformedInput,
        RejectionKind::InvalidInput,
        RejectionKind::PrototypePollution,
        RejectionKind::UnsupportedMediaType,
        RejectionKind::InjectionDetected,
        RejectionKind::RateLimited,
        RejectionKind::InvalidCredentials,
        RejectionKind::LoginLocked,
        RejectionKind::InvalidGrant,
        RejectionKind::CsrfFailed,
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
            MalformedRequest => (StatusCode::BAD_REQUEST, "malformed_request", "Bad Request"),
            UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long", "URI Too Long"),
            BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "Payload Too Large"),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request Header Fields Too Large",
            ),
            RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", "Request Timeout"),
            NotFound => (StatusCode::NOT_FOUND, "not_found", "Not Found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed"),
            Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "Unauthorized"),
            InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            CorsForbidden => (StatusCode::FORBIDDEN, "cors_forbidden", "Forbidden"),
            MalformedInput => (StatusCode::BAD_REQUEST, "malformed_input", "Bad Request"),
            InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input", "Bad Request"),
            PrototypePollution => (StatusCode::BAD_REQUEST, "prototype_pollution", "Bad Request"),
            UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported Media Type")
            }
            InjectionDetected => (StatusCode::BAD_REQUEST, "injection_detected", "Bad Request"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too Many Requests"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", "Unauthorized"),
            LoginLocked => (StatusCode::TOO_MANY_REQUESTS, "login_locked", "Too Many Requests"),
            InvalidGrant => (StatusCode::UNAUTHORIZED, "invalid_grant", "Unauthorized"),
            CsrfFailed => (StatusCode::FORBIDDEN, "csrf_failed", "Forbidden"),
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
        matches!(
            self,
            RejectionKind::AmbiguousFraming
                | RejectionKind::MalformedRequest
                | RejectionKind::UriTooLong
                | RejectionKind::HeadersTooLarge
        )
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
        self.body_json_with(request_id, &[])
    }

    /// Renders the JSON body, with an `errors` list when `violations` is
    /// not empty (C19): `[{"path": "/body/email", "reason": "format"}]`.
    pub fn body_json_with(&self, request_id: Option<&RequestId>, violations: &[Violation]) -> String {
        let id = request_id.map(RequestId::as_str).unwrap_or("");
        // Every part is either a fixed table string, a validated request id
        // or a sanitised location; serde_json's string escaping is belt and
        // braces. Field order is fixed: error, code, request_id, errors.
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let mut out = format!(
            "{{\"error\":{},\"code\":{},\"request_id\":{}",
            q(self.message()),
            q(self.kind.code()),
            q(id)
        );
        if !violations.is_empty() {
            out.push_str(",\"errors\":[");
            for (i, v) in violations.iter().take(MAX_VIOLATIONS).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("{{\"path\":{},\"reason\":{}}}", q(&v.path), q(v.reason)));
            }
            out.push(']');
        }
        out.push('}');
        out
    }

    /// Builds the response for this rejection.
    pub fn into_response<B: From<Bytes>>(self, request_id: Option<&RequestId>) -> Response<B> {
        self.into_response_with(request_id, &[])
    }

    /// Builds the response for this rejection with a list of violations.
    pub fn into_response_with<B: From<Bytes>>(
        self,
        request_id: Option<&RequestId>,
        violations: &[Violation],
    ) -> Response<B> {
        let body = self.body_json_with(request_id, violations);
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

/// At most this many violations are listed in one error body.
pub const MAX_VIOLATIONS: usize = 20;

/// One reason an input was refused: where (a JSON pointer into the request,
/// rooted at `/body`, `/query`, `/params`, `/headers` or `/cookies`) and which rule.
///
/// The location names fields, never values. Segments that are not short
/// identifiers (`[A-Za-z0-9_.$@-]{1,64}`), and so could carry an attacker's
/// text rather than a field name, are replaced by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The sanitised JSON pointer, e.g. `/body/address/zip`.
    pub path: String,
    /// The rule, a fixed string such as `type`, `required`, `unknown_field`.
    pub reason: &'static str,
}

impl Violation {
    /// A violation at `root` (e.g. `/body`) plus a JSON pointer below it.
    pub fn new(root: &str, pointer: &str, reason: &'static str) -> Violation {
        let mut path = String::with_capacity(root.len() + pointer.len());
        path.push_str(root);
        for seg in pointer.split('/').skip(1) {
            path.push('/');
            path.push_str(if safe_segment(seg) { seg } else { "*" });
        }
        Violation { path, reason }
    }

    /// A violation at `root` plus one field name (not yet pointer-escaped).
    pub fn field(root: &str, name: &str, reason: &'static str) -> Violation {
        let seg = if safe_segment(name) { name } else { "*" };
        Violation { path: format!("{root}/{seg}"), reason }
    }
}

fn safe_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg.len() <= 64
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'@' | b'-'))
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
    fn c19_violations_name_fields_never_values() {
        let v = [
            Violation::new("/body", "/address/zip", "type"),
            Violation::new("/body", "/<script>alert(1)<~1script>/x", "unknown_field"),
            Violation::field("/query", "a b", "repeated_parameter"),
            Violation::new("/body", "", "malformed_json"),
        ];
        let r = Rejection::new(RejectionKind::InvalidInput);
        let body: serde_json::Value = serde_json::from_str(&r.body_json_with(None, &v)).unwrap();
        assert_eq!(body["code"], "invalid_input");
        assert_eq!(body["errors"][0]["path"], "/body/address/zip");
        assert_eq!(body["errors"][1]["path"], "/body/*/x");
        assert_eq!(body["errors"][2]["path"], "/query/*");
        assert_eq!(body["errors"][3]["path"], "/body");
        assert_eq!(body["errors"][3]["reason"], "malformed_json");
        let many: Vec<Violation> =
            (0..50).map(|i| Violation::field("/query", &format!("p{i}"), "type")).collect();
        let body: serde_json::Value = serde_json::from_str(&r.body_json_with(None, &many)).unwrap();
        assert_eq!(body["errors"].as_array().unwrap().len(), MAX_VIOLATIONS);
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
