//! The upstream proxy: pooled HTTP/1.1 connections (`upstream_pool`, one
//! pool per worker), streaming bodies both ways,
//! hop-by-hop stripping, forwarding headers, WebSocket passthrough, and the
//! classification of upstream faults (502/504) and client faults (413/408).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use portcullis_layers::Body;
use portcullis_layers::client::{ClientInfo, PeerAddr};
use portcullis_layers::forwarded::{set_forwarding_headers, strip_hop_by_hop, wants_websocket};
use portcullis_layers::limit::{BodyLimitError, BodyOutcome};
use portcullis_layers::rejection::{Rejection, RejectionKind};
use portcullis_layers::request_id::RequestId;
use portcullis_layers::route::MatchedRoute;

use crate::config::UpstreamConfig;
use crate::upstream_pool::Pool;

/// The proxy service at the core of the stack.
#[derive(Clone)]
pub struct Proxy {
    // One pool per worker (`server.workers`), so a request and its upstream
    // connection's task run on the same thread. Behind an `Arc`: the
    // service is cloned per request, the pools' handles only once.
    pools: Arc<[Arc<Pool>]>,
    target: Arc<Target>,
}

#[derive(Clone)]
struct Target {
    authority: http::uri::Authority,
    /// `Host` for a request that has none (HTTP/1.0): the upstream's.
    host: HeaderValue,
    base_path: String,
    deadline: Duration,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Headers Portcullis set for the upstream (identity, C23): never
    /// removed by a client's `Connection` header.
    protected: Vec<http::HeaderName>,
}

impl Proxy {
    /// A proxy to the configured upstream. `request_timeout` caps the
    /// upstream timeout. `protected` are the request headers Portcullis
    /// sets for the upstream (identity, C23), which a client's
    /// `Connection` header never removes. `workers` pools are kept, one per
    /// worker ([`crate::server::worker_index`]).
    pub fn new(
        up: &UpstreamConfig,
        request_timeout: Duration,
        protected: Vec<http::HeaderName>,
        workers: usize,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(up.connect_timeout));
        connector.enforce_http(true);
        let authority =
            up.url.authority().cloned().unwrap_or_else(|| http::uri::Authority::from_static("127.0.0.1"));
        // Capped and reaped (issue 16 item 5): `upstream.max_idle_connections`
        // and `upstream.idle_connection_timeout`, per worker. The connector
        // dials the URL's scheme, host and port.
        let pools = (0..workers.max(1))
            .map(|_| {
                Pool::new(
                    connector.clone(),
                    up.url.clone(),
                    up.max_idle_connections,
                    up.idle_connection_timeout,
                )
            })
            .collect();
        let target = Target {
            host: HeaderValue::from_str(authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("127.0.0.1")),
            authority,
            base_path: up.base_path.clone(),
            deadline: up.timeout.min(request_timeout),
            headers: up
                .headers
                .iter()
                .filter_map(|(n, s)| {
                    HeaderValue::from_str(s.expose()).ok().map(|mut v| {
                        v.set_sensitive(true);
                        (n.clone(), v)
                    })
                })
                .collect(),
            protected,
        };
        Proxy { pools, target: Arc::new(target) }
    }
}

/// The request body as the input layer hands it on: streaming (a
/// `portcullis_layers::limit::LimitedBody`) or read and checked.
type ProxyBody = Body;

impl tower::Service<Request<ProxyBody>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl Proxy {
    /// This worker's pool.
    fn pool(&self) -> &Arc<Pool> {
        &self.pools[crate::server::worker_index() % self.pools.len()]
    }

