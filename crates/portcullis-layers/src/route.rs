//! The route table: deny by default (C21), matched on the canonical path (C28).
//!
//! Every request is matched against the routes in declaration order; the
//! first route whose pattern and methods match wins and is stored in the
//! request extensions as [`MatchedRoute`] for the authentication layer. A
//! route is protected unless it says [`Access::Public`]. A request that
//! matches no route is refused with 404 `not_found` (or 405
//! `method_not_allowed`, with `Allow`, when routes exist for its path but
//! not for its method), unless the table was built with
//! [`Unmatched::InsecurePassThrough`].
//!
//! A route owns the paths it matches (C21 C27): the first route whose
//! pattern matches a path decides which later routes may still take a
//! request for it, namely only those no broader than itself (the same path
//! declared again for other methods, or a more specific one). A method the
//! owner leaves out therefore gets 405, never a later catch-all such as
//! `/api/**` that admits any token. [`Route::insecure_method_fallthrough`]
//! gives that up for one route, and [`RouteTable::weaker_fallthroughs`]
//! lists where that hands methods to a weaker route.
//!
//! Matching follows Express by default (ASCII case and one trailing slash
//! ignored, see [`MatchOptions`]), so a policy on `/admin` also holds for
//! `/ADMIN/`. Put this layer after [`crate::path::CanonicalPathLayer`]:
//! it reads the request path as the canonical one.
//!
//! ```
//! use http::Method;
//! use portcullis_layers::pattern::PathPattern;
//! use portcullis_layers::route::{Access, Authz, Route, RouteTable};
//! let table = RouteTable::new(vec![
//!     Route::new(PathPattern::parse("/api/health").unwrap(), Access::Public),
//!     Route::new(
//!         PathPattern::parse("/api/users/{id}").unwrap(),
//!         Access::Protected(Authz { roles: vec!["admin".into()], owner: Some("id".into()) }),
//!     )
//!     .methods(vec![Method::GET, Method::PUT]),
//! ]);
//! let m = table.find(&Method::GET, "/API/users/alice/").unwrap();
//! assert_eq!(m.param("id"), Some("alice"));
//! assert!(table.find(&Method::DELETE, "/api/users/alice").is_none());
//! assert!(table.find(&Method::GET, "/api/other").is_none());
//! ```
//!
//! A catch-all after a route with a method list does not take the methods
//! it leaves out (405 instead):
//! ```
//! # use http::Method;
//! # use portcullis_layers::pattern::PathPattern;
//! # use portcullis_layers::route::{Access, Authz, Route, RouteTable};
//! let owner = Authz { roles: vec!["admin".into()], owner: Some("id".into()) };
//! let table = RouteTable::new(vec![
//!     Route::new(PathPattern::parse("/api/users/{id}").unwrap(), Access::Protected(owner))
//!         .methods(vec![Method::GET, Method::PUT]),
//!     Route::new(PathPattern::parse("/api/**").unwrap(), Access::Protected(Authz::default())),
//! ]);
//! assert!(table.find(&Method::DELETE, "/api/users/bob").is_none());
//! assert_eq!(table.allowed("/api/users/bob"), vec![Method::GET, Method::PUT, Method::HEAD]);
//! let m = table.find(&Method::DELETE, "/api/orders/1").unwrap();
//! assert_eq!(m.route.unwrap().pattern.as_str(), "/api/**");
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::future::OrReject;
use crate::path::hex_val;
use crate::pattern::{MatchOptions, PathPattern, SplitPath};
use crate::rejection::{RejectionKind, reject};

/// Who may use a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a valid bearer token still yields identity headers.
    Public,
    /// An authenticated identity that satisfies the [`Authz`] rule.
    Protected(Authz),
}

/// Authorization of a protected route (C26 C27). Empty `roles` and no
/// `owner` admit every authenticated identity. Otherwise the identity needs
/// any one of `roles`, or (when `owner` names a path parameter) a subject
/// equal to that parameter's decoded value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authz {
    /// Any of these roles admits.
    pub roles: Vec<String>,
    /// The path parameter that must equal the subject.
    pub owner: Option<String>,
}

impl Authz {
    /// Whether an identity with `subject` and `roles` may use the route
    /// matched as `m`.
    pub fn admits(&self, subject: &str, roles: &[String], m: &MatchedRoute) -> bool {
        if self.roles.is_empty() && self.owner.is_none() {
            return true;
        }
        if self.roles.iter().any(|r| roles.contains(r)) {
            return true;
        }
        match &self.owner {
            Some(p) => m.param(p).is_some_and(|v| !subject.is_empty() && v == subject),
            None => false,
        }
    }
}

