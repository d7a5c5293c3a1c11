//! `/metrics` (C31, issue 17 item 2): after a scripted mix of requests the
//! exposition, read by the official Prometheus client's parser (Python
//! `prometheus_client`, installed by scripts/test beside schemathesis),
//! holds the expected series with the expected values, and passes
//! Prometheus' own linter (`promtool check metrics`, Debian package
//! `prometheus`). The example alert rules of docs/operations.md pass
//! `promtool check rules` and their unit tests.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

/// The virtualenv's python (`PORTCULLIS_PYTHON` overrides).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PORTCULLIS_PYTHON") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/python");
    assert!(p.exists(), "no virtualenv at {}: run scripts/test (it installs prometheus-client)", p.display());
    p
}

/// Parses exposition text the way Prometheus does; panics if it is invalid.
fn parse(text: &str) -> Vec<Value> {
    use std::io::Write;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/prometheus/parse.py");
    let mut child = std::process::Command::new(python())
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// Runs promtool (Debian's `prometheus` package; scripts/test installs it).
fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/prometheus"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian: apt-get install prometheus; scripts/test does)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn c31_the_example_alert_rules_load_and_fire_as_documented() {
    for args in [&["check", "rules", "alerts.yml"][..], &["test", "rules", "alerts.test.yml"]] {
        let out = promtool(args, None);
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The value of the sample `name` with exactly these labels.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s["name"] == name
                && s["labels"].as_object().unwrap().len() == labels.len()
                && labels.iter().all(|(k, v)| s["labels"][*k] == *v)
        })
        .map(|s| s["value"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn c31_metrics_after_a_scripted_mix_parse_and_count() {
    let up = upstream().await;
    let cfg = config_from(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{}\"\ntimeout = \"200ms\"\n[limits]\nbody = \"1kb\"\n[[rate_limit]]\nname = \"echo\"\nlimit = 2\nwindow = \"1m\"\nroutes = [\"/echo\"]\n[[route]]\npath = \"/items/:id\"\npublic = true\n[[route]]\npath = \"/echo\"\npublic = true\n[[route]]\npath = \"/hold\"\npublic = true\n",
        up.addr
    ));
    let gw = portcullis_gateway::server::start(&cfg).await.unwrap();
    let admin = gw.admin_addr.unwrap();

    // 3 x 200 on /items/:id, 1 unmatched 404, 1 refused path (C28), 1 body
    // too large (C13), 2 x 200 then 1 x 429 on /echo (C11), 1 upstream
    // timeout (C14), 1 HEAD.
    for id in ["1", "2", "3"] {
        assert_eq!(get(gw.addr, &format!("/items/{id}")).await.0.status(), 200);
    }
    assert_eq!(get(gw.addr, "/nowhere").await.0.status(), 404);
    assert_eq!(get(gw.addr, "/items/%2e%2e/x").await.0.status(), 400);
    let big =
        Request::post("/items/4").header("host", "gw.test").body(Full::new(Bytes::from(vec![b'x'; 2048])));
    assert_eq!(send(gw.addr, big.unwrap()).await.0.status(), 413);
    for want in [200, 200, 429] {
        assert_eq!(get(gw.addr, "/echo").await.0.status(), want);
    }
    assert_eq!(get(gw.addr, "/hold").await.0.status(), 504);
    let head = Request::head("/items/5").header("host", "gw.test").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(gw.addr, head).await.0.status(), 200);
    gw.reload(&cfg).await.unwrap();

    let (res, body) = get(admin, "/metrics").await;
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8_lossy(&body).into_owned();
    let lint = promtool(&["check", "metrics"], Some(&text));
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let s = parse(&text);
    let requests = |route: &str, method: &str, class: &str| {
        sample(
            &s,
            "portcullis_requests_total",
            &[("route", route), ("method", method), ("status_class", class)],
        )
    };
    assert_eq!(requests("/items/:id", "GET", "2xx"), Some(3.0), "{text}");
    assert_eq!(requests("/items/:id", "HEAD", "2xx"), Some(1.0));
    assert_eq!(requests("/items/:id", "POST", "4xx"), Some(1.0));
    assert_eq!(requests("/echo", "GET", "2xx"), Some(2.0));
    assert_eq!(requests("/echo", "GET", "4xx"), Some(1.0));
    assert_eq!(requests("/hold", "GET", "5xx"), Some(1.0));
    // Refused before any route matched.
    assert_eq!(requests("(none)", "GET", "4xx"), Some(2.0));

    let rejections = |control: &str, reason: &str| {
        sample(&s, "portcullis_rejections_total", &[("control", control), ("reason", reason)])
    };
    assert_eq!(rejections("C21", "not_found"), Some(1.0));
    assert_eq!(rejections("C28", "invalid_path"), Some(1.0));
    assert_eq!(rejections("C13", "body_too_large"), Some(1.0));
    assert_eq!(rejections("C11", "rate_limited"), Some(1.0));
    assert_eq!(rejections("C14", "upstream_timeout"), Some(1.0));
    assert_eq!(rejections("C22", "unauthenticated"), Some(0.0), "every reason is present from the start");
    assert_eq!(sample(&s, "portcullis_upstream_errors_total", &[("kind", "timeout")]), Some(1.0));
    assert_eq!(sample(&s, "portcullis_auth_failures_total", &[("reason", "invalid_token")]), Some(0.0));
    assert_eq!(sample(&s, "portcullis_ratelimit_rejected_total", &[]), Some(1.0));
    assert_eq!(sample(&s, "portcullis_store_errors_total", &[("store", "rate_limit")]), Some(0.0));
    assert_eq!(sample(&s, "portcullis_reloads_total", &[("result", "ok")]), Some(1.0));
    assert_eq!(sample(&s, "portcullis_reloads_total", &[("result", "failed")]), Some(0.0));
    assert!(sample(&s, "portcullis_connections_open", &[]).is_some(), "{text}");

    // The latency histogram per route: buckets, count and sum.
    let count = sample(&s, "portcullis_request_duration_seconds_count", &[("route", "/items/:id")]);
    assert_eq!(count, Some(5.0), "{text}");
    let inf =
        sample(&s, "portcullis_request_duration_seconds_bucket", &[("route", "/items/:id"), ("le", "+Inf")]);
    assert_eq!(inf, Some(5.0));
    let slow = sample(&s, "portcullis_request_duration_seconds_bucket", &[("route", "/hold"), ("le", "0.1")]);
    assert_eq!(slow, Some(0.0), "the timed-out request took 200 ms");
    let types: Vec<(&str, &str)> =
        s.iter().map(|v| (v["family"].as_str().unwrap(), v["type"].as_str().unwrap())).collect();
    assert!(types.contains(&("portcullis_request_duration_seconds", "histogram")));
    assert!(types.contains(&("portcullis_requests", "counter")));
    assert!(s.iter().all(|v| !v["help"].as_str().unwrap().is_empty()), "every series has a HELP text");
}
