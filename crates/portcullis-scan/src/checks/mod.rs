//! The checks, in the order they run. Each module decides its findings from
//! the responses it fetched; the cookie and error-leak checks then read every
//! response the scan saw, active ones included.
//!
//! The decisions are pure functions of responses (tested with tables in each
//! module); only [`run`] and the `probe` functions touch the network.

mod active;
mod cookies;
mod cors;
mod errors;
mod headers;
mod transport;

use crate::client::{Client, FetchError, Request, Response};
use crate::target::Target;
use crate::{Evidence, Finding, Options, Outcome, ScanError};

/// The scan's state: the client, the options, and every exchange so far.
pub struct Ctx {
    pub(crate) client: Client,
    pub(crate) opts: Options,
    /// Requests sent.
    pub sent: usize,
    /// Every answered exchange: the request as described, and the response.
    pub(crate) seen: Vec<(String, Response)>,
    /// A token unique to this scan, put in probe paths and headers so an
    /// echo of the request can be recognised.
    pub(crate) token: String,
}

impl Ctx {
    /// A scan context for `opts`.
    pub fn new(client: Client, opts: Options) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let token = format!("pcs{:08x}{:04x}", nanos, std::process::id() & 0xffff);
        Ctx { client, opts, sent: 0, seen: Vec::new(), token }
    }

    /// Sends `req` to `target`; returns the request as described for the
    /// report, and the response or why there was none.
    pub(crate) async fn fetch_at(
        &mut self,
        target: &Target,
        req: &Request,
    ) -> (String, Result<Response, FetchError>) {
        let described = req.describe(target, &self.client.user_headers);
        self.sent += 1;
        let res = self.client.send(target, req).await;
        if let Ok(r) = &res {
            self.seen.push((described.clone(), r.clone()));
        }
        (described, res)
    }

    /// [`Ctx::fetch_at`] on the scanned host.
    pub(crate) async fn fetch(&mut self, req: &Request) -> (String, Result<Response, FetchError>) {
        let target = self.opts.target.clone();
        self.fetch_at(&target, req).await
    }
}

/// Runs every check that the options ask for.
pub async fn run(ctx: &mut Ctx, progress: &mut dyn FnMut(&str)) -> Result<Vec<Finding>, ScanError> {
    progress("first request");
    let path = ctx.opts.target.path.clone();
    let (base_req, base) = ctx.fetch(&Request::new("GET", &path)).await;
    let base = base.map_err(|e| ScanError::Unreachable(e.to_string()))?;
    let mut out = Vec::new();
    progress("transport (C1, C2)");
    out.extend(transport::probe(ctx, &base_req, &base).await);
    progress("headers (C5, C6, C7)");
    out.extend(headers::check(&base_req, &base));
    progress("CORS (C8)");
    out.push(cors::probe(ctx).await);
    progress("errors (C19, C21)");
    out.extend(errors::probe(ctx).await);
    if ctx.opts.active {
        out.extend(active::probe(ctx, &base_req, &base, progress).await);
    }
    progress("cookies (C9), leaks (C29)");
    out.push(cookies::check(&ctx.seen));
    out.push(errors::leaks(&ctx.seen));
    Ok(out)
}

/// A finding that passes until told otherwise.
pub(crate) fn finding(
    id: &'static str,
    control: &'static str,
    title: &'static str,
    weight: u32,
    fix: &'static str,
) -> Finding {
    Finding {
        id,
        control,
        title,
        outcome: Outcome::Pass,
        weight,
        detail: String::new(),
        evidence: Vec::new(),
        fix,
        active: false,
    }
}

impl Finding {
    /// Sets the verdict and its reason.
    pub(crate) fn set(mut self, outcome: Outcome, detail: impl Into<String>) -> Self {
        self.outcome = outcome;
        self.detail = detail.into();
        self
    }

    /// Adds an exchange as evidence.
    pub(crate) fn with(mut self, request: &str, response: impl Into<String>) -> Self {
        self.evidence.push(Evidence { request: request.to_owned(), response: response.into() });
        self
    }

    /// Raises the verdict to `outcome` if worse, keeping every reason.
    pub(crate) fn worsen(&mut self, outcome: Outcome, detail: &str) {
        if outcome > self.outcome {
            self.outcome = outcome;
        }
        if !self.detail.is_empty() {
            self.detail.push_str("; ");
        }
        self.detail.push_str(detail);
    }
}

/// The status and content type of a response, for evidence.
pub(crate) fn status_line(r: &Response) -> String {
    r.describe(&["content-type"])
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::client::Response;

    /// A 200 response with these header fields (names lowercase), for the
    /// decision tables.
    pub(crate) fn with(h: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: h.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..Response::default()
        }
    }
}