/// One route.
#[derive(Clone, Debug)]
pub struct Route {
    /// The path pattern.
    pub pattern: PathPattern,
    /// The methods (HEAD is implied by GET, as in Express); `None` for all.
    pub methods: Option<Vec<Method>>,
    /// Who may use it.
    pub access: Access,
    /// Whether a WebSocket upgrade may pass (after the route's whole
    /// policy). No other protocol is ever upgraded to.
    pub websocket: bool,
    /// Whether a request for a path this route matches, with a method it
    /// does not list, may go on to later, possibly weaker, routes (the old
    /// Express-router behaviour) instead of getting 405. Insecure.
    pub insecure_method_fallthrough: bool,
    /// The route's own policies for later layers, by type (its input
    /// policy, and later its session and CSRF policies): a route carries
    /// them, so no layer keeps a list parallel to the table.
    policies: http::Extensions,
}

impl Route {
    /// A route for every method.
    pub fn new(pattern: PathPattern, access: Access) -> Route {
        Route {
            pattern,
            methods: None,
            access,
            websocket: false,
            insecure_method_fallthrough: false,
            policies: http::Extensions::new(),
        }
    }

    /// Attaches a policy for a later layer (one per type).
    #[must_use]
    pub fn with_policy<T: Clone + Send + Sync + 'static>(mut self, policy: T) -> Route {
        self.policies.insert(policy);
        self
    }

    /// The policy of type `T` attached to this route, if any.
    pub fn policy<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.policies.get::<T>()
    }

    /// Lets WebSocket upgrades pass on this route.
    #[must_use]
    pub fn websocket(mut self, yes: bool) -> Route {
        self.websocket = yes;
        self
    }

    /// Lets methods this route leaves out fall through to later routes.
    #[must_use]
    pub fn insecure_method_fallthrough(mut self, yes: bool) -> Route {
        self.insecure_method_fallthrough = yes;
        self
    }

    /// Restricts the route to these methods.
    #[must_use]
    pub fn methods(mut self, methods: Vec<Method>) -> Route {
        self.methods = Some(methods);
        self
    }

    fn allows(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(ms) => ms.iter().any(|m| m == method || (*method == Method::HEAD && *m == Method::GET)),
        }
    }

    /// Whether every request this route matches is matched by `self` first.
    pub fn shadows(&self, later: &Route, opts: MatchOptions) -> bool {
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(b)) => b.iter().all(|m| self.allows(m)),
        };
        methods && self.pattern.covers(&later.pattern, opts)
    }
}

/// What happens to a request that matches no route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unmatched {
    /// 404 `not_found` (the default).
    #[default]
    NotFound,
    /// Forwarded as if a public route matched. Insecure: it turns deny by
    /// default into allow by default.
    InsecurePassThrough,
}

/// The route matched by a request, with its decoded path parameters.
#[derive(Clone, Debug)]
pub struct MatchedRoute {
    /// The route (`None` for an unmatched request passed through), with
    /// its policies ([`Route::policy`]).
    pub route: Option<Arc<Route>>,
    /// The index of the route in the table, for this module's tests only:
    /// layers read a route's policies from the route itself, never from a
    /// list kept parallel to the table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) index: Option<usize>,
    params: Vec<(String, Option<String>)>,
}

impl MatchedRoute {
    /// The access rule (public for a passed-through request).
    pub fn access(&self) -> &Access {
        static PUBLIC: Access = Access::Public;
        self.route.as_ref().map_or(&PUBLIC, |r| &r.access)
    }

    /// Every path parameter in pattern order: name and decoded value (`None`
    /// when not valid UTF-8).
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// A path parameter, percent-decoded as Express decodes it; `None` when
    /// absent or not valid UTF-8.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }
}

/// The route table.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    opts: MatchOptions,
    unmatched: Unmatched,
    index: Arc<PrefixIndex>,
}

/// Which routes a path can reach, so matching costs the routes that can
/// match, not the whole table (issue 16): a trie of the routes' leading
/// literal segments (ASCII-lowercased unless matching is case-sensitive).
/// A route sits at the node of its whole literal prefix (the root when it
/// starts with a parameter or wildcard); a path collects the routes of every
/// node its own segments walk through, and they are tried in table order,
/// so first-match priority is kept.
#[derive(Debug, Default)]
struct PrefixIndex {
    root: PrefixNode,
}

