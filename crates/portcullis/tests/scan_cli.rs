//! `portcullis scan` as a CI pipeline calls it (issue 18): the formats, the
//! `--fail-under` exit code, and clear errors for targets that can't be
//! scanned. The target is the demo's naive API, served in-process.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use common::BIN;
use tokio::process::Command;

async fn scan(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("scan").args(args).env_remove("CLICOLOR_FORCE").output().await.unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_formats_and_the_fail_under_exit_code() {
    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{api}/api/hello");

    // JSON, graded F: below --fail-under B exits 1.
    let out = scan(&[&url, "--format", "json", "--fail-under", "B"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(report["schema"], "portcullis-scan/1");
    assert_eq!(report["grade"], "F");
    assert_eq!(report["target"], url);
    let csp = report["findings"].as_array().unwrap().iter().find(|f| f["id"] == "csp").unwrap();
    assert_eq!((csp["control"].as_str(), csp["outcome"].as_str()), (Some("C7"), Some("fail")));
    assert!(csp["evidence"][0]["request"].as_str().unwrap().starts_with("GET /api/hello HTTP/1.1"));
    assert_eq!(csp["fix"], "headers.content_security_policy");

    // No --fail-under, or a grade at or above it: exit 0.
    assert_eq!(scan(&[&url, "--format", "json"]).await.status.code(), Some(0));
    assert_eq!(scan(&[&url, "--format", "json", "--fail-under", "F"]).await.status.code(), Some(0));

    // SARIF 2.1.0: one rule and one result per check.
    let out = scan(&[&url, "--format", "sarif"]).await;
    let sarif = json(&out);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), run["tool"]["driver"]["rules"].as_array().unwrap().len());
    assert!(results.iter().any(|r| r["ruleId"] == "csp" && r["level"] == "error" && r["kind"] == "fail"));

    // Text through a pipe: no color codes; the grade and each control.
    let out = scan(&[&url]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("Grade F")
            && text.contains("C7")
            && text.contains("fix: headers.content_security_policy"),
        "{text}"
    );
}

#[tokio::test]
async fn scan_errors_are_clear_and_exit_2() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for (args, says) in [
        (vec![format!("http://{closed}/")], "the target did not answer: could not connect"),
        (vec!["ftp://example.test/".to_owned()], "bad URL"),
        (vec!["http://127.0.0.1/".to_owned(), "--header".to_owned(), "no colon".to_owned()], "Name: value"),
        (
            vec!["http://127.0.0.1/".to_owned(), "--fail-under".to_owned(), "Z".to_owned()],
            "A+, A, B, C, D or F",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = scan(&args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    }
}
