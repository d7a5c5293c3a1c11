//! C1 (HTTPS, and plain HTTP redirected to it) and C2 (HSTS).

use super::{Ctx, finding};
use crate::client::{FetchError, Request, Response};
use crate::target::{Scheme, Target};
use crate::{Finding, Outcome};

const FIX_TLS: &str = "server.tls.cert and server.tls.key, or server.tls.acme";
const FIX_REDIRECT: &str = "server.redirect_http";
const FIX_HSTS: &str = "headers.strict_transport_security (on by default with TLS)";

/// HSTS `max-age` below this (180 days) is a warning, as the Observatory has it.
pub(crate) const HSTS_MIN_AGE: u64 = 15_552_000;

pub(super) async fn probe(ctx: &mut Ctx, base_req: &str, base: &Response) -> Vec<Finding> {
    let target = ctx.opts.target.clone();
    let https = finding("https", "C1", "Served over HTTPS", 25, FIX_TLS);
    let redirect = finding("https-redirect", "C1", "Plain HTTP redirects to HTTPS", 10, FIX_REDIRECT);
    if target.scheme == Scheme::Http {
        if target.is_loopback() {
            let why = "not graded: a loopback URL over plain HTTP (no public CA certifies it); scan the public https:// URL";
            return vec![
                https.set(Outcome::Skip, why),
                redirect.set(Outcome::Skip, why),
                finding("hsts", "C2", "Strict-Transport-Security", 20, FIX_HSTS).set(Outcome::Skip, why),
            ];
        }
        return vec![
            https
                .set(Outcome::Fail, "the URL is plain HTTP: credentials and data cross the network readable"),
            redirect.set(Outcome::Skip, "the URL itself is plain HTTP"),
            finding("hsts", "C2", "Strict-Transport-Security", 20, FIX_HSTS)
                .set(Outcome::Fail, "no HTTPS, so no HSTS"),
        ];
    }
    let https = https.set(Outcome::Pass, "TLS 1.2 or later, the certificate verified for the host");
    let plain = target.with(Scheme::Http, ctx.opts.http_port, &target.path);
    let req = Request::new("GET", &target.path);
    let (described, res) = ctx.fetch_at(&plain, &req).await;
    let redirect = decide_redirect(redirect, &plain, &described, res);
    vec![https, redirect, hsts(base_req, base)]
}

fn decide_redirect(f: Finding, plain: &Target, req: &str, res: Result<Response, FetchError>) -> Finding {
    let req = format!("(to {})\n{req}", plain.origin());
    match res {
        Err(FetchError::Connect(_)) | Err(FetchError::Timeout) => f.set(
            Outcome::Pass,
            format!("nothing answers plain HTTP on port {}: nothing to redirect", plain.port),
        ),
        Err(e) => {
            f.set(Outcome::Pass, format!("plain HTTP on port {} gives no HTTP answer ({e})", plain.port))
        }
        Ok(r) => {
            let location = r.header("location").unwrap_or("");
            let evidence = r.describe(&["location"]);
            if matches!(r.status, 301 | 302 | 303 | 307 | 308) && location.starts_with("https://") {
                let same = location["https://".len()..].starts_with(&plain.host);
                let f = f.with(&req, evidence);
                if same {
                    f.set(Outcome::Pass, "plain HTTP redirects to HTTPS on the same host")
                } else {
                    f.set(
                        Outcome::Warn,
                        "plain HTTP redirects to HTTPS on another host (HSTS for this host is never set)",
                    )
                }
            } else {
                f.with(&req, evidence).set(
                    Outcome::Fail,
                    format!("plain HTTP answers {} instead of redirecting to HTTPS", r.status),
                )
            }
        }
    }
}

/// C2 from the HTTPS response.
pub(crate) fn hsts(req: &str, r: &Response) -> Finding {
    let f = finding("hsts", "C2", "Strict-Transport-Security", 20, FIX_HSTS)
        .with(req, r.describe(&["strict-transport-security"]));
    let Some(value) = r.header("strict-transport-security") else {
        return f.set(Outcome::Fail, "no Strict-Transport-Security header");
    };
    let age = value.split(';').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case("max-age") {
            v.trim().trim_matches('"').parse::<u64>().ok()
        } else {
            None
        }
    });
    match age {
        None => f.set(Outcome::Fail, "Strict-Transport-Security without a valid max-age"),
        Some(0) => f.set(Outcome::Fail, "max-age=0 turns HSTS off"),
        Some(a) if a < HSTS_MIN_AGE => f.set(Outcome::Warn, format!("max-age={a} is under 180 days")),
        Some(a) => f.set(Outcome::Pass, format!("max-age={a}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checks::tests::with;

    #[test]
    fn c2_hsts_decisions() {
        let cases = [
            (vec![], Outcome::Fail),
            (vec![("strict-transport-security", "max-age=31536000; includeSubDomains")], Outcome::Pass),
            (vec![("strict-transport-security", "max-age=15552000")], Outcome::Pass),
            (vec![("strict-transport-security", "max-age=86400")], Outcome::Warn),
            (vec![("strict-transport-security", "max-age=0")], Outcome::Fail),
            (vec![("strict-transport-security", "includeSubDomains")], Outcome::Fail),
            (vec![("strict-transport-security", "max-age=abc")], Outcome::Fail),
        ];
        for (h, want) in cases {
            assert_eq!(hsts("GET /", &with(&h)).outcome, want, "{h:?}");
        }
    }

    #[test]
    fn c1_redirect_decisions() {
        let plain = Target::parse("http://api.example.test/").expect("url");
        let f = || finding("https-redirect", "C1", "t", 10, "");
        let redirect = |loc: &str| {
            let mut r = with(&[("location", loc)]);
            r.status = 301;
            Ok(r)
        };
        assert_eq!(
            decide_redirect(f(), &plain, "", redirect("https://api.example.test/")).outcome,
            Outcome::Pass
        );
        assert_eq!(decide_redirect(f(), &plain, "", redirect("https://other.test/")).outcome, Outcome::Warn);
        assert_eq!(
            decide_redirect(f(), &plain, "", redirect("http://api.example.test/")).outcome,
            Outcome::Fail
        );
        assert_eq!(decide_redirect(f(), &plain, "", Ok(with(&[]))).outcome, Outcome::Fail);
        let refused = Err(FetchError::Connect(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(decide_redirect(f(), &plain, "", refused).outcome, Outcome::Pass);
    }
}