#[derive(Debug, Default)]
struct PrefixNode {
    here: Vec<usize>,
    children: std::collections::HashMap<String, PrefixNode>,
}

impl PrefixIndex {
    fn new(routes: &[Arc<Route>], opts: MatchOptions) -> PrefixIndex {
        let mut ix = PrefixIndex::default();
        for (i, r) in routes.iter().enumerate() {
            let mut node = &mut ix.root;
            for lit in r.pattern.literal_prefix() {
                node = node.children.entry(Self::key(lit, opts).into_owned()).or_default();
            }
            node.here.push(i);
        }
        ix
    }

    fn key(s: &str, opts: MatchOptions) -> std::borrow::Cow<'_, str> {
        if opts.case_sensitive || !s.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Borrowed(s)
        } else {
            std::borrow::Cow::Owned(s.to_ascii_lowercase())
        }
    }

    /// The table positions a path may match, ascending.
    fn positions(&self, split: &SplitPath<'_>, opts: MatchOptions) -> Vec<usize> {
        let mut node = &self.root;
        let mut out = node.here.clone();
        let mut lists = 1;
        for part in split.parts() {
            let Some(next) = node.children.get(Self::key(part, opts).as_ref()) else { break };
            node = next;
            if !node.here.is_empty() {
                out.extend_from_slice(&node.here);
                lists += 1;
            }
        }
        if lists > 1 {
            out.sort_unstable();
        }
        out
    }
}

impl RouteTable {
    /// A table with Express matching and unmatched requests refused.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let index = Arc::new(PrefixIndex::new(&routes, MatchOptions::default()));
        RouteTable { routes, index, ..RouteTable::default() }
    }

    /// Sets how patterns compare to paths.
    #[must_use]
    pub fn match_options(mut self, opts: MatchOptions) -> RouteTable {
        self.opts = opts;
        self.index = Arc::new(PrefixIndex::new(&self.routes, opts));
        self
    }

    /// Sets what happens to unmatched requests.
    #[must_use]
    pub fn unmatched(mut self, u: Unmatched) -> RouteTable {
        self.unmatched = u;
        self
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Pairs `(earlier, later)` of routes where the later one can never match.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, later) in self.routes.iter().enumerate() {
            if let Some(i) = self.routes[..j].iter().position(|r| r.shadows(later, self.opts)) {
                out.push((i, j));
            }
        }
        out
    }

    /// The routes a request for this path may match, in table order, each
    /// with its captures: those whose pattern matches the path, among the
    /// routes the path's owner admits (the first matching route without
    /// [`Route::insecure_method_fallthrough`]; after it, only routes no
    /// broader than it). [`RouteTable::find`] and [`RouteTable::allowed`]
    /// both walk this, so a 405's `Allow` names exactly what would match.
    fn candidates<'t, 'p>(
        &'t self,
        split: &'t SplitPath<'p>,
    ) -> impl Iterator<Item = (usize, &'t Arc<Route>, Vec<&'p str>)> + 't {
        let mut owner: Option<&Route> = None;
        // Only the routes the path's literal segments can reach: the others
        // can't match, so skipping them changes no outcome below.
        self.index.positions(split, self.opts).into_iter().filter_map(move |i| {
            let r = &self.routes[i];
            if owner.is_some_and(|o| !o.pattern.covers(&r.pattern, self.opts)) {
                return None;
            }
            let caps = r.pattern.captures_split(split, self.opts)?;
            if owner.is_none() && !r.insecure_method_fallthrough {
                owner = Some(r);
            }
            Some((i, r, caps))
        })
    }

    /// The methods routes declare for this path, when none matched the
    /// request's method: the `Allow` of a 405. Empty when no route's
    /// pattern matches the path at all (a 404).
    pub fn allowed(&self, path: &str) -> Vec<Method> {
        let split = SplitPath::new(path);
        let mut out: Vec<Method> = Vec::new();
        for (_, r, _) in self.candidates(&split) {
            if let Some(ms) = &r.methods {
                for m in ms.iter().chain(ms.contains(&Method::GET).then_some(&Method::HEAD)) {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
            }
        }
        out
    }

    /// The first route matching a method and canonical path, among the
    /// routes the path's owner admits (see the module docs).
    pub fn find(&self, method: &Method, path: &str) -> Option<MatchedRoute> {
        let split = SplitPath::new(path);
        let (i, r, caps) = self.candidates(&split).find(|(_, r, _)| r.allows(method))?;
        let params = r.pattern.params().zip(caps).map(|(n, v)| (n.to_owned(), decode(v))).collect();
        Some(MatchedRoute { route: Some(r.clone()), index: Some(i), params })
    }

    /// Pairs `(earlier, later, methods)` where `later` can take requests
    /// for paths `earlier` matches with `methods` that `earlier` leaves
    /// out, and admits more identities than `earlier` does: a later route
    /// no broader than `earlier`, or any overlapping later route when
    /// `earlier` opts into [`Route::insecure_method_fallthrough`].
    /// `portcullis check` warns about each.
    pub fn weaker_fallthroughs(&self) -> Vec<(usize, usize, Vec<Method>)> {
        let mut out = Vec::new();
        for (i, e) in self.routes.iter().enumerate() {
            let Some(listed) = &e.methods else { continue };
            for (j, l) in self.routes.iter().enumerate().skip(i + 1) {
                let reachable = e.pattern.covers(&l.pattern, self.opts)
                    || (e.insecure_method_fallthrough && l.pattern.covers(&e.pattern, self.opts));
                if !reachable || !l.access.weaker_than(&e.access) {
                    continue;
                }
                let granted: Vec<Method> = match &l.methods {
                    Some(ms) => ms.iter().filter(|m| !e.allows(m)).cloned().collect(),
                    None => COMMON_METHODS.iter().filter(|m| !listed.contains(m)).cloned().collect(),
                };
                if !granted.is_empty() {
                    out.push((i, j, granted));
                }
            }
        }
        out
    }
}

