use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::BoxError;

/// Why a limited body ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimitError {
    /// More bytes than the limit.
    TooLarge,
    /// No frame within the idle timeout.
    Timeout,
    /// The client's body could not be read: a malformed chunk (bad size
    /// line, bare LF, missing CRLF) or the connection closed mid-body.
    Malformed,
}

impl std::fmt::Display for BodyLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyLimitError::TooLarge => "request body over the limit",
            BodyLimitError::Timeout => "request body read timed out",
            BodyLimitError::Malformed => "request body malformed or cut short",
        })
    }
}

impl std::error::Error for BodyLimitError {}

impl BodyLimitError {
    /// The refusal this client fault is answered with: 413, 408 or 400
    /// (never a 502: the upstream is not at fault, C19).
    pub const fn rejection(self) -> crate::rejection::RejectionKind {
        match self {
            BodyLimitError::TooLarge => crate::rejection::RejectionKind::BodyTooLarge,
            BodyLimitError::Timeout => crate::rejection::RejectionKind::RequestTimeout,
            BodyLimitError::Malformed => crate::rejection::RejectionKind::MalformedRequest,
        }
    }
}

/// Shared record of how a limited body ended, readable after the body is gone.
#[derive(Clone, Debug, Default)]
pub struct BodyOutcome(Arc<AtomicU8>);

impl BodyOutcome {
    fn set(&self, e: BodyLimitError) {
        let v = match e {
            BodyLimitError::TooLarge => 1,
            BodyLimitError::Timeout => 2,
            BodyLimitError::Malformed => 3,
        };
        self.0.store(v, Ordering::Release);
    }

    /// The error the body ended with, if any.
    pub fn get(&self) -> Option<BodyLimitError> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyLimitError::TooLarge),
            2 => Some(BodyLimitError::Timeout),
            3 => Some(BodyLimitError::Malformed),
            _ => None,
        }
    }
}

pin_project! {
    /// A body that errors once more than `max` bytes pass, or when idle too long.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        idle: Option<Duration>,
        #[pin]
        timer: Option<Sleep>,
        outcome: BodyOutcome,
        failed: bool,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, max: u64, idle: Option<Duration>, outcome: BodyOutcome) -> Self {
        LimitedBody {
            inner,
            remaining: max,
            idle,
            timer: idle.map(tokio::time::sleep),
            outcome,
            failed: false,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.remaining() as u64;
                    if n > *this.remaining {
                        *this.failed = true;
                        this.outcome.set(BodyLimitError::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(BodyLimitError::TooLarge))));
                    }
                    *this.remaining -= n;
                }
                if let (Some(idle), Some(timer)) = (*this.idle, this.timer.as_mut().as_pin_mut()) {
                    timer.reset(tokio::time::Instant::now() + idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The client's side of the body failed (a hyper parse error
                // of a chunk, or EOF mid-body): a client fault.
                let e: BoxError = e.into();
                tracing::debug!(error = %e, "request body unreadable");
                *this.failed = true;
                this.outcome.set(BodyLimitError::Malformed);
                Poll::Ready(Some(Err(Box::new(BodyLimitError::Malformed))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if let Some(timer) = this.timer.as_mut().as_pin_mut()
                    && timer.poll(cx).is_ready()
                {
                    *this.failed = true;
                    this.outcome.set(BodyLimitError::Timeout);
                    return Poll::Ready(Some(Err(Box::new(BodyLimitError::Timeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
