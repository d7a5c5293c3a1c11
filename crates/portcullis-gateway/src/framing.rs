//! Connection-level HTTP/1 framing tracker (C28).
//!
//! hyper resolves an ambiguous request (Content-Length with
//! Transfer-Encoding) on its own: it drops the Content-Length and only marks
//! the connection for closing, so a service can't see that the request was
//! ambiguous. [`TrackedIo`] watches the raw bytes a connection reads, follows
//! HTTP/1 message boundaries (heads, fixed-length and chunked bodies) with the
//! same parser hyper uses (httparse), and records one verdict per request head
//! in order. The framing layer refuses a request whose verdict is bad.
//!
//! Fail closed: when the tracker can't follow the stream (a malformed chunk,
//! an oversized head), it stops, and every later request on the connection
//! gets a `Desync` verdict (400 and close). HTTP/2 connections (preface seen)
//! and upgraded connections are not tracked.
//!
//! A head that hyper would refuse with a bare status line (an invalid
//! request line or field, too many or too large fields, a request line over
//! the limit, or conflicting framing) is answered by [`TrackedIo`] itself
//! when the connection is idle: the whole error response, with the security
//! headers, the JSON body and a request id, then the connection closes
//! (C5 C19 C29). hyper never sees those bytes.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use portcullis_layers::framing::{FramingFault, check_headers};
use portcullis_layers::headers::SecurityHeaders;
use portcullis_layers::rejection::{Rejection, RejectionKind};
use portcullis_layers::request_id::RequestId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Metrics;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
const MAX_CHUNK_LINE: usize = 4096;
/// Header slots kept on the stack when parsing a head (`limits.max_headers`
/// is 100 unless set; up to 1,000 takes a heap vector).
const STACK_HEADERS: usize = 128;

/// Verdicts of one connection, one per request head, in order.
#[derive(Clone, Debug, Default)]
pub struct Verdicts(Arc<Mutex<VerdictQueue>>);

#[derive(Debug, Default)]
struct VerdictQueue {
    queue: VecDeque<Result<(), FramingFault>>,
}

impl Verdicts {
    /// The verdict for the next HTTP/1 request the service sees.
    pub fn next(&self) -> Result<(), FramingFault> {
        let mut q = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // No head recorded for a request hyper parsed: the tracker lost the
        // stream, or the two parsers disagree. Either way it can't be trusted.
        q.queue.pop_front().unwrap_or(Err(FramingFault::Desync))
    }

    /// No earlier head waits for the service: at most the refused head's
    /// own verdict (a framing fault) is queued.
    fn none_waiting_but_refused(&self) -> bool {
        let q = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.queue.iter().all(Result::is_err) && q.queue.len() <= 1
    }

    fn push(&self, v: Result<(), FramingFault>) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).queue.push_back(v);
    }
}

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Body(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers(Vec<u8>),
    /// HTTP/2 or an upgrade: not tracked any more.
    Passthrough,
    /// Lost; every later request is refused.
    Lost,
}

/// The tracker itself: feed it the bytes a connection reads.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    verdicts: Verdicts,
    max_head: usize,
    max_headers: usize,
    first: bool,
    /// A head refused before hyper saw it, to answer when idle.
    refused: Option<RejectionKind>,
}

impl Tracker {
    /// A tracker for heads of at most `max_head` bytes and `max_headers` fields.
    pub fn new(max_head: usize, max_headers: usize) -> Self {
        Tracker {
            state: State::Head(Vec::new()),
            verdicts: Verdicts::default(),
            max_head,
            max_headers,
            first: true,
            refused: None,
        }
    }

    /// The refusal of the last head fed, if it was refused.
    pub fn take_refusal(&mut self) -> Option<RejectionKind> {
        self.refused.take()
    }

    fn refuse(&mut self, kind: RejectionKind) {
        self.refused.get_or_insert(kind);
        self.state = State::Lost;
    }

    /// The verdict queue the service reads.
    pub fn verdicts(&self) -> Verdicts {
        self.verdicts.clone()
    }

