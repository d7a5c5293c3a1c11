//! The engine's floor for the instruction benchmark (bench/instructions,
//! issue 16): a reverse proxy on the same hyper, hyper-util pool and
//! current-thread tokio runtime as Portcullis, with no policy at all. It
//! forwards every request to one upstream and streams both bodies. What
//! Portcullis costs over this is what its controls and its plumbing cost.
//!
//!     cargo run --release -p portcullis-gateway --example minimal_proxy -- 127.0.0.1:8080 127.0.0.1:9000
//!
//! Not a product: no limits, no timeouts, no header hygiene.

#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Upstream = Client<HttpConnector, Incoming>;

async fn forward(
    client: Upstream,
    authority: http::uri::Authority,
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(authority);
    parts.uri = Uri::from_parts(uri).unwrap();
    match client.request(Request::from_parts(parts, body)).await {
        Ok(res) => Ok(res.map(BodyExt::boxed)),
        Err(_) => {
            let mut res = Response::new(Empty::new().map_err(|never| match never {}).boxed());
            *res.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(res)
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let upstream: http::uri::Authority =
        args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned()).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        let listener = TcpListener::bind(&listen).await.unwrap();
        println!("minimal proxy listening on {}", listener.local_addr().unwrap());
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| forward(client.clone(), upstream.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
}
