use super::*;
use crate::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn echo_len(req: Request<LimitedBody<Body>>) -> Result<Response<Body>, std::convert::Infallible> {
    let outcome = req.extensions().get::<BodyOutcome>().cloned();
    match req.into_body().collect().await {
        Ok(b) => Ok(Response::new(Body::from(b.to_bytes().len().to_string()))),
        Err(_) => {
            let kind = match outcome.and_then(|o| o.get()) {
                Some(BodyLimitError::TooLarge) => RejectionKind::BodyTooLarge,
                _ => RejectionKind::RequestTimeout,
            };
            Ok(crate::rejection::Rejection::new(kind).into_response(None))
        }
    }
}

fn stream_body(chunks: Vec<&'static [u8]>) -> Body {
    struct Chunks(std::collections::VecDeque<Bytes>);
    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
    Body::new(Chunks(chunks.into_iter().map(Bytes::from_static).collect()))
}

#[tokio::test]
async fn c13_declared_length_refused_before_reading() {
    let svc = BodyLimitLayer::new(4).layer(tower::service_fn(echo_len));
    let req = Request::builder().header("content-length", "5").body(Body::from("hello")).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn c13_chunked_body_counted() {
    let svc = BodyLimitLayer::new(8).layer(tower::service_fn(echo_len));
    let ok = svc.clone().oneshot(Request::new(stream_body(vec![b"abcd", b"efgh"]))).await.unwrap();
    assert_eq!(ok.status(), 200);
    let big = svc.oneshot(Request::new(stream_body(vec![b"abcd", b"efgh", b"i"]))).await.unwrap();
    assert_eq!(big.status(), 413);
}

#[tokio::test(start_paused = true)]
async fn c14_stalled_body_times_out() {
    let svc =
        BodyLimitLayer::new(1024).idle_timeout(Duration::from_secs(5)).layer(tower::service_fn(echo_len));
    // A body that never sends: the paused clock auto-advances to the timer.
    let (_tx, body) = pending_body();
    let res = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(res.status(), 408);
}

fn pending_body() -> ((), Body) {
    struct Never;
    impl http_body::Body for Never {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }
    ((), Body::new(Never))
}
