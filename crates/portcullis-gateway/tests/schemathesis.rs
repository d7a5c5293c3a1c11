//! A property-based API fuzzer (schemathesis, from PyPI) against Portcullis
//! in front of the naive Express fixture, with the fixture's OpenAPI
//! document as Portcullis' route table (C16 C17 C19 C21 C29).
//!
//! Every check schemathesis has runs: no 5xx, documented statuses and
//! content types, responses that match their schemas, invalid data refused
//! (negative_data_rejection), valid data accepted
//! (positive_data_acceptance), undocumented methods refused. The run is
//! bounded by a fixed number of examples per operation and a fixed seed.
//!
//! schemathesis is installed by the README's test command into
//! `target/schemathesis` (a virtualenv); `PORTCULLIS_SCHEMATHESIS` points
//! elsewhere.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/express.rs"]
mod express_app;

use std::path::PathBuf;
use std::process::Stdio;

use common::gateway;
use express_app::express;

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_through_portcullis() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run scripts/test (it installs it)",
        st.display()
    );
    let spec =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/naive-express/openapi.yaml");
    let app = express().await;
    let gw = gateway(app.addr, &format!("[openapi]\nspec = {:?}\n", spec.display().to_string())).await;
    let report = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&st)
        .arg("run")
        .arg(&spec)
        .arg("--url")
        .arg(format!("http://{}", gw.addr))
        .args(["--checks", "all", "--max-examples", "40", "--seed", "20261201", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color", "--generation-database", "none"])
        .arg("--report-dir")
        .arg(report.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
    // It really ran every operation of the document, with many cases.
    assert!(stdout.contains("Tested: 5"), "not every operation was tested:\n{stdout}");
    let generated = stdout
        .lines()
        .find_map(|l| l.trim().strip_suffix(" passed").and_then(|l| l.split_once(" generated, ")))
        .map(|(g, p)| (g.trim().parse::<u32>().unwrap(), p.trim().parse::<u32>().unwrap()));
    let (generated, passed) = generated.unwrap_or_else(|| panic!("no test-case count:\n{stdout}"));
    assert!(generated >= 100 && passed == generated, "{generated} generated, {passed} passed:\n{stdout}");
}
