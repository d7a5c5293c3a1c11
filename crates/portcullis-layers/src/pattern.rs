//! Path patterns for per-route rules (CORS overrides, rate limits, routes).
//!
//! `/api/users` (exact), `/api/users/*` or `/api/users/{id}` (one segment),
//! `/api/**` (the rest of the path, including nothing). Patterns match the
//! canonical path (see [`crate::path`]) the way Express routes it:
//! ASCII-case-insensitively and ignoring one trailing slash, so a rule on
//! `/auth/login` also holds for `/AUTH/login/`.

use crate::config_error::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(String),
    One,
    Rest,
}

/// A parsed path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segs: Vec<Seg>,
}

impl PathPattern {
    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if !text.starts_with('/') {
            return Err(ConfigError::new("", "a path pattern starts with '/'"));
        }
        let trimmed = text.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(text);
        let mut segs = Vec::new();
        let parts: Vec<&str> = trimmed[1..].split('/').collect();
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            let seg = match p {
                "" if n == 1 => continue,
                "" => return Err(ConfigError::new("", "empty segment ('//') in a path pattern")),
                "**" if i + 1 == n => Seg::Rest,
                "**" => return Err(ConfigError::new("", "'**' may only end a pattern")),
                "*" => Seg::One,
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Seg::One,
                p if p.contains(['*', '{', '}', '?', '#', ';', '\\', '%']) => {
                    return Err(ConfigError::new(
                        "",
                        "a segment is a literal, '*', '{name}' or a final '**'; no partial wildcards or escapes",
                    ));
                }
                "." | ".." => {
                    return Err(ConfigError::new("", "dot segments can never match a canonical path"));
                }
                p => Seg::Lit(p.to_ascii_lowercase()),
            };
            segs.push(seg);
        }
        Ok(PathPattern { text: text.to_owned(), segs })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a canonical path matches.
    pub fn matches(&self, path: &str) -> bool {
        let p = path.strip_prefix('/').unwrap_or(path);
        let p = p.strip_suffix('/').unwrap_or(p);
        let mut parts = if p.is_empty() { Vec::new() } else { p.split('/').collect::<Vec<_>>() };
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::One => {
                    if i >= parts.len() || parts[i].is_empty() {
                        return false;
                    }
                }
                Seg::Lit(l) => {
                    if i >= parts.len() || !parts[i].eq_ignore_ascii_case(l) {
                        return false;
                    }
                }
            }
            i += 1;
        }
        parts.truncate(i + 1);
        i == parts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/auth/login", "/auth/login", true),
            ("/auth/login", "/AUTH/Login", true),
            ("/auth/login", "/auth/login/", true),
            ("/auth/login", "/auth/login/x", false),
            ("/auth/login", "/auth/logins", false),
            ("/auth/**", "/auth", true),
            ("/auth/**", "/auth/", true),
            ("/auth/**", "/Auth/a/b/c", true),
            ("/auth/**", "/authx", false),
            ("/users/*", "/users/7", true),
            ("/users/{id}", "/users/7/", true),
            ("/users/{id}", "/users", false),
            ("/users/{id}", "/users/7/posts", false),
            ("/", "/", true),
            ("/", "/x", false),
            ("/**", "/anything/at/all", true),
        ];
        for (pat, path, want) in cases {
            assert_eq!(PathPattern::parse(pat).unwrap().matches(path), *want, "{pat} vs {path}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in ["auth", "/a//b", "/a/**/b", "/a*", "/a/{id", "/a/%2f", "/a/../b"] {
            assert!(PathPattern::parse(p).is_err(), "{p}");
        }
    }
}
