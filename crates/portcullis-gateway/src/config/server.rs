//! `[server]` and `[admin]`: listeners, TLS, trusted proxies, host names.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    pub(crate) tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

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
}

/// `[server.tls]`, loaded.
#[derive(Clone)]
pub struct TlsConfig {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
    /// The rustls configuration built from them.
    pub rustls: Arc<rustls::ServerConfig>,
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
        Some(t) => {
            let cert = t.cert.as_deref().map(|c| base.join(c));
            let key = t.key.as_deref().map(|k| base.join(k));
            if cert.is_none() {
                p.push("server.tls.cert", "missing: path to the PEM certificate chain");
            }
            if key.is_none() {
                p.push("server.tls.key", "missing: path to the PEM private key");
            }
            match (cert, key) {
                (Some(cert), Some(key)) => match crate::tls::server_config(&cert, &key) {
                    Ok(cfg) => Some(TlsConfig { cert, key, rustls: Arc::new(cfg) }),
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
    ok.then_some(ServerConfig { listen, tls, redirect_http, trusted_proxies: trusted, names })
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
    if let Some(t) = &s.tls {
        let _ = writeln!(
            o,
            "  tls               TLS 1.2+, ECDHE+AEAD suites, ALPN h2 http/1.1; cert {} key {}",
            t.cert.display(),
            t.key.display()
        );
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
