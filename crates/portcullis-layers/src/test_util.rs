//! Helpers shared by the unit tests of every layer (one place, not one copy
//! per module): reading a response body within a bound, and a recording
//! inner service.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use crate::body::Body;

/// A response or request body, read whole (at most 16 MiB).
pub(crate) async fn bytes<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Bounded by `Limited`, which is what the lint asks for.
    #[allow(clippy::disallowed_methods)]
    let collected = Limited::new(body, 1 << 24).collect().await.expect("body");
    collected.to_bytes()
}

/// A body read whole as UTF-8 text.
pub(crate) async fn text<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    String::from_utf8(bytes(body).await.to_vec()).expect("UTF-8 body")
}

/// What a recording inner service saw of each request.
pub(crate) type Seen<T> = Arc<Mutex<Vec<T>>>;

/// An inner service that records `look(&request)` for each request and
/// answers 200 with an empty body: for asserting what a layer hands on.
pub(crate) fn recording<T, F>(
    look: F,
) -> (
    Seen<T>,
    impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone,
)
where
    T: Send + 'static,
    F: Fn(&Request<Body>) -> T + Clone + Send + 'static,
{
    let seen: Seen<T> = Arc::default();
    let svc = {
        let seen = seen.clone();
        tower::service_fn(move |req: Request<Body>| {
            seen.lock().unwrap().push(look(&req));
            async { Ok::<_, Infallible>(Response::new(Body::empty())) }
        })
    };
    (seen, svc)
}

/// An inner service that is never ready: a layer must pass its
/// back-pressure on, not claim readiness of its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotReady;

impl tower::Service<Request<Body>> for NotReady {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// Whether `svc` reports readiness (polled once, with a no-op waker).
pub(crate) fn is_ready<S: tower::Service<Request<Body>>>(svc: &mut S) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    svc.poll_ready(&mut cx).is_ready()
}
