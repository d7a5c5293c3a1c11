//! `portcullis scan` (issue 18) against the real targets: the naive Express
//! fixture alone fails most checks; the same app behind Portcullis with the
//! packaged example config (`packaging/examples/express.toml`), over TLS
//! with its HTTP redirect listener, passes every one, active checks
//! included.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;

use express_app::express;
use portcullis_scan::{Grade, Options, Outcome, Report, scan};

fn outcome(report: &Report, id: &str) -> Outcome {
    report.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no {id}")).outcome
}

fn active(url: &str) -> Options {
    Options {
        active: true,
        post_path: Some("/api/echo".into()),
        rate_limit_requests: 40,
        ..Options::new(url).unwrap()
    }
}

#[tokio::test]
async fn the_bare_express_fixture_fails_most_checks() {
    let app = express().await;
    let report = scan(&active(&format!("http://{}/api/hello", app.addr))).await.unwrap();
    let text = portcullis_scan::render::text(&report, false);
    for (id, want) in [
        ("csp", Outcome::Fail),                    // C7
        ("x-content-type-options", Outcome::Fail), // C5
        ("x-frame-options", Outcome::Fail),        // C5
        ("x-powered-by", Outcome::Fail),           // C6
        ("error-format", Outcome::Warn),           // C19: HTML 404 echoing the path
        ("body-limit", Outcome::Fail),             // C13: express.json({limit: '50mb'}) reads 8 MiB
        ("body-limit-chunked", Outcome::Fail),     // C13
        ("prototype-pollution", Outcome::Fail),    // C18
        ("coercion", Outcome::Fail),               // C17
        ("rate-limit", Outcome::Fail),             // C11
        ("malformed-json", Outcome::Warn),         // C19: 400, but an HTML page
        ("error-leak", Outcome::Fail),             // C29: body-parser's stack trace
    ] {
        assert_eq!(outcome(&report, id), want, "{id}\n{text}");
    }
    let [pass, warn, fail, _] = report.counts();
    assert!(fail + warn > pass, "{text}");
    assert_eq!(report.grade, Grade::F, "{text}");
}

/// The packaged Express example config in front of `app`, on free ports;
/// with TLS (a fresh self-signed certificate for `localhost`, returned as
/// PEM) and the plain-HTTP redirect listener, or plain HTTP.
async fn example_gateway(
    app: std::net::SocketAddr,
    tls: bool,
) -> (portcullis_gateway::server::Running, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/examples/express.toml"
    ))
    .unwrap();
    let listen = if tls {
        "listen = \"127.0.0.1:0\"\nredirect_http = \"127.0.0.1:0\"\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\""
    } else {
        "listen = \"127.0.0.1:0\""
    };
    let text = example
        .replace("listen = \"0.0.0.0:8080\"", listen)
        .replace("listen = \"127.0.0.1:9901\"", "listen = \"127.0.0.1:0\"")
        .replace("http://127.0.0.1:3000", &format!("http://{app}"));
    assert_ne!(text, example);
    let cfg = portcullis_gateway::config::from_str(&text, dir.path(), &|_| None).unwrap();
    (portcullis_gateway::server::start(&cfg).await.unwrap(), cert.pem(), dir)
}

#[tokio::test]
async fn behind_portcullis_with_the_example_config_every_check_passes() {
    let app = express().await;
    let (gw, ca_pem, _dir) = example_gateway(app.addr, true).await;
    let options = Options {
        ca_pem: Some(ca_pem.into_bytes()),
        http_port: gw.redirect_addr.unwrap().port(),
        ..active(&format!("https://localhost:{}/api/hello", gw.addr.port()))
    };
    let report = scan(&options).await.unwrap();
    let text = portcullis_scan::render::text(&report, false);
    // Every check passes; only the cookie check has nothing to look at
    // (the scanned routes set no cookie).
    for f in &report.findings {
        assert!(
            f.outcome == Outcome::Pass || (f.outcome == Outcome::Skip && f.id == "cookies"),
            "{}\n{text}",
            f.id
        );
    }
    assert_eq!((report.score, report.grade), (100, Grade::APlus), "{text}");
    gw.drain().await;
}

