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

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[paths]");
    let _ = writeln!(
        o,
        "  double slashes    {}; dot segments {}; refused: encoded / \\ . NUL %, ';', '\\', non-pchar bytes",
        if c.paths.merge_slashes { "merged" } else { "refused" },
        if c.paths.resolve_dot_segments { "resolved" } else { "refused" }
    );
}
