//! Each active check's pass case and fail case (`--active`, issue 18),
//! against two small real servers on 127.0.0.1:0 that speak HTTP/1.1 over
//! TCP with keep-alive: a strict one that does what the checklist asks
//! (413 before reading an oversized or unsized body, JSON 400s for
//! malformed JSON, duplicate and prototype keys, repeated and bracketed
//! parameters and CL+TE, 429 with `Retry-After` past a request budget), and
//! a lax one that reads and accepts everything and keeps the connection.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_scan::{Grade, Options, Outcome, Report, scan};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

/// The strict server's budget of plain GETs before it answers 429; more
/// than the passive checks send, fewer than the active check may.
const BUDGET: usize = 30;
/// The strict server's body limit.
const LIMIT: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Strict,
    Lax,
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

async fn read_head(r: &mut BufReader<OwnedReadHalf>) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).await.ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Some(Head { method, target, headers })
}

/// A chunked body, decoded whole.
async fn read_chunked(r: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).await.ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            let mut end = String::new();
            r.read_line(&mut end).await.ok()?;
            return Some(body);
        }
        let at = body.len();
        body.resize(at + n, 0);
        r.read_exact(&mut body[at..]).await.ok()?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await.ok()?;
    }
}

fn response(status: &str, extra: &[&str], body: &str) -> String {
    let mut out =
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for h in [
        "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options: nosniff",
        "X-Frame-Options: DENY",
        "Referrer-Policy: no-referrer",
        "Cross-Origin-Opener-Policy: same-origin",
        "Cross-Origin-Resource-Policy: same-origin",
        "Origin-Agent-Cluster: ?1",
        "X-DNS-Prefetch-Control: off",
        "X-Download-Options: noopen",
        "X-Permitted-Cross-Domain-Policies: none",
    ]
    .iter()
    .chain(extra)
    {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// The top-level keys of a JSON object, in order, repeats kept (serde_json
/// would keep only the last of two equal keys).
struct TopKeys;

impl<'de> Visitor<'de> for TopKeys {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut keys = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(k);
        }
        Ok(keys)
    }
}

fn bad_json(body: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Ok(keys) = serde::Deserializer::deserialize_map(&mut de, TopKeys) else { return true };
    if de.end().is_err() {
        return true;
    }
    let repeated = keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
    repeated || keys.iter().any(|k| k == "__proto__" || k == "constructor" || k == "prototype")
}

fn bad_query(q: &str) -> bool {
    let names: Vec<&str> = q.split('&').map(|p| p.split_once('=').map_or(p, |(n, _)| n)).collect();
    names.iter().enumerate().any(|(i, n)| {
        names[..i].contains(n) || n.contains('[') || n.contains("%5B") || n.starts_with("__proto__")
    })
}

/// The answer of the strict server, and whether to close after it.
async fn strict(r: &mut BufReader<OwnedReadHalf>, h: &Head, gets: &AtomicUsize) -> (String, bool) {
    let refuse =
        |status: &str, error: &str| (response(status, &[], &format!("{{\"error\":\"{error}\"}}")), true);
    let te = h.get("transfer-encoding").is_some();
    let length = h.get("content-length").map(|v| v.parse::<usize>());
    match (te, &length) {
        (true, Some(_)) => return refuse("400 Bad Request", "ambiguous_framing"),
        // No length to check before reading: refused unread.
        (true, None) => return refuse("413 Content Too Large", "body_too_large"),
        (false, Some(Ok(n))) if *n > LIMIT => return refuse("413 Content Too Large", "body_too_large"),
        (false, Some(Err(_))) => return refuse("400 Bad Request", "bad_request"),
        _ => {}
    }
    let mut body = vec![0u8; length.and_then(Result::ok).unwrap_or(0)];
    if r.read_exact(&mut body).await.is_err() {
        return refuse("400 Bad Request", "bad_request");
    }
    let (path, query) = h.target.split_once('?').map_or((h.target.as_str(), None), |(p, q)| (p, Some(q)));
    if query.is_some_and(bad_query) {
        return refuse("400 Bad Request", "invalid_input");
    }
    match h.method.as_str() {
        "POST" if bad_json(&body) => refuse("400 Bad Request", "malformed_input"),
        "POST" => (response("200 OK", &[], "{\"ok\":true}"), false),
        "GET" if path == "/api" && query.is_none() && gets.fetch_add(1, Ordering::SeqCst) >= BUDGET => {
            (response("429 Too Many Requests", &["Retry-After: 60"], "{\"error\":\"rate_limited\"}"), false)
        }
        "GET" if path == "/api" => (response("200 OK", &[], "{\"ok\":true}"), false),
        "GET" => (response("404 Not Found", &[], "{\"error\":\"not_found\"}"), false),
        _ => refuse("405 Method Not Allowed", "method_not_allowed"),
    }
}