    fn lose(&mut self) {
        self.state = State::Lost;
    }

    /// Consumes bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Passthrough | State::Lost => return,
                State::Head(buf) => {
                    // The common case, a whole head in one read, is parsed
                    // in place: no copy of the bytes (docs/performance.md).
                    let mut pending = std::mem::take(buf);
                    if !pending.is_empty() {
                        pending.extend_from_slice(data);
                    }
                    let input: &[u8] = if pending.is_empty() { data } else { &pending };
                    if self.first {
                        let n = input.len().min(H2_PREFACE.len());
                        if input[..n] == H2_PREFACE[..n] {
                            self.state = if n == H2_PREFACE.len() {
                                State::Passthrough
                            } else {
                                State::Head(input.to_vec())
                            };
                            return;
                        }
                    }
                    match self.parse_head(input) {
                        // hyper refuses a head that fills its buffer.
                        HeadParse::Partial if input.len() >= self.max_head => {
                            let line_done = input.contains(&b'\n');
                            self.refuse(if line_done {
                                RejectionKind::HeadersTooLarge
                            } else {
                                RejectionKind::UriTooLong
                            });
                        }
                        HeadParse::Partial => {
                            self.state = State::Head(if pending.is_empty() { data.to_vec() } else { pending })
                        }
                        HeadParse::Invalid(kind) => self.refuse(kind),
                        HeadParse::Complete(n, next) => {
                            self.first = false;
                            self.state = next;
                            if pending.is_empty() {
                                // Go on with what follows the head.
                                data = &data[n..];
                                continue;
                            }
                            let rest = pending[n..].to_vec();
                            self.feed(&rest);
                        }
                    }
                    return;
                }
                State::Body(remaining) => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(data.len());
                    *remaining -= n as u64;
                    data = &data[n..];
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    let Some(pos) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_LINE {
                            self.lose();
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..=pos]);
                    data = &data[pos + 1..];
                    let size = parse_chunk_size(line);
                    match size {
                        Some(0) => self.state = State::Trailers(Vec::new()),
                        Some(n) => self.state = State::ChunkData(n),
                        None => self.lose(),
                    }
                }
                State::ChunkData(remaining) => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(data.len());
                    *remaining -= n as u64;
                    data = &data[n..];
                    if *remaining == 0 {
                        self.state = State::ChunkCrlf(0);
                    }
                }
                State::ChunkCrlf(seen) => {
                    let want = if *seen == 0 { b'\r' } else { b'\n' };
                    if data[0] != want {
                        self.lose();
                        return;
                    }
                    data = &data[1..];
                    if *seen == 0 {
                        *seen = 1;
                    } else {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(buf) => {
                    buf.extend_from_slice(data);
                    data = &[];
                    // Trailers end with an empty line.
                    if buf.starts_with(b"\r\n") || buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let end = if buf.starts_with(b"\r\n") {
                            2
                        } else {
                            buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |p| p + 4)
                        };
                        let rest = buf[end..].to_vec();
                        self.state = State::Head(Vec::new());
                        self.feed(&rest);
                        return;
                    }
                    if buf.len() > self.max_head {
                        self.lose();
                    }
                }
            }
        }
    }

    fn parse_head(&mut self, buf: &[u8]) -> HeadParse {
        // Header slots on the stack, uninitialised (issue 16: this was a
        // zeroed heap vector of `max_headers` slots per head); the slice
        // is `max_headers` long either way, so "too many" is the same.
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let mut heap;
        let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if self.max_headers <= STACK_HEADERS {
            &mut stack[..self.max_headers]
        } else {
            heap = Vec::with_capacity(self.max_headers);
            heap.resize_with(self.max_headers, MaybeUninit::uninit);
            &mut heap
        };
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Partial) => HeadParse::Partial,
            Err(httparse::Error::TooManyHeaders) => HeadParse::Invalid(RejectionKind::HeadersTooLarge),
            Err(_) => HeadParse::Invalid(RejectionKind::MalformedRequest),
            Ok(httparse::Status::Complete(n)) => {
                // hyper parses the target with `http::Uri`: what it refuses
                // is answered here.
                if req.path.is_none_or(|p| http::Uri::try_from(p).is_err()) {
                    return HeadParse::Invalid(RejectionKind::MalformedRequest);
                }
                let mut framing = HeaderMap::new();
                let mut conn_upgrade = false;
                let mut has_upgrade = false;
                for h in req.headers.iter() {
                    // Names compared without a lowercased copy of each.
                    let framing_name = if h.name.eq_ignore_ascii_case("content-length") {
                        Some(http::header::CONTENT_LENGTH)
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        Some(http::header::TRANSFER_ENCODING)
                    } else {
                        None
                    };
                    if let Some(hn) = framing_name {
                        match HeaderValue::from_bytes(h.value) {
                            Ok(hv) => {
                                framing.append(hn, hv);
                            }
                            Err(_) => return HeadParse::Invalid(RejectionKind::AmbiguousFraming),
                        }
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        conn_upgrade |= h
                            .value
                            .split(|&b| b == b',')
                            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
                    } else if h.name.eq_ignore_ascii_case("upgrade") {
                        has_upgrade = true;
                    }
                }
                let verdict = check_headers(&framing);
                if verdict.is_err() {
                    // Answered here when idle (hyper refuses some of these
                    // with a bare 400, and accepts others); otherwise the
                    // framing layer refuses the request by its verdict.
                    // Nothing after this request is served.
                    self.verdicts.push(verdict);
                    self.refused.get_or_insert(RejectionKind::AmbiguousFraming);
                    return HeadParse::Complete(n, State::Lost);
                }
                self.verdicts.push(verdict);
                let connect = req.method == Some("CONNECT");
                let next = if framing.contains_key(http::header::TRANSFER_ENCODING) {
                    State::ChunkSize(Vec::new())
                } else if let Some(len) = framing
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|&l| l > 0)
                {
                    State::Body(len)
                } else {
                    State::Head(Vec::new())
                };
                if (conn_upgrade && has_upgrade) || connect {
                    // What follows may be another protocol; the proxy closes
                    // the connection when the upgrade is refused.
                    return HeadParse::Complete(n, State::Passthrough);
                }
                HeadParse::Complete(n, next)
            }
        }
    }
}

