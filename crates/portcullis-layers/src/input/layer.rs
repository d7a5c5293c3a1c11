use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

use super::check::{self, BodyPlan, Reports};
use super::{Finding, InjectionClass, InputPolicy, PolicyRef};
use crate::future::{FastOrBoxed, OrReject};
use crate::limit::BodyLimitError;
use crate::rejection::{Rejection, RejectionKind};
use crate::request_id::RequestId;
use crate::route::{MatchedRoute, Route};
use crate::{Body, BoxError};

/// Validates the input of every request; see the [module docs](super).
#[derive(Clone, Debug)]
#[must_use]
pub struct InputLayer {
    policies: Arc<Policies>,
}

#[derive(Clone, Debug)]
struct Policies {
    default: PolicyRef,
}

impl InputLayer {
    /// Every request gets `default` unless its route carries its own
    /// policy ([`InputLayer::policy_of`]).
    pub fn new(default: InputPolicy) -> InputLayer {
        InputLayer { policies: Arc::new(Policies { default: Arc::new(default) }) }
    }

    /// Attaches `policy` to a route: requests it matches are checked by it
    /// instead of the default.
    pub fn policy_of(route: Route, policy: InputPolicy) -> Route {
        route.with_policy::<PolicyRef>(Arc::new(policy))
    }

    /// The policy a route carries, if it has its own.
    pub fn route_policy(route: &Route) -> Option<&InputPolicy> {
        route.policy::<PolicyRef>().map(|p| &**p)
    }
}

impl<S> Layer<S> for InputLayer {
    type Service = InputService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        InputService { inner, policies: self.policies.clone() }
    }
}

/// The service of [`InputLayer`].
#[derive(Clone, Debug)]
pub struct InputService<S> {
    inner: S,
    policies: Arc<Policies>,
}

/// Injection findings of a request in report mode (C20 C31), in the
/// response extensions for the access log and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputReport {
    /// Locations and classes found.
    pub findings: Vec<(String, InjectionClass)>,
}

fn refuse<B: From<Bytes>>(f: Finding, id: Option<&RequestId>) -> Response<B> {
    Rejection::new(f.kind).into_response_with(id, &f.violations)
}

fn has_body<B: HttpBody>(b: &B) -> bool {
    !(b.is_end_stream() || b.size_hint().exact() == Some(0))
}

fn log_reports(reports: &Reports, id: Option<&RequestId>) {
    for (path, class) in reports {
        tracing::warn!(
            target: "portcullis::input",
            request_id = id.map(RequestId::as_str),
            location = path.as_str(),
            reason = class.reason(),
            "possible injection (report mode)"
        );
    }
}

impl<S, B, ResBody> Service<Request<B>> for InputService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InputFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let policy = req
            .extensions()
            .get::<MatchedRoute>()
            .and_then(|m| m.route.as_ref())
            .and_then(|r| r.policy::<PolicyRef>().cloned())
            .unwrap_or_else(|| self.policies.default.clone());
        let id = req.extensions().get::<RequestId>().cloned();
        let (parts, body) = req.into_parts();
        let mut reports = Reports::new();
        let plan = match check::head(&policy, &parts, has_body(&body), &mut reports) {
            Ok(plan) => plan,
            Err(f) => {
                return FastOrBoxed::Fast { fut: OrReject::Rejected { res: Some(refuse(f, id.as_ref())) } };
            }
        };
        let plan = plan.filter(BodyPlan::buffers);
        if plan.is_none() && reports.is_empty() {
            let fut = self.inner.call(Request::from_parts(parts, Body::new(body)));
            return FastOrBoxed::Fast { fut: OrReject::Inner { fut } };
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        FastOrBoxed::Boxed {
            fut: Box::pin(async move {
                let body = match plan {
                    None => Body::new(body),
                    Some(plan) => match read(body, policy.max_body).await {
                        Err(kind) => return Ok(Rejection::new(kind).into_response(id.as_ref())),
                        Ok(bytes) => {
                            if let Err(f) = check::body(&policy, plan, &bytes, &mut reports) {
                                return Ok(refuse(f, id.as_ref()));
                            }
                            Body::from(bytes)
                        }
                    },
                };
                log_reports(&reports, id.as_ref());
                let mut res = inner.call(Request::from_parts(parts, body)).await?;
                if !reports.is_empty() {
                    res.extensions_mut().insert(InputReport { findings: reports });
                }
                Ok(res)
            }),
        }
    }
}

/// Reads a whole body of at most `max` bytes.
async fn read<B>(body: B, max: u64) -> Result<Bytes, RejectionKind>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    #[allow(clippy::disallowed_methods)] // bounded by Limited
    let collected = Limited::new(body, limit).collect().await;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(if e.is::<LengthLimitError>() {
            RejectionKind::BodyTooLarge
        } else {
            // The client went away or sent a broken body, unless the limit
            // layer in front of us cut it.
            e.downcast_ref::<BodyLimitError>().map_or(RejectionKind::MalformedInput, |l| l.rejection())
        }),
    }
}

/// The response future of [`InputService`]: forwarded as is (nothing to
/// read) or refused by the head checks without an allocation; boxed when
/// the body is read and checked first.
pub type InputFuture<F, B, E> = FastOrBoxed<OrReject<F, B>, B, E>;
