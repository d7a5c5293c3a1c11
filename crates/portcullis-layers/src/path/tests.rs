use super::*;

fn ok(input: &str) -> String {
    canonicalize(input, &PathPolicy::default())
        .unwrap_or_else(|e| panic!("{input} refused: {e:?}"))
        .into_owned()
}

fn err(input: &str) -> PathError {
    canonicalize(input, &PathPolicy::default()).expect_err(input)
}

// C28: the canonicalisation table.
#[test]
fn c28_resolved_spellings() {
    let table = [
        ("/", "/"),
        ("/admin", "/admin"),
        ("/admin/", "/admin/"),
        ("//admin", "/admin"),
        ("///admin//users", "/admin/users"),
        ("/./admin", "/admin"),
        ("/public/../admin", "/admin"),
        ("/public/./../admin/.", "/admin/"),
        ("/a/b/..", "/a/"),
        ("/a/b/../", "/a/"),
        ("/..a/b", "/..a/b"),
        ("/a/.../b", "/a/.../b"),
        ("/%61dmin", "/admin"),
        ("/%41%42%7e", "/AB~"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a%3bb", "/a%3Bb"),
        ("/users/me@example.com", "/users/me@example.com"),
        ("/a:b/c+d/e,f=g", "/a:b/c+d/e,f=g"),
    ];
    for (input, want) in table {
        assert_eq!(ok(input), want, "{input}");
    }
}

/// The reasons logged for each refusal: distinct, stable snake_case codes.
#[test]
fn c28_refusal_reasons_are_distinct_codes() {
    let all = [
        (PathError::NotOriginForm, "not_origin_form"),
        (PathError::EncodedSlash, "encoded_slash"),
        (PathError::EncodedBackslash, "encoded_backslash"),
        (PathError::EncodedDot, "encoded_dot"),
        (PathError::EncodedNul, "encoded_nul"),
        (PathError::DoubleEncoding, "double_encoding"),
        (PathError::MalformedEscape, "malformed_escape"),
        (PathError::Backslash, "backslash"),
        (PathError::Semicolon, "semicolon"),
        (PathError::DisallowedByte, "disallowed_byte"),
        (PathError::AboveRoot, "above_root"),
        (PathError::EmptySegment, "empty_segment"),
        (PathError::DotSegment, "dot_segment"),
    ];
    for (e, code) in all {
        assert_eq!(e.as_str(), code);
    }
}

#[test]
fn c28_refused_spellings() {
    let table = [
        ("", PathError::NotOriginForm),
        ("*", PathError::NotOriginForm),
        ("admin", PathError::NotOriginForm),
        ("/%2e%2e/admin", PathError::EncodedDot),
        ("/%2E/admin", PathError::EncodedDot),
        ("/.%2e/admin", PathError::EncodedDot),
        ("/admin%2fusers", PathError::EncodedSlash),
        ("/admin%2F", PathError::EncodedSlash),
        ("/admin%5c..%5c", PathError::EncodedBackslash),
        ("/admin%00.json", PathError::EncodedNul),
        ("/%252e%252e/admin", PathError::DoubleEncoding),
        ("/%25", PathError::DoubleEncoding),
        ("/%zz", PathError::MalformedEscape),
        ("/%4", PathError::MalformedEscape),
        ("/%", PathError::MalformedEscape),
        ("/%u002e", PathError::MalformedEscape),
        ("/admin\\..\\public", PathError::Backslash),
        ("/admin;jsessionid=1", PathError::Semicolon),
        ("/public/..;/admin", PathError::Semicolon),
        ("/..", PathError::AboveRoot),
        ("/a/../../etc/passwd", PathError::AboveRoot),
        ("/a b", PathError::DisallowedByte),
        ("/a\"b", PathError::DisallowedByte),
        ("/a<b>", PathError::DisallowedByte),
        ("/a{b}", PathError::DisallowedByte),
        ("/a|b", PathError::DisallowedByte),
        ("/caf\u{e9}", PathError::DisallowedByte),
        ("/a?b", PathError::DisallowedByte),
        ("/a#b", PathError::DisallowedByte),
        // The rest of RFC 3986's excluded ASCII: never valid unescaped in a
        // path, and parsed differently by different servers.
        ("/a`b", PathError::DisallowedByte),
        ("/a^b", PathError::DisallowedByte),
        ("/a[b", PathError::DisallowedByte),
        ("/a]b", PathError::DisallowedByte),
        ("/admin[0]", PathError::DisallowedByte),
        ("/a\x7fb", PathError::DisallowedByte),
        ("/a\tb", PathError::DisallowedByte),
    ];
    for (input, want) in table {
        assert_eq!(err(input), want, "{input}");
    }
}

#[test]
fn c28_stricter_policies() {
    let strict = PathPolicy { merge_slashes: false, resolve_dot_segments: false };
    assert_eq!(canonicalize("//admin", &strict), Err(PathError::EmptySegment));
    assert_eq!(canonicalize("/a/./b", &strict), Err(PathError::DotSegment));
    assert_eq!(canonicalize("/a/../b", &strict), Err(PathError::DotSegment));
    assert_eq!(canonicalize("/a/b/", &strict).unwrap(), "/a/b/");
}

#[test]
fn canonical_input_is_borrowed() {
    assert!(matches!(canonicalize("/api/users/7", &PathPolicy::default()), Ok(Cow::Borrowed(_))));
}

proptest::proptest! {
    // Never panics, and the output is a fixed point: canonicalising twice
    // changes nothing, so no second decoder anywhere can see another path.
    #[test]
    fn idempotent_and_total(input in "/[a-zA-Z0-9%./;\\\\:@!$&'()*+,=~_ -]{0,40}") {
        if let Ok(once) = canonicalize(&input, &PathPolicy::default()) {
            let twice = canonicalize(&once, &PathPolicy::default()).unwrap();
            proptest::prop_assert_eq!(once.as_ref(), twice.as_ref());
            proptest::prop_assert!(!once.contains("/./") && !once.contains("/../") && !once.contains("//"));
        }
    }
}
