//! C5 (the helmet header set), C6 (X-Powered-By, a versioned Server) and
//! C7 (CSP quality), read from the answer to the scanned URL.

use super::finding;
use crate::client::Response;
use crate::{Finding, Outcome};

/// One helmet header: its check id, name, fail weight, and the judgement of
/// its value (`None` when absent).
struct Helmet {
    id: &'static str,
    name: &'static str,
    weight: u32,
    fix: &'static str,
    judge: fn(Option<&str>) -> (Outcome, &'static str),
}

const HELMET: &[Helmet] = &[
    Helmet {
        id: "x-content-type-options",
        name: "x-content-type-options",
        weight: 10,
        fix: "headers.x_content_type_options",
        judge: |v| match v {
            Some(v) if v.trim().eq_ignore_ascii_case("nosniff") => (Outcome::Pass, "nosniff"),
            Some(_) => (Outcome::Fail, "a value other than nosniff"),
            None => (Outcome::Fail, "missing: browsers may sniff a JSON answer as HTML"),
        },
    },
    Helmet {
        id: "referrer-policy",
        name: "referrer-policy",
        weight: 9,
        fix: "headers.referrer_policy",
        judge: |v| match v.map(|v| v.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase()) {
            None => (Outcome::Warn, "missing: full URLs leak to other sites"),
            Some(p) if p == "unsafe-url" || p == "no-referrer-when-downgrade" => {
                (Outcome::Fail, "sends full URLs to other sites")
            }
            Some(p)
                if [
                    "no-referrer",
                    "same-origin",
                    "strict-origin",
                    "strict-origin-when-cross-origin",
                    "origin",
                    "origin-when-cross-origin",
                ]
                .contains(&p.as_str()) =>
            {
                (Outcome::Pass, "a policy that keeps paths private")
            }
            Some(_) => (Outcome::Warn, "an unknown policy (browsers ignore it)"),
        },
    },
    Helmet {
        id: "cross-origin-opener-policy",
        name: "cross-origin-opener-policy",
        weight: 6,
        fix: "headers.cross_origin_opener_policy",
        judge: |v| present(v, "missing"),
    },
    Helmet {
        id: "cross-origin-resource-policy",
        name: "cross-origin-resource-policy",
        weight: 6,
        fix: "headers.cross_origin_resource_policy",
        judge: |v| present(v, "missing: other sites may embed the responses"),
    },
    Helmet {
        id: "origin-agent-cluster",
        name: "origin-agent-cluster",
        weight: 6,
        fix: "headers.origin_agent_cluster",
        judge: |v| present(v, "missing"),
    },
    Helmet {
        id: "x-dns-prefetch-control",
        name: "x-dns-prefetch-control",
        weight: 6,
        fix: "headers.x_dns_prefetch_control",
        judge: |v| present(v, "missing"),
    },
    Helmet {
        id: "x-download-options",
        name: "x-download-options",
        weight: 6,
        fix: "headers.x_download_options",
        judge: |v| present(v, "missing"),
    },
    Helmet {
        id: "x-permitted-cross-domain-policies",
        name: "x-permitted-cross-domain-policies",
        weight: 6,
        fix: "headers.x_permitted_cross_domain_policies",
        judge: |v| present(v, "missing"),
    },
    Helmet {
        id: "x-xss-protection",
        name: "x-xss-protection",
        weight: 6,
        fix: "headers.x_xss_protection",
        judge: |v| match v.map(str::trim) {
            None | Some("0") => {
                (Outcome::Pass, "absent or 0, as helmet sends (the old filter itself leaked)")
            }
            Some(_) => (Outcome::Warn, "enables the browsers' old XSS filter, which itself leaks; send 0"),
        },
    },
];

fn present(v: Option<&str>, missing: &'static str) -> (Outcome, &'static str) {
    match v {
        Some(_) => (Outcome::Pass, "present"),
        None => (Outcome::Warn, missing),
    }
}

pub(super) fn check(req: &str, r: &Response) -> Vec<Finding> {
    let mut out: Vec<Finding> = HELMET
        .iter()
        .map(|h| {
            let (outcome, why) = (h.judge)(r.header(h.name));
            finding(h.id, "C5", h.name, h.weight, h.fix).with(req, r.describe(&[h.name])).set(outcome, why)
        })
        .collect();
    out.push(frame_options(req, r));
    out.push(csp(req, r));
    out.extend(disclosure(req, r));
    out
}

fn frame_options(req: &str, r: &Response) -> Finding {
    let f = finding(
        "x-frame-options",
        "C5",
        "x-frame-options or CSP frame-ancestors",
        10,
        "headers.x_frame_options",
    )
    .with(req, r.describe(&["x-frame-options", "content-security-policy"]));
    let xfo = r.header("x-frame-options").map(|v| v.trim().to_ascii_uppercase());
    let ancestors =
        r.header("content-security-policy").is_some_and(|c| directive(c, "frame-ancestors").is_some());
    match xfo.as_deref() {
        Some("DENY") | Some("SAMEORIGIN") => f.set(Outcome::Pass, "framing refused"),
        _ if ancestors => f.set(Outcome::Pass, "CSP frame-ancestors decides framing"),
        Some(_) => {
            f.set(Outcome::Fail, "X-Frame-Options with a value browsers ignore (use DENY or SAMEORIGIN)")
        }
        None => f.set(Outcome::Fail, "missing: any site may frame the responses (clickjacking)"),
    }
}

/// The sources of `name` in a policy, if the directive is there.
pub(crate) fn directive<'a>(policy: &'a str, name: &str) -> Option<Vec<&'a str>> {
    policy.split(';').find_map(|d| {
        let mut words = d.split_ascii_whitespace();
        let n = words.next()?;
        n.eq_ignore_ascii_case(name).then(|| words.collect())
    })
}

