//! The scanner's HTTP/1.1 client: it writes exactly the bytes a check asks
//! for, over TCP or TLS, and reads one response with its framing. Every
//! exchange is bounded by the connect and response timeouts, and a response
//! body by [`MAX_BODY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::ScanError;
use crate::target::{Scheme, Target};

/// Response bodies are read up to this many bytes; the rest is dropped.
pub const MAX_BODY: usize = 256 * 1024;
const MAX_HEAD: usize = 64 * 1024;

/// One request, as the check wants it on the wire.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, written as is.
    pub method: String,
    /// The request target (path and query), written as is.
    pub path: String,
    /// Header fields after `Host`, `User-Agent` and `Accept`, in order.
    pub headers: Vec<(String, String)>,
    /// The body, written after the head; the check sets the framing headers.
    pub body: Vec<u8>,
    /// Adds `Content-Length` for the body (off for hand-framed requests).
    pub content_length: bool,
    /// Asks the server to close after the response.
    pub close: bool,
}

impl Request {
    /// A request with no body that asks for the connection to close.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: false,
            close: true,
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a body with its `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.content_length = true;
        self
    }

    /// The bytes on the wire for `target`, user headers included.
    pub(crate) fn bytes(&self, target: &Target, user: &[(String, String)]) -> Vec<u8> {
        let mut head = self.head(target, user, false);
        head.extend_from_slice(&self.body);
        head
    }

    /// The head as sent, or with credentials redacted for the report.
    fn head(&self, target: &Target, user: &[(String, String)], redact: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", self.method, self.path, target.authority());
        out.push_str("User-Agent: portcullis-scan/");
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push_str("\r\nAccept: */*\r\n");
        for (name, value) in user.iter().chain(&self.headers) {
            let value = if redact && is_credential(name) { "***" } else { value.as_str() };
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        if self.content_length {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if self.close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The request for the report: the head with credentials redacted, and
    /// the body shown when it is short text, otherwise by its size.
    pub fn describe(&self, target: &Target, user: &[(String, String)]) -> String {
        let head = String::from_utf8_lossy(&self.head(target, user, true)).into_owned();
        let mut out = head.trim_end().replace("\r\n", "\n");
        if !self.body.is_empty() {
            out.push_str("\n\n");
            match std::str::from_utf8(&self.body) {
                Ok(text) if text.len() <= 200 => out.push_str(text),
                _ => out.push_str(&format!("<{} bytes>", self.body.len())),
            }
        }
        out
    }
}

fn is_credential(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie", "x-api-key"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
}

/// One response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked framing removed), at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
    /// The server answered before it had read the whole request.
    pub early: bool,
    /// How many bytes of the request were written when the answer came.
    pub written: usize,
}

impl Response {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by lowercase name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The status line and the named headers, for evidence.
    pub fn describe(&self, names: &[&str]) -> String {
        let mut out = format!("HTTP/1.1 {}", self.status);
        for (n, v) in &self.headers {
            if names.contains(&n.as_str()) {
                let v = if n == "set-cookie" { redact_cookie(v) } else { v.clone() };
                out.push_str(&format!("\n{n}: {v}"));
            }
        }
        out
    }
}

/// A cookie's value replaced by `***`, its name and attributes kept.
pub fn redact_cookie(v: &str) -> String {
    match v.split_once('=') {
        Some((name, rest)) => {
            let attrs = rest.find(';').map(|i| &rest[i..]).unwrap_or("");
            format!("{name}=***{attrs}")
        }
        None => v.to_owned(),
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client: TLS roots, user headers and timeouts, shared by every check.
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    /// Headers added to every request (`--header`).
    pub user_headers: Vec<(String, String)>,
    /// Bound on connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// Bound on one whole exchange after connecting.
    pub timeout: Duration,
}

impl Client {
    /// A client trusting the web PKI roots plus `extra_roots` (PEM
    /// certificates, e.g. a private CA).
    pub fn new(extra_roots: Option<&[u8]>) -> Result<Self, ScanError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = extra_roots {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|_| ScanError::Setup("the CA file is not PEM certificates".into()))?;
                roots
                    .add(cert)
                    .map_err(|_| ScanError::Setup("the CA file holds a certificate rustls refuses".into()))?;
                n += 1;
            }
            if n == 0 {
                return Err(ScanError::Setup("the CA file holds no certificate".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ScanError::Setup(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: Arc::new(tls),
            user_headers: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        })
    }

    /// Sends `req` on a new connection and reads one response.
    pub async fn send(&self, target: &Target, req: &Request) -> Result<Response, FetchError> {
        let mut conn = self.connect(target).await?;
        let bytes = req.bytes(target, &self.user_headers);
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        tokio::time::timeout(self.timeout, conn.exchange(&bytes, head_only))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    /// Opens a connection, for checks that send more than one request on it.
    pub(crate) async fn connect(&self, target: &Target) -> Result<Conn, FetchError> {
        let connect = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| FetchError::Connect(e.kind()))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = match target.scheme {
                Scheme::Http => Box::new(tcp),
                Scheme::Https => {
                    let name = ServerName::try_from(target.host.clone()).map_err(|_| FetchError::Tls)?;
                    let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|_| FetchError::Tls)?;
                    Box::new(tls)
                }
            };
            Ok::<_, FetchError>(io)
        };
        let io =
            tokio::time::timeout(self.connect_timeout, connect).await.map_err(|_| FetchError::Timeout)??;
        let (rd, wr) = tokio::io::split(io);
        Ok(Conn { rd, wr, buf: Vec::new() })
    }
}

/// Why an exchange produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// TCP connect failed.
    Connect(std::io::ErrorKind),
    /// The TLS handshake failed (untrusted certificate, wrong name, no TLS).
    Tls,
    /// No whole answer within the timeout.
    Timeout,
    /// The connection closed or reset before a whole response head.
    Closed,
    /// The response was not HTTP/1.x.
    Malformed,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Connect(kind) => write!(f, "could not connect ({kind})"),
            FetchError::Tls => f.write_str("the TLS handshake failed"),
            FetchError::Timeout => f.write_str("no answer within the timeout"),
            FetchError::Closed => f.write_str("the connection closed before a response"),
            FetchError::Malformed => f.write_str("the answer is not HTTP/1.1"),
        }
    }
}

/// One open connection.
pub(crate) struct Conn {
    rd: ReadHalf<Box<dyn Io>>,
    wr: WriteHalf<Box<dyn Io>>,
    buf: Vec<u8>,
}

impl Conn {
    /// Writes `bytes` while reading: a server may answer (413, say) before
    /// it has read the whole request, and stop reading.
    pub(crate) async fn exchange(&mut self, bytes: &[u8], head_only: bool) -> Result<Response, FetchError> {
        let written = AtomicUsize::new(0);
        let wr = &mut self.wr;
        let write = async {
            for chunk in bytes.chunks(64 * 1024) {
                wr.write_all(chunk).await?;
                written.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            wr.flush().await
        };
        let read = read_response(&mut self.rd, &mut self.buf, head_only);
        tokio::pin!(write, read);
        let mut write_done = false;
        loop {
            tokio::select! {
                _ = &mut write, if !write_done => write_done = true,
                res = &mut read => {
                    let mut res = res?;
                    res.written = written.load(Ordering::Relaxed);
                    res.early = res.written < bytes.len();
                    return Ok(res);
                }
            }
        }
    }
}

async fn fill(rd: &mut ReadHalf<Box<dyn Io>>, buf: &mut Vec<u8>) -> Result<usize, FetchError> {
    let mut chunk = [0u8; 16 * 1024];
    match rd.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(_) => Ok(0),
    }
}

async fn read_response(
    rd: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Result<Response, FetchError> {
    loop {
        // Interim 1xx answers (other than 101) precede the real one.
        let (status, headers, used) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = parsed.code.ok_or(FetchError::Malformed)?;
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    break (status, headers, used);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    if fill(rd, buf).await? == 0 {
                        return Err(FetchError::Closed);
                    }
                }
                _ => return Err(FetchError::Malformed),
            }
        };
        buf.drain(..used);
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut res = Response { status, headers, ..Response::default() };
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(res);
        }
        let chunked =
            res.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let length = res.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        if chunked {
            res.body = read_chunked(rd, buf).await?;
        } else if let Some(len) = length {
            while buf.len() < len.min(MAX_BODY) {
                if fill(rd, buf).await? == 0 {
                    break;
                }
            }
            let take = len.min(buf.len());
            res.body = buf.drain(..take).collect();
            res.body.truncate(MAX_BODY);
        } else {
            while buf.len() < MAX_BODY {
                if fill(rd, buf).await? == 0 {
                    break;
                }
            }
            res.body = std::mem::take(buf);
            res.body.truncate(MAX_BODY);
        }
        return Ok(res);
    }
}

/// Decodes a chunked body up to [`MAX_BODY`]; a body cut short keeps what came.
async fn read_chunked(rd: &mut ReadHalf<Box<dyn Io>>, buf: &mut Vec<u8>) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > 1024 || fill(rd, buf).await? == 0 {
                return Ok(body);
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else { return Ok(body) };
        buf.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        while buf.len() < size + 2 {
            if fill(rd, buf).await? == 0 {
                body.extend_from_slice(&buf[..buf.len().min(size)]);
                return Ok(body);
            }
        }
        if body.len() < MAX_BODY {
            body.extend_from_slice(&buf[..size]);
        }
        buf.drain(..size + 2);
        if body.len() >= MAX_BODY {
            body.truncate(MAX_BODY);
            return Ok(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_the_description_only() {
        let target = Target::parse("http://api.example.test:8080/x").expect("url");
        let user = vec![("Authorization".to_owned(), "Bearer secret-token".to_owned())];
        let req = Request::new("GET", "/x").header("Cookie", "sid=abc");
        let wire = String::from_utf8(req.bytes(&target, &user)).expect("utf8");
        assert!(wire.contains("Bearer secret-token") && wire.contains("sid=abc"));
        assert!(wire.starts_with("GET /x HTTP/1.1\r\nHost: api.example.test:8080\r\n"));
        let shown = req.describe(&target, &user);
        assert!(!shown.contains("secret-token") && !shown.contains("abc"), "{shown}");
        assert!(shown.contains("Authorization: ***") && shown.contains("Cookie: ***"));
    }

    #[test]
    fn a_cookie_value_is_redacted_and_its_attributes_kept() {
        assert_eq!(redact_cookie("sid=abc123; Path=/; HttpOnly"), "sid=***; Path=/; HttpOnly");
        assert_eq!(redact_cookie("sid=abc"), "sid=***");
    }
}
