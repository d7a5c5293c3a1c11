//! The real binary: `check`, `serve` (exit codes, log hygiene, SIGTERM),
//! and `demo`. Temp dirs, port 0 everywhere.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod common;

use common::BIN;

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
    (dir, path)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn check_valid_prints_effective_policy() {
    let (_d, path) = write_config(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\nheaders = { \"X-Api-Key\" = \"${PC_TEST_KEY}\" }\n[headers]\nx_frame_options = \"DENY\"\n[[route]]\npath = \"/**\"\npublic = true\n",
    );
    let out = run(&["check", "--config", path.to_str().unwrap()], &[("PC_TEST_KEY", "super-secret-123")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("x-frame-options: DENY"));
    assert!(stdout.contains("content-security-policy: default-src 'self'"));
    assert!(stdout.contains("strict-transport-security: max-age=31536000; includeSubDomains   (HTTPS only)"));
    assert!(stdout.contains("x-api-key: ***"));
    assert!(!stdout.contains("super-secret-123"));
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let (_d, path) = write_config(
        r#"
[server]
listen = "0.0.0.0:99999"
trusted_proxies = ["10.0.0.0/8", "nonsense"]

[upstream]
url = "http://127.0.0.1:3000"
headers = { "X-Api-Key" = "literal-hunter2" }

[headers]
referrer_policy = "sometimes"

[limits]
body = "100 elephants"

[[route]]
path = "/admin/**"
methods = ["get"]
allow = { owner = "id" }
"#,
    );
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "server.listen: expected ip:port",
        "server.trusted_proxies[1]: expected an IP address or CIDR",
        "upstream.headers.X-Api-Key: secrets can't be written in the file",
        "headers.referrer_policy: expected a comma-separated list",
        "limits.body: ",
        "route #1 methods[0]: expected an upper-case method name",
        "route #1 allow.owner: names no {id} parameter of the path pattern",
        "route #1: a protected route (no `public = true`) needs [auth.jwt]",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("8 problem(s)"), "{stderr}");
    // Each problem carries file:line:column of its key (issue 13).
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "route #1 methods[0]: expected an upper-case method name, e.g. \"GET\" ({file}:18:12)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("({file}:3:1)")), "server.listen on line 3: {stderr}");
    assert!(!stderr.contains("hunter2"), "a secret was echoed:\n{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn check_reports_a_missing_file_and_syntax_errors() {
    let out = run(&["check", "--config", "/nonexistent/portcullis.toml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/portcullis.toml: does not exist"), "{stderr}");
    let (_d, path) = write_config("[upstream\nurl = 1\n");
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1, column"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Issue 13: a typo in one key is exactly one problem, naming that key and
// its line; the neighbours of a mistyped value are not reported "missing".
#[test]
fn check_reports_one_typo_as_one_problem_with_its_line() {
    let (_d, path) = write_config(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[[route]]\npath = \"/api/**\"\npublik = true\n",
    );
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
    assert!(stderr.contains("route #1 publik: unknown field `publik`"), "{stderr}");
    assert!(stderr.contains(&format!("({}:6:1)", path.display())), "{stderr}");

    let (_d, path) = write_config(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\ntimeout = 30\n[[route]]\npath = 5\npublic = true\n",
    );
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("upstream.timeout: expected a duration such as \"30s\" or \"500ms\", found a number"),
        "{stderr}"
    );
    assert!(stderr.contains("route #1 path: expected text (in quotes), found a number"), "{stderr}");
    assert!(!stderr.contains("missing"), "{stderr}");
}

// C21 (issue 20 item 5): a route that can never match is refused by both
// `check` and `serve`, naming the route, the one that takes its requests
// and why; a config whose specific route comes first is accepted.
#[test]
fn c21_check_and_serve_refuse_a_route_that_can_never_match() {
    let body = "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n";
    let shadowed = format!(
        "{body}[[route]]\npath = \"/health\"\npublic = true\n\n[[route]]\npath = \"/api/**\"\npublic = true\n\n[[route]]\npath = \"/api/admin\"\nmethods = [\"GET\"]\npublic = true\n"
    );
    let (_d, path) = write_config(&shadowed);
    for verb in ["check", "serve"] {
        let out = run(&[verb, "--config", path.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{verb} accepted it: {stderr}");
        assert!(
            stderr.contains("route #3: can never match (path \"/api/admin\", GET): route #2 (path \"/api/**\", any method) comes first and takes every request"),
            "{verb}: {stderr}"
        );
        assert!(stderr.contains(&format!("({}:15:1)", path.display())), "{verb}: {stderr}");
        assert!(stderr.contains("1 problem(s)"), "{verb}: {stderr}");
    }
    // The same routes, specific first: accepted.
    let fixed = format!(
        "{body}[[route]]\npath = \"/api/admin\"\nmethods = [\"GET\"]\npublic = true\n\n[[route]]\npath = \"/api/**\"\npublic = true\n"
    );
    let (_d, path) = write_config(&fixed);
    let out = run(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

// Issue 13 item 3: `check | head` closes the pipe early; no panic, exit 0.
#[test]
fn check_into_a_closed_pipe_exits_cleanly() {
    let (_d, path) = write_config(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[[route]]\npath = \"/**\"\npublic = true\n",
    );
    let mut child = std::process::Command::new(BIN)
        .args(["check", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn c32_serve_refuses_missing_secret_with_64_naming_the_key_only() {
    let (_d, path) = write_config(
        "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\nheaders = { \"X-Api-Key\" = \"${PC_TEST_MISSING_SECRET}\", \"X-Other\" = \"${PC_TEST_SET_SECRET}\" }\n[[route]]\npath = \"/**\"\npublic = true\n",
    );
    let out =
        run(&["serve", "--config", path.to_str().unwrap()], &[("PC_TEST_SET_SECRET", "visible-if-leaked")]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream.headers.X-Api-Key: environment variable PC_TEST_MISSING_SECRET is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("visible-if-leaked"));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

async fn http(addr: SocketAddr, raw: String) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

// C30, C32: no secret in any log line, captured from the real process.
#[tokio::test(flavor = "multi_thread")]
async fn c30_serve_logs_one_redacted_json_line_per_request_and_drains_on_sigterm() {
    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (_d, path) = write_config(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\nheaders = {{ \"X-Api-Key\" = \"${{PC_TEST_UPSTREAM_KEY}}\" }}\n[[route]]\npath = \"/**\"\npublic = true\n"
    ));
    let (mut child, addr, mut captured, mut lines) =
        common::serve(&path, &[("PC_TEST_UPSTREAM_KEY", "upstream-key-s3cret"), ("RUST_LOG", "debug")]).await;

    const JWT: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbImFkbWluIl19.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
    let secrets = [
        JWT,
        "cookie-s3cret",
        "query-s3cret",
        "hunter2-password",
        "upstream-key-s3cret",
        "basic-dXNlcjpwYXNz",
        // The demo API's error page names its database URL (issue 12 item 7).
        "db-pa55word",
    ];
    let requests = [
        format!(
            "GET /api/hello?token=query-s3cret HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {JWT}\r\nCookie: session=cookie-s3cret\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "GET /api/reset/{JWT} HTTP/1.1\r\nHost: a\r\nAuthorization: Basic basic-dXNlcjpwYXNz\r\nConnection: close\r\n\r\n"
        ),
        {
            let body = format!("{{\"password\":\"hunter2-password\",\"token\":\"{JWT}\"}}");
            format!(
                "POST /api/fail HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        },
        "GET /api/%2e%2e/admin?api_key=query-s3cret HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            .to_owned(),
    ];
    let mut ids = Vec::new();
    for r in requests {
        let out = http(addr, r).await;
        let id = out.lines().find_map(|l| l.strip_prefix("x-request-id: ")).unwrap().trim().to_owned();
        for s in secrets {
            assert!(!out.contains(s), "response leaked {s}");
        }
        ids.push(id);
    }

    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    read_to_exit(&mut lines, &mut captured).await;
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let all = format!("{}\n{stderr}", captured.join("\n"));
    for s in secrets {
        assert!(!all.contains(s), "log leaked {s}:\n{all}");
    }
    // One access line per request, with the fields and no query strings.
    let access: Vec<serde_json::Value> = captured
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "portcullis::access")
        .collect();
    assert_eq!(access.len(), 4, "{all}");
    for (v, id) in access.iter().zip(&ids) {
        assert_eq!(v["request_id"], id.as_str());
        for field in ["method", "path", "status", "latency_ms", "bytes", "client_ip"] {
            assert!(!v[field].is_null(), "{field} missing in {v}");
        }
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert!(!v["path"].as_str().unwrap().contains('?'));
    }
    assert_eq!(access[0]["path"], "/api/hello");
    assert_eq!(access[1]["path"], "/api/reset/[REDACTED]");
    assert_eq!(access[2]["status"], 500);
    assert_eq!(access[2]["reason"], "upstream_error");
    assert_eq!(access[3]["status"], 400);
    assert_eq!(access[3]["reason"], "invalid_path");
    // The replaced upstream error was logged with its request id, redacted.
    let upstream_err = captured
        .iter()
        .find(|l| l.contains("upstream error response replaced") && l.contains(ids[2].as_str()))
        .expect("original error body not logged");
    assert!(upstream_err.contains("could not process"));
    assert!(upstream_err.contains("[REDACTED]"));
    assert!(upstream_err.contains("postgres://[REDACTED]@db.internal:5432/app"), "{upstream_err}");
    assert!(all.contains("stopped"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_with_nothing_but_the_binary_and_scans_both() {
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut api, mut gw) = (None, None);
    while api.is_none() || gw.is_none() {
        let line = lines.next_line().await.unwrap().expect("demo exited");
        let addr = line.split("http://").nth(1).map(|s| s.trim().parse::<SocketAddr>());
        if line.contains("naive API") {
            api = addr.and_then(Result::ok);
        } else if line.contains("Portcullis in front") {
            gw = addr.and_then(Result::ok);
        }
    }
    let req = "GET /api/crash HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned();
    let bare = http(api.unwrap(), req.clone()).await;
    assert!(bare.contains("TypeError") && bare.to_ascii_lowercase().contains("x-powered-by: express"));
    let guarded = http(gw.unwrap(), req).await;
    assert!(guarded.starts_with("HTTP/1.1 500"));
    assert!(guarded.contains("\"code\":\"upstream_error\""));
    assert!(!guarded.contains("TypeError") && !guarded.to_ascii_lowercase().contains("x-powered-by"));
    // Then the scan of both, side by side (issue 18): the naive API F,
    // behind Portcullis A+.
    let mut table = Vec::new();
    loop {
        let line = lines.next_line().await.unwrap().expect("demo exited before its scan");
        table.push(line.clone());
        if line.starts_with("grade (score)") {
            let grades: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(grades[2..], ["F", "(0)", "A+", "(100)"], "{}", table.join("\n"));
            break;
        }
    }
    assert!(
        table.iter().any(|l| l.starts_with("C7   csp") && l.contains("FAIL") && l.contains("PASS")),
        "{}",
        table.join("\n")
    );
    child.kill().await.unwrap();
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

// C24 C30 (issue 14): the identity worked example with the real binary:
// `keys generate`, `users add` (password on stdin, never argv), `users
// list`, `serve`, login, a protected call, refresh, reuse; the captured log
// holds no password, token or hash.
#[tokio::test(flavor = "multi_thread")]
async fn c24_identity_with_the_real_binary_logs_no_secret() {
    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    let out = run(&["keys", "generate", "--out", key.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = run(&["keys", "generate", "--out", key.to_str().unwrap()], &[]);
    assert!(!again.status.success(), "an existing key was overwritten");
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nenabled = false\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\n[identity]\nsigning_key = \"file:signing.pem\"\nissuer = \"https://api.test\"\nargon2_memory_kib = 1024\nargon2_iterations = 1\n[sessions]\n[[route]]\npath = \"/api/**\"\n"
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    const PASSWORD: &str = "tr0ub4dor&3-horse";
    let out = run_with_stdin(
        &["users", "add", "alice", "--roles", "admin,user", "--config", cfg],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dup = run_with_stdin(&["users", "add", "alice", "--config", cfg], "x\n");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists"));
    let list = run(&["users", "list", "--config", cfg], &[]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice\tadmin,user\tactive\n");
    assert!(dir.path().join("portcullis.db").exists(), "the SQLite file beside the config");

    let (mut child, addr, mut captured, mut lines) = common::serve(&config, &[("RUST_LOG", "debug")]).await;
    let login = format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}");
    let res = http(addr, format!("POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{login}", login.len())).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let body: serde_json::Value = serde_json::from_str(res.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let res = http(addr, format!("GET /api/headers HTTP/1.1\r\nHost: a\r\nUser-Agent: probe/1.0 \"quoted\"\r\nAuthorization: Bearer {access}\r\nConnection: close\r\n\r\n")).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("\"x-auth-subject\":\"alice\""), "{res}");
    for expect in ["200", "401"] {
        let b = format!("{{\"refresh_token\":\"{refresh}\"}}");
        let res = http(addr, format!("POST /auth/refresh HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len())).await;
        assert!(res.starts_with(&format!("HTTP/1.1 {expect}")), "{res}");
    }
    // A cookie session: its id and CSRF token must never be logged either.
    let res = http(addr, format!("POST /auth/session HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{login}", login.len())).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let session = res
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: __Host-session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let body: serde_json::Value = serde_json::from_str(res.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let res = http(addr, format!("POST /api/echo HTTP/1.1\r\nHost: a\r\nCookie: __Host-session={session}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")).await;
    assert!(!res.starts_with("HTTP/1.1 403") && !res.starts_with("HTTP/1.1 401"), "{res}");
    let res = http(addr, format!("POST /api/echo HTTP/1.1\r\nHost: a\r\nCookie: __Host-session={session}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")).await;
    assert!(res.starts_with("HTTP/1.1 403"), "{res}");
    let wrong = "{\"username\":\"alice\",\"password\":\"wrong-Secret-9\"}";
    let res = http(addr, format!("POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{wrong}", wrong.len())).await;
    assert!(res.starts_with("HTTP/1.1 401"), "{res}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    read_to_exit(&mut lines, &mut captured).await;
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    child.wait().await.unwrap();
    let all = format!("{}\n{stderr}", captured.join("\n"));
    assert!(all.contains("\"event\":\"refresh_reuse\""), "{all}");
    assert!(all.contains("\"event\":\"login_failed\""), "{all}");
    assert!(all.contains("\"event\":\"csrf_failed\""), "{all}");
    // Issue 17 item 7: the access line names the user agent, the verified
    // subject and the route; a success carries no empty reason.
    let line: serde_json::Value = captured
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "portcullis::access" && v["path"] == "/api/headers")
        .expect("no access line for /api/headers");
    assert_eq!(line["user_agent"], "probe/1.0 \"quoted\"", "{line}");
    assert_eq!(line["subject"], "alice", "{line}");
    assert_eq!(line["route"], "/api/**", "{line}");
    assert!(line.get("reason").is_none(), "{line}");
    for secret in [
        PASSWORD,
        "wrong-Secret-9",
        access.as_str(),
        refresh.as_str(),
        "$argon2id$",
        session.as_str(),
        csrf.as_str(),
    ] {
        assert!(!all.contains(secret), "the log leaked {secret}:\n{all}");
    }
}

/// Issue 17: a bind error names the address and the key that set it, and
/// `serve --listen` overrides `server.listen`.
#[tokio::test(flavor = "multi_thread")]
async fn serve_names_a_taken_address_and_listen_overrides_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (_dir, config) = write_config(&format!(
        "[admin]\nenabled = false\n[server]\nlisten = \"{addr}\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n[[route]]\npath = \"/**\"\npublic = true\n"
    ));
    let out = run(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("server.listen = \"{addr}\"")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
    let (_child, got, mut seen, mut lines) =
        common::serve_with(&config, &["--listen", "127.0.0.1:0"], &[]).await;
    assert_ne!(got, addr);
    assert_eq!(got.ip(), addr.ip());
    drop(taken);
    // Issue 17 item 7: an upstream failure's log line names the upstream.
    let out = http(got, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned()).await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    let line = wait_for_line(&mut lines, "upstream request failed", &mut seen).await;
    assert!(line.contains("\"upstream\":\"127.0.0.1:9\""), "{line}");
}

/// How long a log line the test waits for may take: a deadline that turns
/// a hang into a failure that names what never came (CI once spent its 90
/// minutes on a reload that was never logged), never a pause.
const LOG_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Reads log lines until one contains `needle`; returns it.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
    seen: &mut Vec<String>,
) -> String {
    let wait = async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap_or_else(|| panic!("exited before {needle:?}"));
            seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    };
    match tokio::time::timeout(LOG_DEADLINE, wait).await {
        Ok(line) => line,
        Err(_) => panic!("no log line with {needle:?} within {LOG_DEADLINE:?}; seen:\n{}", seen.join("\n")),
    }
}

/// Reads log lines until the process closes its output (after SIGTERM).
async fn read_to_exit(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<String>,
) {
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line);
        }
    };
    if tokio::time::timeout(LOG_DEADLINE, read).await.is_err() {
        panic!("still running {LOG_DEADLINE:?} after SIGTERM; seen:\n{}", seen.join("\n"));
    }
}

/// Issue 17 item 1: `portcullis reload --pid-file` (SIGHUP) applies a new
/// file; a file with problems is refused, each problem logged with its
/// place, and the old configuration keeps serving; `--watch` reloads on
/// its own when the file changes; SIGTERM still drains and the pid file
/// goes.
#[tokio::test(flavor = "multi_thread")]
async fn c4_reload_by_signal_and_by_watch_keeps_serving_through_a_refused_file() {
    let api = portcullis_gateway::demo::start_naive_api("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{api}\"\n[[route]]\npath = \"/api/hello\"\npublic = true\n"
    );
    let (dir, path) = write_config(&base);
    let pid_file = dir.path().join("portcullis.pid");
    let (mut child, addr, mut seen, mut lines) =
        common::serve_with(&path, &["--pid-file", pid_file.to_str().unwrap()], &[]).await;
    let started: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    let admin: SocketAddr = started["admin"].as_str().unwrap().parse().unwrap();
    let status = |path: &'static str| async move {
        let out = http(addr, format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).await;
        out[9..12].to_owned()
    };
    assert_eq!(status("/api/hello").await, "200");
    assert_eq!(status("/api/headers").await, "404");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), child.id().unwrap().to_string());

    // A file with two problems: refused, each problem logged with its key.
    std::fs::write(&path, base.replace("[[route]]", "[limits]\nbody = \"lots\"\n[[route]]\nmethods = []\n"))
        .unwrap();
    let out = run(&["reload", "--pid-file", pid_file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = wait_for_line(&mut lines, "reload refused", &mut seen).await;
    assert!(refused.contains("\"problems\":2"), "{refused}");
    let logged = seen.join("\n");
    assert!(logged.contains("limits.body"), "{logged}");
    assert!(logged.contains("methods"), "{logged}");
    assert_eq!(status("/api/hello").await, "200", "the old configuration must keep serving");

    // A valid file, by signal: in force for the next request.
    std::fs::write(&path, base.replace("/api/hello", "/api/headers")).unwrap();
    assert!(run(&["reload", "--pid-file", pid_file.to_str().unwrap()], &[]).status.success());
    wait_for_line(&mut lines, "\"reloaded\"", &mut seen).await;
    assert_eq!(status("/api/headers").await, "200");
    assert_eq!(status("/api/hello").await, "404");

    let metrics =
        http(admin, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned()).await;
    assert!(metrics.contains("portcullis_reloads_total{result=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("portcullis_reloads_total{result=\"failed\"} 1"), "{metrics}");

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    read_to_exit(&mut lines, &mut seen).await;
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    assert!(seen.join("\n").contains("stopped"));
    assert!(!pid_file.exists(), "the pid file outlived the process");

    // No process behind the pid file: a clear error.
    let out = run(&["reload", "--pid-file", pid_file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("can't read the pid file"));

    // --watch: the file changes, nobody signals.
    let (_child, addr, mut seen, mut lines) = common::serve_with(&path, &["--watch"], &[]).await;
    let status = |path: &'static str| async move {
        let out = http(addr, format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).await;
        out[9..12].to_owned()
    };
    assert_eq!(status("/api/hello").await, "404");
    std::fs::write(&path, base.clone()).unwrap();
    let line = wait_for_line(&mut lines, "\"reloading\"", &mut seen).await;
    assert!(line.contains("\"trigger\":\"watch\""), "{line}");
    wait_for_line(&mut lines, "\"reloaded\"", &mut seen).await;
    assert_eq!(status("/api/hello").await, "200");
}

/// Issue 17 item 5: the packaged example configurations are valid.
#[test]
fn c33_packaged_example_configs_pass_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, env) in [
        ("packaging/examples/express.toml", &[][..]),
        ("packaging/examples/behind-load-balancer.toml", &[("REDIS_URL", "redis://10.0.2.5:6379")][..]),
        ("portcullis.example.toml", &[("UPSTREAM_API_KEY", "k")][..]),
    ] {
        let path = root.join(file);
        let out = run(&["check", "--config", path.to_str().unwrap()], env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "{file} has warnings");
    }
}

/// Issue 17 item 5: the systemd unit loads without a warning and keeps a
/// low exposure score (`systemd-analyze security`: 1.6 "OK" today).
#[test]
fn c33_the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/portcullis.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for key in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.lines().any(|l| l == key), "{key} missing");
    }
    // verify checks that ExecStart exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("portcullis.service");
    std::fs::write(&local, text.replace("/usr/bin/portcullis", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", local.to_str().unwrap()])
        .output()
        .expect("systemd-analyze is needed (Debian package systemd)");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.trim().is_empty(), "{warnings}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=25", local.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exposure above 2.5:\n{report}");
}

/// Issue 17 item 5: the container file keeps its promises: a build stage,
/// and a final stage with no shell (distroless), a numeric non-root user,
/// nothing run in it, a volume for the only writable path. (Building it
/// needs registry access this test suite does not assume.)
#[test]
fn c33_the_container_file_runs_as_non_root_without_a_shell() {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a final stage");
    let last = stages[1];
    assert!(last.starts_with("gcr.io/distroless/cc-debian12:nonroot"), "{last}");
    assert!(!last.lines().any(|l| l.starts_with("RUN ")), "nothing runs in the final stage (no shell)");
    let user = last.lines().find_map(|l| l.strip_prefix("USER ")).expect("USER");
    assert!(user.split(':').all(|id| id.parse::<u32>().is_ok_and(|n| n != 0)), "{user}");
    assert!(last.contains("ENTRYPOINT [\"/usr/bin/portcullis\"]"));
    assert!(last.contains("VOLUME [\"/var/lib/portcullis\"]"));
    // The image is built with the workspace's allocator setting.
    assert!(stages[0].contains("COPY .cargo ./.cargo"), "the build stage lacks .cargo/config.toml");
}

/// Issue 16 item 5: the binary's mimalloc commits arena memory on demand
/// (`.cargo/config.toml`), which keeps the RSS per keep-alive connection
/// near 27 KB instead of 41 KB (`bench/memory`). mimalloc prints its
/// options when asked to be verbose.
#[test]
fn the_allocator_commits_memory_on_demand() {
    let out = run(&["--version"], &[("MIMALLOC_VERBOSE", "1")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("option 'arena_eager_commit': 0"), "{err}");
}

/// Issue 17 item 5: completions and the manual page come from the CLI's
/// own definition.
#[test]
fn c33_completions_and_man_page() {
    let out = run(&["completions", "bash"], &[]);
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    for verb in ["serve", "check", "reload", "users", "keys", "demo"] {
        assert!(bash.contains(verb), "bash completion lacks {verb}");
    }
    let out = run(&["man"], &[]);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.starts_with(".ie") || man.contains(".TH portcullis"), "{man}");
    assert!(man.contains("reload"));
}
