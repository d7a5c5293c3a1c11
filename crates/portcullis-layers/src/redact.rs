//! Redaction of secrets in anything that is logged (C30).
//!
//! Logs never carry headers; what they do carry (paths, upstream error
//! bodies) passes through here first. Redacted: JWT-shaped tokens,
//! `Bearer`/`Basic` credentials, the userinfo of every URL
//! (`postgres://admin:hunter2@db` becomes `postgres://[REDACTED]@db`),
//! values of secret-looking keys (`password=...`, `"token": "..."`), and
//! long opaque path segments.

use std::borrow::Cow;

/// The replacement text.
pub const REDACTED: &str = "[REDACTED]";

const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "cookie",
    "session",
    "sessionid",
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key",
];

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Length of a JWT-shaped token at the start of `s` (`eyJ...` `.` ... `.` ...).
fn jwt_len(s: &[u8]) -> Option<usize> {
    if !s.starts_with(b"eyJ") {
        return None;
    }
    let mut i = 0;
    let mut dots = 0;
    while i < s.len() && (is_b64url(s[i]) || s[i] == b'.') {
        if s[i] == b'.' {
            dots += 1;
        }
        i += 1;
    }
    (dots >= 1 && i >= 16).then_some(i)
}

/// In the text after `://`, the offset of the `@` that ends a userinfo:
/// the last `@` before the authority ends (`/`, `?`, `#`, white space,
/// a quote or angle bracket, or the end).
fn userinfo_end(s: &[u8]) -> Option<usize> {
    let end = s
        .iter()
        .position(|&c| {
            matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`') || c.is_ascii_whitespace()
        })
        .unwrap_or(s.len());
    s[..end].iter().rposition(|&c| c == b'@').filter(|&at| at > 0)
}

/// Redacts secrets in free text (for example an upstream error body).
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        // The userinfo of a URL: `scheme://user:password@host`.
        if b[i] == b':'
            && b[i + 1..].starts_with(b"//")
            && let Some(at) = userinfo_end(&b[i + 3..])
        {
            let start = i + 3;
            out.push_str(&text[last..start]);
            out.push_str(REDACTED);
            i = start + at;
            last = i;
            changed = true;
            continue;
        }
        // JWT anywhere.
        if (i == 0 || !is_b64url(b[i - 1]))
            && b[i] == b'e'
            && let Some(n) = jwt_len(&b[i..])
        {
            out.push_str(&text[last..i]);
            out.push_str(REDACTED);
            i += n;
            last = i;
            changed = true;
            continue;
        }
        // `Bearer xxx` / `Basic xxx`.
        for scheme in ["bearer ", "basic "] {
            if b.len() >= i + scheme.len() && b[i..i + scheme.len()].eq_ignore_ascii_case(scheme.as_bytes()) {
                let start = i + scheme.len();
                let mut end = start;
                while end < b.len()
                    && (is_b64url(b[end]) || matches!(b[end], b'.' | b'+' | b'/' | b'=' | b'~'))
                {
                    end += 1;
                }
                if end > start {
                    out.push_str(&text[last..start]);
                    out.push_str(REDACTED);
                    i = end;
                    last = end;
                    changed = true;
                }
            }
        }
        // key=value / "key": "value" / key: value for secret-looking keys.
        if i < b.len()
            && (b[i].is_ascii_alphabetic())
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
                j += 1;
            }
            let key = &text[i..j];
            let lower = key.to_ascii_lowercase();
            if SECRET_KEYS.iter().any(|k| lower.ends_with(k)) {
                // skip closing quote, spaces, separator, spaces, opening quote
                let mut k = j;
                if k < b.len() && (b[k] == b'"' || b[k] == b'\'') {
                    k += 1;
                }
                while k < b.len() && matches!(b[k], b' ' | b'\t') {
                    k += 1;
                }
                if k < b.len() && (b[k] == b'=' || b[k] == b':') {
                    k += 1;
                    while k < b.len() && matches!(b[k], b' ' | b'\t') {
                        k += 1;
                    }
                    let quoted = k < b.len() && (b[k] == b'"' || b[k] == b'\'');
                    if quoted {
                        k += 1;
                    }
                    let start = k;
                    while k < b.len()
                        && !(if quoted {
                            b[k] == b'"' || b[k] == b'\''
                        } else {
                            matches!(b[k], b'&' | b',' | b';' | b'\n' | b'\r' | b'}' | b'"')
                        })
                    {
                        k += 1;
                    }
                    if k > start {
                        out.push_str(&text[last..start]);
                        out.push_str(REDACTED);
                        last = k;
                        changed = true;
                    }
                    i = k.max(i + 1);
                    continue;
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Redacts a canonical path for the access log: JWT-shaped segments and long
/// opaque segments (32+ characters of token alphabet, not a UUID) are replaced.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    let needs = path.split('/').any(segment_is_secret);
    if !needs {
        return Cow::Borrowed(path);
    }
    let parts: Vec<&str> = path.split('/').map(|s| if segment_is_secret(s) { REDACTED } else { s }).collect();
    Cow::Owned(parts.join("/"))
}

fn segment_is_secret(s: &str) -> bool {
    let b = s.as_bytes();
    if jwt_len(b).is_some() {
        return true;
    }
    let is_uuid = b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    b.len() >= 32 && !is_uuid && b.iter().all(|c| is_b64url(*c) || *c == b'.' || *c == b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";

    #[test]
    fn c30_text_redaction() {
        let cases = [
            (format!("token {JWT} here"), "token [REDACTED] here"),
            ("Authorization: Bearer abc.def-ghi".to_owned(), "Authorization: [REDACTED]"),
            ("sent Bearer abc.def-ghi to x".to_owned(), "sent Bearer [REDACTED] to x"),
            ("password=hunter2&user=bob".to_owned(), "password=[REDACTED]&user=bob"),
            ("{\"password\": \"hunter2\", \"x\": 1}".to_owned(), "{\"password\": \"[REDACTED]\", \"x\": 1}"),
            ("db_password: s3cret\n".to_owned(), "db_password: [REDACTED]\n"),
            ("Error: boom at /app/index.js:3".to_owned(), "Error: boom at /app/index.js:3"),
            // C30 (issue 12 item 7): credentials in URLs of an upstream error page.
            (
                "connect ECONNREFUSED postgres://admin:hunter2@db.internal:5432/app failed".to_owned(),
                "connect ECONNREFUSED postgres://[REDACTED]@db.internal:5432/app failed",
            ),
            ("<a href=\"https://u:p%40ss@h/x\">".to_owned(), "<a href=\"https://[REDACTED]@h/x\">"),
            ("mongodb+srv://root:pw@c0.example.net".to_owned(), "mongodb+srv://[REDACTED]@c0.example.net"),
            ("redis://:s3cret@cache:6379".to_owned(), "redis://[REDACTED]@cache:6379"),
            ("amqp://a:b@c@rabbit/vhost".to_owned(), "amqp://[REDACTED]@rabbit/vhost"),
            (
                "see http://example.com/a@b and mailto:x@y".to_owned(),
                "see http://example.com/a@b and mailto:x@y",
            ),
            ("url=http://user:pw@h".to_owned(), "url=http://[REDACTED]@h"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(&input), want, "{input}");
        }
    }

    /// C30: white space around the separator, as config files, YAML, pretty
    /// JSON and stack traces write it, still hides the value.
    #[test]
    fn c30_spaces_around_the_separator() {
        let cases = [
            ("password = hunter2", "password = [REDACTED]"),
            ("password  =hunter2", "password  =[REDACTED]"),
            ("password\t=\thunter2", "password\t=\t[REDACTED]"),
            ("{\"token\" : \"abc\"}", "{\"token\" : \"[REDACTED]\"}"),
            ("{\"token\"   :   \"abc\"}", "{\"token\"   :   \"[REDACTED]\"}"),
            ("api_key :xyz;", "api_key :[REDACTED];"),
            ("client_secret\t: 'q'", "client_secret\t: '[REDACTED]'"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), want, "{input:?}");
        }
    }

    /// Every secret key, every separator spelling, every wrapper: the value
    /// never survives. Every truncation of such a text (ending inside the
    /// key, after it, after the separator, inside the value, right after
    /// `bearer `) is redacted without a panic.
    #[test]
    fn c30_every_key_and_every_boundary() {
        let seps = ["=", ":", " = ", " : ", "\t=\t", "\" : \"", "\":\"", "'='", "  :  "];
        for key in SECRET_KEYS {
            for sep in seps {
                for (pre, post) in [("", ""), ("x ", " y"), ("{\"", "\"}"), ("a&", "&b"), ("\n", "\r\n")] {
                    let text = format!("{pre}{key}{sep}s3cr3tValue{post}");
                    let out = redact_text(&text);
                    assert!(!out.contains("s3cr3tValue"), "{text:?} -> {out:?}");
                    for end in (0..=text.len()).filter(|&e| text.is_char_boundary(e)) {
                        let _ = redact_text(&text[..end]);
                    }
                }
            }
        }
        for scheme in ["Bearer ", "bearer ", "BASIC "] {
            let text = format!("auth {scheme}abc.DEF-ghi~+/= tail");
            assert!(!redact_text(&text).contains("abc.DEF"), "{text}");
            for end in 0..=text.len() {
                let _ = redact_text(&text[..end]);
            }
        }
        let jwt = format!("x {JWT}");
        for end in 0..=jwt.len() {
            let _ = redact_text(&jwt[..end]);
        }
    }

    /// What is not a secret stays: text that only looks like the start of
    /// one (no over-redaction hiding the log's meaning).
    #[test]
    fn c30_near_misses_are_left_alone() {
        let keep = [
            "eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiJ4In0",
            "eyJa.b",
            "see http://@host/x",
            "Bearer ",
            "auth: Bearer",
            "password=&user=bob",
            "token=;",
        ];
        for text in keep {
            assert_eq!(redact_text(text), text, "{text:?}");
        }
    }

    #[test]
    fn c30_path_redaction() {
        assert_eq!(redact_path(&format!("/reset/{JWT}")), "/reset/[REDACTED]");
        assert_eq!(redact_path("/keys/sk_live_0123456789abcdef0123456789abcdef"), "/keys/[REDACTED]");
        let uuid = "/users/123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(redact_path(uuid), uuid);
        assert_eq!(redact_path("/api/users/7"), "/api/users/7");
        // Only an exact UUID is spared: a UUID with more token after it is
        // a secret like any other long opaque segment.
        assert_eq!(redact_path("/x/123e4567-e89b-12d3-a456-426614174000abcdef0123"), "/x/[REDACTED]");
        assert_eq!(redact_path("/x/123e4567e89b12d3a456426614174000ab"), "/x/[REDACTED]");
        // Long opaque segments may carry '.' and '~' (base64url tokens,
        // signed URLs); other characters make a segment a name, not a token.
        assert_eq!(redact_path("/k/abc.def.ghi.jkl.mno.pqr.stu.vwx.yz0"), "/k/[REDACTED]");
        assert_eq!(redact_path("/k/abc~def~ghi~jkl~mno~pqr~stu~vwx~yz0"), "/k/[REDACTED]");
        for name in [
            "/u/very.long.name@example.com.example.org.test",
            "/f/annual:report:2026:final:version:two:b",
            "/f/a%20very%20long%20file%20name%20here.pdf",
        ] {
            assert_eq!(redact_path(name), name);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = redact_text(&s);
            let _ = redact_path(&s);
        }
    }
}
