//! `RateLimit` response headers: IETF draft 6, 7 or 8, and legacy.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Rule;
use super::gcra::Outcome;

/// Which `RateLimit` header format to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderFormat {
    /// draft-ietf-httpapi-ratelimit-headers-06: `RateLimit-Limit`, `-Remaining`, `-Reset`, `RateLimit-Policy`.
    Draft6,
    /// draft 7: `RateLimit: limit=.., remaining=.., reset=..` and `RateLimit-Policy`.
    Draft7,
    /// draft 8: `RateLimit-Policy: "name";q=..;w=..` and `RateLimit: "name";r=..;t=..`, every applicable rule.
    #[default]
    Draft8,
    /// No standard headers.
    Off,
}

fn secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

fn set(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Adds a draft-8 list member field: another instance of the limiter (the
/// per-subject rules, decided after authentication) may have written its
/// own already; structured-field lists combine across field lines.
fn add(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.append(HeaderName::from_static(name), v);
    }
}

/// Writes the headers for the applicable rules and their outcomes. Draft 8
/// lists every rule of every limiter instance; draft 6/7 and the legacy
/// headers describe one rule, and the first instance to write them (the
/// one nearest the upstream, with the per-subject rules) keeps them.
pub(super) fn write(
    h: &mut HeaderMap,
    format: HeaderFormat,
    legacy: bool,
    results: &[(&Rule, Outcome)],
    epoch_now_s: u64,
) {
    // The most restrictive rule speaks for draft 6/7 and legacy.
    let Some((rule, o)) = results
        .iter()
        .min_by_key(|(r, o)| (o.allowed, o.remaining, std::cmp::Reverse(o.reset_us), r.rate.limit))
    else {
        return;
    };
    let policy = |r: &Rule| format!("{};w={}", r.rate.limit, secs(r.rate.window_us));
    let written = h.contains_key("ratelimit-policy") || h.contains_key("x-ratelimit-limit");
    match format {
        HeaderFormat::Draft6 | HeaderFormat::Draft7 if written => {}
        HeaderFormat::Draft6 => {
            set(h, "ratelimit-policy", policy(rule));
            set(h, "ratelimit-limit", rule.rate.limit.to_string());
            set(h, "ratelimit-remaining", o.remaining.to_string());
            set(h, "ratelimit-reset", secs(o.reset_us).to_string());
        }
        HeaderFormat::Draft7 => {
            set(h, "ratelimit-policy", policy(rule));
            set(
                h,
                "ratelimit",
                format!("limit={}, remaining={}, reset={}", rule.rate.limit, o.remaining, secs(o.reset_us)),
            );
        }
        HeaderFormat::Draft8 => {
            // One buffer per field, numbers by itoa: this runs on every
            // request of a rate-limited route (issue 16).
            let mut policies = String::with_capacity(32 * results.len());
            let mut limits = String::with_capacity(32 * results.len());
            let mut n = itoa::Buffer::new();
            for (i, (r, o)) in results.iter().enumerate() {
                if i > 0 {
                    policies.push_str(", ");
                    limits.push_str(", ");
                }
                for (out, a, b, (ka, kb)) in [
                    (&mut policies, r.rate.limit, secs(r.rate.window_us), ("\";q=", ";w=")),
                    (&mut limits, o.remaining, secs(o.reset_us), ("\";r=", ";t=")),
                ] {
                    out.push('"');
                    out.push_str(&r.name);
                    out.push_str(ka);
                    out.push_str(n.format(a));
                    out.push_str(kb);
                    out.push_str(n.format(b));
                }
            }
            add(h, "ratelimit-policy", policies);
            add(h, "ratelimit", limits);
        }
        HeaderFormat::Off => {}
    }
    if legacy && !written {
        set(h, "x-ratelimit-limit", rule.rate.limit.to_string());
        set(h, "x-ratelimit-remaining", o.remaining.to_string());
        set(h, "x-ratelimit-reset", (epoch_now_s + secs(o.reset_us)).to_string());
    }
    // Refused: wait for the slowest refusing rule.
    if let Some(wait) = results.iter().filter(|(_, o)| !o.allowed).map(|(_, o)| o.retry_after_us).max() {
        set(h, "retry-after", secs(wait).max(1).to_string());
    }
}
