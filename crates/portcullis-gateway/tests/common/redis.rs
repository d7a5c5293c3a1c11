//! A private redis-server for a test: a free port, no persistence, started
//! and stopped by the test (so stopping it never touches the machine's Redis).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct RedisServer {
    pub addr: SocketAddr,
    child: Option<Child>,
    /// Becomes true when the server logs "Cluster state changed: ok".
    cluster_ok: tokio::sync::watch::Receiver<bool>,
}

fn free_port() -> u16 {
    // The OS picks a free port; redis-server binds it right after.
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        RedisServer::start_on(free_port()).await
    }

    /// Starts on `port` and returns once the server says it is ready.
    pub async fn start_on(port: u16) -> RedisServer {
        RedisServer::spawn(port, &[]).await
    }

    /// Spawns redis-server on `port` with extra arguments and waits for its
    /// "Ready to accept connections" line (no polling, no sleeps).
    async fn spawn(port: u16, extra: &[String]) -> RedisServer {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "notice", "--logfile", ""])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is needed (scripts/test installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next_line().await.unwrap() {
                Some(l) if l.contains("Ready to accept connections") => break,
                Some(_) => {}
                None => panic!("redis-server exited before it was ready (port {port} taken?)"),
            }
        }
        // Keep draining its output so it never blocks on a full pipe, and
        // note when a cluster node says its cluster serves every slot.
        let (ok_tx, cluster_ok) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.contains("Cluster state changed: ok") {
                    let _ = ok_tx.send(true);
                }
            }
        });
        RedisServer { addr: SocketAddr::from(([127, 0, 0, 1], port)), child: Some(child), cluster_ok }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills the server and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// Restarts on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        *self = RedisServer::start_on(self.addr.port()).await;
    }

    /// A raw command through redis-cli (independent of the store under test).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A three-master Redis Cluster on free ports (no replicas), for a test.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            let extra = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-port".to_owned(),
                free_port().to_string(),
                "--cluster-config-file".to_owned(),
                conf.to_str().unwrap().to_owned(),
                "--cluster-node-timeout".to_owned(),
                "5000".to_owned(),
            ];
            nodes.push(RedisServer::spawn(port, &extra).await);
        }
        // redis-cli assigns the slots and waits until every node agrees.
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(|n| n.addr.to_string()));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let out = Command::new("redis-cli").args(&args).output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("All 16384 slots covered"), "cluster create failed: {text}");
        // redis-cli returns once the slots are assigned; each node serves
        // them only after it logs that the cluster state is ok.
        for n in &mut nodes {
            n.cluster_ok.wait_for(|ok| *ok).await.unwrap();
        }
        RedisCluster { nodes, _dir: dir }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
