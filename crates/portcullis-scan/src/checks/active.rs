//! The active checks (`--active`): unusual or larger requests, each bounded.
//!
//! | check | sends | at most |
//! |---|---|---|
//! | `body-limit` (C13) | one POST with an 8 MiB JSON body, `Content-Length` | 8 MiB |
//! | `body-limit-chunked` (C13) | the same body chunked, no length | 8 MiB |
//! | `malformed-json` (C19) | a truncated JSON document | 1 request |
//! | `prototype-pollution` (C18) | `__proto__` and `constructor.prototype` in JSON and query | 2 requests |
//! | `coercion` (C17) | a repeated and a bracketed query parameter, a duplicate JSON key | 3 requests |
//! | `rate-limit` (C11) | GETs until the first 429 | `--rate-limit-requests` (100), 20 s |
//! | `framing` (C28) | `Content-Length` with `Transfer-Encoding: chunked`, on its own connection | 2 requests |
//!
//! The POSTs go to `--post-path`, default the URL's path. Their bodies are
//! consistent under either framing, so no check can desynchronise a
//! connection another client shares.

use std::time::{Duration, Instant};

use super::{Ctx, finding, status_line};
use crate::client::{Request, Response};
use crate::{Finding, Outcome};

/// The body-limit probes' size.
pub(crate) const BIG_BODY: usize = 8 * 1024 * 1024;
const RATE_LIMIT_TIME: Duration = Duration::from_secs(20);

pub(super) async fn probe(
    ctx: &mut Ctx,
    base_req: &str,
    base: &Response,
    progress: &mut dyn FnMut(&str),
) -> Vec<Finding> {
    let post = ctx.opts.post_path.clone().unwrap_or_else(|| ctx.opts.target.path.clone());
    let mut out = Vec::new();
    progress("body limits (C13)");
    out.push(body_limit(ctx, &post, false).await);
    out.push(body_limit(ctx, &post, true).await);
    progress("malformed JSON (C19)");
    out.push(malformed_json(ctx, &post).await);
    progress("prototype pollution (C18)");
    out.push(pollution(ctx, &post).await);
    progress("coercion (C17)");
    out.push(coercion(ctx, &post).await);
    progress("rate limit (C11)");
    out.push(rate_limit(ctx, base_req, base).await);
    progress("framing (C28)");
    out.push(framing(ctx, &post).await);
    for f in &mut out {
        f.active = true;
    }
    out
}

fn json_post(path: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", path).header("Content-Type", "application/json").body(body)
}

fn big_json() -> Vec<u8> {
    let mut body = Vec::with_capacity(BIG_BODY);
    body.extend_from_slice(b"{\"portcullis_scan\":\"");
    body.resize(BIG_BODY - 2, b'a');
    body.extend_from_slice(b"\"}");
    body
}

