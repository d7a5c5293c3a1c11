//! A minimal hyper backend for the load benchmarks (bench/run): `GET /`
//! answers a small JSON body, `POST /echo` echoes up to 64 KiB, any other
//! request body is read (up to 4 MiB) and dropped before the answer, so a
//! keep-alive connection stays usable after a large upload.
//!
//!     cargo run --release -p portcullis-gateway --example backend -- 127.0.0.1:9000

#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

// Bounded: the body is wrapped in `Limited` before `collect`.
#[allow(clippy::disallowed_methods)]
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if req.uri().path() == "/echo" {
        Limited::new(req.into_body(), 65_536).collect().await.map(|b| b.to_bytes()).unwrap_or_default()
    } else {
        let _ = Limited::new(req.into_body(), 4 << 20).collect().await;
        Bytes::from_static(b"{\"hello\":\"world\"}")
    };
    let mut res = Response::new(Full::new(body));
    res.headers_mut().insert("content-type", "application/json".parse().unwrap());
    Ok(res)
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.unwrap();
        println!("backend listening on {}", listener.local_addr().unwrap());
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(handle))
                    .await;
            });
        }
    });
}
