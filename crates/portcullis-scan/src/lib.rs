//! `portcullis scan`: grades a live HTTP API against the production API
//! security checklist (`docs/scan.md`, the controls marked "Scan" in the
//! checklist, C1 ... C34).
//!
//! The passive checks send a bounded handful of ordinary requests (about
//! fifteen: the URL itself, its plain-HTTP twin, six CORS origins, three
//! error probes, a TRACE). The active checks, only with
//! [`Options::active`], send unusual or larger traffic, each bounded in count
//! and bytes (an 8 MiB body at most, at most [`Options::rate_limit_requests`]
//! requests for the rate limit). Every finding names its control, the
//! request sent and the response that decided it (credentials and cookie
//! values redacted), and the Portcullis config key that fixes it.
//!
//! ```no_run
//! # async fn run() -> Result<(), portcullis_scan::ScanError> {
//! let options = portcullis_scan::Options::new("https://api.example.com/v1/health")?;
//! let report = portcullis_scan::scan(&options).await?;
//! println!("{}", portcullis_scan::render::text(&report, false));
//! # Ok(()) }
//! ```

pub mod checks;
pub mod client;
pub mod grade;
pub mod render;
pub mod target;

use std::time::Duration;

use serde::Serialize;

pub use grade::Grade;
pub use target::Target;

/// The version of the JSON report's schema (`docs/scan.md`).
pub const SCHEMA: &str = "portcullis-scan/1";

/// What the scan was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The URL scanned.
    pub target: Target,
    /// Run the active checks.
    pub active: bool,
    /// Headers sent with every request (`--header`), e.g. a bearer token.
    pub headers: Vec<(String, String)>,
    /// The path the active body checks POST to (default: the URL's path).
    pub post_path: Option<String>,
    /// The port of the plain-HTTP twin of an `https` URL (default 80).
    pub http_port: u16,
    /// PEM certificates trusted besides the web PKI (a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// At most this many requests for the rate-limit check.
    pub rate_limit_requests: u32,
    /// Bound on one exchange.
    pub timeout: Duration,
}

impl Options {
    /// Passive scan of `url` with the defaults.
    pub fn new(url: &str) -> Result<Self, ScanError> {
        Ok(Options {
            target: Target::parse(url)?,
            active: false,
            headers: Vec::new(),
            post_path: None,
            http_port: 80,
            ca_pem: None,
            rate_limit_requests: 100,
            timeout: Duration::from_secs(10),
        })
    }
}

/// Why a scan could not run at all (a finding is never an error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanError {
    /// The URL can't be scanned.
    Url(String),
    /// A bad option (CA file, header).
    Setup(String),
    /// The target's first request got no HTTP answer.
    Unreachable(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Url(why) => write!(f, "bad URL: {why}"),
            ScanError::Setup(why) => write!(f, "{why}"),
            ScanError::Unreachable(why) => write!(f, "the target did not answer: {why}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The control is in place.
    Pass,
    /// Not graded: not applicable to this target, or not determinable.
    Skip,
    /// Weaker than the checklist asks.
    Warn,
    /// Missing or broken.
    Fail,
}

impl Outcome {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Skip => "skip",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        }
    }
}

/// A request sent and the answer that decided a finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// The request as sent, credentials redacted.
    pub request: String,
    /// The status line and the deciding headers or body excerpt, or why
    /// there was no answer.
    pub response: String,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable id of the check (SARIF rule id), e.g. `hsts`.
    pub id: &'static str,
    /// The checklist control, e.g. `C2`.
    pub control: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// The verdict.
    pub outcome: Outcome,
    /// Points a `fail` costs (a `warn` costs a third, at least 2).
    pub weight: u32,
    /// Why, in one sentence.
    pub detail: String,
    /// The exchanges behind the verdict.
    pub evidence: Vec<Evidence>,
    /// The Portcullis config that fixes it.
    pub fix: &'static str,
    /// An active check (sent only with `--active`).
    pub active: bool,
}

/// The whole scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The URL scanned.
    pub target: String,
    /// Whether the active checks ran.
    pub active: bool,
    /// 0 to 100 (`docs/scan.md`).
    pub score: u32,
    /// A+ to F.
    pub grade: Grade,
    /// Every check, in the order they ran.
    pub findings: Vec<Finding>,
    /// Requests sent.
    pub requests: usize,
}

impl Report {
    /// Counts of pass, warn, fail and skip.
    pub fn counts(&self) -> [usize; 4] {
        let n = |o| self.findings.iter().filter(|f| f.outcome == o).count();
        [n(Outcome::Pass), n(Outcome::Warn), n(Outcome::Fail), n(Outcome::Skip)]
    }
}

/// Runs the scan. Errors only when the target can't be reached at all;
/// everything else is a finding.
pub async fn scan(options: &Options) -> Result<Report, ScanError> {
    scan_with_progress(options, &mut |_| {}).await
}

/// [`scan`], calling `progress` with each check's title as it starts.
pub async fn scan_with_progress(
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ScanError> {
    let mut client = client::Client::new(options.ca_pem.as_deref())?;
    client.user_headers = options.headers.clone();
    client.timeout = options.timeout;
    let mut ctx = checks::Ctx::new(client, options.clone());
    let findings = checks::run(&mut ctx, progress).await?;
    let (score, grade) = grade::grade(&findings);
    Ok(Report {
        schema: SCHEMA,
        target: options.target.url(),
        active: options.active,
        score,
        grade,
        findings,
        requests: ctx.sent,
    })
}
