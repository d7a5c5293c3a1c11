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

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_layers::framing::{FramingFault, check_headers};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
const MAX_CHUNK_LINE: usize = 4096;

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
        }
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
                        HeadParse::Partial if input.len() > self.max_head => self.lose(),
                        HeadParse::Partial => {
                            self.state = State::Head(if pending.is_empty() { data.to_vec() } else { pending })
                        }
                        HeadParse::Invalid => self.lose(),
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
        let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Partial) => HeadParse::Partial,
            Err(_) => HeadParse::Invalid,
            Ok(httparse::Status::Complete(n)) => {
                let mut framing = HeaderMap::new();
                let mut conn_upgrade = false;
                let mut has_upgrade = false;
                for h in req.headers.iter() {
                    let name = h.name.to_ascii_lowercase();
                    match name.as_str() {
                        "content-length" | "transfer-encoding" => {
                            if let (Ok(hn), Ok(hv)) =
                                (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(h.value))
                            {
                                framing.append(hn, hv);
                            } else {
                                return HeadParse::Invalid;
                            }
                        }
                        "connection" => {
                            conn_upgrade |= h
                                .value
                                .split(|&b| b == b',')
                                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
                        }
                        "upgrade" => has_upgrade = true,
                        _ => {}
                    }
                }
                let verdict = check_headers(&framing);
                self.verdicts.push(verdict);
                if verdict.is_err() {
                    // hyper closes such connections itself; nothing after
                    // this request is served.
                    return HeadParse::Complete(n, State::Lost);
                }
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
    Invalid,
    Complete(usize, State),
}

/// `1*HEXDIG *( SP / HTAB ) [ ; ext ] CRLF`, exactly as hyper accepts it.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits_end = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits_end == 0 || digits_end > 16 {
        return None;
    }
    let rest = &line[digits_end..];
    let after_ws = &rest[rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len())..];
    let rest_ok = after_ws.is_empty() || after_ws.starts_with(b";");
    if !rest_ok || rest.iter().any(|&b| b == b'\r' || b == b'\n') {
        return None;
    }
    let s = std::str::from_utf8(&line[..digits_end]).ok()?;
    u64::from_str_radix(s, 16).ok()
}

pin_project_lite::pin_project! {
    /// An IO that feeds what it reads to a [`Tracker`].
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        tracker: Option<Tracker>,
    }
}

impl<T> TrackedIo<T> {
    /// Tracks `inner` (pass `None` to disable, e.g. for ALPN h2).
    pub fn new(inner: T, tracker: Option<Tracker>) -> Self {
        TrackedIo { inner, tracker }
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(t)) = (&res, this.tracker.as_mut()) {
            t.feed(&buf.filled()[before..]);
        }
        res
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
    }

    /// Heads parsed in place (one read) and heads assembled across reads
    /// must give the same verdicts (C28).
    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";

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