enum HeadParse {
    Partial,
    Invalid(RejectionKind),
    Complete(usize, State),
}

/// `1*HEXDIG *( SP / HTAB ) [ ; ext ] CRLF`, exactly as hyper accepts it:
/// any number of digits (leading zeros included), refused only when the
/// value overflows (a differential found by the proptest against hyper).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits_end = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits_end == 0 {
        return None;
    }
    let rest = &line[digits_end..];
    let after_ws = &rest[rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len())..];
    let rest_ok = after_ws.is_empty() || after_ws.starts_with(b";");
    if !rest_ok || rest.iter().any(|&b| b == b'\r' || b == b'\n') {
        return None;
    }
    line[..digits_end].iter().try_fold(0u64, |acc, &d| {
        let v = u64::from(char::from(d).to_digit(16)?);
        acc.checked_mul(16)?.checked_add(v)
    })
}

/// Writes Portcullis' own answer to a head refused before parsing.
#[derive(Clone, Debug)]
pub struct EarlyAnswer {
    headers: std::sync::Arc<SecurityHeaders>,
    metrics: std::sync::Arc<Metrics>,
}

impl EarlyAnswer {
    /// With the configured security headers, counting in `metrics`.
    pub fn new(headers: std::sync::Arc<SecurityHeaders>, metrics: std::sync::Arc<Metrics>) -> EarlyAnswer {
        EarlyAnswer { headers, metrics }
    }

