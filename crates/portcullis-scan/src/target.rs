//! The scanned URL: scheme, host, port and path, parsed strictly (no
//! user-info, no fragment), so what is scanned is exactly what was named.

use crate::ScanError;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// The host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses `http[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Self, ScanError> {
        let bad = |why: &str| ScanError::Url(why.to_owned());
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad("the URL must start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not accepted; use --header"));
        }
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the path has a fragment, a space or a control character"));
        }
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        let default_port = if scheme == Scheme::Https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) =
                v6.split_once(']').ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("unexpected text after the IPv6 address")),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => {
                    (h.to_owned(), p.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?)
                }
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad("the URL has no host or a zero port"));
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)) {
            return Err(bad("the host has characters a host name can't have"));
        }
        Ok(Target { scheme, host: host.to_ascii_lowercase(), port, path })
    }

    /// `host[:port]` as a `Host` header: the port only when not the default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.scheme == Scheme::Https { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    /// `scheme://authority`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme_name(), self.authority())
    }

    /// `http` or `https`.
    pub fn scheme_name(&self) -> &'static str {
        match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The whole URL.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// The same host and path on another scheme and port.
    pub fn with(&self, scheme: Scheme, port: u16, path: &str) -> Target {
        Target { scheme, host: self.host.clone(), port, path: path.to_owned() }
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("/")
    }

    /// A loopback host (`localhost`, 127.0.0.0/8, `::1`): no public CA can
    /// certify it, so HTTPS and HSTS are not graded there.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self.host == "::1"
            || self.host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let t = Target::parse("https://API.example.test/v1/users?x=1").expect("url");
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port, t.path.as_str()),
            (Scheme::Https, "api.example.test", 443, "/v1/users?x=1")
        );
        assert_eq!(t.origin(), "https://api.example.test");
        let t = Target::parse("http://127.0.0.1:8080").expect("url");
        assert_eq!((t.port, t.path.as_str(), t.authority().as_str()), (8080, "/", "127.0.0.1:8080"));
        assert!(t.is_loopback());
        let t = Target::parse("http://[::1]:3000/a").expect("url");
        assert_eq!((t.host.as_str(), t.authority().as_str()), ("::1", "[::1]:3000"));
        for bad in [
            "ftp://x",
            "http://user:pw@host/",
            "http://host:99999/",
            "http://host/a b",
            "http://host/#frag",
            "http://:80/",
            "http://ho\"st/",
            "http://host:0/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
