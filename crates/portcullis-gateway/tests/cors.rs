//! C8 over real sockets and in a real browser (Debian Chromium driven by
//! playwright-core; installed by scripts/test).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;

fn preflight(origin: &str, method: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method("OPTIONS")
        .uri("/api/whoami")
        .header("host", "api.test")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn c8_preflights_never_reach_the_upstream() {
    let mut up = upstream().await;
    let gw = gateway(up.addr, "[cors]\norigins = [\"https://app.example.com\"]\ncredentials = true").await;
    let (res, _) = send(gw.addr, preflight("https://app.example.com", "PUT")).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_helmet(&res, false);
    let (res, body) = send(gw.addr, preflight("https://app.example.com.evil.test", "PUT")).await;
    assert_eq!(res.status(), 403);
    assert_eq!(json(&body)["code"], "cors_forbidden");
    assert!(up.seen.try_recv().is_err(), "a preflight was forwarded");
}

#[tokio::test]
async fn c8_upstream_reflection_is_replaced_by_the_policy() {
    let up = upstream().await;
    let gw = gateway(up.addr, "[cors]\norigins = [\"https://app.example.com\"]\ncredentials = true").await;
    let get = |origin: &'static str| {
        Request::get("/api/whoami")
            .header("host", "a")
            .header("origin", origin)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    for evil in [
        "https://evil.test",
        "null",
        "https://app.example.com.evil.test",
        "https://APP.EXAMPLE.COM",
        "http://app.example.com",
    ] {
        let (res, _) = send(gw.addr, get(evil)).await;
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{evil} reflected");
        assert!(res.headers().get("access-control-allow-credentials").is_none());
        assert_eq!(res.headers()["vary"], "origin");
    }
    let (res, _) = send(gw.addr, get("https://app.example.com")).await;
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    // Without [cors], the upstream's reflection is dropped too.
    let bare = gateway(up.addr, "").await;
    let (res, _) = send(bare.addr, get("https://evil.test")).await;
    assert!(res.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
}

#[tokio::test(flavor = "multi_thread")]
async fn c8_real_browser_two_origins() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "browser tests not installed: run scripts/test (npm ci --prefix tests/browser, Debian chromium)"
    );
    let mut up = upstream().await;
    let allowed = format!("http://{}", page_server().await);
    let denied = format!("http://{}", page_server().await);
    let gw = gateway(up.addr, &format!("[cors]\norigins = [\"{allowed}\"]\ncredentials = true")).await;
    let out = tokio::process::Command::new("node")
        .arg("cors.mjs")
        .current_dir(&dir)
        .env("GATEWAY", format!("http://{}", gw.addr))
        .env("ORIGINS", serde_json::json!([format!("{allowed}/"), format!("{denied}/")]).to_string())
        .output()
        .await
        .expect("node is needed for the browser tests");
    assert!(out.status.success(), "browser run failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v[format!("{allowed}/")];
    let d = &v[format!("{denied}/")];

    // The allowed origin reads responses, with the cookie when it asks.
    assert_eq!(a["simple_get"]["status"], 200, "{v}");
    let body: serde_json::Value =
        serde_json::from_str(a["credentialed_get"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["cookie"], "sid=browser-session", "{v}");
    assert_eq!(a["preflighted_put"]["status"], 200, "{v}");
    assert!(a["disallowed_header"]["error"].is_string(), "a header outside the policy was allowed: {v}");

    // The other origin reads nothing, even though the upstream reflects it.
    for case in ["simple_get", "credentialed_get", "preflighted_put", "disallowed_header"] {
        assert!(
            d[case]["error"].as_str().is_some_and(|e| e.contains("Failed to fetch")),
            "{case} readable from {denied}: {v}"
        );
    }
    // Preflights were answered by Portcullis: the upstream saw only GET and
    // the allowed PUT, never an OPTIONS, and never a PUT from the other origin.
    let mut methods = Vec::new();
    while let Ok(seen) = up.seen.try_recv() {
        assert_ne!(seen.method, "OPTIONS");
        if seen.method == "PUT" {
            assert_eq!(seen.headers["origin"], allowed.as_str());
        }
        methods.push(seen.method);
    }
    assert!(methods.contains(&"PUT".to_owned()), "{methods:?}");
}
