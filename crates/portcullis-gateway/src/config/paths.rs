//! `[paths]`: path canonicalisation options (C28).

use portcullis_layers::path::PathPolicy;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPaths {
    pub(crate) merge_slashes: Option<bool>,
    pub(crate) resolve_dot_segments: Option<bool>,
}

/// Validates `[paths]`: two switches, both on by default.
pub(super) fn validate(raw: RawPaths) -> PathPolicy {
    PathPolicy {
        merge_slashes: raw.merge_slashes.unwrap_or(true),
        resolve_dot_segments: raw.resolve_dot_segments.unwrap_or(true),
    }
}
