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

/// The rule [`SecurityHeaders::apply`] implements, written the slow,
/// obvious way (the way it was written before issue 16): remove the
/// fingerprints, insert every header of the set, HSTS over HTTPS only and
/// never the upstream's.
fn apply_by_the_rule(s: &SecurityHeaders, h: &mut http::HeaderMap, https: bool) {
    for n in FINGERPRINT_HEADERS {
        h.remove(*n);
    }
    h.remove(http::header::STRICT_TRANSPORT_SECURITY);
    for (n, v) in s.effective(https) {
        h.insert(n, v);
    }
}

/// Every (name, value) pair, sorted: the same multiset of fields.
fn fields(h: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = h.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    v.sort();
    v
}

#[test]
fn c5_c6_the_prebuilt_set_keeps_every_other_upstream_value_in_order() {
    let mut h = http::HeaderMap::new();
    h.append("set-cookie", "a=1".parse().unwrap());
    h.append("link", "</a>; rel=preload".parse().unwrap());
    h.append("set-cookie", "b=2".parse().unwrap());
    h.append("x-frame-options", "ALLOWALL".parse().unwrap());
    h.append("x-frame-options", "DENY".parse().unwrap());
    h.append("server", "Apache".parse().unwrap());
    h.append("server", "again".parse().unwrap());
    h.append("strict-transport-security", "max-age=0".parse().unwrap());
    h.append("vary", "Origin".parse().unwrap());
    let s = SecurityHeaders::helmet().remove("strict-transport-security").unwrap();
    s.apply(&mut h, true);
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"], "both values, in order");
    assert_eq!(h["link"], "</a>; rel=preload");
    assert_eq!(h["vary"], "Origin");
    let xfo: Vec<_> = h.get_all("x-frame-options").iter().collect();
    assert_eq!(xfo, ["SAMEORIGIN"], "the set's one value replaces both of the upstream's");
    assert!(!h.contains_key("server"));
    assert!(!h.contains_key("strict-transport-security"), "removed from the set: not the upstream's either");
}

proptest::proptest! {
    /// The prebuilt path gives the same fields as the rule, for any
    /// upstream headers (names drawn from the set, the fingerprints, HSTS
    /// and others, repeated) and any of the set's variations.
    #[test]
    fn c5_c6_the_prebuilt_set_decides_as_the_rule(
        upstream in proptest::collection::vec((0usize..9, 0u8..4), 0..12),
        variant in 0usize..5,
        https: bool,
    ) {
        const NAMES: [&str; 9] = [
            "x-frame-options", "content-security-policy", "server", "x-powered-by",
            "strict-transport-security", "set-cookie", "content-type", "vary", "x-xss-protection",
        ];
        let set = match variant {
            0 => SecurityHeaders::helmet(),
            1 => SecurityHeaders::empty(),
            2 => SecurityHeaders::helmet().csp(None).remove("x-xss-protection").unwrap(),
            3 => SecurityHeaders::helmet().hsts(None),
            _ => SecurityHeaders::empty().set("strict-transport-security", "max-age=5").unwrap(),
        };
        let mut h = http::HeaderMap::new();
        for (n, v) in &upstream {
            h.append(NAMES[*n], http::HeaderValue::from_str(&format!("v{v}")).unwrap());
        }
        let mut expected = h.clone();
        apply_by_the_rule(&set, &mut expected, https);
        set.apply(&mut h, https);
        proptest::prop_assert_eq!(fields(&h), fields(&expected));
        // And the values of one name keep their order.
        for n in NAMES {
            let got: Vec<_> = h.get_all(n).iter().collect();
            let want: Vec<_> = expected.get_all(n).iter().collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
