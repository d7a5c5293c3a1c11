//! `portcullis`: the command line. Glue only; the work is in
//! `portcullis-gateway`.
//!
//! Exit codes: 0 ok; 1 `check` found problems, or `scan` graded below
//! `--fail-under`; 2 runtime error (a port in
//! use, ...); 64 `serve` refused an invalid configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod identity_cli;
mod scan_cli;
use portcullis_gateway::config::{self, Config};
use portcullis_gateway::{demo, logging, server};

// Faster than glibc's malloc on the request path, and it returns memory to
// the system (docs/performance.md).
#[cfg(feature = "mimalloc")]
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
        /// Write the process id here (for `portcullis reload`); removed on exit.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Reload when the configuration file or the TLS certificate or key
        /// changes (checked every 2 seconds), as on SIGHUP.
        #[arg(long)]
        watch: bool,
    },
    /// Ask a running `serve` to reload its configuration (sends SIGHUP).
    Reload {
        /// The file `serve --pid-file` wrote.
        #[arg(long)]
        pid_file: PathBuf,
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
    /// Print a shell completion script (e.g. `portcullis completions bash >
    /// /usr/share/bash-completion/completions/portcullis`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (`portcullis man > portcullis.1`).
    Man,
    /// Grade a live API against the checklist (docs/scan.md). Exit 1 below
    /// --fail-under, 2 when the target can't be scanned.
    Scan(scan_cli::ScanArgs),
    /// Zero setup: a deliberately naive API and Portcullis in front of it,
    /// and the scan of both side by side.
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
        Command::Serve { config, listen, pid_file, watch } => {
            // Read before the load: a change made while it runs is then a
            // change to `--watch`, never taken for what was loaded.
            let seen = if watch { Watched::read_all(std::slice::from_ref(&config)) } else { Vec::new() };
            let cfg = match load(&config, listen) {
                Ok(c) => c,
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
            let opts = ServeOpts { path: config, listen, pid_file, watch };
            run(|| async move { serve(cfg, opts, seen).await })
        }
        Command::Reload { pid_file } => match send_reload(&pid_file) {
            Ok(pid) => {
                eprintln!("portcullis: asked process {pid} to reload; its log says whether it did");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "portcullis", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                eprintln!("portcullis: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &out);
            ExitCode::SUCCESS
        }
        Command::Scan(args) => {
            let passed = std::cell::Cell::new(true);
            let passed = &passed;
            let code = run(move || async move {
                passed.set(scan_cli::scan(args).await?);
                Ok(())
            });
            if code == ExitCode::SUCCESS && !passed.get() { ExitCode::from(EXIT_FINDINGS) } else { code }
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
    // A single-threaded runtime: `serve` adds one more per extra worker
    // (`server.workers`, one per CPU by default), each with its own
    // listening socket. tokio's work-stealing runtime cost 15% more CPU per
    // request on two CPUs, and 30-40% fewer req/s on one
    // (docs/performance.md, "One core or two").
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
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

/// How `serve` was started: what a reload needs to read the file again.
struct ServeOpts {
    path: PathBuf,
    listen: Option<SocketAddr>,
    pid_file: Option<PathBuf>,
    watch: bool,
}

/// Loads the configuration, with `--listen` applied.
fn load(path: &std::path::Path, listen: Option<SocketAddr>) -> Result<Config, config::Problems> {
    let mut c = config::load(path)?;
    if let Some(l) = listen {
        c.server.listen = l;
    }
    Ok(c)
}

/// `seen`: the watched files as read before `cfg` was loaded (empty
/// without `--watch`).
async fn serve(cfg: Config, opts: ServeOpts, seen: Vec<Seen>) -> anyhow::Result<()> {
    logging::init();
    for w in &cfg.warnings.0 {
        tracing::warn!(target: "portcullis", at = %w.at, "{}", w.message);
    }
    let running = server::start(&cfg).await.context("can't listen")?;
    let _pid_file = match &opts.pid_file {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    tracing::info!(
        target: "portcullis",
        listen = %running.addr,
        tls = cfg.server.tls.is_some(),
        redirect = %running.redirect_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        admin = %running.admin_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        upstream = %cfg.upstream.url,
        "portcullis started"
    );
    let mut watched = opts.watch.then(|| Watched::new(&opts.path, cfg, seen));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signals = Signals::new();
    loop {
        tokio::select! {
            s = signals.next() => match s {
                Signal::Stop => break,
                Signal::Reload => {
                    tracing::info!(target: "portcullis", trigger = "signal", "reloading");
                    let seen = watched.as_ref().map(|w| w.read(&opts.path));
                    let new = reload(&running, &opts).await;
                    if let (Some(w), Some(cfg), Some(seen)) = (&mut watched, new, seen) {
                        *w = Watched::new(&opts.path, cfg, seen);
                    }
                }
            },
            _ = tick.tick(), if watched.is_some() => {
                let Some(w) = &mut watched else { continue };
                let Some(seen) = w.changed(&opts.path) else { continue };
                tracing::info!(target: "portcullis", trigger = "watch", "reloading");
                // A refused file is not retried until it changes again:
                // changes from the bytes read here, which may be a file
                // caught half-written, so its completion is a change.
                let cfg = reload(&running, &opts).await.unwrap_or_else(|| w.cfg.clone());
                *w = Watched::new(&opts.path, cfg, seen);
            }
        }
    }
    tracing::info!(target: "portcullis", "shutting down: draining in-flight requests");
    let clean = running.drain().await;
    tracing::info!(target: "portcullis", drained = clean, "stopped");
    Ok(())
}

/// Reads, validates and applies the configuration file again. A refused
/// file is logged problem by problem and the running configuration stays.
async fn reload(running: &server::Running, opts: &ServeOpts) -> Option<Config> {
    let cfg = match load(&opts.path, opts.listen) {
        Ok(c) => c,
        Err(problems) => {
            running.reload_refused();
            for p in &problems.0 {
                tracing::error!(target: "portcullis", at = %p.at, "{}", p.message);
            }
            tracing::error!(
                target: "portcullis",
                problems = problems.0.len(),
                "reload refused: the running configuration stays"
            );
            return None;
        }
    };
    for w in &cfg.warnings.0 {
        tracing::warn!(target: "portcullis", at = %w.at, "{}", w.message);
    }
    match running.reload(&cfg).await {
        Ok(r) => {
            for key in &r.needs_restart {
                tracing::warn!(target: "portcullis", key, "changed, but takes effect on restart only");
            }
            tracing::info!(target: "portcullis", upstream = %cfg.upstream.url, "reloaded");
            Some(cfg)
        }
        Err(e) => {
            tracing::error!(target: "portcullis", error = %e, "reload failed: the running configuration stays");
            None
        }
    }
}

/// What `--watch` compares: the configuration file and the TLS files it
/// names, as bytes (a mounted secret is replaced by a symlink swap, which
/// leaves modification times unreliable). The bytes kept are the ones
/// read *before* the load they led to, so a write that lands during a
/// load (or a file read half-written and refused) is seen as a change at
/// the next tick instead of being taken for what was loaded.
struct Watched {
    cfg: Config,
    seen: Vec<Seen>,
}

/// One watched file and its bytes (`None`: it could not be read).
type Seen = (PathBuf, Option<Vec<u8>>);

impl Watched {
    fn files(path: &std::path::Path, cfg: &Config) -> Vec<PathBuf> {
        let mut f = vec![path.to_path_buf()];
        // ACME certificates are renewed in place, without a reload.
        if let Some(t) = cfg.server.tls.as_ref().filter(|t| t.acme.is_none()) {
            f.extend([t.cert.clone(), t.key.clone()]);
        }
        f
    }

    fn read_all(files: &[PathBuf]) -> Vec<Seen> {
        files.iter().map(|f| (f.clone(), std::fs::read(f).ok())).collect()
    }

    /// The files `cfg` makes watched, with the bytes in `before` (read
    /// before `cfg` was loaded) for those it holds; a file `cfg` names
    /// for the first time is read now.
    fn new(path: &std::path::Path, cfg: Config, mut before: Vec<Seen>) -> Watched {
        let seen = Watched::files(path, &cfg)
            .into_iter()
            .map(|f| match before.iter().position(|(p, _)| *p == f) {
                Some(i) => before.swap_remove(i),
                None => {
                    let bytes = std::fs::read(&f).ok();
                    (f, bytes)
                }
            })
            .collect();
        Watched { cfg, seen }
    }

    /// The watched files as they are now.
    fn read(&self, path: &std::path::Path) -> Vec<Seen> {
        Watched::read_all(&Watched::files(path, &self.cfg))
    }

    /// The files as they are now, when they differ from what was seen.
    fn changed(&self, path: &std::path::Path) -> Option<Vec<Seen>> {
        let now = self.read(path);
        (now != self.seen).then_some(now)
    }
}

/// `serve --pid-file`: written once listening, removed on exit.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: &std::path::Path) -> anyhow::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("can't write the pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `portcullis reload`: SIGHUP to the process named in the pid file.
fn send_reload(pid_file: &std::path::Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(pid_file)
        .with_context(|| format!("can't read the pid file {}", pid_file.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    #[cfg(unix)]
    {
        let target = rustix::process::Pid::from_raw(pid).context("not a process id")?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .with_context(|| format!("can't signal process {pid} (from {})", pid_file.display()))?;
        Ok(pid)
    }
    #[cfg(not(unix))]
    {
        anyhow::bail!("reload needs a Unix signal; restart the service instead")
    }
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

The scan of both (portcullis scan --active, docs/scan.md):
"
    );
    let mut reports = Vec::new();
    for base in [api, gw] {
        let mut options = portcullis_scan::Options::new(&format!("http://{base}/api/hello"))?;
        options.active = true;
        options.post_path = Some("/api/echo".to_owned());
        reports.push(scan_cli::run_scan(&options).await?);
    }
    let table =
        portcullis_scan::render::side_by_side(&reports[0], &reports[1], ["naive API", "Portcullis"], true);
    let mut stdout = anstream::stdout();
    let _ = std::io::Write::write_all(
        &mut stdout,
        format!("{table}\nAccess log (JSON) follows. Ctrl-C stops.\n").as_bytes(),
    );
    logging::init();
    wait_for_signal().await;
    running.drain().await;
    Ok(())
}

/// What a signal asks of `serve`.
enum Signal {
    /// SIGTERM or SIGINT: drain and stop.
    Stop,
    /// SIGHUP: reload the configuration.
    Reload,
}

/// The signals `serve` listens to.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(t), Ok(i), Ok(h)) => Some([t, i, h]),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some([term, int, hup]) = &mut self.streams {
            return tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

async fn wait_for_signal() {
    let mut s = Signals::new();
    while !matches!(s.next().await, Signal::Stop) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        config::from_str(text, std::path::Path::new("."), &|_| None).unwrap()
    }

    /// C4 (`--watch`): what is compared is the bytes read before the
    /// load, so a write that lands while a reload reads the file, or a
    /// file read half-written and refused, is a change at the next tick.
    /// (Comparing with a read made after the reload lost both: CI hung on
    /// a `--watch` reload that read a truncated file, was refused, and was
    /// never retried.)
    #[test]
    fn c4_watch_compares_with_what_was_read_before_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        let a = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[route]]\npath = \"/a\"\npublic = true\n";
        let b = "[upstream]\nurl = \"http://127.0.0.1:2\"\n[[route]]\npath = \"/a\"\npublic = true\n";

        // Caught half-written (truncated, not yet written): refused; then
        // the writer finishes before the watcher looks again.
        std::fs::write(&path, "").unwrap();
        let seen = Watched::read_all(std::slice::from_ref(&path));
        std::fs::write(&path, a).unwrap();
        let w = Watched::new(&path, config(a), seen);
        let now = w.changed(&path).expect("the completed file is a change");
        assert_eq!(now, vec![(path.clone(), Some(a.as_bytes().to_vec()))]);

        // Loaded and kept: no change until the file changes.
        let w = Watched::new(&path, config(a), now);
        assert!(w.changed(&path).is_none());
        std::fs::write(&path, b).unwrap();
        assert!(w.changed(&path).is_some());

        // A file that goes away is a change too (and one that can't be
        // read stays `None`, so it is not reloaded on every tick).
        let w = Watched::new(&path, config(a), Watched::read_all(std::slice::from_ref(&path)));
        std::fs::remove_file(&path).unwrap();
        let gone = w.changed(&path).expect("a removed file is a change");
        assert_eq!(gone, vec![(path.clone(), None)]);
        assert!(Watched::new(&path, config(a), gone).changed(&path).is_none());
    }
}
