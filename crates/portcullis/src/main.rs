//! `portcullis`: the command line. Glue only; the work is in
//! `portcullis-gateway`.
//!
//! Exit codes: 0 ok; 1 `check` found problems; 2 runtime error (a port in
//! use, ...); 64 `serve` refused an invalid configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod identity_cli;
use portcullis_gateway::config::{self, Config};
use portcullis_gateway::{demo, logging, server};

// Faster than glibc's malloc on the request path, and it returns memory to
// the system (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A security gateway for HTTP APIs: the production checklist, enforced at the edge."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Listen here instead of the configuration's `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a configuration and print the effective policy (like `nginx -t`).
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Signing keys of the built-in identity provider.
    #[command(subcommand)]
    Keys(identity_cli::Keys),
    /// Users of the built-in identity provider.
    #[command(subcommand)]
    Users(identity_cli::Users),
    /// Zero setup: a deliberately naive API and Portcullis in front of it.
    Demo {
        /// Where Portcullis listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the naive API listens.
        #[arg(long, default_value = "127.0.0.1:3000")]
        api_listen: SocketAddr,
    },
}

const EXIT_FINDINGS: u8 = 1;
const EXIT_RUNTIME: u8 = 2;
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, listen } => {
            let cfg = match config::load(&config) {
                Ok(mut c) => {
                    if let Some(l) = listen {
                        c.server.listen = l;
                    }
                    c
                }
                Err(problems) => {
                    eprintln!(
                        "portcullis: refusing to start, {} problem(s) in {}:",
                        problems.0.len(),
                        config.display()
                    );
                    eprint!("{problems}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            run(|| async move { serve(cfg).await })
        }
        Command::Demo { listen, api_listen } => run(|| async move { demo_cmd(listen, api_listen).await }),
        Command::Keys(k) => match identity_cli::keys(k) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::Users(u) => run(|| async move { identity_cli::users(u).await }),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            for w in &cfg.warnings.0 {
                eprintln!("portcullis: warning: {w}");
            }
            // `check | head` closes the pipe early: stop writing, no panic.
            let text =
                format!("portcullis: {} is valid. Effective policy:\n\n{}", path.display(), cfg.render());
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("portcullis: {} problem(s) in {}:", problems.0.len(), path.display());
            eprint!("{problems}");
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}

fn run<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // With one CPU (taskset, or a container's CPU quota, which
    // available_parallelism honours) the work-stealing scheduler only adds
    // cross-thread wakeups: measured +30-40% req/s with a current-thread
    // runtime on one pinned core (docs/performance.md).
    let single_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let rt = if single_cpu {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: can't start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match rt.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    logging::init();
    for w in &cfg.warnings.0 {
        tracing::warn!(target: "portcullis", at = %w.at, "{}", w.message);
    }
    let running = server::start(&cfg).await.context("can't listen")?;
    tracing::info!(
        target: "portcullis",
        listen = %running.addr,
        tls = cfg.server.tls.is_some(),
        redirect = %running.redirect_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        admin = %running.admin_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        upstream = %cfg.upstream.url,
        "portcullis started"
    );
    wait_for_signal().await;
    tracing::info!(target: "portcullis", "shutting down: draining in-flight requests");
    let clean = running.drain().await;
    tracing::info!(target: "portcullis", drained = clean, "stopped");
    Ok(())
}

async fn demo_cmd(listen: SocketAddr, api_listen: SocketAddr) -> anyhow::Result<()> {
    let api = demo::start_naive_api(api_listen)
        .await
        .with_context(|| format!("can't bind the demo API on {api_listen}"))?;
    let cfg = Config::with_upstream(listen, &format!("http://{api}"), demo::ROUTES)
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let running = server::start(&cfg).await.with_context(|| format!("can't bind Portcullis on {listen}"))?;
    let gw = running.addr;
    println!(
        "\
Portcullis demo
  naive API (no protection)  http://{api}
  Portcullis in front of it  http://{gw}

Compare the two:
  curl -i http://{api}/api/crash           # stack trace, file paths, X-Powered-By: Express
  curl -i http://{gw}/api/crash           # generic JSON error with a request id, helmet headers
  curl -i http://{gw}/api/hello
  curl -i 'http://{gw}/api/%2e%2e/admin'   # 400: encoded dot segments are refused
  curl -i http://{gw}/admin                # 404: no route declares it (deny by default)
  curl -i -H 'Transfer-Encoding: chunked' -H 'Content-Length: 3' -d x http://{gw}/api/echo   # 400: ambiguous framing
  head -c 2000000 /dev/zero | curl -i -H 'Transfer-Encoding: chunked' --data-binary @- http://{gw}/api/echo   # 413
  curl -s -H 'X-Forwarded-For: 6.6.6.6' http://{gw}/api/headers   # the spoofed address is overwritten
  curl -i -H 'Content-Type: application/json' -d '{{\"__proto__\":{{\"admin\":true}}}}' http://{gw}/api/echo   # 400: prototype pollution
  curl -i 'http://{gw}/api/headers?a=1&a=2'   # 400: a repeated parameter (Express would make it an array)

Access log (JSON) follows. Ctrl-C stops.
"
    );
    logging::init();
    wait_for_signal().await;
    running.drain().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
