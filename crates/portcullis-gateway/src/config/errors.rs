//! `[errors]`: leak-proof error pages (C29).

use serde::Deserialize;

use super::Problems;
use super::units::within;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawErrors {
    pub(crate) replace_html_4xx: Option<bool>,
    pub(crate) log_body_bytes: Option<u64>,
}

/// `[errors]` (C29).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorPages {
    /// Replace upstream 4xx HTML pages too.
    pub replace_html_4xx: bool,
    /// Bytes of the original error body written to the log.
    pub log_body_bytes: usize,
}

impl Default for ErrorPages {
    fn default() -> Self {
        ErrorPages { replace_html_4xx: true, log_body_bytes: 2048 }
    }
}

/// Validates `[errors]`.
pub(super) fn validate(raw: RawErrors, p: &mut Problems) -> Option<ErrorPages> {
    let d = ErrorPages::default();
    let before = p.0.len();
    let log = within("errors.log_body_bytes", raw.log_body_bytes, d.log_body_bytes as u64, 0, 65_536, p);
    if p.0.len() != before {
        return None;
    }
    Some(ErrorPages {
        replace_html_4xx: raw.replace_html_4xx.unwrap_or(d.replace_html_4xx),
        log_body_bytes: usize::try_from(log).unwrap_or(d.log_body_bytes),
    })
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[errors]");
    let _ = writeln!(
        o,
        "  upstream 5xx{} replaced by a JSON error; {} bytes of the original logged",
        if c.errors.replace_html_4xx { " and HTML 4xx" } else { "" },
        c.errors.log_body_bytes
    );
}