async fn body_limit(ctx: &mut Ctx, path: &str, chunked: bool) -> Finding {
    let (id, title) = if chunked {
        ("body-limit-chunked", "Oversized chunked body refused")
    } else {
        ("body-limit", "Oversized body refused")
    };
    let body = big_json();
    let req = if chunked {
        let mut framed = Vec::with_capacity(body.len() + 4096);
        for chunk in body.chunks(64 * 1024) {
            framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        let mut r = Request::new("POST", path)
            .header("Content-Type", "application/json")
            .header("Transfer-Encoding", "chunked");
        r.body = framed;
        r
    } else {
        json_post(path, body)
    };
    let (described, res) = ctx.fetch(&req).await;
    let f = finding(id, "C13", title, 20, "limits.body, and per route");
    match res {
        Err(e) => f.with(&described, e.to_string()).set(
            Outcome::Warn,
            format!("no answer to an 8 MiB body ({e}): something stops it, but without a 413"),
        ),
        Ok(r) => decide_body_limit(
            f.with(
                &described,
                format!(
                    "{}\n({} of {} bytes sent when it answered)",
                    status_line(&r),
                    r.written,
                    req.body.len()
                ),
            ),
            &r,
        ),
    }
}

pub(crate) fn decide_body_limit(f: Finding, r: &Response) -> Finding {
    match r.status {
        413 => f.set(Outcome::Pass, "413 for an 8 MiB body"),
        400..500 if r.early => f.set(
            Outcome::Skip,
            format!(
                "refused with {} before the body was read: point --post-path at a route that takes a body",
                r.status
            ),
        ),
        _ if r.early => {
            f.set(Outcome::Warn, format!("answered {} before reading the body, without a 413", r.status))
        }
        s => f.set(Outcome::Fail, format!("read the whole 8 MiB body and answered {s}")),
    }
}

/// 400, 415 or 422 count as refusals; 401, 403, 404, 405 as "not reached".
fn refused(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

fn not_reached(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 405)
}

async fn malformed_json(ctx: &mut Ctx, path: &str) -> Finding {
    let (described, res) = ctx.fetch(&json_post(path, "{\"portcullis_scan\": [1, 2")).await;
    let f = finding(
        "malformed-json",
        "C19",
        "Malformed JSON gets a JSON 400",
        15,
        "on by default (input checks)",
    );
    let Ok(r) = res else {
        return f.with(&described, "no answer").set(Outcome::Warn, "no answer to a malformed JSON body");
    };
    let f = f.with(&described, status_line(&r));
    let json = r.header("content-type").is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    match r.status {
        s if refused(s) && json => f.set(Outcome::Pass, format!("{s} with a JSON error")),
        s if refused(s) => f.set(Outcome::Warn, format!("{s}, but the error is not JSON")),
        s if not_reached(s) => f.set(
            Outcome::Skip,
            format!("{s} before the body was parsed: point --post-path at a route that takes JSON"),
        ),
        s @ 200..300 => f.set(Outcome::Fail, format!("malformed JSON accepted ({s})")),
        s => f.set(Outcome::Fail, format!("malformed JSON answered {s}")),
    }
}

async fn pollution(ctx: &mut Ctx, path: &str) -> Finding {
    let mut f =
        finding("prototype-pollution", "C18", "Prototype keys refused", 20, "on by default (input checks)");
    let body =
        "{\"__proto__\":{\"portcullisScan\":true},\"constructor\":{\"prototype\":{\"portcullisScan\":true}}}";
    let (described, res) = ctx.fetch(&json_post(path, body)).await;
    let mut decided = 0;
    if let Ok(r) = &res {
        match r.status {
            s if refused(s) => decided += 1,
            s @ 200..300 => {
                f.worsen(
                    Outcome::Fail,
                    &format!("a JSON body with __proto__ and constructor.prototype was accepted ({s})"),
                );
                f = f.with(&described, status_line(r));
                decided += 1;
            }
            _ => {}
        }
    }
    let query = with_query(
        &ctx.opts.target.path,
        "__proto__[portcullisScan]=1&constructor[prototype][portcullisScan]=1",
    );
    let (described, res) = ctx.fetch(&Request::new("GET", &query)).await;
    if let Ok(r) = &res {
        match r.status {
            s if refused(s) => decided += 1,
            s @ 200..300 => {
                f.worsen(Outcome::Warn, &format!("a query with __proto__[...] was accepted ({s})"));
                f = f.with(&described, status_line(r));
                decided += 1;
            }
            _ => {}
        }
    }
    match (decided, f.outcome) {
        (0, _) => f.set(Outcome::Skip, "neither probe reached the input checks (401, 404, 405?)"),
        (_, Outcome::Pass) => f.set(Outcome::Pass, "prototype keys refused with 400"),
        _ => f,
    }
}

async fn coercion(ctx: &mut Ctx, path: &str) -> Finding {
    let mut f = finding(
        "coercion",
        "C17",
        "No parameter coercion or duplicate keys",
        10,
        "on by default (input checks); route.query_schema",
    );
    let target = ctx.opts.target.path.clone();
    let probes = [
        (
            "a repeated query parameter (?p=1&p=2 becomes an array)",
            Request::new("GET", &with_query(&target, "portcullis_scan=1&portcullis_scan=2")),
        ),
        (
            "a bracketed query parameter (?p[a]=1 becomes an object)",
            Request::new("GET", &with_query(&target, "portcullis_scan[a]=1")),
        ),
        (
            "a JSON body with a duplicate key",
            json_post(path, "{\"portcullis_scan\":1,\"portcullis_scan\":2}"),
        ),
    ];
    let (mut accepted, mut decided) = (0, 0);
    for (what, req) in probes {
        let (described, res) = ctx.fetch(&req).await;
        let Ok(r) = res else { continue };
        if refused(r.status) {
            decided += 1;
        } else if (200..300).contains(&r.status) {
            decided += 1;
            accepted += 1;
            f.worsen(Outcome::Warn, &format!("{what} was accepted"));
            f = f.with(&described, status_line(&r));
        }
    }
    match (decided, accepted) {
        (0, _) => f.set(Outcome::Skip, "no probe reached the input checks"),
        (_, 0) => f.set(Outcome::Pass, "repeated and bracketed parameters and duplicate keys refused"),
        (d, a) if a == d && a >= 2 => {
            f.outcome = Outcome::Fail;
            f
        }
        _ => f,
    }
}

fn with_query(path: &str, query: &str) -> String {
    if path.contains('?') { format!("{path}&{query}") } else { format!("{path}?{query}") }
}

/// The rate-limit headers a limiter advertises.
const RATE_HEADERS: &[&str] = &["ratelimit", "ratelimit-policy", "ratelimit-limit", "x-ratelimit-limit"];

async fn rate_limit(ctx: &mut Ctx, base_req: &str, base: &Response) -> Finding {
    let f = finding("rate-limit", "C11", "Rate limiting", 15, "[[rate_limit]]");
    if RATE_HEADERS.iter().any(|h| base.header(h).is_some()) {
        return f
            .with(base_req, base.describe(RATE_HEADERS))
            .set(Outcome::Pass, "the answer advertises a rate limit (RateLimit headers)");
    }
    let n = ctx.opts.rate_limit_requests;
    let path = ctx.opts.target.path.clone();
    let started = Instant::now();
    let mut sent = 0;
    while sent < n && started.elapsed() < RATE_LIMIT_TIME {
        sent += 1;
        let (described, res) = ctx.fetch(&Request::new("GET", &path)).await;
        let Ok(r) = res else { continue };
        if r.status == 429 {
            let f = f.with(
                &described,
                r.describe(&["retry-after", "ratelimit", "ratelimit-policy", "content-type"]),
            );
            return if r.header("retry-after").is_some() || r.header("ratelimit").is_some() {
                f.set(Outcome::Pass, format!("429 after {sent} requests"))
            } else {
                f.set(Outcome::Warn, format!("429 after {sent} requests, but no Retry-After"))
            };
        }
    }
    f.set(Outcome::Fail, format!("no 429 after {sent} requests in {:.1} s", started.elapsed().as_secs_f64()))
}

async fn framing(ctx: &mut Ctx, path: &str) -> Finding {
    let f =
        finding("framing", "C28", "Ambiguous framing refused (CL+TE)", 20, "on by default (framing checks)");
    let target = ctx.opts.target.clone();
    // "0\r\n\r\n" is 5 bytes: a whole body under either framing, so nothing
    // is left over to be read as a second request.
    let mut first = Request::new("POST", path)
        .header("Content-Type", "application/json")
        .header("Content-Length", "5")
        .header("Transfer-Encoding", "chunked");
    first.close = false;
    first.body = b"0\r\n\r\n".to_vec();
    let described = first.describe(&target, &ctx.client.user_headers);
    let bytes = first.bytes(&target, &ctx.client.user_headers);
    ctx.sent += 1;
    let Ok(mut conn) = ctx.client.connect(&target).await else {
        return f.set(Outcome::Skip, "could not open a connection");
    };
    let timeout = ctx.client.timeout;
    let r = match tokio::time::timeout(timeout, conn.exchange(&bytes, false)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return f
                .with(&described, e.to_string())
                .set(Outcome::Pass, "the connection closed without an answer");
        }
        Err(_) => return f.with(&described, "no answer").set(Outcome::Warn, "no answer within the timeout"),
    };
    let f = f.with(&described, status_line(&r));
    if r.status == 400 {
        return f.set(Outcome::Pass, "400 for Content-Length with Transfer-Encoding");
    }
    // Still open? A second request on the same connection tells.
    let second = Request::new("GET", &target.path);
    ctx.sent += 1;
    let again =
        tokio::time::timeout(timeout, conn.exchange(&second.bytes(&target, &ctx.client.user_headers), false))
            .await;
    match again {
        Ok(Ok(_)) => f.set(
            Outcome::Fail,
            format!("answered {} and kept the connection open for the next request", r.status),
        ),
        _ => f.set(
            Outcome::Warn,
            format!(
                "answered {} and closed the connection (RFC 9112 allows it; the checklist asks for 400)",
                r.status
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c13_body_limit_decisions() {
        let f = || finding("body-limit", "C13", "t", 20, "");
        let r = |status, early| Response { status, early, ..Response::default() };
        assert_eq!(decide_body_limit(f(), &r(413, true)).outcome, Outcome::Pass);
        assert_eq!(decide_body_limit(f(), &r(413, false)).outcome, Outcome::Pass);
        assert_eq!(decide_body_limit(f(), &r(401, true)).outcome, Outcome::Skip);
        assert_eq!(decide_body_limit(f(), &r(200, false)).outcome, Outcome::Fail);
        assert_eq!(decide_body_limit(f(), &r(404, false)).outcome, Outcome::Fail);
        assert_eq!(decide_body_limit(f(), &r(500, true)).outcome, Outcome::Warn);
        assert_eq!(big_json().len(), BIG_BODY);
        assert!(serde_json::from_slice::<serde_json::Value>(&big_json()).is_ok());
    }

    #[test]
    fn queries_are_appended() {
        assert_eq!(with_query("/a", "x=1"), "/a?x=1");
        assert_eq!(with_query("/a?b=2", "x=1"), "/a?b=2&x=1");
    }
}
