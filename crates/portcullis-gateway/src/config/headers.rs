//! `[headers]`: the helmet set, CSP and HSTS (C5 C6 C7).

use std::collections::BTreeMap;
use std::time::Duration;

use portcullis_layers::headers::{Csp, Hsts, SecurityHeaders};
use serde::Deserialize;

use super::Problems;
use super::units::{Dur, within};

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
    pub(crate) max_age: Option<Dur>,
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

fn header_setting(
    s: SecurityHeaders,
    name: &str,
    raw: Option<RawHeaderValue>,
    p: &mut Problems,
) -> SecurityHeaders {
    let at = format!("headers.{}", name.replace('-', "_"));
    let r = match raw {
        None => return s,
        Some(RawHeaderValue::Off(false)) => s.clone().remove(name),
        Some(RawHeaderValue::Off(true)) => {
            p.push(at, "use false to remove the header, or a string value; true is not a value");
            return s;
        }
        Some(RawHeaderValue::Value(v)) => s.clone().set(name, &v),
    };
    r.unwrap_or_else(|e| {
        p.push(at, e.message);
        s
    })
}

pub(super) fn validate(raw: RawHeaders, p: &mut Problems) -> Option<SecurityHeaders> {
    let before = p.0.len();
    let mut s = SecurityHeaders::helmet();
    s = match raw.content_security_policy {
        None => s,
        Some(RawCsp::Off(false)) => s.csp(None),
        Some(RawCsp::Off(true)) => {
            p.push(
                "headers.content_security_policy",
                "use false to remove the CSP, or a table of directives",
            );
            s
        }
        Some(RawCsp::Policy(pol)) => {
            let mut csp = if pol.use_defaults.unwrap_or(true) { Csp::helmet_default() } else { Csp::empty() };
            for (name, d) in pol.directives.unwrap_or_default() {
                let at = format!("headers.content_security_policy.directives.{name}");
                csp = match d {
                    RawDirective::Off(false) => csp.without(&name),
                    RawDirective::Off(true) => {
                        // `true` only makes sense for valueless directives.
                        match csp.clone().directive(&name, Vec::<String>::new()) {
                            Ok(c) => c,
                            Err(e) => {
                                p.push(at, e.message);
                                csp
                            }
                        }
                    }
                    RawDirective::Sources(v) => match csp.clone().directive(&name, &v) {
                        Ok(c) => c,
                        Err(e) => {
                            let idx = e.at.find('[').map(|i| e.at[i..].to_owned()).unwrap_or_default();
                            p.push(format!("{at}{idx}"), e.message);
                            csp
                        }
                    },
                };
            }
            s.csp(Some(csp.report_only(pol.report_only.unwrap_or(false))))
        }
    };
    s = match raw.strict_transport_security {
        None => s,
        Some(RawHsts::Off(false)) => s.hsts(None),
        Some(RawHsts::Off(true)) => {
            p.push("headers.strict_transport_security", "use false to remove HSTS, or a table");
            s
        }
        Some(RawHsts::Policy(h)) => {
            let max_age = within(
                "headers.strict_transport_security.max_age",
                h.max_age.map(|d| d.0),
                Duration::from_secs(31_536_000),
                Duration::from_secs(1),
                Duration::from_secs(2 * 31_536_000),
                p,
            );
            let preload = h.preload.unwrap_or(false);
            let include = h.include_subdomains.unwrap_or(true);
            if preload && (!include || max_age.as_secs() < 31_536_000) {
                p.push(
                    "headers.strict_transport_security.preload",
                    "preload requires include_subdomains and max_age of at least 365d",
                );
            }
            s.hsts(Some(Hsts { max_age: max_age.as_secs(), include_subdomains: include, preload }))
        }
    };
    let simple = [
        ("cross-origin-opener-policy", raw.cross_origin_opener_policy),
        ("cross-origin-resource-policy", raw.cross_origin_resource_policy),
        ("origin-agent-cluster", raw.origin_agent_cluster),
        ("referrer-policy", raw.referrer_policy),
        ("x-content-type-options", raw.x_content_type_options),
        ("x-dns-prefetch-control", raw.x_dns_prefetch_control),
        ("x-download-options", raw.x_download_options),
        ("x-frame-options", raw.x_frame_options),
        ("x-permitted-cross-domain-policies", raw.x_permitted_cross_domain_policies),
        ("x-xss-protection", raw.x_xss_protection),
    ];
    for (name, v) in simple {
        if let Some(RawHeaderValue::Value(val)) = &v
            && let Some(msg) = check_known_value(name, val)
        {
            p.push(format!("headers.{}", name.replace('-', "_")), msg);
            continue;
        }
        s = header_setting(s, name, v, p);
    }
    (p.0.len() == before).then_some(s)
}

/// Values that browsers would silently ignore are refused.
fn check_known_value(name: &str, v: &str) -> Option<String> {
    let allowed: &[&str] = match name {
        "x-frame-options" => &["DENY", "SAMEORIGIN"],
        "cross-origin-opener-policy" => {
            &["same-origin", "same-origin-allow-popups", "unsafe-none", "noopener-allow-popups"]
        }
        "cross-origin-resource-policy" => &["same-origin", "same-site", "cross-origin"],
        "x-content-type-options" => &["nosniff"],
        "origin-agent-cluster" => &["?1", "?0"],
        "x-dns-prefetch-control" => &["on", "off"],
        "x-permitted-cross-domain-policies" => &["none", "master-only", "by-content-type", "all"],
        "referrer-policy" => {
            const RP: &[&str] = &[
                "no-referrer",
                "no-referrer-when-downgrade",
                "same-origin",
                "origin",
                "strict-origin",
                "origin-when-cross-origin",
                "strict-origin-when-cross-origin",
                "unsafe-url",
            ];
            return v.split(',').all(|t| RP.contains(&t.trim())).then_some(()).map_or_else(
                || Some(format!("expected a comma-separated list of: {}", RP.join(", "))),
                |_| None,
            );
        }
        _ => return None,
    };
    (!allowed.contains(&v)).then(|| format!("expected one of: {}", allowed.join(", ")))
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(o, "[headers] on every response");
    for (n, v) in c.headers.effective(true) {
        let v = v.to_str().unwrap_or("?");
        if n == http::header::STRICT_TRANSPORT_SECURITY {
            let _ = writeln!(o, "  {n}: {v}   (HTTPS only)");
        } else {
            let _ = writeln!(o, "  {n}: {v}");
        }
    }
    let _ = writeln!(o, "  removed: {}", portcullis_layers::headers::FINGERPRINT_HEADERS.join(", "));
}