    /// The whole HTTP/1.1 response for `kind`, as the error layer would
    /// write it: JSON body, request id, security headers, `Connection: close`.
    /// Logged and counted like any refused request.
    fn render(&self, kind: RejectionKind, peer: std::net::SocketAddr, https: bool) -> Vec<u8> {
        let id = RequestId::new_random();
        // The one writer of error responses; these kinds close the connection.
        let mut res: http::Response<bytes::Bytes> = Rejection::new(kind).into_response(Some(&id));
        let body = res.body().clone();
        res.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.headers.apply(res.headers_mut(), https);
        let status = res.status();
        let mut out = Vec::with_capacity(1024 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("Error").as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in res.headers() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        self.metrics.record(
            crate::metrics::NO_ROUTE,
            None,
            status.as_u16(),
            std::time::Duration::ZERO,
            Some(kind),
        );
        crate::access_log::log_unparsed(
            peer.ip().to_canonical(),
            id,
            status.as_u16(),
            kind.code(),
            body.len() as u64,
        );
        out
    }
}

/// How a [`TrackedIo`] answers refused heads itself.
#[derive(Debug)]
pub struct Answering {
    /// The renderer.
    pub answer: EarlyAnswer,
    /// The client (for the log line).
    pub peer: std::net::SocketAddr,
    /// Whether the connection is TLS (HSTS).
    pub https: bool,
    /// The connection's requests: an answer is written only when none is
    /// in flight, so it can't interleave with another response.
    pub(crate) requests: std::sync::Arc<crate::server::ConnRequests>,
}

pin_project_lite::pin_project! {
    /// An IO that feeds what it reads to a [`Tracker`], and answers heads
    /// the tracker refuses.
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        tracker: Option<Tracker>,
        answering: Option<Answering>,
        // Our answer and how much of it is written.
        pending: Option<(Vec<u8>, usize)>,
        // Answered: hyper reads end of stream from now on.
        done: bool,
    }
}

impl<T> TrackedIo<T> {
    /// Tracks `inner` (pass `None` to disable, e.g. for ALPN h2).
    pub fn new(inner: T, tracker: Option<Tracker>) -> Self {
        TrackedIo { inner, tracker, answering: None, pending: None, done: false }
    }

