//! The naive Express 5 fixture (tests/fixtures/naive-express) as a real
//! Node process on a free port.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Express {
    pub addr: SocketAddr,
    _child: Child,
}

pub async fn express() -> Express {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/naive-express");
    assert!(
        dir.join("node_modules/express").is_dir(),
        "the Express fixture is not installed: run `npm ci --prefix tests/fixtures/naive-express` (scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg("app.js")
        .current_dir(&dir)
        .env("PORT", "0")
        .env_remove("NODE_ENV")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the Express tests");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = u16::try_from(v["port"].as_u64().unwrap()).unwrap();
    Express { addr: SocketAddr::from(([127, 0, 0, 1], port)), _child: child }
}
