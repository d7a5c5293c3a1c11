use super::*;

/// The exact header set helmet 8.x sends by default (from helmet's README and
/// source defaults), written out independently of the constants above.
const HELMET_8: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

#[test]
fn c5_helmet_defaults_value_for_value() {
    let mut h = http::HeaderMap::new();
    SecurityHeaders::helmet().apply(&mut h, true);
    assert_eq!(h.len(), HELMET_8.len());
    for (n, v) in HELMET_8 {
        assert_eq!(h.get(*n).map(|x| x.to_str().unwrap()), Some(*v), "{n}");
    }
}

#[test]
fn c2_hsts_only_over_https() {
    let mut h = http::HeaderMap::new();
    h.insert("strict-transport-security", "max-age=1".parse().unwrap());
    SecurityHeaders::helmet().apply(&mut h, false);
    assert!(!h.contains_key("strict-transport-security"));
    assert_eq!(h.len(), HELMET_8.len() - 1);
}

#[test]
fn c6_fingerprints_removed_and_upstream_values_replaced() {
    let mut h = http::HeaderMap::new();
    h.insert("x-powered-by", "Express".parse().unwrap());
    h.insert("server", "nginx/1.2".parse().unwrap());
    h.insert("x-frame-options", "ALLOWALL".parse().unwrap());
    h.insert("content-type", "text/html".parse().unwrap());
    SecurityHeaders::helmet().apply(&mut h, false);
    assert!(!h.contains_key("x-powered-by"));
    assert!(!h.contains_key("server"));
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["content-type"], "text/html");
}

#[test]
fn c5_override_and_remove() {
    let s = SecurityHeaders::helmet()
        .set("x-frame-options", "DENY")
        .unwrap()
        .remove("x-xss-protection")
        .unwrap()
        .hsts(Some(Hsts { max_age: 60, include_subdomains: false, preload: false }));
    let mut h = http::HeaderMap::new();
    s.apply(&mut h, true);
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(!h.contains_key("x-xss-protection"));
    assert_eq!(h["strict-transport-security"], "max-age=60");
    assert!(SecurityHeaders::helmet().set("x-frame-options", "a\r\nb").is_err());
}

#[test]
fn c7_csp_directive_by_directive() {
    let csp = Csp::helmet_default()
        .directive("script-src", ["'self'", "https://cdn.example.com"])
        .unwrap()
        .without("upgrade-insecure-requests")
        .report_only(true);
    let (n, v) = csp.header();
    assert_eq!(n, "content-security-policy-report-only");
    assert!(v.to_str().unwrap().contains("script-src 'self' https://cdn.example.com;"));
    assert!(!v.to_str().unwrap().contains("upgrade-insecure-requests"));

    let bad = [
        ("scrpt-src", vec!["'self'"]),
        ("script-src", vec!["self"]),
        ("script-src", vec!["a; b"]),
        ("script-src", vec![]),
        ("upgrade-insecure-requests", vec!["x"]),
    ];
    for (name, values) in bad {
        assert!(Csp::helmet_default().directive(name, values.clone()).is_err(), "{name} {values:?}");
    }
}

#[test]
fn c2_fingerprint_names_match_the_documented_list() {
    let names: Vec<&str> = super::FINGERPRINT_NAMES.iter().map(HeaderName::as_str).collect();
    assert_eq!(names, super::FINGERPRINT_HEADERS);
}
