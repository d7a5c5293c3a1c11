//! `[server]` and `[admin]`: listeners, TLS, trusted proxies, host names.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    pub(crate) redirect_http: Option<String>,
    pub(crate) names: Option<Vec<String>>,
    pub(crate) workers: Option<RawWorkers>,
    pub(crate) tls: Option<RawTls>,
}

/// `server.workers`: `"auto"` or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawWorkers {
    Count(i64),
    Word(String),
    /// Any other type: refused with the same message, located.
    Other(serde::de::IgnoredAny),
}

/// The most `server.workers` may say: more threads than this only adds
/// switching.
const MAX_WORKERS: usize = 256;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) acme: Option<RawAcme>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAcme {
    pub(crate) domains: Option<Vec<String>>,
    pub(crate) contact: Option<Vec<String>>,
    pub(crate) directory: Option<String>,
    pub(crate) challenge: Option<String>,
    pub(crate) cache: Option<String>,
    pub(crate) renew_before: Option<super::units::Dur>,
    pub(crate) ca_root: Option<String>,
}

/// Let's Encrypt's production directory, `[server.tls.acme]`'s default.
const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "letsencrypt-staging"`).
const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<String>,
    pub(crate) enabled: Option<bool>,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The main listener.
    pub listen: SocketAddr,
    /// TLS on the main listener.
    pub tls: Option<TlsConfig>,
    /// A plain HTTP listener that redirects to HTTPS.
    pub redirect_http: Option<SocketAddr>,
    /// Trusted proxy networks (C3).
    pub trusted_proxies: Vec<IpNet>,
    /// The host names this server answers to, lower case (`server.names`);
    /// empty for any. The redirect listener redirects only these.
    pub names: Vec<String>,
    /// `server.workers`: how many threads serve the main listener, each
    /// with its own single-threaded runtime, its own `SO_REUSEPORT`
    /// socket and its own upstream pool (issue 16 item 7). `"auto"` (the
    /// default) is one per CPU the process may use.
    pub workers: usize,
    /// Whether `workers` came from `"auto"`.
    pub workers_auto: bool,
}

/// `[server.tls]`, loaded.
#[derive(Clone)]
pub struct TlsConfig {
    /// Certificate chain file (with ACME: in the cache directory).
    pub cert: PathBuf,
    /// Private key file (with ACME: in the cache directory).
    pub key: PathBuf,
    /// The rustls configuration built from them.
    pub rustls: Arc<rustls::ServerConfig>,
    /// `[server.tls.acme]`: the certificate comes from an ACME CA (C4).
    pub acme: Option<Arc<crate::acme::Acme>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

pub(super) fn validate(raw: RawServer, base: &Path, p: &mut Problems) -> Option<ServerConfig> {
    let mut ok = true;
    let listen = match raw.listen.as_deref().unwrap_or("0.0.0.0:8080").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            p.push("server.listen", "expected ip:port, e.g. \"0.0.0.0:8080\"");
            ok = false;
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let mut trusted = Vec::new();
    for (i, s) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let at = format!("server.trusted_proxies[{i}]");
        let net = s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) if n.prefix_len() == 0 => {
                p.push(at, "trusting every address lets any client forge X-Forwarded-For; list the networks of your proxies");
                ok = false;
            }
            Some(n) => trusted.push(n.trunc()),
            None => {
                p.push(at, "expected an IP address or CIDR network, e.g. \"10.0.0.0/8\"");
                ok = false;
            }
        }
    }
    let tls = match raw.tls {
        None => None,
        Some(RawTls { cert: None, key: None, acme: Some(a) }) => {
            let acme = validate_acme(a, base, p).map(|s| Arc::new(crate::acme::Acme::new(s)));
            match acme.map(|a| (crate::tls::acme_server_config(a.resolver()), a)) {
                Some((Ok(rustls), acme)) => Some(TlsConfig {
                    cert: acme.settings().cache.join("cert.pem"),
                    key: acme.settings().cache.join("key.pem"),
                    rustls: Arc::new(rustls),
                    acme: Some(acme),
                }),
                Some((Err(e), _)) => {
                    p.push("server.tls.acme", format!("TLS setup failed: {e}"));
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            }
        }
        Some(t) => {
            if t.acme.is_some() {
                p.push("server.tls.acme", "give cert and key files, or [server.tls.acme], not both");
                ok = false;
            }
            let cert = t.cert.as_deref().map(|c| base.join(c));
            let key = t.key.as_deref().map(|k| base.join(k));
            if cert.is_none() {
                p.push(
                    "server.tls.cert",
                    "missing: path to the PEM certificate chain (or use [server.tls.acme])",
                );
            }
            if key.is_none() {
                p.push("server.tls.key", "missing: path to the PEM private key");
            }
            match (cert, key) {
                (Some(cert), Some(key)) => match crate::tls::server_config(&cert, &key) {
                    Ok(cfg) => Some(TlsConfig { cert, key, rustls: Arc::new(cfg), acme: None }),
                    Err((which, msg)) => {
                        let at = match which {
                            crate::tls::TlsFile::Cert => "server.tls.cert",
                            crate::tls::TlsFile::Key => "server.tls.key",
                        };
                        p.push(at, msg);
                        ok = false;
                        None
                    }
                },
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let redirect_http = match raw.redirect_http.as_deref() {
        None => None,
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) if a == listen && a.port() != 0 => {
                p.push("server.redirect_http", "must differ from server.listen");
                ok = false;
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                p.push("server.redirect_http", "expected ip:port, e.g. \"0.0.0.0:80\"");
                ok = false;
                None
            }
        },
    };
    if redirect_http.is_some() && tls.is_none() && ok {
        p.push("server.redirect_http", "redirects to HTTPS need [server.tls] on server.listen");
        ok = false;
    }
    if redirect_http.is_none()
        && tls
            .as_ref()
            .and_then(|t| t.acme.as_ref())
            .is_some_and(|a| a.settings().challenge == crate::acme::Challenge::Http01)
    {
        p.push(
            "server.tls.acme.challenge",
            "\"http-01\" is answered on the plain listener: set server.redirect_http (the CA connects to port 80)",
        );
        ok = false;
    }
    let mut names = Vec::new();
    for (i, n) in raw.names.unwrap_or_default().iter().enumerate() {
        let valid = !n.is_empty()
            && n.len() <= 253
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
            && !n.starts_with(['.', '-']);
        if valid {
            names.push(n.to_ascii_lowercase());
        } else {
            p.push(
                format!("server.names[{i}]"),
                "expected a host name without port, e.g. \"api.example.com\"",
            );
            ok = false;
        }
    }
    let (workers, workers_auto) = match raw.workers {
        None => (available_cpus(), true),
        Some(RawWorkers::Word(w)) if w == "auto" => (available_cpus(), true),
        Some(RawWorkers::Count(n)) if (1..=MAX_WORKERS as i64).contains(&n) => {
            (usize::try_from(n).unwrap_or(1), false)
        }
        Some(_) => {
            p.push("server.workers", format!("expected \"auto\" or a number from 1 to {MAX_WORKERS}"));
            ok = false;
            (1, false)
        }
    };
    ok.then_some(ServerConfig {
        listen,
        tls,
        redirect_http,
        trusted_proxies: trusted,
        names,
        workers,
        workers_auto,
    })
}

/// The CPUs this process may run on (its affinity mask and a container's
/// CPU quota both count), at most [`MAX_WORKERS`].
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(MAX_WORKERS)
}

/// `[server.tls.acme]`: every problem located by key.
fn validate_acme(raw: RawAcme, base: &Path, p: &mut Problems) -> Option<crate::acme::AcmeSettings> {
    let before = p.0.len();
    let domains: Vec<String> =
        raw.domains.unwrap_or_default().iter().map(|d| d.to_ascii_lowercase()).collect();
    if domains.is_empty() {
        p.push(
            "server.tls.acme.domains",
            "missing: the names on the certificate, e.g. [\"api.example.com\"]",
        );
    }
    for (i, d) in domains.iter().enumerate() {
        let labels_ok = d.split('.').count() >= 2
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if d.starts_with("*.") {
            p.push(
                format!("server.tls.acme.domains[{i}]"),
                "wildcards need the DNS-01 challenge, which Portcullis does not do; list the names",
            );
        } else if !labels_ok || d.len() > 253 || d.parse::<IpAddr>().is_ok() {
            p.push(format!("server.tls.acme.domains[{i}]"), "expected a DNS name, e.g. \"api.example.com\"");
        }
    }
    let contact = raw.contact.unwrap_or_default();
    for (i, c) in contact.iter().enumerate() {
        if !c.starts_with("mailto:") || c.len() < 10 || c.contains([' ', ',']) {
            p.push(
                format!("server.tls.acme.contact[{i}]"),
                "expected a mailto: URL, e.g. \"mailto:ops@example.com\"",
            );
        }
    }
    let directory = match raw.directory.as_deref() {
        None | Some("letsencrypt") => LETSENCRYPT.to_owned(),
        Some("letsencrypt-staging") => LETSENCRYPT_STAGING.to_owned(),
        Some(u)
            if u.starts_with("https://") && u.parse::<http::Uri>().is_ok_and(|u| u.authority().is_some()) =>
        {
            u.to_owned()
        }
        Some(_) => {
            p.push(
                "server.tls.acme.directory",
                "expected an https:// directory URL, \"letsencrypt\" or \"letsencrypt-staging\"",
            );
            String::new()
        }
    };
    let challenge = match raw.challenge.as_deref() {
        None | Some("tls-alpn-01") => crate::acme::Challenge::TlsAlpn01,
        Some("http-01") => crate::acme::Challenge::Http01,
        Some(_) => {
            p.push("server.tls.acme.challenge", "expected \"tls-alpn-01\" or \"http-01\"");
            crate::acme::Challenge::TlsAlpn01
        }
    };
    let renew_before = super::units::within(
        "server.tls.acme.renew_before",
        raw.renew_before.map(|d| d.0),
        Duration::from_secs(30 * 86_400),
        Duration::from_secs(86_400),
        Duration::from_secs(365 * 86_400),
        p,
    );
    let ca_root = raw.ca_root.as_deref().map(|r| base.join(r));
    if let Some(r) = &ca_root
        && !r.is_file()
    {
        p.push("server.tls.acme.ca_root", "no such file (a PEM CA certificate)");
    }
    let cache = base.join(raw.cache.as_deref().unwrap_or("acme"));
    (p.0.len() == before).then_some(crate::acme::AcmeSettings {
        domains,
        contact,
        directory,
        challenge,
        cache,
        renew_before,
        ca_root,
    })
}

pub(super) fn validate_admin(raw: RawAdmin, p: &mut Problems) -> Option<SocketAddr> {
    if raw.enabled == Some(false) {
        return None;
    }
    match raw.listen.as_deref().unwrap_or("127.0.0.1:9901").parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push("admin.listen", "expected ip:port, e.g. \"127.0.0.1:9901\"");
            None
        }
    }
}

/// This section as `portcullis check` prints it (secrets as `***`).
pub(super) fn render(c: &super::Config, o: &mut String) {
    use std::fmt::Write;
    let s = &c.server;
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let _ = writeln!(o, "[server]");
    let _ = writeln!(o, "  listen            {} ({scheme})", s.listen);
    let _ = writeln!(
        o,
        "  workers           {}{}",
        s.workers,
        if s.workers_auto { " (auto: one per CPU)" } else { "" }
    );
    if let Some(t) = &s.tls {
        match &t.acme {
            Some(a) => {
                let a = a.settings();
                let _ = writeln!(
                    o,
                    "  tls               TLS 1.2+, ECDHE+AEAD suites, ALPN h2 http/1.1; ACME {:?} from {} by {}, renewed {} before expiry, kept in {}",
                    a.domains,
                    a.directory,
                    match a.challenge {
                        crate::acme::Challenge::TlsAlpn01 => "tls-alpn-01",
                        crate::acme::Challenge::Http01 => "http-01",
                    },
                    super::units::show_duration(a.renew_before),
                    a.cache.display()
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  tls               TLS 1.2+, ECDHE+AEAD suites, ALPN h2 http/1.1; cert {} key {}",
                    t.cert.display(),
                    t.key.display()
                );
            }
        }
    }
    if let Some(r) = s.redirect_http {
        let _ = writeln!(o, "  redirect_http     {r} -> 301 https");
    }
    let trusted: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        o,
        "  trusted_proxies   {}",
        if trusted.is_empty() {
            "none (client = socket peer; X-Forwarded-* overwritten)".to_owned()
        } else {
            trusted.join(", ")
        }
    );
    let _ = writeln!(o, "[admin]");
    match c.admin {
        Some(a) => {
            let _ = writeln!(o, "  listen            {a} (/healthz, /readyz, /metrics)");
        }
        None => {
            let _ = writeln!(o, "  disabled");
        }
    }
}