/// The answer of the lax server: every body read whole (chunked wins over
/// a length, as a lenient parser does), everything accepted.
async fn lax(r: &mut BufReader<OwnedReadHalf>, h: &Head) -> (String, bool) {
    let body = if h.get("transfer-encoding").is_some() {
        read_chunked(r).await
    } else {
        let mut b = vec![0u8; h.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)];
        r.read_exact(&mut b).await.ok().map(|_| b)
    };
    match body {
        Some(_) => (response("200 OK", &[], "{\"ok\":true}"), false),
        None => (String::new(), true),
    }
}

async fn connection(tcp: TcpStream, mode: Mode, gets: Arc<AtomicUsize>) {
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    while let Some(head) = read_head(&mut r).await {
        let (res, close) = match mode {
            Mode::Strict => strict(&mut r, &head, &gets).await,
            Mode::Lax => lax(&mut r, &head).await,
        };
        if w.write_all(res.as_bytes()).await.is_err() || close {
            // A lingering close, as servers do: the answer is sent, then
            // what the client still sends is read and dropped, so the
            // kernel does not reset the connection under the answer.
            let _ = w.shutdown().await;
            let mut sink = vec![0u8; 64 * 1024];
            let mut drained = 0;
            while drained < 16 << 20 {
                match r.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
            return;
        }
    }
}

async fn serve(mode: Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gets = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(connection(tcp, mode, gets.clone()));
        }
    });
    addr
}

async fn active_scan(mode: Mode, rate_limit_requests: u32) -> Report {
    let addr = serve(mode).await;
    let options =
        Options { active: true, rate_limit_requests, ..Options::new(&format!("http://{addr}/api")).unwrap() };
    scan(&options).await.unwrap()
}

fn outcome(report: &Report, id: &str) -> (Outcome, String) {
    let f = report.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no {id}"));
    assert!(f.active, "{id} is an active check");
    (f.outcome, f.detail.clone())
}

const ACTIVE: [&str; 7] = [
    "body-limit",
    "body-limit-chunked",
    "malformed-json",
    "prototype-pollution",
    "coercion",
    "rate-limit",
    "framing",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_c13_c17_c18_c19_c28_a_strict_server_passes_every_active_check() {
    let report = active_scan(Mode::Strict, 100).await;
    for id in ACTIVE {
        let (o, detail) = outcome(&report, id);
        assert_eq!(o, Outcome::Pass, "{id}: {detail}");
    }
    // The rate limit was found by counting, not by advertised headers.
    let (_, detail) = outcome(&report, "rate-limit");
    assert!(detail.starts_with("429 after "), "{detail}");
    assert!(report.requests <= 100 + 40, "bounded: {} requests", report.requests);
    assert_eq!(
        report.grade,
        Grade::APlus,
        "{:?}",
        report.findings.iter().map(|f| (&f.id, f.outcome)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_c13_c17_c18_c19_c28_a_lax_server_fails_every_active_check() {
    let report = active_scan(Mode::Lax, 10).await;
    for id in ACTIVE {
        let (o, detail) = outcome(&report, id);
        assert_eq!(o, Outcome::Fail, "{id}: {detail}");
    }
    let (_, detail) = outcome(&report, "rate-limit");
    assert!(detail.starts_with("no 429 after 10 requests"), "at most the budget: {detail}");
    let (_, detail) = outcome(&report, "body-limit-chunked");
    assert!(detail.contains("read the whole 8 MiB body"), "{detail}");
    let (_, detail) = outcome(&report, "framing");
    assert!(detail.contains("kept the connection open"), "{detail}");
    assert_eq!(report.grade, Grade::F);
}
