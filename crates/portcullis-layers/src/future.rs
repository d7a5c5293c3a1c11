//! Small response futures shared by the layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

/// Something that edits a response once it is ready.
pub trait ResponseMapper<B> {
    /// Edits the response.
    fn map(self, res: &mut Response<B>);
}

/// No mapper, no edit: a layer whose decision may leave nothing to write.
impl<B, M: ResponseMapper<B>> ResponseMapper<B> for Option<M> {
    fn map(self, res: &mut Response<B>) {
        if let Some(m) = self {
            m.map(res);
        }
    }
}

pin_project! {
    /// A future that applies a [`ResponseMapper`] to the inner service's response.
    pub struct MapResponse<F, M> {
        #[pin]
        inner: F,
        mapper: Option<M>,
    }
}

impl<F, M> MapResponse<F, M> {
    /// Applies `mapper` to the response of `inner`.
    pub fn new(inner: F, mapper: M) -> Self {
        MapResponse { inner, mapper: Some(mapper) }
    }
}

impl<F, M, B, E> Future for MapResponse<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    M: ResponseMapper<B>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(m) = this.mapper.take() {
            m.map(&mut res);
        }
        Poll::Ready(Ok(res))
    }
}

pin_project! {
    /// Either the inner service's future or an immediate rejection response.
    #[project = OrRejectProj]
    #[allow(missing_docs)]
    pub enum OrReject<F, B> {
        /// Forwarded to the inner service.
        Inner { #[pin] fut: F },
        /// Answered here.
        Rejected { res: Option<Response<B>> },
    }
}

impl<F, B, E> Future for OrReject<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            OrRejectProj::Inner { fut } => fut.poll(cx),
            OrRejectProj::Rejected { res } => match res.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: a contract violation by the caller.
                None => Poll::Pending,
            },
        }
    }
}

/// A boxed response future, for the paths that await something of their
/// own (a store, a key fetch) before calling the inner service.
pub type BoxResponseFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The request path's common case unboxed, the rare one boxed.
    ///
    /// A layer that decides synchronously (no token to verify, a cached
    /// token, an in-process rate-limit store) returns `Fast` and costs no
    /// allocation; only a layer that must await first boxes its future
    /// (docs/performance.md).
    #[project = FastOrBoxedProj]
    #[allow(missing_docs)]
    pub enum FastOrBoxed<F, B, E> {
        /// Decided here: forwarded to the inner service or answered.
        Fast { #[pin] fut: F },
        /// Awaits something first.
        Boxed { fut: BoxResponseFuture<B, E> },
    }
}

impl<F, B, E> Future for FastOrBoxed<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FastOrBoxedProj::Fast { fut } => fut.poll(cx),
            FastOrBoxedProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}
