//! Allowed origins: exact `scheme://host[:port]`, or an explicit one-label
//! wildcard `https://*.example.com`. Matching is byte-exact against the
//! canonical lower-case form a browser sends, so look-alikes (other case,
//! trailing dot, other port or scheme, suffix or prefix tricks, `null`) never
//! match.

use crate::config_error::ConfigError;

/// One allowed origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginRule {
    /// `https://app.example.com`.
    Exact(String),
    /// `https://*.example.com[:port]`: exactly one label in place of `*`.
    Subdomain {
        /// `https`.
        scheme: String,
        /// `.example.com`.
        suffix: String,
        /// `:8443`, or empty for the default port.
        port: String,
    },
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" { "443" } else { "80" }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

impl OriginRule {
    /// Parses a configured origin. Refuses `*` (handled by the caller),
    /// `null`, paths, credentials, and wildcards anywhere but a whole
    /// left-most label followed by at least two labels.
    pub fn parse(s: &str) -> Result<OriginRule, ConfigError> {
        if s.eq_ignore_ascii_case("null") {
            return Err(ConfigError::new(
                "",
                "\"null\" is the origin of sandboxed iframes, file: pages and redirects: allowing it allows any of them",
            ));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            ConfigError::new("", "an origin is scheme://host[:port], e.g. \"https://app.example.com\"")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(ConfigError::new("", "only http and https origins can be allowed"));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(ConfigError::new(
                "",
                "an origin has no path, query, credentials or trailing slash (browsers send scheme://host[:port] only)",
            ));
        }
        let rest = rest.to_ascii_lowercase();
        let (host, port) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or_else(|| ConfigError::new("", "invalid IPv6 literal"))?;
            let (h, p) = rest.split_at(end + 1);
            match p {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(|| ConfigError::new("", "invalid port"))?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest.as_str(), None),
            }
        };
        let port = match port {
            None => String::new(),
            Some(p)
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() =>
            {
                return Err(ConfigError::new("", "invalid port"));
            }
            Some(p) if p == default_port(&scheme) => String::new(),
            Some(p) => format!(":{p}"),
        };
        let host = host.to_owned();
        if host.ends_with('.') {
            return Err(ConfigError::new("", "remove the trailing dot: browsers never send it"));
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            let labels: Vec<&str> = suffix.split('.').collect();
            if labels.len() < 2 || !labels.iter().all(|l| valid_label(l)) {
                return Err(ConfigError::new(
                    "",
                    "a wildcard must be followed by a registrable domain of at least two labels, e.g. https://*.example.com",
                ));
            }
            return Ok(OriginRule::Subdomain { scheme, suffix: format!(".{suffix}"), port });
        }
        if host.contains('*') {
            return Err(ConfigError::new(
                "",
                "'*' is only allowed as the whole left-most label (https://*.example.com), matching exactly one label",
            ));
        }
        let is_ip6 = host.starts_with('[') && host.ends_with(']');
        if !is_ip6 && !host.split('.').all(valid_label) {
            return Err(ConfigError::new("", "invalid host name"));
        }
        Ok(OriginRule::Exact(format!("{scheme}://{host}{port}")))
    }

    /// Whether the `Origin` header value matches this rule.
    pub fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginRule::Exact(o) => o.as_bytes() == origin,
            OriginRule::Subdomain { scheme, suffix, port } => {
                let Ok(origin) = std::str::from_utf8(origin) else { return false };
                let Some(rest) = origin.strip_prefix(scheme.as_str()).and_then(|r| r.strip_prefix("://"))
                else {
                    return false;
                };
                let Some(host) = rest.strip_suffix(port.as_str()) else { return false };
                if host.contains(':') {
                    return false;
                }
                match host.strip_suffix(suffix.as_str()) {
                    Some(label) => valid_label(label),
                    None => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> OriginRule {
        OriginRule::parse(s).unwrap()
    }

    // C8: look-alike origins never match.
    #[test]
    fn c8_look_alikes() {
        let exact = rule("https://app.example.com");
        let wild = rule("https://*.example.com");
        let cases: &[(&str, bool, bool)] = &[
            // origin, matches exact, matches wildcard
            ("https://app.example.com", true, true),
            ("https://api.example.com", false, true),
            ("https://app.example.com.evil.test", false, false),
            ("https://evilapp.example.com", false, true),
            ("https://app.example.com.", false, false),
            ("https://APP.example.com", false, false),
            ("http://app.example.com", false, false),
            ("https://app.example.com:8443", false, false),
            ("https://app.example.com:443", false, false),
            ("https://example.com", false, false),
            ("https://a.b.example.com", false, false),
            ("https://evil-example.com", false, false),
            ("https://app.example.comevil.test", false, false),
            ("https://.example.com", false, false),
            ("null", false, false),
            ("", false, false),
            ("https://app.example.com/", false, false),
            ("https://xapp.example.com", false, true),
        ];
        for (origin, e, w) in cases {
            assert_eq!(exact.matches(origin.as_bytes()), *e, "exact vs {origin}");
            assert_eq!(wild.matches(origin.as_bytes()), *w, "wildcard vs {origin}");
        }
    }

    #[test]
    fn normalised_configuration() {
        assert_eq!(rule("HTTPS://App.Example.com:443"), OriginRule::Exact("https://app.example.com".into()));
        assert_eq!(rule("http://localhost:3000"), OriginRule::Exact("http://localhost:3000".into()));
        assert_eq!(rule("http://[::1]:3000"), OriginRule::Exact("http://[::1]:3000".into()));
        assert_eq!(rule("http://[::1]"), OriginRule::Exact("http://[::1]".into()));
        // The default port of each scheme is dropped; the other scheme's is kept.
        assert_eq!(rule("http://app.example.com:80"), OriginRule::Exact("http://app.example.com".into()));
        assert_eq!(
            rule("https://app.example.com:80"),
            OriginRule::Exact("https://app.example.com:80".into())
        );
        assert_eq!(
            rule("http://app.example.com:443"),
            OriginRule::Exact("http://app.example.com:443".into())
        );
        assert!(rule("http://app.example.com:80").matches(b"http://app.example.com"));
        assert!(!rule("http://app.example.com:80").matches(b"http://app.example.com:80"));
        // Digits are letters of a host name, in any label.
        assert_eq!(rule("https://app2.example.com"), OriginRule::Exact("https://app2.example.com".into()));
        assert_eq!(rule("https://1.example.com"), OriginRule::Exact("https://1.example.com".into()));
        assert_eq!(rule("http://127.0.0.1:8080"), OriginRule::Exact("http://127.0.0.1:8080".into()));
        let digits = rule("https://*.cdn2.example.com");
        assert!(digits.matches(b"https://eu-1.cdn2.example.com"));
        assert!(digits.matches(b"https://42.cdn2.example.com"));
        assert!(!digits.matches(b"https://-1.cdn2.example.com"));
        assert!(!digits.matches(b"https://a_b.cdn2.example.com"));
        assert!(!digits.matches(b"https://1.cdn3.example.com"));
        let w = rule("https://*.example.com:8443");
        assert!(w.matches(b"https://a.example.com:8443"));
        assert!(!w.matches(b"https://a.example.com"));
    }

    #[test]
    fn c8_overbroad_or_wrong_patterns_are_refused() {
        for bad in [
            "null",
            "https://*.com",
            "https://*",
            "*.example.com",
            "https://app*.example.com",
            "https://*example.com",
            "https://*.*.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "https://app.example.com.",
            "https://app.example.com:99999",
            "https://evil]",
            "https://[::1",
            "app.example.com",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
