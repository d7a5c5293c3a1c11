//! `portcullis demo`: a deliberately naive API, shaped like a default
//! Express app (stack traces on errors, `X-Powered-By: Express`, HTML error
//! pages, no limits), to put Portcullis in front of with zero setup.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_layers::Body;
use tokio::net::TcpListener;

const STACK: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Error</title></head>\n<body>\n<pre>TypeError: Cannot read properties of undefined (reading &#39;id&#39;)<br> &nbsp; &nbsp;at /home/app/src/routes/users.js:42:17<br> &nbsp; &nbsp;at Layer.handle [as handle_request] (/home/app/node_modules/express/lib/router/layer.js:95:5)<br> &nbsp; &nbsp;at next (/home/app/node_modules/express/lib/router/route.js:149:13)</pre>\n</body>\n</html>\n";

/// The demo gateway's routes: the naive API's public endpoints, nothing
/// else (so its `/admin`, and anything undeclared, is 404: deny by default),
/// and a rate limit per client IP.
pub const ROUTES: &str = r#"
[[route]]
path = "/"
methods = ["GET"]
public = true
[[route]]
path = "/api/hello"
methods = ["GET"]
public = true
[[route]]
path = "/api/crash"
methods = ["GET"]
public = true
[[route]]
path = "/api/headers"
methods = ["GET"]
public = true
[[route]]
path = "/api/fail"
methods = ["POST"]
public = true
[[route]]
path = "/api/echo"
methods = ["POST"]
public = true
[[rate_limit]]
name = "per-ip"
limit = 600
window = "1m"
"#;

/// Binds the naive API and serves it in the background; returns its address.
pub async fn start_naive_api(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(naive);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r.headers_mut().insert("x-powered-by", http::HeaderValue::from_static("Express"));
    r
}

// The demo API is deliberately naive: it reads any body whole, unbounded.
#[allow(clippy::disallowed_methods)]
async fn naive(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let res = match (req.method().as_str(), path.as_str()) {
        ("GET", "/") | ("GET", "/api/hello") => {
            reply(StatusCode::OK, "application/json; charset=utf-8", "{\"hello\":\"world\"}")
        }
        ("GET", "/api/crash") => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/html; charset=utf-8", STACK),
        ("GET", "/api/headers") => {
            let map: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            reply(
                StatusCode::OK,
                "application/json; charset=utf-8",
                serde_json::Value::Object(map).to_string(),
            )
        }
        ("POST", "/api/fail") => match req.into_body().collect().await {
            // Naive apps put the input into their error messages.
            Ok(b) => {
                let page = format!(
                    "<pre>Error: could not process {}<br> at /home/app/src/app.js:7:9<br> while connected to postgres://app:db-pa55word@db.internal:5432/app</pre>",
                    String::from_utf8_lossy(&b.to_bytes())
                );
                reply(StatusCode::INTERNAL_SERVER_ERROR, "text/html; charset=utf-8", page)
            }
            Err(_) => reply(StatusCode::BAD_REQUEST, "text/plain", "bad body"),
        },
        ("POST", "/api/echo") => match req.into_body().collect().await {
            // No limit at all: the naive app reads whatever it is sent.
            Ok(b) => reply(StatusCode::OK, "application/octet-stream", b.to_bytes()),
            Err(_) => reply(StatusCode::BAD_REQUEST, "text/plain", "bad body"),
        },
        (m, p) => {
            // Express echoes the path into its 404 page.
            let page = format!("<!DOCTYPE html>\n<html><body><pre>Cannot {m} {p}</pre></body></html>\n");
            reply(StatusCode::NOT_FOUND, "text/html; charset=utf-8", page)
        }
    };
    Ok(res)
}
