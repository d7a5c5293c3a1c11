//! Input validation at the edge (C16 C17 C18 C19 C20).
//!
//! # What it stops
//! The upstream this was written for first is Express, so the threat model
//! is Node's: prototype pollution through `__proto__`/`constructor` keys in
//! JSON, query strings and forms; type confusion from `qs`-style query
//! parsing (`?a=1&a=2` is an array, `?a[b]=1` an object); parser
//! differentials between Portcullis and `JSON.parse` (duplicate keys, where
//! Node keeps the last one); compressed bodies that carry what the plain
//! ones may not; and, per route, anything the route's schema doesn't allow.
//!
//! # Decision rules, always on
//! - JSON bodies (`application/json`, `application/*+json`) are parsed
//!   strictly and bounded ([`crate::json`]): depth, entries, string length,
//!   duplicate keys, invalid UTF-8, lone surrogates, trailing bytes are
//!   `malformed_input` (400).
//! - `__proto__`, `constructor`, `prototype` as a key anywhere in a JSON
//!   body, a query string or a form body, after decoding, are
//!   `prototype_pollution` (400).
//! - Query strings and form bodies: at most [`QueryLimits::max_params`]
//!   pairs; malformed percent-encoding refused; `a[]`, `a[b]` and repeated
//!   names refused unless the route's schema declares an array there
//!   (`invalid_input`, 400).
//! - A Content-Encoding other than one `identity`, `gzip`, `deflate`, `br`
//!   is `unsupported_media_type` (415). Encoded bodies are decoded (bounded
//!   by the same size limit, applied to the decoded bytes) and checked; the
//!   original bytes are forwarded.
//! - A JSON or form body with a charset other than UTF-8 is 415.
//!
//! # Per route ([`InputPolicy`])
//! Allowed content types; a JSON Schema for the body, the query, the path
//! parameters, selected headers and selected cookies ([`Schema`], unknown fields refused by
//! default, no coercion in bodies, strict string-to-scalar coercion in
//! parameters); injection detection ([`InjectionMode`]).
//!
//! Every refusal carries a list of `{"path", "reason"}` entries naming the
//! field and the rule, never the value (C19). Forwarded bodies are the
//! bytes the client sent.
//!
//! Put this layer after authentication: an unauthenticated client of a
//! protected route is refused before its body is read.
//!
//! # Example
//! ```
//! # tokio_test_block_on(async {
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use portcullis_layers::input::{InputLayer, InputPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let svc = ServiceBuilder::new().layer(InputLayer::new(InputPolicy::default())).service(service_fn(
//!     |_req: Request<portcullis_layers::Body>| async { Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default())) },
//! ));
//! let json = |body: &'static str| {
//!     Request::post("/api/settings").header("content-type", "application/json").body(Full::new(Bytes::from(body))).unwrap()
//! };
//! let ok = svc.clone().oneshot(json(r#"{"theme":"dark"}"#)).await.unwrap();
//! assert_eq!(ok.status(), 200);
//! let polluted = svc.oneshot(json(r#"{"__proto__":{"isAdmin":true}}"#)).await.unwrap();
//! assert_eq!(polluted.status(), 400);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod check;
mod inject;
mod layer;
mod media;
mod query;
mod schema;
mod shape;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use inject::{InjectionClass, detect};
pub use layer::{InputFuture, InputLayer, InputReport, InputService};
pub use query::QueryLimits;
pub use schema::{Dialect, Schema, UnknownFields};
pub use shape::resolve as resolve_local_ref;

use crate::json::JsonLimits;
use crate::rejection::{RejectionKind, Violation};
use shape::Shapes;

/// The fixed reason strings of violations (the `reason` of each entry).
pub mod reason {
    /// Not one well-formed JSON value.
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// The same key twice in one object.
    pub const DUPLICATE_KEY: &str = "duplicate_key";
    /// Nested deeper than allowed.
    pub const TOO_DEEP: &str = "too_deep";
    /// More members and elements than allowed.
    pub const TOO_MANY_ENTRIES: &str = "too_many_entries";
    /// A string longer than allowed.
    pub const STRING_TOO_LONG: &str = "string_too_long";
    /// `__proto__`, `constructor` or `prototype` (C18).
    pub const PROTOTYPE_KEY: &str = "prototype_key";
    /// Bad percent-encoding, UTF-8, or compressed data.
    pub const MALFORMED_ENCODING: &str = "malformed_encoding";
    /// More query or form parameters than allowed.
    pub const TOO_MANY_PARAMETERS: &str = "too_many_parameters";
    /// `a[b]=`, or `a[]=` where no array is allowed (C17).
    pub const BRACKET_SYNTAX: &str = "bracket_syntax";
    /// A parameter, header or cookie given twice where no array is allowed (C17).
    pub const REPEATED_PARAMETER: &str = "repeated_parameter";
    /// A field the schema doesn't list (C17).
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// A required field (or the required body) is missing.
    pub const REQUIRED: &str = "required";
    /// A Content-Type the route doesn't accept, or not a media type.
    pub const CONTENT_TYPE: &str = "content_type";
    /// A charset other than UTF-8 for JSON or form bodies.
    pub const CHARSET: &str = "charset";
    /// An unknown or stacked Content-Encoding.
    pub const CONTENT_ENCODING: &str = "content_encoding";
    /// Some other schema rule.
    pub const SCHEMA: &str = "schema";
    /// A SQL injection payload (C20).
    pub const SQL_INJECTION: &str = "sql_injection";
    /// A cross-site scripting payload (C20).
    pub const XSS: &str = "xss";
}

/// What injection detection does on a route (C20).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InjectionMode {
    /// Not scanned (the default).
    #[default]
    Off,
    /// Scanned; findings are logged and counted, the request passes.
    Report,
    /// Scanned; findings are refused with 400 `injection_detected`.
    Block,
}

/// A compiled parameter schema (query, path parameters or headers) with
/// the shapes its properties declare.
#[derive(Clone, Debug)]
pub struct ParamSchema {
    schema: Arc<Schema>,
    shapes: Shapes,
}

impl ParamSchema {
    /// For query strings and path parameters (names compare exactly).
    pub fn new(schema: Schema) -> ParamSchema {
        let shapes = Shapes::of_schema(schema.document(), false);
        ParamSchema { schema: Arc::new(schema), shapes }
    }

    /// For headers: property names compare case-insensitively, and only
    /// the headers the schema names are validated.
    pub fn headers(schema: Schema) -> ParamSchema {
        let shapes = Shapes::of_schema(schema.document(), true);
        ParamSchema { schema: Arc::new(schema), shapes }
    }

    /// The names of the schema's `properties` (behind a root `$ref` too), as
    /// the schema spells them.
    fn property_names(&self) -> impl Iterator<Item = &str> {
        let doc = self.schema.document();
        shape::resolve(doc, doc)
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }
}

/// The input policy of one route (or the default of every route).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InputPolicy {
    /// Bounds of JSON bodies.
    pub json: JsonLimits,
    /// Bounds of query strings and form bodies.
    pub query: QueryLimits,
    /// The largest body read for checking, compressed and decoded.
    pub max_body: u64,
    /// Accepted media types (`type/subtype`, lower-case; `type/*` allowed);
    /// `None` accepts any. Bodies of other types are refused with 415.
    pub content_types: Option<Vec<String>>,
    /// The body schema (applied to JSON and form bodies).
    pub body: Option<ParamSchema>,
    /// Whether a request without a body is refused.
    pub body_required: bool,
    /// The query schema.
    pub query_schema: Option<ParamSchema>,
    /// The path-parameter schema.
    pub params: Option<ParamSchema>,
    /// The header schema.
    pub headers: Option<ParamSchema>,
    /// The cookie schema (cookies by name, from `Cookie`).
    pub cookies: Option<ParamSchema>,
    /// Injection detection.
    pub injection: InjectionMode,
}

impl Default for InputPolicy {
    fn default() -> Self {
        InputPolicy {
            json: JsonLimits::default(),
            query: QueryLimits::default(),
            max_body: 1024 * 1024,
            content_types: None,
            body: None,
            body_required: false,
            query_schema: None,
            params: None,
            headers: None,
            cookies: None,
            injection: InjectionMode::Off,
        }
    }
}

impl InputPolicy {
    /// Sets the JSON limits.
    #[must_use]
    pub fn json_limits(mut self, l: JsonLimits) -> Self {
        self.json = l;
        self
    }
    /// Sets the query and form limits.
    #[must_use]
    pub fn query_limits(mut self, l: QueryLimits) -> Self {
        self.query = l;
        self
    }
    /// Sets the largest body checked (decoded or not).
    #[must_use]
    pub fn max_body(mut self, n: u64) -> Self {
        self.max_body = n;
        self
    }
    /// Accepts only these media types.
    #[must_use]
    pub fn content_types(mut self, types: Vec<String>) -> Self {
        self.content_types = Some(types.into_iter().map(|t| t.to_ascii_lowercase()).collect());
        self
    }
    /// Validates bodies with this schema.
    #[must_use]
    pub fn body_schema(mut self, s: Schema, required: bool) -> Self {
        self.body = Some(ParamSchema::new(s));
        self.body_required = required;
        self
    }
    /// Validates the query with this schema.
    #[must_use]
    pub fn query_schema(mut self, s: ParamSchema) -> Self {
        self.query_schema = Some(s);
        self
    }
    /// Validates path parameters with this schema.
    #[must_use]
    pub fn params_schema(mut self, s: ParamSchema) -> Self {
        self.params = Some(s);
        self
    }
    /// Validates the headers this schema names.
    #[must_use]
    pub fn headers_schema(mut self, s: ParamSchema) -> Self {
        self.headers = Some(s);
        self
    }
    /// Validates the cookies this schema names (others pass).
    #[must_use]
    pub fn cookies_schema(mut self, s: ParamSchema) -> Self {
        self.cookies = Some(s);
        self
    }
    /// Lets `__proto__`, `constructor` and `prototype` through as keys of
    /// JSON bodies, query strings and forms. Insecure: only for an upstream
    /// whose fields really have these names and that never merges request
    /// data into objects (C18).
    #[must_use]
    pub fn insecure_allow_prototype_keys(mut self) -> Self {
        self.json.forbid_prototype_keys = false;
        self.query.forbid_prototype_keys = false;
        self
    }
    /// Sets injection detection.
    #[must_use]
    pub fn injection(mut self, m: InjectionMode) -> Self {
        self.injection = m;
        self
    }

    fn accepts(&self, essence: &str) -> bool {
        match &self.content_types {
            None => true,
            Some(types) => types.iter().any(|t| match t.strip_suffix("/*") {
                Some(prefix) => essence.split('/').next() == Some(prefix),
                None => t == essence,
            }),
        }
    }
}

/// Parses a query string or form body as the layer does without a schema:
/// the decoded parameters as one object, or the refusal with its
/// violations (prototype keys, malformed encoding, brackets, repeats).
/// For fuzzing and for code that wants the same reading outside a layer.
pub fn parse_urlencoded(
    raw: &[u8],
    limits: &QueryLimits,
) -> Result<serde_json::Value, (RejectionKind, Vec<Violation>)> {
    query::parse(raw, limits, "/query")
        .and_then(|pairs| query::to_object(pairs, None, "/query"))
        .map_err(|f| (f.kind, f.violations))
}

/// A refusal: its kind and the violations it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) kind: RejectionKind,
    pub(crate) violations: Vec<Violation>,
}

impl Finding {
    pub(crate) fn one(kind: RejectionKind, v: Violation) -> Finding {
        Finding { kind, violations: vec![v] }
    }
}

/// A shared handle so policies can be cheap to clone into futures.
pub(crate) type PolicyRef = Arc<InputPolicy>;
