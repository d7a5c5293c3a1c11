//! Error answers: C19 (errors are JSON and don't echo the request), C21
//! (TRACE refused), and C29 (no stack trace, file path, SQL error or
//! credential in any body the scan saw).

use std::sync::OnceLock;

use regex::bytes::Regex;

use super::{Ctx, finding, status_line};
use crate::client::{Request, Response};
use crate::{Finding, Outcome};

/// What gives a body away, by name. Byte patterns, ASCII only.
const SIGNATURES: &[(&str, &str)] = &[
    ("a JavaScript stack trace", r"(?-u)\bat [^\n<]{0,200}[(/\\][^\n<()]{0,200}\.[cm]?[jt]s:[0-9]+:[0-9]+"),
    (
        "a Python traceback",
        r"(?-u)Traceback \(most recent call last\)|File &quot;[^&]+&quot;, line [0-9]+|File \x22[^\x22]+\x22, line [0-9]+",
    ),
    ("a Java stack trace", r"(?-u)\bat [A-Za-z0-9_$.]+\([A-Za-z0-9_]+\.(java|kt|scala):[0-9]+\)"),
    (".NET stack trace", r"(?-u)\bat [A-Za-z0-9_.<>]+\([^)]*\) in [^\n]+:line [0-9]+"),
    ("a Go or Rust panic", r"(?-u)goroutine [0-9]+ \[|panicked at "),
    ("a PHP error", r"(?-u)(Fatal error|Parse error|Warning)(</b>)?: [^\n]{0,200} on line"),
    ("a Ruby backtrace", r"(?-u)\.rb:[0-9]+:in `"),
    (
        "a server file path",
        r"(?-u)(/home/[a-z0-9_.-]+/|/usr/src/app/|/var/www/|/opt/app/|/srv/app/|node_modules/|[A-Z]:\\(Users|inetpub|Program Files)\\)",
    ),
    (
        "an SQL error",
        r"(?-u)SQLSTATE\[|syntax error at or near|You have an error in your SQL syntax|\bORA-[0-9]{5}\b|SQLITE_ERROR|SequelizeDatabaseError|QueryFailedError|psycopg2\.|PG::[A-Z][a-z]+Error|unterminated quoted string",
    ),
    (
        "credentials in a connection string",
        r"(?-u)\b[a-z][a-z0-9+]{1,15}://[^/\s:@<>\x22']{1,64}:[^/\s@<>\x22']{1,128}@[a-z0-9.-]+",
    ),
];

fn signatures() -> &'static [(&'static str, Regex)] {
    static SET: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    SET.get_or_init(|| {
        SIGNATURES
            .iter()
            // The patterns are constants, checked by a unit test.
            .filter_map(|(name, p)| Regex::new(p).ok().map(|r| (*name, r)))
            .collect()
    })
}

/// The first leak in `body`: its name and an excerpt, one line, at most
/// 160 characters, with the password of any connection string masked.
pub(crate) fn leak(body: &[u8]) -> Option<(&'static str, String)> {
    static MASK: OnceLock<Option<Regex>> = OnceLock::new();
    signatures().iter().find_map(|(name, re)| {
        let m = re.find(body)?;
        let start = m.start().saturating_sub(40);
        let end = (m.end() + 40).min(body.len());
        let mut window = body[start..end].to_vec();
        if let Some(mask) = MASK.get_or_init(|| Regex::new(r"(?-u)://([^/\s:@]+):[^/\s@]+@").ok()) {
            window = mask.replace_all(&window, &b"://$1:***@"[..]).into_owned();
        }
        let excerpt: String = String::from_utf8_lossy(&window)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(160)
            .collect();
        Some((*name, excerpt))
    })
}

/// C29 over every response the scan saw.
pub(super) fn leaks(seen: &[(String, Response)]) -> Finding {
    let mut f = finding(
        "error-leak",
        "C29",
        "Errors leak no internals",
        20,
        "errors (5xx replaced by default); errors.replace_html_4xx",
    );
    for (req, r) in seen {
        if let Some((what, excerpt)) = leak(&r.body)
            && !f.detail.contains(what)
        {
            f.worsen(Outcome::Fail, &format!("{what} in a {} answer", r.status));
            f = f.with(req, format!("{}\n…{excerpt}…", status_line(r)));
        }
    }
    if f.outcome == Outcome::Pass {
        f.detail = format!(
            "none of {} bodies has a stack trace, a server path, an SQL error or a credential",
            seen.len()
        );
    }
    f
}

pub(super) async fn probe(ctx: &mut Ctx) -> Vec<Finding> {
    let token = ctx.token.clone();
    let probes = [
        Request::new("GET", &format!("/portcullis-scan-{token}")).header("Accept", "application/json"),
        Request::new("GET", &format!("/portcullis-scan-{token}/%zz")).header("Accept", "application/json"),
    ];
    let mut answers = Vec::new();
    for req in &probes {
        if let (described, Ok(r)) = ctx.fetch(req).await {
            answers.push((described, r));
        }
    }
    let trace_req = Request::new("TRACE", &ctx.opts.target.path).header("X-Portcullis-Scan", &token);
    let (described, trace_res) = ctx.fetch(&trace_req).await;
    let trace = match trace_res {
        Ok(r) => decide_trace(&described, &r, &token),
        Err(e) => finding("trace", "C21", "TRACE refused", 15, "refused by the gateway: nothing to set")
            .with(&described, e.to_string())
            .set(Outcome::Pass, "TRACE got no answer"),
    };
    vec![error_format(&answers, &token), trace]
}