/// The methods a route without a method list is reported to grant.
const COMMON_METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

impl Access {
    /// Whether this access admits some identity that `other` refuses.
    pub fn weaker_than(&self, other: &Access) -> bool {
        match (other, self) {
            (Access::Public, _) => false,
            (Access::Protected(_), Access::Public) => true,
            (Access::Protected(o), Access::Protected(s)) => !s.within(o),
        }
    }
}

impl Authz {
    fn admits_everyone(&self) -> bool {
        self.roles.is_empty() && self.owner.is_none()
    }

    /// Whether everyone this rule admits, `other` admits too.
    fn within(&self, other: &Authz) -> bool {
        if other.admits_everyone() {
            return true;
        }
        !self.admits_everyone()
            && self.roles.iter().all(|r| other.roles.contains(r))
            && (self.owner.is_none() || self.owner == other.owner)
    }
}

/// Percent-decodes a path segment; `None` if the result is not UTF-8.
fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(hex_val(b[i + 1])? << 4 | hex_val(b[i + 2])?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Matches requests to routes; refuses unmatched ones (C21).
#[derive(Clone, Debug)]
#[must_use]
pub struct RouteLayer {
    table: Arc<RouteTable>,
}

impl RouteLayer {
    /// With this table.
    pub fn new(table: RouteTable) -> RouteLayer {
        RouteLayer { table: Arc::new(table) }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteService { inner, table: self.table.clone() }
    }
}

/// The service of [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct RouteService<S> {
    inner: S,
    table: Arc<RouteTable>,
}

