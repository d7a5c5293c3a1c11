//! C8: CORS must not hand a response to an origin nobody listed. The probe
//! sends the scanned URL five look-alike origins (an arbitrary site, the
//! host as a prefix and as a suffix of another name, the other scheme,
//! `null`) and a preflight from an arbitrary site.

use super::{Ctx, finding};
use crate::client::{Request, Response};
use crate::{Finding, Outcome};

const FIX: &str = "cors.origins (an explicit list) and cors.credentials";

/// The look-alike origins for `host` (`authority` keeps a port) and the
/// scanned URL's `scheme`, with what each one tries.
pub(crate) fn origins(scheme: &str, authority: &str) -> Vec<(&'static str, String)> {
    let other = if scheme == "https" { "http" } else { "https" };
    vec![
        ("an arbitrary site", "https://portcullis-scan.invalid".to_owned()),
        ("the host as a prefix of another name", format!("{scheme}://{authority}.portcullis-scan.invalid")),
        ("the host as a suffix of another name", format!("{scheme}://scan-{authority}")),
        ("the other scheme", format!("{other}://{authority}")),
        ("the null origin (sandboxed frames, file: pages)", "null".to_owned()),
    ]
}

pub(super) async fn probe(ctx: &mut Ctx) -> Finding {
    let t = ctx.opts.target.clone();
    let mut answers = Vec::new();
    for (what, origin) in origins(t.scheme_name(), &t.authority()) {
        let req = Request::new("GET", &t.path).header("Origin", &origin);
        let (described, res) = ctx.fetch(&req).await;
        if let Ok(r) = res {
            answers.push((what, origin, described, r));
        }
    }
    let origin = "https://portcullis-scan.invalid".to_owned();
    let preflight = Request::new("OPTIONS", &t.path)
        .header("Origin", &origin)
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "authorization, content-type");
    let (described, res) = ctx.fetch(&preflight).await;
    if let Ok(r) = res {
        answers.push(("a preflight from an arbitrary site", origin, described, r));
    }
    decide(&answers)
}

/// Every answer's verdict; the worst decides, each bad one is evidence.
pub(crate) fn decide(answers: &[(&str, String, String, Response)]) -> Finding {
    let mut f = finding("cors", "C8", "CORS allows only listed origins", 20, FIX);
    for (what, origin, req, r) in answers {
        let allowed = r.header("access-control-allow-origin").map(str::trim);
        let credentials = r
            .header("access-control-allow-credentials")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let (outcome, why) = match allowed {
            None => continue,
            Some(a) if a == origin && credentials => (
                Outcome::Fail,
                format!(
                    "{what} ({origin}) is allowed with credentials: any page it serves can read signed-in users' data"
                ),
            ),
            Some(a) if a == origin => {
                (Outcome::Warn, format!("{what} ({origin}) is allowed (without credentials)"))
            }
            Some("*") if credentials => (Outcome::Fail, "`*` with credentials".to_owned()),
            Some("*") => {
                (Outcome::Warn, "`*`: every site may read the responses (no credentials)".to_owned())
            }
            Some(_) => continue,
        };
        if !f.detail.contains(&why) {
            f.worsen(outcome, &why);
            f = f.with(
                req,
                r.describe(&["access-control-allow-origin", "access-control-allow-credentials", "vary"]),
            );
        }
    }
    if f.outcome == Outcome::Pass {
        f.detail = format!("none of {} look-alike origins was allowed", answers.len());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(origin: &str, h: &[(&str, &str)]) -> (&'static str, String, String, Response) {
        ("a probe", origin.to_owned(), format!("GET /\nOrigin: {origin}"), crate::checks::tests::with(h))
    }

    #[test]
    fn c8_look_alikes_are_built_from_the_host() {
        let o: Vec<String> = origins("https", "api.example.test").into_iter().map(|(_, o)| o).collect();
        assert!(o.contains(&"https://api.example.test.portcullis-scan.invalid".to_owned()));
        assert!(o.contains(&"https://scan-api.example.test".to_owned()));
        assert!(o.contains(&"http://api.example.test".to_owned()));
        assert!(o.contains(&"null".to_owned()));
    }

    #[test]
    fn c8_decisions() {
        let evil = "https://portcullis-scan.invalid";
        let cases = [
            (vec![answer(evil, &[])], Outcome::Pass),
            (
                vec![answer(evil, &[("access-control-allow-origin", "https://app.example.test")])],
                Outcome::Pass,
            ),
            (vec![answer(evil, &[("access-control-allow-origin", evil)])], Outcome::Warn),
            (
                vec![answer(
                    "null",
                    &[("access-control-allow-origin", "null"), ("access-control-allow-credentials", "true")],
                )],
                Outcome::Fail,
            ),
            (vec![answer(evil, &[("access-control-allow-origin", "*")])], Outcome::Warn),
            (
                vec![answer(
                    evil,
                    &[("access-control-allow-origin", "*"), ("access-control-allow-credentials", "true")],
                )],
                Outcome::Fail,
            ),
        ];
        for (answers, want) in cases {
            let f = decide(&answers);
            assert_eq!(f.outcome, want, "{}", f.detail);
            assert_eq!(f.evidence.is_empty(), want == Outcome::Pass);
        }
    }
}