/// C19: an API's errors are JSON, and don't repeat the request.
pub(crate) fn error_format(answers: &[(String, Response)], token: &str) -> Finding {
    let mut f = finding(
        "error-format",
        "C19",
        "Errors are JSON and echo nothing",
        10,
        "errors.replace_html_4xx (on by default)",
    );
    let mut errors = 0;
    for (req, r) in answers.iter().filter(|(_, r)| r.status >= 400) {
        errors += 1;
        let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
        let mut bad = false;
        if !ct.contains("json") {
            f.worsen(
                Outcome::Warn,
                &format!("a {} answer is {}", r.status, if ct.is_empty() { "untyped" } else { "not JSON" }),
            );
            bad = true;
        }
        if r.text().contains(token) {
            f.worsen(Outcome::Warn, &format!("a {} answer repeats the request's path", r.status));
            bad = true;
        }
        if bad {
            f = f.with(req, status_line(r));
        }
    }
    if errors == 0 {
        return f.set(Outcome::Skip, "no probe got an error status (a catch-all route?)");
    }
    if f.outcome == Outcome::Pass {
        f.detail = format!("{errors} error answers, JSON, with no echo");
    }
    f
}

pub(crate) fn decide_trace(req: &str, r: &Response, token: &str) -> Finding {
    let f = finding("trace", "C21", "TRACE refused", 15, "refused by the gateway: nothing to set")
        .with(req, status_line(r));
    if (200..300).contains(&r.status) {
        if r.text().contains(token) {
            f.set(Outcome::Fail, "TRACE echoes the request, headers included (cross-site tracing)")
        } else {
            f.set(Outcome::Warn, format!("TRACE answered {}", r.status))
        }
    } else {
        f.set(Outcome::Pass, format!("TRACE answered {}", r.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signatures_compile() {
        assert_eq!(signatures().len(), SIGNATURES.len());
    }

    #[test]
    fn c29_leaks_are_found_and_their_secrets_masked() {
        let found = |b: &str| leak(b.as_bytes()).map(|(n, _)| n);
        assert_eq!(
            found("TypeError: x<br> &nbsp; &nbsp;at /home/app/src/routes/users.js:42:17<br>"),
            Some("a JavaScript stack trace")
        );
        assert_eq!(
            found(
                "SyntaxError: Unexpected end of JSON input\n    at JSON.parse (<anonymous>)\n    at parse (/srv/node_modules/body-parser/lib/types/json.js:92:19)"
            ),
            Some("a JavaScript stack trace")
        );
        assert_eq!(
            found("Traceback (most recent call last):\n  File \"/app/x.py\", line 3"),
            Some("a Python traceback")
        );
        assert_eq!(found("\tat com.example.Api.get(Api.java:42)"), Some("a Java stack trace"));
        assert_eq!(found("thread 'main' panicked at src/main.rs:3:5"), Some("a Go or Rust panic"));
        assert_eq!(found("ERROR: syntax error at or near \"'\""), Some("an SQL error"));
        let (name, excerpt) =
            leak(b"while connected to postgres://app:db-pa55word@db.internal:5432/app").expect("leak");
        assert_eq!(name, "credentials in a connection string");
        assert!(!excerpt.contains("pa55word") && excerpt.contains("app:***@"), "{excerpt}");
        for clean in [
            "{\"error\":\"not_found\",\"message\":\"Not found\",\"request_id\":\"abc\"}",
            "{\"hello\":\"world\",\"at\":\"https://example.com/a.js\"}",
            "See https://developer.mozilla.org/docs at 10:30",
        ] {
            assert_eq!(found(clean), None, "{clean}");
        }
    }

    #[test]
    fn c19_c21_error_format_and_trace() {
        let res = |status, ct: &str, body: &str| Response {
            status,
            headers: vec![("content-type".into(), ct.into())],
            body: body.as_bytes().to_vec(),
            ..Response::default()
        };
        let json = res(404, "application/json", "{\"error\":\"not_found\"}");
        let html = res(404, "text/html", "<pre>Cannot GET /portcullis-scan-tok</pre>");
        assert_eq!(error_format(&[("r".into(), json.clone())], "tok").outcome, Outcome::Pass);
        let f = error_format(&[("r".into(), html)], "tok");
        assert_eq!(f.outcome, Outcome::Warn);
        assert!(f.detail.contains("repeats"), "{}", f.detail);
        assert_eq!(error_format(&[("r".into(), res(200, "text/html", ""))], "tok").outcome, Outcome::Skip);
        assert_eq!(
            decide_trace("r", &res(200, "message/http", "TRACE / HTTP/1.1\r\nX-Portcullis-Scan: tok"), "tok")
                .outcome,
            Outcome::Fail
        );
        assert_eq!(decide_trace("r", &json, "tok").outcome, Outcome::Pass);
        assert_eq!(decide_trace("r", &res(405, "application/json", ""), "tok").outcome, Outcome::Pass);
    }
}