impl<S, B, ResBody> Service<Request<B>> for RouteService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OrReject<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let m = match self.table.find(req.method(), req.uri().path()) {
            Some(m) => m,
            None => {
                // A path a route owns stays owned in pass-through mode too:
                // the methods its routes leave out are a 405, never an
                // unauthenticated pass (pass-through is for undeclared paths).
                let allowed = self.table.allowed(req.uri().path());
                if allowed.is_empty() {
                    if self.table.unmatched == Unmatched::InsecurePassThrough {
                        req.extensions_mut().insert(MatchedRoute {
                            route: None,
                            index: None,
                            params: Vec::new(),
                        });
                        return OrReject::Inner { fut: self.inner.call(req) };
                    }
                    return OrReject::Rejected { res: Some(reject(&req, RejectionKind::NotFound)) };
                }
                let mut res = reject(&req, RejectionKind::MethodNotAllowed);
                let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = http::HeaderValue::from_str(&list) {
                    res.headers_mut().insert(http::header::ALLOW, v);
                }
                return OrReject::Rejected { res: Some(res) };
            }
        };
        req.extensions_mut().insert(m);
        OrReject::Inner { fut: self.inner.call(req) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    /// The table walked in full, without the prefix index: what
    /// [`RouteTable::find`] and [`RouteTable::allowed`] answered before it.
    fn linear(t: &RouteTable, method: &Method, path: &str) -> (Option<usize>, Vec<Method>) {
        let split = SplitPath::new(path);
        let mut owner: Option<&Route> = None;
        let mut found = None;
        let mut allowed: Vec<Method> = Vec::new();
        for (i, r) in t.routes.iter().enumerate() {
            if owner.is_some_and(|o| !o.pattern.covers(&r.pattern, t.opts)) {
                continue;
            }
            if r.pattern.captures_split(&split, t.opts).is_none() {
                continue;
            }
            if owner.is_none() && !r.insecure_method_fallthrough {
                owner = Some(r);
            }
            if found.is_none() && r.allows(method) {
                found = Some(i);
            }
            if let Some(ms) = &r.methods {
                for m in ms.iter().chain(ms.contains(&Method::GET).then_some(&Method::HEAD)) {
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        }
        (found, allowed)
    }

    proptest::proptest! {
        /// The prefix index changes no decision: for random tables
        /// (literals in mixed case, parameters, `*`, `**`, method lists,
        /// fall-through) and paths, under every match option, `find` and
        /// `allowed` agree with the full walk.
        #[test]
        fn c21_the_index_decides_as_the_full_walk_does(
            pats in proptest::collection::vec(
                (proptest::collection::vec(0usize..7, 0..5), proptest::option::of(0usize..3), proptest::bool::ANY),
                1..12,
            ),
            paths in proptest::collection::vec(proptest::collection::vec(0usize..6, 0..5), 1..8),
            case_sensitive in proptest::bool::ANY,
            strict in proptest::bool::ANY,
            slash in proptest::bool::ANY,
        ) {
            const SEGS: [&str; 7] = ["a", "B", "ab", "{x}", "*", "A", "**"];
            const PARTS: [&str; 6] = ["a", "A", "b", "ab", "AB", "zz"];
            let methods = [vec![Method::GET], vec![Method::POST, Method::PUT], vec![Method::DELETE]];
            let mut routes = Vec::new();
            for (segs, m, fall) in &pats {
                let mut text = String::new();
                for (k, s) in segs.iter().enumerate() {
                    // `**` only last; parameter names unique.
                    let s = if SEGS[*s] == "**" && k + 1 != segs.len() { "c" } else { SEGS[*s] };
                    let s = if s == "{x}" { format!("{{x{k}}}") } else { s.to_owned() };
                    text.push('/');
                    text.push_str(&s);
                }
                if text.is_empty() {
                    text.push('/');
                }
                let mut r = Route::new(p(&text), Access::Public).insecure_method_fallthrough(*fall);
                if let Some(m) = m {
                    r = r.methods(methods[*m].clone());
                }
                routes.push(r);
            }
            let opts = MatchOptions { case_sensitive, strict_trailing_slash: strict };
            let t = RouteTable::new(routes).match_options(opts);
            for parts in &paths {
                let mut path: String = parts.iter().map(|i| format!("/{}", PARTS[*i])).collect();
                if path.is_empty() || slash {
                    path.push('/');
                }
                for m in [Method::GET, Method::POST, Method::DELETE] {
                    let (want, want_allowed) = linear(&t, &m, &path);
                    proptest::prop_assert_eq!(t.find(&m, &path).and_then(|f| f.index), want, "{} {}", m, path);
                    proptest::prop_assert_eq!(t.allowed(&path), want_allowed.clone(), "{}", path);
                }
            }
        }
    }

    fn authz(roles: &[&str], owner: Option<&str>) -> Authz {
        Authz { roles: roles.iter().map(|r| (*r).to_owned()).collect(), owner: owner.map(str::to_owned) }
    }

    #[test]
    fn c21_first_match_wins_and_methods_filter() {
        let t = RouteTable::new(vec![
            Route::new(p("/api/health"), Access::Public).methods(vec![Method::GET]),
            Route::new(p("/api/**"), Access::Protected(Authz::default())),
        ]);
        assert_eq!(t.find(&Method::GET, "/api/health").unwrap().index, Some(0));
        assert_eq!(t.find(&Method::HEAD, "/api/health").unwrap().index, Some(0));
        // The first route owns /api/health: POST is a 405, not the catch-all.
        assert!(t.find(&Method::POST, "/api/health").is_none());
        assert_eq!(t.allowed("/api/health"), vec![Method::GET, Method::HEAD]);
        assert_eq!(t.find(&Method::POST, "/api/other").unwrap().index, Some(1));
        assert!(t.find(&Method::GET, "/admin").is_none());
        assert!(t.find(&Method::GET, "/apix").is_none());
    }

    // C21 C27: the attack run's method fall-through (issue 12 item 3): an
    // owner/role route listing GET and PUT, then `/api/**` for any token.
    #[test]
    fn c27_methods_an_owner_route_leaves_out_are_405_not_the_catch_all() {
        let users = || {
            Route::new(p("/api/users/{id}"), Access::Protected(authz(&["admin"], Some("id"))))
                .methods(vec![Method::GET, Method::PUT])
        };
        let any_token = || Route::new(p("/api/**"), Access::Protected(Authz::default()));
        let t = RouteTable::new(vec![users(), any_token()]);
        for m in [Method::DELETE, Method::POST, Method::PATCH, Method::OPTIONS] {
            for path in ["/api/users/bob", "/API/users/bob/", "/api/users/%62ob"] {
                assert!(t.find(&m, path).is_none(), "{m} {path} fell through");
                assert_eq!(t.allowed(path), vec![Method::GET, Method::PUT, Method::HEAD], "{path}");
            }
        }
        assert_eq!(t.find(&Method::PUT, "/api/users/bob").unwrap().index, Some(0));
        assert_eq!(t.find(&Method::DELETE, "/api/users/bob/posts").unwrap().index, Some(1));
        assert_eq!(t.weaker_fallthroughs(), vec![]);

        // The loudly named opt-in restores fall-through, and is reported.
        let t = RouteTable::new(vec![users().insecure_method_fallthrough(true), any_token()]);
        assert_eq!(t.find(&Method::DELETE, "/api/users/bob").unwrap().index, Some(1));
        assert_eq!(t.weaker_fallthroughs(), vec![(0, 1, vec![Method::POST, Method::PATCH, Method::DELETE])]);
    }

    #[test]
    fn c21_same_path_for_other_methods_and_specific_routes_after_the_owner() {
        let t = RouteTable::new(vec![
            Route::new(p("/users/{id}"), Access::Public).methods(vec![Method::GET]),
            Route::new(p("/users/{id}"), Access::Protected(authz(&["admin"], None)))
                .methods(vec![Method::DELETE]),
            Route::new(p("/users/me"), Access::Protected(Authz::default())).methods(vec![Method::PUT]),
            Route::new(p("/users/**"), Access::Public),
        ]);
        assert_eq!(t.find(&Method::DELETE, "/users/7").unwrap().index, Some(1));
        assert_eq!(t.find(&Method::PUT, "/users/me").unwrap().index, Some(2));
        assert!(t.find(&Method::PUT, "/users/7").is_none());
        assert!(t.find(&Method::POST, "/users/me").is_none());
        assert_eq!(t.find(&Method::POST, "/users/7/avatar").unwrap().index, Some(3));
        // A later route no broader than a stricter one, for a method that one
        // leaves out, is reported: /users/{id} GET is public, so nothing is
        // weaker than it; /users/me PUT is weaker than the admin-only DELETE.
        assert_eq!(t.weaker_fallthroughs(), vec![(1, 2, vec![Method::PUT])]);
    }

    #[test]
    fn access_strength_table() {
        let prot = |roles: &[&str], owner: Option<&str>| Access::Protected(authz(roles, owner));
        let cases = [
            (Access::Public, Access::Public, false),
            (Access::Public, prot(&[], None), true),
            (prot(&[], None), Access::Public, false),
            (prot(&[], None), prot(&["admin"], None), true),
            (prot(&["admin"], None), prot(&[], None), false),
            (prot(&["admin"], None), prot(&["admin"], Some("id")), false),
            (prot(&["admin"], Some("id")), prot(&["admin"], None), true),
            (prot(&["admin", "ops"], None), prot(&["admin"], None), true),
            (prot(&[], Some("id")), prot(&[], Some("id")), false),
            (prot(&[], Some("x")), prot(&[], Some("id")), true),
        ];
        for (later, earlier, want) in cases {
            assert_eq!(later.weaker_than(&earlier), want, "{later:?} weaker than {earlier:?}");
        }
    }

    #[test]
    fn c27_owner_and_roles() {
        let t = RouteTable::new(vec![Route::new(
            p("/users/{id}"),
            Access::Protected(authz(&["admin"], Some("id"))),
        )]);
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let m = t.find(&Method::GET, "/users/alice").unwrap();
        let Access::Protected(a) = m.access() else { panic!("protected") };
        assert!(a.admits("alice", &[], &m));
        assert!(!a.admits("bob", &[], &m));
        assert!(a.admits("bob", &roles(&["admin"]), &m));
        assert!(!a.admits("bob", &roles(&["Admin", "user"]), &m), "roles compare exactly");
        // Express decodes the parameter: %61lice is alice, an owner is matched on the decoded value.
        let m = t.find(&Method::GET, "/users/al%69ce").unwrap();
        assert!(a.admits("alice", &[], &m));
        // A subject can't own a differently-cased or partial id, and an empty subject owns nothing.
        assert!(!a.admits("Alice", &[], &t.find(&Method::GET, "/users/alice").unwrap()));
        assert!(!a.admits("", &[], &t.find(&Method::GET, "/users/%FF").unwrap()));
        assert_eq!(t.find(&Method::GET, "/users/%FF").unwrap().param("id"), None);
    }

    #[test]
    fn c21_allowed_methods_for_a_405() {
        let t = RouteTable::new(vec![
            Route::new(p("/users/{id}"), Access::Public).methods(vec![Method::GET]),
            Route::new(p("/users/{id}"), Access::Public).methods(vec![Method::PUT, Method::GET]),
            Route::new(p("/users/me"), Access::Public).methods(vec![Method::DELETE]),
        ]);
        assert_eq!(t.allowed("/users/7"), vec![Method::GET, Method::HEAD, Method::PUT]);
        assert_eq!(t.allowed("/users/me"), vec![Method::GET, Method::HEAD, Method::PUT, Method::DELETE]);
        assert!(t.allowed("/other").is_empty());
    }

    #[test]
    fn c21_shadowed_routes_are_found() {
        let t = RouteTable::new(vec![
            Route::new(p("/api/**"), Access::Public).methods(vec![Method::GET]),
            Route::new(p("/api/admin"), Access::Protected(Authz::default())).methods(vec![Method::GET]),
            Route::new(p("/api/admin"), Access::Protected(Authz::default())),
        ]);
        assert_eq!(t.shadowed(), vec![(0, 1)]);
    }

    /// C21: a route that can never match is found wherever it sits, behind
    /// whichever earlier route covers it (not only the first), and only when
    /// every method it lists is taken first.
    #[test]
    fn c21_shadowed_table() {
        let r = |path: &str, methods: Option<&[Method]>| {
            let route = Route::new(p(path), Access::Public);
            match methods {
                Some(ms) => route.methods(ms.to_vec()),
                None => route,
            }
        };
        let get: Option<&[Method]> = Some(&[Method::GET]);
        let get_post: Option<&[Method]> = Some(&[Method::GET, Method::POST]);
        let head: Option<&[Method]> = Some(&[Method::HEAD]);
        type Case = (Vec<Route>, Vec<(usize, usize)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec![r("/a", None)], vec![]),
            (vec![r("/a", None), r("/b", None)], vec![]),
            // Specific before broad is the right order: nothing shadowed.
            (vec![r("/api/admin", None), r("/api/**", None)], vec![]),
            (vec![r("/api/**", None), r("/api/admin", None)], vec![(0, 1)]),
            // Shadowed by the second route, not the first.
            (vec![r("/x", None), r("/api/**", None), r("/api/users/{id}", None)], vec![(1, 2)]),
            (vec![r("/x", None), r("/y", None), r("/users/{id}", None), r("/users/7", get)], vec![(2, 3)]),
            // Several at once, each with its own shadower.
            (
                vec![r("/a/**", None), r("/b/**", None), r("/b/c", None), r("/a/c", None)],
                vec![(1, 2), (0, 3)],
            ),
            // Methods: a GET-only route shadows only GET-only (and HEAD-only) routes.
            (vec![r("/a", get), r("/a", None)], vec![]),
            (vec![r("/a", get), r("/a", get_post)], vec![]),
            (vec![r("/a", get_post), r("/a", get)], vec![(0, 1)]),
            (vec![r("/a", get), r("/a", head)], vec![(0, 1)]),
            (vec![r("/a", None), r("/a", get_post)], vec![(0, 1)]),
            // Parameters cover literals, not the other way.
            (vec![r("/u/me", None), r("/u/{id}", None)], vec![]),
            (vec![r("/u/{id}", None), r("/u/me", None)], vec![(0, 1)]),
            (vec![r("/u/:id", None), r("/u/{other}", None)], vec![(0, 1)]),
        ];
        for (routes, want) in cases {
            let names: Vec<String> = routes.iter().map(|r| format!("{:?}", r.pattern)).collect();
            assert_eq!(RouteTable::new(routes).shadowed(), want, "{names:?}");
        }
        // Case-insensitive matching (the Express default) shadows across case.
        let t = RouteTable::new(vec![r("/API/**", None), r("/api/x", None)]);
        assert_eq!(t.shadowed(), vec![(0, 1)]);
        let t = t.match_options(MatchOptions { case_sensitive: true, ..MatchOptions::default() });
        assert_eq!(t.shadowed(), vec![]);
    }

    /// C21: the layer itself: unmatched is a 404 by default; only the loudly
    /// named `InsecurePassThrough` lets it through, as a public request with
    /// no route; a path owned by a route with other methods is a 405 with
    /// `Allow` either way.
    #[tokio::test]
    async fn c21_layer_unmatched_modes() {
        use tower::ServiceExt;
        let table =
            || RouteTable::new(vec![Route::new(p("/api/items"), Access::Public).methods(vec![Method::GET])]);
        let inner = tower::service_fn(|req: Request<crate::body::Body>| async move {
            let m = req.extensions().get::<MatchedRoute>().cloned();
            let body = match m {
                None => "no match record".to_owned(),
                Some(m) => format!("{:?} {}", m.index, matches!(m.access(), Access::Public)),
            };
            Ok::<_, std::convert::Infallible>(Response::new(crate::body::Body::from(body)))
        });
        let get = |path: &str, method: Method| {
            Request::builder().method(method).uri(path).body(crate::body::Body::empty()).unwrap()
        };
        let text = |res: Response<crate::body::Body>| crate::test_util::text(res.into_body());
        let deny = RouteLayer::new(table()).layer(inner);
        let res = deny.clone().oneshot(get("/other", Method::GET)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::NOT_FOUND);
        let res = deny.clone().oneshot(get("/api/items", Method::DELETE)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[http::header::ALLOW], "GET, HEAD");
        let res = deny.oneshot(get("/api/items", Method::GET)).await.unwrap();
        assert_eq!(text(res).await, "Some(0) true");

        let open = RouteLayer::new(table().unmatched(Unmatched::InsecurePassThrough)).layer(inner);
        let res = open.clone().oneshot(get("/other", Method::POST)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::OK);
        assert_eq!(text(res).await, "None true");
        // A declared path keeps its methods: DELETE on a GET-only route is
        // a 405, not an unauthenticated pass.
        let res = open.oneshot(get("/api/items", Method::DELETE)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn back_pressure_passes_through() {
        use crate::test_util::{NotReady, is_ready};
        assert!(!is_ready(&mut RouteLayer::new(RouteTable::default()).layer(NotReady)));
    }

    /// The table keeps its routes and its matching options.
    #[test]
    fn c21_table_options_and_routes() {
        let t = RouteTable::new(vec![Route::new(p("/api/x"), Access::Public)]);
        assert_eq!(t.routes().len(), 1);
        assert!(t.find(&Method::GET, "/API/X").is_some(), "Express matches case-insensitively by default");
        let strict = t.match_options(MatchOptions { case_sensitive: true, ..MatchOptions::default() });
        assert_eq!(strict.routes().len(), 1);
        assert!(strict.find(&Method::GET, "/API/X").is_none());
        assert!(strict.find(&Method::GET, "/api/x").is_some());
    }

    #[test]
    fn decode_table() {
        assert_eq!(decode("ab%4").as_deref(), Some("ab%4"), "an escape cut short stays literal");
        assert_eq!(decode("%4").as_deref(), Some("%4"));
        assert_eq!(decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode("%C3%A9").as_deref(), Some("\u{e9}"));
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode("abc%").as_deref(), Some("abc%"));
    }
}
