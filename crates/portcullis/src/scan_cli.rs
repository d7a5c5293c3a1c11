//! `portcullis scan`: the flags, the progress display and the exit code.
//! The checks are in `portcullis-scan`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use portcullis_scan::{Grade, Options, Report, render};

/// Report formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table (colored on a terminal; NO_COLOR turns colors off).
    Text,
    /// JSON, schema `portcullis-scan/1` (docs/scan.md).
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
}

#[derive(clap::Args)]
pub(crate) struct ScanArgs {
    /// The URL to grade, e.g. `https://api.example.com/v1/health`.
    url: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also run the active checks: an 8 MiB body, malformed and polluted
    /// JSON, up to --rate-limit-requests requests, a CL+TE request.
    #[arg(long)]
    active: bool,
    /// Exit 1 when the grade is below this (A+, A, B, C, D, F).
    #[arg(long, value_parser = parse_grade)]
    fail_under: Option<Grade>,
    /// A header sent with every request, e.g. 'Authorization: Bearer ...'
    /// (redacted in the report). Repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Where the active checks POST their bodies (default: the URL's path).
    #[arg(long)]
    post_path: Option<String>,
    /// The plain-HTTP port whose redirect to HTTPS is checked.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// PEM certificates to trust besides the public roots (a private CA).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// At most this many requests for the rate-limit check.
    #[arg(long, default_value_t = 100)]
    rate_limit_requests: u32,
    /// Seconds one exchange may take.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn parse_grade(s: &str) -> Result<Grade, String> {
    Grade::parse(s).ok_or_else(|| "expected A+, A, B, C, D or F".to_owned())
}

fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = h.split_once(':').context("a --header needs 'Name: value'")?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    anyhow::ensure!(!name.is_empty() && name.bytes().all(token), "--header: the name is not a header name");
    anyhow::ensure!(
        !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
        "--header: the value has a line break"
    );
    Ok((name.to_owned(), value.trim().to_owned()))
}

impl ScanArgs {
    /// The scan options, or what is wrong with the flags.
    pub(crate) fn options(&self) -> anyhow::Result<Options> {
        let mut o = Options::new(&self.url)?;
        o.active = self.active;
        o.headers = self.headers.iter().map(|h| parse_header(h)).collect::<anyhow::Result<_>>()?;
        if let Some(p) = &self.post_path {
            anyhow::ensure!(
                p.starts_with('/') && !p.bytes().any(|b| b <= b' ' || b == 0x7f),
                "--post-path must start with / and have no spaces"
            );
        }
        o.post_path = self.post_path.clone();
        o.http_port = self.http_port;
        o.ca_pem = match &self.ca_cert {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("can't read --ca-cert {}", p.display()))?)
            }
            None => None,
        };
        o.rate_limit_requests = self.rate_limit_requests.max(1);
        o.timeout = Duration::from_secs(self.timeout.clamp(1, 300));
        Ok(o)
    }
}

/// Runs a scan with a spinner on a terminal's stderr.
pub(crate) async fn run_scan(options: &Options) -> anyhow::Result<Report> {
    let bar = indicatif::ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut progress = |step: &str| bar.set_message(format!("scanning {}: {step}", options.target.url()));
    let report = portcullis_scan::scan_with_progress(options, &mut progress).await;
    bar.finish_and_clear();
    Ok(report?)
}

/// `portcullis scan`: prints the report; the exit code says whether the
/// grade reached `--fail-under`.
pub(crate) async fn scan(args: ScanArgs) -> anyhow::Result<bool> {
    let options = args.options()?;
    let report = run_scan(&options).await?;
    let out = match args.format {
        Format::Text => render::text(&report, true),
        Format::Json => render::json(&report),
        Format::Sarif => render::sarif(&report),
    };
    // anstream drops the colors when stdout is no terminal, or NO_COLOR is set.
    let mut stdout = anstream::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.write_all(b"\n");
    Ok(args.fail_under.is_none_or(|min| report.grade <= min))
}