/// C7: the policy's weaknesses, worst first decides.
pub(crate) fn csp(req: &str, r: &Response) -> Finding {
    let mut f = finding("csp", "C7", "Content-Security-Policy", 20, "headers.content_security_policy")
        .with(req, r.describe(&["content-security-policy", "content-security-policy-report-only"]));
    let Some(policy) = r.header("content-security-policy") else {
        if r.header("content-security-policy-report-only").is_some() {
            return f.set(Outcome::Fail, "only Content-Security-Policy-Report-Only: nothing is enforced");
        }
        return f.set(Outcome::Fail, "missing");
    };
    let default = directive(policy, "default-src");
    let script = directive(policy, "script-src").or_else(|| default.clone());
    match &script {
        None => f.worsen(Outcome::Fail, "no script-src and no default-src: any script may run"),
        Some(sources) => {
            let lower: Vec<String> = sources.iter().map(|s| s.to_ascii_lowercase()).collect();
            let has = |s: &str| lower.iter().any(|x| x == s);
            let guarded = lower
                .iter()
                .any(|s| s.starts_with("'nonce-") || s.starts_with("'sha") || s == "'strict-dynamic'");
            if has("'unsafe-inline'") && !guarded {
                f.worsen(Outcome::Fail, "scripts allow 'unsafe-inline'");
            }
            if lower.iter().any(|s| {
                s == "*" || s == "http:" || s == "https:" || s == "data:" || s.starts_with("http://")
            }) {
                f.worsen(Outcome::Fail, "scripts may load from any host or from data: or plain-HTTP URLs");
            }
            if has("'unsafe-eval'") {
                f.worsen(Outcome::Warn, "scripts allow 'unsafe-eval'");
            }
        }
    }
    let object = directive(policy, "object-src").or(default);
    let object_ok = object.is_some_and(|s| {
        s.iter().all(|x| x.eq_ignore_ascii_case("'none'") || x.eq_ignore_ascii_case("'self'"))
            && !s.is_empty()
    });
    if !object_ok {
        f.worsen(Outcome::Warn, "plugins not restricted (object-src 'none')");
    }
    if directive(policy, "frame-ancestors").is_none() {
        f.worsen(Outcome::Warn, "no frame-ancestors");
    }
    if f.detail.is_empty() {
        f.detail = "no unsafe-inline script, no wildcard source, object-src and frame-ancestors set".into();
    }
    f
}

