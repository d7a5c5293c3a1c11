use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::session::{
    ActiveSession, PresentedSession, SessionCookie, SessionLookup, SessionSource, addressed, csrf_ok,
    take_session_cookie, unsafe_method,
};
use super::{Bearer, Identity, IdentityHeaders, Verifier, bearer};
use crate::future::{FastOrBoxed, OrReject};
use crate::rejection::{Rejection, RejectionKind};
use crate::request_id::RequestId;
use crate::route::{Access, Authz, MatchedRoute};

/// Enforces the matched route's access rule; see the [module docs](super).
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: Option<Arc<Verifier>>,
    headers: IdentityHeaders,
    forward_token: bool,
    sessions: Option<Arc<dyn SessionSource>>,
}

impl AuthLayer {
    /// With a verifier (`None`: no authentication configured, so protected
    /// routes always answer 401) and these identity headers. The bearer
    /// token is not forwarded to the upstream unless [`AuthLayer::forward_token`].
    pub fn new(verifier: Option<Arc<Verifier>>, headers: IdentityHeaders) -> AuthLayer {
        AuthLayer { inner: Arc::new(Inner { verifier, headers, forward_token: false, sessions: None }) }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> AuthLayer {
        let i = &self.inner;
        let mut inner = Inner {
            verifier: i.verifier.clone(),
            headers: i.headers.clone(),
            forward_token: i.forward_token,
            sessions: i.sessions.clone(),
        };
        f(&mut inner);
        AuthLayer { inner: Arc::new(inner) }
    }

    /// Whether the `Authorization: Bearer` header reaches the upstream.
    pub fn forward_token(self, yes: bool) -> AuthLayer {
        self.with(|i| i.forward_token = yes)
    }

    /// Accepts a session cookie wherever a bearer token is accepted (C25),
    /// with the CSRF checks for unsafe methods (C10); see
    /// [`super::session`].
    pub fn sessions(self, source: Arc<dyn SessionSource>) -> AuthLayer {
        self.with(|i| i.sessions = Some(source))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, auth: self.inner.clone() }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Inner>,
}

fn refuse<B: From<Bytes>>(
    kind: RejectionKind,
    id: Option<&RequestId>,
    challenge: &'static str,
) -> Response<B> {
    let mut res: Response<B> = Rejection::new(kind).into_response(id);
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    res
}

/// What the request carried, read before any verification.
struct Presented {
    access: Access,
    /// `None`: no bearer token; `Some(Err)`: a malformed Authorization header.
    token: Option<Result<String, ()>>,
    /// The session cookie (taken off the forwarded `Cookie` header).
    cookie: SessionCookie,
}

impl Inner {
    /// Strips client-sent identity headers and the token (unless it is
    /// forwarded), and reads the route's access rule.
    fn present<B>(&self, req: &mut Request<B>) -> Presented {
        self.headers.strip(req.headers_mut());
        let access = match req.extensions().get::<MatchedRoute>() {
            Some(m) => m.access().clone(),
            None => Access::Protected(Authz::default()),
        };
        let token = match bearer(req.headers()) {
            Bearer::Token(t) => Some(Ok(t.to_owned())),
            Bearer::Invalid => Some(Err(())),
            Bearer::Absent => None,
        };
        if !self.forward_token && token.is_some() {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        let cookie = match &self.sessions {
            Some(s) => take_session_cookie(req.headers_mut(), s.cookie_name()),
            None => SessionCookie::Absent,
        };
        if let SessionCookie::Id(sid) = &cookie {
            req.extensions_mut().insert(PresentedSession(sid.clone()));
        }
        Presented { access, token, cookie }
    }

    /// The decision for a request authenticated by its session cookie
    /// (no bearer token): the CSRF checks on unsafe methods, then the same
    /// authorization as a token.
    fn decide_session<B, ResBody: From<Bytes>>(
        &self,
        req: &mut Request<B>,
        p: &Presented,
        lookup: SessionLookup,
    ) -> Result<(), Response<ResBody>> {
        let id = req.extensions().get::<RequestId>();
        let protected = matches!(p.access, Access::Protected(_));
        let session = match lookup {
            SessionLookup::Found(s) => s,
            SessionLookup::NotFound if protected => {
                return Err(refuse(RejectionKind::Unauthenticated, id, "Bearer"));
            }
            SessionLookup::Unavailable if protected => {
                tracing::error!(target: "portcullis::auth", request_id = id.map(RequestId::as_str), "session store unavailable; answering 503");
                return Err(Rejection::new(RejectionKind::Unavailable).into_response(id));
            }
            SessionLookup::NotFound | SessionLookup::Unavailable => return Ok(()),
        };
        if unsafe_method(req.method()) {
            let (https, host) = addressed(req);
            if !csrf_ok(req.headers(), &session.csrf, https, host) {
                if !protected {
                    // A public route goes on, but not as this session.
                    return Ok(());
                }
                tracing::warn!(
                    target: "portcullis::auth",
                    request_id = id.map(RequestId::as_str),
                    event = "csrf_failed",
                    "cookie-authenticated request without a valid CSRF token or from another origin"
                );
                return Err(Rejection::new(RejectionKind::CsrfFailed).into_response(id));
            }
        }
        self.admit(req, &p.access, session.identity)?;
        if let SessionCookie::Id(sid) = &p.cookie {
            req.extensions_mut().insert(ActiveSession { id: sid.clone(), csrf: session.csrf });
        }
        Ok(())
    }

    /// Authorization of a verified identity against the route's rule
    /// (C26 C27), then the identity headers (C23).
    fn admit<B, ResBody: From<Bytes>>(
        &self,
        req: &mut Request<B>,
        access: &Access,
        identity: Arc<Identity>,
    ) -> Result<(), Response<ResBody>> {
        if let Access::Protected(rule) = access {
            let admitted = match req.extensions().get::<MatchedRoute>() {
                Some(m) => rule.admits(&identity.subject, &identity.roles, m),
                None => rule.roles.is_empty() && rule.owner.is_none(),
            };
            if !admitted {
                let id = req.extensions().get::<RequestId>();
                tracing::info!(
                    target: "portcullis::auth",
                    request_id = id.map(RequestId::as_str),
                    "identity lacks the route's role or ownership"
                );
                return Err(refuse(RejectionKind::Forbidden, id, "Bearer error=\"insufficient_scope\""));
            }
        }
        self.headers.apply(req.headers_mut(), &identity);
        req.extensions_mut().insert(identity);
        Ok(())
    }

    /// The decision once the token is verified (`verified` is `None` when
    /// nothing was verified): the request goes on with the identity set, or
    /// the refusal.
    fn decide<B, ResBody: From<Bytes>>(
        &self,
        req: &mut Request<B>,
        p: Presented,
        verified: Option<Result<Arc<super::Identity>, super::TokenError>>,
    ) -> Result<(), Response<ResBody>> {
        let id = req.extensions().get::<RequestId>();
        if let Access::Protected(_) = &p.access {
            let identity = match (p.token, verified) {
                (None, _) => {
                    return Err(refuse(RejectionKind::Unauthenticated, id, "Bearer"));
                }
                (Some(_), Some(Ok(identity))) => identity,
                (Some(_), verified) => {
                    let reason = match verified {
                        Some(Err(e)) => e.as_str(),
                        _ => "malformed Authorization header",
                    };
                    tracing::info!(
                        target: "portcullis::auth",
                        request_id = id.map(RequestId::as_str),
                        reason,
                        "bearer token refused"
                    );
                    return Err(refuse(RejectionKind::InvalidToken, id, "Bearer error=\"invalid_token\""));
                }
            };
            self.admit(req, &p.access, identity)
        } else if let Some(Ok(identity)) = verified {
            self.admit(req, &p.access, identity)
        } else {
            Ok(())
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = FastOrBoxed<OrReject<S::Future, ResBody>, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let presented = self.auth.present(&mut req);
        // No bearer token but a session cookie: the store is asked.
        if presented.token.is_none()
            && let (SessionCookie::Id(sid), Some(src)) = (&presented.cookie, &self.auth.sessions)
        {
            let (sid, src) = (sid.clone(), src.clone());
            let auth = self.auth.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return FastOrBoxed::Boxed {
                fut: Box::pin(async move {
                    let lookup = src.lookup(&sid).await;
                    match auth.decide_session(&mut req, &presented, lookup) {
                        Ok(()) => inner.call(req).await,
                        Err(res) => Ok(res),
                    }
                }),
            };
        }
        // Decided now when there is nothing to verify or the token is in
        // the cache; a signature check (and perhaps a JWKS fetch) is awaited.
        let verified = match (&presented.token, &self.auth.verifier) {
            (Some(Ok(t)), Some(v)) => match v.verify_cached(t) {
                Some(identity) => Some(Ok(identity)),
                None => {
                    let auth = self.auth.clone();
                    let v = v.clone();
                    // Take the ready inner service; leave a clone for the next call.
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    return FastOrBoxed::Boxed {
                        fut: Box::pin(async move {
                            let verified = match &presented.token {
                                Some(Ok(t)) => Some(v.verify(t).await),
                                _ => None,
                            };
                            match auth.decide(&mut req, presented, verified) {
                                Ok(()) => inner.call(req).await,
                                Err(res) => Ok(res),
                            }
                        }),
                    };
                }
            },
            _ => None,
        };
        let fut = match self.auth.decide(&mut req, presented, verified) {
            Ok(()) => OrReject::Inner { fut: self.inner.call(req) },
            Err(res) => OrReject::Rejected { res: Some(res) },
        };
        FastOrBoxed::Fast { fut }
    }
}
