//! Helpers for tests that run the real binary.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Starts `portcullis serve` and reads its address from the "portcullis
/// started" log line. Returns the process, the address, the lines read so
/// far and the rest of its stdout.
pub async fn serve(
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, SocketAddr, Vec<String>, Lines<BufReader<ChildStdout>>) {
    serve_with(config, &[], env).await
}

/// [`serve`] with more arguments after `--config FILE`.
pub async fn serve_with(
    config: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr, Vec<String>, Lines<BufReader<ChildStdout>>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", config.to_str().unwrap()]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("serve exited before starting");
        seen.push(line.clone());
        if line.contains("portcullis started") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["listen"].as_str().unwrap().parse().unwrap();
        }
    };
    (child, addr, seen, lines)
}