/// C6: `X-Powered-By`, and a `Server` naming a version.
fn disclosure(req: &str, r: &Response) -> [Finding; 2] {
    let xpb = finding("x-powered-by", "C6", "No X-Powered-By", 10, "removed by the gateway: nothing to set")
        .with(req, r.describe(&["x-powered-by"]));
    let xpb = match r.header("x-powered-by") {
        Some(_) => xpb.set(Outcome::Fail, "X-Powered-By names the framework"),
        None => xpb.set(Outcome::Pass, "absent"),
    };
    let server =
        finding("server-banner", "C6", "No version in Server", 6, "removed by the gateway: nothing to set")
            .with(req, r.describe(&["server"]));
    let server = match r.header("server") {
        Some(v) if v.bytes().any(|b| b.is_ascii_digit()) => {
            server.set(Outcome::Warn, "Server names a version")
        }
        Some(_) => server.set(Outcome::Pass, "Server names no version"),
        None => server.set(Outcome::Pass, "absent"),
    };
    [xpb, server]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checks::tests::with;

    /// helmet 8's default policy.
    const HELMET_CSP: &str = "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests";

    #[test]
    fn c7_csp_decisions() {
        let cases = [
            (HELMET_CSP, Outcome::Pass),
            ("default-src 'none'; frame-ancestors 'none'", Outcome::Pass),
            ("default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'", Outcome::Fail),
            (
                "default-src 'self'; script-src 'unsafe-inline' 'nonce-abc'; frame-ancestors 'none'",
                Outcome::Pass,
            ),
            ("default-src *; frame-ancestors 'none'", Outcome::Fail),
            ("default-src 'self'; script-src https:; frame-ancestors 'none'", Outcome::Fail),
            ("default-src 'self'; script-src 'self' 'unsafe-eval'; frame-ancestors 'none'", Outcome::Warn),
            ("default-src 'self'", Outcome::Warn),
            ("script-src 'self'; frame-ancestors 'none'", Outcome::Warn),
            ("img-src 'self'", Outcome::Fail),
        ];
        for (policy, want) in cases {
            let f = csp("GET /", &with(&[("content-security-policy", policy)]));
            assert_eq!(f.outcome, want, "{policy}: {}", f.detail);
        }
        assert_eq!(csp("GET /", &with(&[])).outcome, Outcome::Fail);
        let ro = csp("GET /", &with(&[("content-security-policy-report-only", HELMET_CSP)]));
        assert_eq!(ro.outcome, Outcome::Fail);
    }

    #[test]
    fn c5_c6_a_helmet_response_passes_and_a_bare_express_one_fails() {
        let helmet = with(&[
            ("content-security-policy", HELMET_CSP),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("origin-agent-cluster", "?1"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-dns-prefetch-control", "off"),
            ("x-download-options", "noopen"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-permitted-cross-domain-policies", "none"),
            ("x-xss-protection", "0"),
        ]);
        for f in check("GET /", &helmet) {
            assert_eq!(f.outcome, Outcome::Pass, "{}: {}", f.id, f.detail);
        }
        let express = with(&[
            ("x-powered-by", "Express"),
            ("server", "nginx/1.22.1"),
            ("x-xss-protection", "1; mode=block"),
        ]);
        let got: Vec<(&str, Outcome)> = check("GET /", &express).iter().map(|f| (f.id, f.outcome)).collect();
        for (id, want) in [
            ("x-content-type-options", Outcome::Fail),
            ("x-frame-options", Outcome::Fail),
            ("csp", Outcome::Fail),
            ("x-powered-by", Outcome::Fail),
            ("server-banner", Outcome::Warn),
            ("x-xss-protection", Outcome::Warn),
            ("referrer-policy", Outcome::Warn),
            ("cross-origin-resource-policy", Outcome::Warn),
        ] {
            assert!(got.contains(&(id, want)), "{id} not {want:?} in {got:?}");
        }
        let unsafe_referrer = with(&[("referrer-policy", "unsafe-url")]);
        let f = check("GET /", &unsafe_referrer)
            .into_iter()
            .find(|f| f.id == "referrer-policy")
            .expect("finding");
        assert_eq!(f.outcome, Outcome::Fail);
    }
}