/// docs/scan.md states each check's control and weight, and the JSON
/// report's fields: both are read back against a real report.
#[tokio::test]
async fn docs_scan_md_matches_the_checks_and_the_json_report() {
    let app = express().await;
    let report = scan(&active(&format!("http://{}/api/hello", app.addr))).await.unwrap();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scan.md")).unwrap();
    for f in &report.findings {
        let row = doc
            .lines()
            .find(|l| {
                l.starts_with('|') && l.split('|').nth(1).is_some_and(|c| c.contains(&format!("`{}`", f.id)))
            })
            .unwrap_or_else(|| panic!("docs/scan.md has no row for `{}`", f.id));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], f.control, "control of `{}`", f.id);
        assert_eq!(cells[cells.len() - 2], f.weight.to_string(), "weight of `{}`", f.id);
    }
    // The documented JSON example has exactly the report's fields.
    let example = doc.split("```json\n").nth(1).unwrap().split("```").next().unwrap();
    let example: serde_json::Value = serde_json::from_str(example).unwrap();
    let real: serde_json::Value = serde_json::from_str(&portcullis_scan::render::json(&report)).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&example), keys(&real));
    assert_eq!(keys(&example["findings"][0]), keys(&real["findings"][0]));
    let with_evidence =
        real["findings"].as_array().unwrap().iter().find(|f| f["evidence"][0].is_object()).unwrap();
    assert_eq!(keys(&example["findings"][0]["evidence"][0]), keys(&with_evidence["evidence"][0]));
}

/// tests/scan-tools, installed by scripts/test (`npm ci --ignore-scripts`,
/// the Observatory's downloaded lists stubbed).
fn scan_tools() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scan-tools"));
    assert!(
        dir.join("node_modules/@mdn/mdn-http-observatory").is_dir(),
        "tests/scan-tools is not installed: run scripts/test (npm ci --prefix tests/scan-tools --ignore-scripts)"
    );
    dir
}

async fn node(script: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(scan_tools())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn the_sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let app = express().await;
    let report = scan(&active(&format!("http://{}/api/hello", app.addr))).await.unwrap();
    let out = node("validate-sarif.mjs", &[], portcullis_scan::render::sarif(&report).as_bytes()).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
    // The validator does refuse a log that breaks the schema.
    let broken = br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"level":"fatal"}]}]}"#;
    assert!(!node("validate-sarif.mjs", &[], broken).await.status.success());
}

/// Mozilla's HTTP Observatory 1.4.8 and the scan on the same two targets
/// (the Express fixture bare, and behind Portcullis with the example
/// config): they agree on every header check both make. Where they differ
/// by design is in docs/scan.md ("Against the HTTP Observatory").
#[tokio::test]
async fn the_observatory_agrees_on_the_header_checks_both_make() {
    let app = express().await;
    let (gw, _, _dir) = example_gateway(app.addr, false).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    for (name, addr) in [("bare Express", app.addr), ("behind Portcullis", gw.addr)] {
        let report = scan(&Options::new(&format!("http://{addr}/api/hello")).unwrap()).await.unwrap();
        let port = addr.port().to_string();
        let out = node("observatory.mjs", &["127.0.0.1", &port, &closed, "/api/hello"], b"").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let observatory: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for (theirs, ours) in [
            ("content-security-policy", "csp"),
            ("x-content-type-options", "x-content-type-options"),
            ("x-frame-options", "x-frame-options"),
        ] {
            let their_pass = observatory[theirs]["pass"].as_bool().unwrap();
            let our_pass = outcome(&report, ours) == Outcome::Pass;
            assert_eq!(
                our_pass, their_pass,
                "{name}: {ours} vs the Observatory's {theirs} ({})",
                observatory[theirs]["result"]
            );
        }
        // Both see the same cookie situation: none on this route.
        assert_eq!(observatory["cookies"]["result"], "cookies-not-found");
        assert_eq!(outcome(&report, "cookies"), Outcome::Skip);
    }
    gw.drain().await;
}