    /// Answers refused heads itself (else hyper answers them bare).
    #[must_use]
    pub fn answering(mut self, answering: Answering) -> Self {
        self.answering = Some(answering);
        self
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for TrackedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            if let Some((bytes, written)) = this.pending.as_mut() {
                while *written < bytes.len() {
                    match this.inner.as_mut().poll_write(cx, &bytes[*written..]) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            *written = bytes.len();
                        }
                        Poll::Ready(Ok(n)) => *written += n,
                    }
                }
                if this.inner.as_mut().poll_flush(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.pending = None;
                *this.done = true;
            }
            if *this.done {
                // End of stream: hyper closes the connection.
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            let res = this.inner.as_mut().poll_read(cx, buf);
            if let (Poll::Ready(Ok(())), Some(t)) = (&res, this.tracker.as_mut()) {
                t.feed(&buf.filled()[before..]);
                if let Some(kind) = t.take_refusal()
                    && let Some(a) = this.answering.as_ref()
                    && a.requests.idle()
                    && t.verdicts.none_waiting_but_refused()
                {
                    // hyper never sees the refused head.
                    buf.set_filled(before);
                    *this.pending = Some((a.answer.render(kind, a.peer, a.https), 0));
                    continue;
                }
            }
            return res;
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<Result<(), FramingFault>> {
        let mut t = Tracker::new(16 * 1024, 100);
        let v = t.verdicts();
        for c in chunks {
            t.feed(c);
        }
        let mut out = Vec::new();
        let q = v.0.lock().unwrap();
        out.extend(q.queue.iter().copied());
        out
    }

    #[test]
    fn c28_cl_te_seen_on_the_wire() {
        let v = run(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]);
        assert_eq!(v, vec![Err(FramingFault::ContentLengthWithTransferEncoding)]);
        let v = run(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"]);
        assert_eq!(v, vec![Err(FramingFault::ContentLengthWithTransferEncoding)]);
    }

    #[test]
    fn follows_keep_alive_and_pipelining_across_bodies() {
        let v = run(&[
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n0\r\nX-Trailer: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /d HTTP/1.1\r\nHost: a\r\n\r\n",
        ]);
        // The body that looks like a request is not a request.
        assert_eq!(v, vec![Ok(()), Ok(()), Ok(()), Ok(())]);
    }

    #[test]
    fn byte_by_byte_feeding_agrees() {
        let msg: &[u8] = b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
        let chunks: Vec<&[u8]> = msg.chunks(1).collect();
        assert_eq!(run(&chunks), vec![Ok(()), Err(FramingFault::MultipleContentLength)]);
    }

    #[test]
    fn malformed_chunking_loses_sync_and_fails_closed() {
        let mut t = Tracker::new(16 * 1024, 100);
        let v = t.verdicts();
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(v.next(), Ok(()));
        assert_eq!(v.next(), Err(FramingFault::Desync));
    }

    /// C5: the head's field count is bounded by `limits.max_headers`
    /// exactly, whether the slots are on the stack (up to 128) or on the
    /// heap; mixed-case framing names are still framing names.
    #[test]
    fn c5_the_field_limit_is_exact_on_the_stack_and_on_the_heap() {
        for max in [3, 100, STACK_HEADERS, STACK_HEADERS + 1, 300] {
            let head = |fields: usize| {
                let mut h = String::from("GET / HTTP/1.1\r\n");
                for i in 0..fields {
                    h.push_str(&format!("X-F{i}: v\r\n"));
                }
                h.push_str("\r\n");
                h
            };
            let mut t = Tracker::new(64 * 1024, max);
            t.feed(head(max).as_bytes());
            assert_eq!(t.take_refusal(), None, "{max} fields of {max}");
            assert_eq!(t.verdicts().next(), Ok(()));
            let mut t = Tracker::new(64 * 1024, max);
            t.feed(head(max + 1).as_bytes());
            assert_eq!(t.take_refusal(), Some(RejectionKind::HeadersTooLarge), "{} fields of {max}", max + 1);
        }
        let v =
            run(&[b"POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n"]);
        assert_eq!(v, vec![Err(FramingFault::ContentLengthWithTransferEncoding)]);
    }

    #[test]
    fn h2_preface_is_passthrough() {
        let v = run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"]);
        assert!(v.is_empty());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"1a;name=v\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"1a \t\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"1a x\r\n"), None);
        assert_eq!(parse_chunk_size(b"1a;a\rb\r\n"), None);
        assert_eq!(parse_chunk_size(b"\r\n"), None);
        assert_eq!(parse_chunk_size(b"-1\r\n"), None);
        assert_eq!(parse_chunk_size(b"1a\n"), None);
        assert_eq!(parse_chunk_size(b"000000000000000000001a\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff\r\n"), Some(u64::MAX));
        assert_eq!(parse_chunk_size(b"10000000000000000\r\n"), None);
    }

    /// Heads parsed in place (one read) and heads assembled across reads
    /// must give the same verdicts (C28).
    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";

    /// What hyper's own HTTP/1 server makes of a byte stream: for each
    /// request it dispatched, its path and whether its body read cleanly.
    fn hyper_view(bytes: Vec<u8>) -> Vec<(String, bool)> {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let rec = seen.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let rec = rec.clone();
                #[allow(clippy::disallowed_methods)] // bounded by Limited
                async move {
                    let path = req.uri().path().to_owned();
                    let ok = http_body_util::Limited::new(req.into_body(), 1 << 20).collect().await.is_ok();
                    rec.lock().unwrap().push((path, ok));
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new()))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
            let writer = async move {
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
                // Keep reading so hyper's responses never block it.
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
            };
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                futures_util::future::join(conn, writer),
            )
            .await;
            seen.lock().unwrap().clone()
        })
    }

    /// One chunk-size line and its data, with the spellings of the public
    /// record of chunked-encoding smuggling (bare LF, bare CR, signs, `0x`,
    /// overlong sizes, bad extensions, missing CRLF, wrong lengths).
    fn chunk() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let size_prefix = prop_oneof![
            Just(""),
            Just("0"),
            Just("00000000000000000"),
            Just("+"),
            Just("-"),
            Just("0x"),
            Just(" ")
        ];
        let ext = prop_oneof![
            Just(""),
            Just(";a=b"),
            Just(";"),
            Just(" ;a"),
            Just("\t"),
            Just(" x"),
            Just(";a=\"b\"")
        ];
        let eol = prop_oneof![Just("\r\n"), Just("\n"), Just("\r"), Just("\r\r\n")];
        let skew = prop_oneof![Just(0i64), Just(0), Just(0), Just(-1), Just(1)];
        let data_eol = prop_oneof![Just("\r\n"), Just("\r\n"), Just("\n"), Just(""), Just("X\r\n")];
        (1usize..20, size_prefix, proptest::bool::ANY, ext, eol, skew, data_eol).prop_map(
            |(n, prefix, upper, ext, eol, skew, data_eol)| {
                let hex = if upper { format!("{n:X}") } else { format!("{n:x}") };
                let len = usize::try_from(n as i64 + skew).unwrap_or(0);
                format!("{prefix}{hex}{ext}{eol}{}{data_eol}", "d".repeat(len)).into_bytes()
            },
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// C28: the tracker and hyper agree on every chunked body: both take
        /// it, or both refuse it, and a request after it is seen by both or
        /// by neither (a disagreement is a request-smuggling primitive).
        #[test]
        fn c28_chunked_bodies_tracker_agrees_with_hyper(
            chunks in proptest::collection::vec(chunk(), 0..4),
            last in proptest::prop_oneof![
                proptest::strategy::Just("0\r\n\r\n"),
                proptest::strategy::Just("0\r\nX-T: 1\r\n\r\n"),
                proptest::strategy::Just("0\n\n"),
                proptest::strategy::Just("0;x\r\n\r\n"),
                proptest::strategy::Just("00\r\n\r\n"),
            ],
        ) {
            let mut bytes = b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in &chunks {
                bytes.extend_from_slice(c);
            }
            bytes.extend_from_slice(last.as_bytes());
            bytes.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");

            let mut t = Tracker::new(16 * 1024, 100);
            let v = t.verdicts();
            t.feed(&bytes);
            let tracker_ok = !matches!(t.state, State::Lost);
            let verdicts: Vec<_> = v.0.lock().unwrap().queue.iter().copied().collect();

            let hyper = hyper_view(bytes.clone());
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            proptest::prop_assert_eq!(hyper.first().map(|(p, _)| p.as_str()), Some("/first"), "{}", shown);
            let hyper_body_ok = hyper[0].1;
            let hyper_next = hyper.iter().any(|(p, _)| p == "/next");
            proptest::prop_assert_eq!(hyper_body_ok, tracker_ok, "body verdicts differ: {:?}", shown);
            if hyper_next {
                // hyper served the next request: the tracker must have found it too.
                proptest::prop_assert_eq!(verdicts, vec![Ok(()), Ok(())], "{:?}", shown);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn c28_split_feeding_agrees(a in 0usize..=PIPELINE.len(), b in 0usize..=PIPELINE.len()) {
            let (a, b) = (a.min(b), a.max(b));
            let whole = run(&[PIPELINE]);
            proptest::prop_assert_eq!(&whole, &vec![Ok(()), Ok(()), Err(FramingFault::MultipleContentLength)]);
            proptest::prop_assert_eq!(run(&[&PIPELINE[..a], &PIPELINE[a..b], &PIPELINE[b..]]), whole);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512), split in 0usize..512) {
            let mut t = Tracker::new(8192, 100);
            let s = split.min(data.len());
            t.feed(&data[..s]);
            t.feed(&data[s..]);
        }
    }
}
