//! Stage 1: serde structs mirroring the file. Every field is optional here
//! (defaults and requirements are decided in stage 2), which lets the loader
//! check each key on its own and report every problem at once.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    pub(crate) redirect_http: Option<String>,
    pub(crate) names: Option<Vec<String>>,
    pub(crate) tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<String>,
    pub(crate) enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
}

/// A header setting: a value, or `false` to remove the header.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawHeaderValue {
    Off(bool),
    Value(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCsp {
    Off(bool),
    Policy(RawCspPolicy),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCspPolicy {
    pub(crate) use_defaults: Option<bool>,
    pub(crate) report_only: Option<bool>,
    pub(crate) directives: Option<BTreeMap<String, RawDirective>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawDirective {
    Off(bool),
    Sources(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawHsts {
    Off(bool),
    Policy(RawHstsPolicy),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHstsPolicy {
    pub(crate) max_age: Option<String>,
    pub(crate) include_subdomains: Option<bool>,
    pub(crate) preload: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHeaders {
    pub(crate) content_security_policy: Option<RawCsp>,
    pub(crate) strict_transport_security: Option<RawHsts>,
    pub(crate) cross_origin_opener_policy: Option<RawHeaderValue>,
    pub(crate) cross_origin_resource_policy: Option<RawHeaderValue>,
    pub(crate) origin_agent_cluster: Option<RawHeaderValue>,
    pub(crate) referrer_policy: Option<RawHeaderValue>,
    pub(crate) x_content_type_options: Option<RawHeaderValue>,
    pub(crate) x_dns_prefetch_control: Option<RawHeaderValue>,
    pub(crate) x_download_options: Option<RawHeaderValue>,
    pub(crate) x_frame_options: Option<RawHeaderValue>,
    pub(crate) x_permitted_cross_domain_policies: Option<RawHeaderValue>,
    pub(crate) x_xss_protection: Option<RawHeaderValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub(crate) body: Option<String>,
    pub(crate) header_bytes: Option<String>,
    pub(crate) max_headers: Option<u64>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) body_read_timeout: Option<String>,
    pub(crate) request_timeout: Option<String>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) max_connections: Option<u64>,
    pub(crate) shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPaths {
    pub(crate) merge_slashes: Option<bool>,
    pub(crate) resolve_dot_segments: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawErrors {
    pub(crate) replace_html_4xx: Option<bool>,
    pub(crate) log_body_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCors {
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) credentials: Option<bool>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) headers: Option<Vec<String>>,
    pub(crate) expose_headers: Option<Vec<String>>,
    pub(crate) max_age: Option<String>,
    pub(crate) routes: Option<Vec<RawCorsRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCorsRoute {
    pub(crate) paths: Option<Vec<String>>,
    pub(crate) enabled: Option<bool>,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) credentials: Option<bool>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) headers: Option<Vec<String>>,
    pub(crate) expose_headers: Option<Vec<String>>,
    pub(crate) max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawState {
    pub(crate) redis: Option<String>,
    pub(crate) redis_cluster: Option<Vec<String>>,
    pub(crate) redis_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimitOptions {
    pub(crate) store: Option<String>,
    pub(crate) headers: Option<String>,
    pub(crate) legacy_headers: Option<bool>,
    pub(crate) on_store_error: Option<String>,
    pub(crate) max_keys: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimit {
    pub(crate) name: Option<String>,
    pub(crate) routes: Option<Vec<String>>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<u64>,
    pub(crate) window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRoutes {
    pub(crate) unmatched: Option<String>,
    pub(crate) case_sensitive: Option<bool>,
    pub(crate) strict_trailing_slash: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRoute {
    pub(crate) path: Option<String>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) public: Option<bool>,
    pub(crate) allow: Option<RawAllow>,
    pub(crate) websocket: Option<bool>,
    pub(crate) insecure_method_fallthrough: Option<bool>,
    // Input validation (C16-C20).
    pub(crate) body_schema: Option<RawSchema>,
    pub(crate) body_required: Option<bool>,
    pub(crate) query_schema: Option<RawSchema>,
    pub(crate) params_schema: Option<RawSchema>,
    pub(crate) headers_schema: Option<RawSchema>,
    pub(crate) cookies_schema: Option<RawSchema>,
    pub(crate) content_types: Option<Vec<String>>,
    pub(crate) unknown_fields: Option<String>,
    pub(crate) injection: Option<String>,
    pub(crate) insecure_allow_prototype_keys: Option<bool>,
}

/// A JSON Schema: a file (`.json`, `.yaml`, `.yml`) or an inline table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSchema {
    File(String),
    Inline(serde_json::Value),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawInput {
    pub(crate) max_depth: Option<u64>,
    pub(crate) max_entries: Option<u64>,
    pub(crate) max_string_length: Option<String>,
    pub(crate) max_params: Option<u64>,
    pub(crate) unknown_fields: Option<String>,
    pub(crate) injection: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOpenApi {
    pub(crate) spec: Option<String>,
    pub(crate) base_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAllow {
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) owner: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    pub(crate) jwt: Option<RawJwt>,
    pub(crate) identity_headers: Option<BTreeMap<String, String>>,
    pub(crate) forward_token: Option<bool>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawJwt {
    pub(crate) issuer: Option<OneOrMany>,
    pub(crate) audience: Option<OneOrMany>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) keys: Option<Vec<RawJwtKey>>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) leeway: Option<String>,
    pub(crate) subject_claim: Option<String>,
    pub(crate) roles_claim: Option<String>,
    pub(crate) jwks_refresh: Option<String>,
    pub(crate) jwks_min_interval: Option<String>,
    pub(crate) jwks_timeout: Option<String>,
    pub(crate) cache_size: Option<u64>,
    pub(crate) max_token_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawJwtKey {
    pub(crate) file: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) kid: Option<String>,
}