    async fn forward(&self, mut req: Request<ProxyBody>) -> Response<Body> {
        let id = req.extensions().get::<RequestId>().cloned();
        let reject = |kind: RejectionKind| Rejection::new(kind).into_response::<Body>(id.as_ref());
        let outcome = req.extensions().get::<BodyOutcome>().cloned();
        let peer = req.extensions().get::<PeerAddr>().copied();
        let client = req.extensions().get::<ClientInfo>().copied();
        let (Some(peer), Some(client)) = (peer, client) else {
            tracing::warn!(
                request_id = id.as_ref().map(RequestId::as_str).unwrap_or(""),
                "request without connection info"
            );
            return reject(RejectionKind::Internal);
        };

        // The host the client addressed: Host, or the :authority of HTTP/2.
        // FramingLayer, at the start of the onion, already refused a
        // missing, repeated, malformed or disagreeing one (C28).
        let host = match req.headers().get(header::HOST) {
            Some(h) => Some(h.clone()),
            None => req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        };

        // Only a WebSocket handshake on a route that opts in switches
        // protocols, and only here, after the route's whole policy passed.
        // Any other Upgrade (h2c) is removed: it would tunnel past it (C21).
        let upgrade = wants_websocket(req.method(), req.version(), req.headers())
            && req
                .extensions()
                .get::<MatchedRoute>()
                .and_then(|m| m.route.as_ref())
                .is_some_and(|r| r.websocket);
        let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers, upgrade, &self.target.protected);
        headers.remove(header::EXPECT);
        // Client-address, URL and method override headers were removed by
        // the ClientInfoLayer, at the start of the onion (C3 C21 C23).
        join_cookies(&mut headers);
        set_forwarding_headers(&mut headers, &peer, &client, host.as_ref());
        match &host {
            Some(h) => {
                headers.insert(header::HOST, h.clone());
            }
            None => {
                headers.insert(header::HOST, self.target.host.clone());
            }
        }
        for (n, v) in &self.target.headers {
            headers.insert(n.clone(), v.clone());
        }

        let path_and_query = match (self.target.base_path.as_str(), parts.uri.path_and_query()) {
            // Shared, not copied, when there is no base path to prepend.
            ("", Some(pq)) => pq.clone(),
            (base, pq) => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                match http::uri::PathAndQuery::try_from(format!("{base}{pq}")) {
                    Ok(pq) => pq,
                    Err(_) => return reject(RejectionKind::InvalidPath),
                }
            }
        };
        // Origin form: the connection is the upstream's.
        let uri = Uri::from(path_and_query);
        let mut up = Request::new(body);
        *up.method_mut() = parts.method;
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers;

        let client_fault = || outcome.as_ref().and_then(BodyOutcome::get).map(BodyLimitError::rejection);
        let id_str = id.as_ref().map(RequestId::as_str).unwrap_or("");
        let mut res = match tokio::time::timeout(self.target.deadline, self.pool().send(up)).await {
            Err(_) => {
                tracing::warn!(request_id = id_str, upstream = %self.target.authority, "upstream timed out");
                return reject(client_fault().unwrap_or(RejectionKind::UpstreamTimeout));
            }
            Ok(Err(e)) => {
                if let Some(kind) = client_fault() {
                    return reject(kind);
                }
                tracing::warn!(
                    request_id = id_str,
                    upstream = %self.target.authority,
                    error = %e,
                    connect = e.is_connect(),
                    "upstream request failed"
                );
                return reject(RejectionKind::UpstreamUnavailable);
            }
            Ok(Ok(res)) => res,
        };
        if let Some(kind) = client_fault() {
            return reject(kind);
        }

        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(down) = downstream_upgrade {
                let up_upgrade = hyper::upgrade::on(&mut res);
                tokio::spawn(async move {
                    if let (Ok(d), Ok(u)) = tokio::join!(down, up_upgrade) {
                        let mut d = TokioIo::new(d);
                        let mut u = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut d, &mut u).await;
                    }
                });
                let (mut parts, _) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers, true, &[]);
                return Response::from_parts(parts, Body::empty());
            }
            // A 101 nobody asked for can't be passed on, and no byte after
            // it is relayed: the upstream connection is dropped with `res`.
            tracing::warn!(
                request_id = id_str,
                upstream = %self.target.authority,
                "upstream switched protocols unasked; refused"
            );
            let mut refused = reject(RejectionKind::UpstreamUnavailable);
            refused.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return refused;
        }

        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers, false, &[]);
        Response::from_parts(parts, Body::new(body))
    }
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 needs one.
fn join_cookies(headers: &mut http::HeaderMap) {
    let mut it = headers.get_all(header::COOKIE).iter();
    if it.next().is_some() && it.next().is_some() {
        let joined: Vec<&[u8]> = headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect();
        if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
            headers.insert(header::COOKIE, v);
        }
    }
}
