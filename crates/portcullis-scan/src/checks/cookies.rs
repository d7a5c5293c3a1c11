//! C9: every cookie the scan was sent has `Secure`, `HttpOnly` (required
//! for a session-like name) and `SameSite`. Reads every response of the
//! scan; cookie values never reach the report.

use super::finding;
use crate::client::{Response, redact_cookie};
use crate::{Finding, Outcome};

const FIX: &str = "cookies.secure, cookies.http_only, cookies.same_site (on by default)";

/// Names that usually carry a session or a credential.
fn session_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["sid", "sess", "session", "token", "auth", "jwt", "login", "remember", "csrf", "xsrf"]
        .iter()
        .any(|k| n.contains(k))
}

/// What is wrong with one `Set-Cookie` value.
pub(crate) fn problems(set_cookie: &str) -> Vec<(Outcome, String)> {
    let mut parts = set_cookie.split(';');
    let name = parts.next().and_then(|p| p.split_once('=')).map(|(n, _)| n.trim()).unwrap_or("");
    let mut secure = false;
    let mut http_only = false;
    let mut same_site = None;
    let mut expired = false;
    for attr in parts {
        let (k, v) = attr.split_once('=').map_or((attr.trim(), ""), |(k, v)| (k.trim(), v.trim()));
        match k.to_ascii_lowercase().as_str() {
            "secure" => secure = true,
            "httponly" => http_only = true,
            "samesite" => same_site = Some(v.to_ascii_lowercase()),
            "max-age" => expired |= v.starts_with('-') || v == "0",
            _ => {}
        }
    }
    let mut out = Vec::new();
    if expired {
        // A deletion: its flags protect nothing.
        return out;
    }
    if !secure {
        out.push((Outcome::Fail, format!("{name}: no Secure (sent over plain HTTP)")));
    }
    if !http_only {
        let outcome = if session_like(name) { Outcome::Fail } else { Outcome::Warn };
        out.push((outcome, format!("{name}: no HttpOnly (scripts can read it)")));
    }
    match same_site.as_deref() {
        None => out.push((Outcome::Warn, format!("{name}: no SameSite"))),
        Some("none") if !secure => out.push((Outcome::Fail, format!("{name}: SameSite=None without Secure"))),
        Some("none") => {
            out.push((Outcome::Warn, format!("{name}: SameSite=None (sent on cross-site requests)")))
        }
        _ => {}
    }
    out
}

pub(super) fn check(seen: &[(String, Response)]) -> Finding {
    let mut f = finding("cookies", "C9", "Cookies are Secure, HttpOnly, SameSite", 10, FIX);
    let mut count = 0;
    for (req, r) in seen {
        for value in r.all("set-cookie") {
            count += 1;
            let bad = problems(value);
            if bad.is_empty() {
                continue;
            }
            for (outcome, why) in &bad {
                if !f.detail.contains(why.as_str()) {
                    f.worsen(*outcome, why);
                }
            }
            if f.evidence.len() < 3 {
                f = f.with(req, format!("HTTP/1.1 {}\nset-cookie: {}", r.status, redact_cookie(value)));
            }
        }
    }
    match count {
        0 => f.set(Outcome::Skip, format!("no Set-Cookie in the {} responses seen", seen.len())),
        n if f.outcome == Outcome::Pass => f.set(Outcome::Pass, format!("{n} cookies, all flagged")),
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst(v: &str) -> Option<Outcome> {
        problems(v).into_iter().map(|(o, _)| o).max()
    }

    #[test]
    fn c9_cookie_decisions() {
        assert_eq!(worst("sid=x; Path=/; Secure; HttpOnly; SameSite=Lax"), None);
        assert_eq!(worst("sid=x; Path=/"), Some(Outcome::Fail));
        assert_eq!(worst("sid=x; Secure; SameSite=Strict"), Some(Outcome::Fail));
        assert_eq!(worst("theme=dark; Secure; SameSite=Lax"), Some(Outcome::Warn));
        assert_eq!(worst("sid=x; Secure; HttpOnly"), Some(Outcome::Warn));
        assert_eq!(worst("prefs=x; HttpOnly; SameSite=None"), Some(Outcome::Fail));
        assert_eq!(worst("prefs=x; HttpOnly; Secure; SameSite=None"), Some(Outcome::Warn));
        assert_eq!(worst("sid=; Max-Age=0"), None);
    }

    #[test]
    fn c9_values_stay_out_of_the_report() {
        let r = Response {
            status: 200,
            headers: vec![("set-cookie".into(), "sid=s3cr3t-value; Path=/".into())],
            ..Response::default()
        };
        let f = check(&[("GET /".into(), r)]);
        assert_eq!(f.outcome, Outcome::Fail);
        let json = serde_json::to_string(&f).expect("json");
        assert!(!json.contains("s3cr3t"), "{json}");
        assert_eq!(check(&[]).outcome, Outcome::Skip);
    }
}
