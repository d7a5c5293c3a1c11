//! Path patterns for per-route rules (CORS overrides, rate limits, routes).
//!
//! `/api/users` (exact), `/api/users/*` or `/api/users/{id}` (one segment;
//! Express's `/api/users/:id` is the same parameter), `/api/**` (the rest
//! of the path, including nothing). Patterns match the
//! canonical path (see [`crate::path`]) the way Express routes it:
//! ASCII-case-insensitively and ignoring one trailing slash, so a rule on
//! `/auth/login` also holds for `/AUTH/login/`.

use crate::config_error::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// One segment; `Some(name)` for `{name}` or `:name`, `None` for `*`.
    One(Option<String>),
    Rest,
}

/// How patterns compare to paths. The default follows Express: ASCII case is
/// ignored and one trailing slash is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// Compare literal segments byte for byte (Express `caseSensitive`).
    pub case_sensitive: bool,
    /// A trailing slash is significant (Express `strict`).
    pub strict_trailing_slash: bool,
}

/// A parsed path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segs: Vec<Seg>,
    trailing_slash: bool,
}

/// A canonical path split into segments, for matching against many
/// patterns.
#[derive(Debug)]
pub struct SplitPath<'p> {
    parts: Vec<&'p str>,
    trailing_slash: bool,
}

impl<'p> SplitPath<'p> {
    /// The segments, in order (what a route table indexes on).
    pub fn parts(&self) -> &[&'p str] {
        &self.parts
    }

    /// Splits `path` at `/` (a leading and a trailing slash are not segments).
    pub fn new(path: &'p str) -> SplitPath<'p> {
        let p = path.strip_prefix('/').unwrap_or(path);
        let (p, trailing_slash) = match p.strip_suffix('/') {
            Some(q) => (q, true),
            None => (p, false),
        };
        let parts: Vec<&str> = if p.is_empty() { Vec::new() } else { p.split('/').collect() };
        SplitPath { parts, trailing_slash }
    }
}

/// A `{name}` or `:name` parameter segment.
fn param(name: &str, segs: &[Seg]) -> Result<Seg, ConfigError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError::new("", "a parameter name is letters, digits and '_'"));
    }
    if segs.iter().any(|s| matches!(s, Seg::One(Some(n)) if n == name)) {
        return Err(ConfigError::new("", "a parameter name appears twice in one pattern"));
    }
    Ok(Seg::One(Some(name.to_owned())))
}

impl PathPattern {
    /// The literal segments the pattern starts with: a path can match only
    /// if its own first segments are these literals (per [`MatchOptions`]).
    pub fn literal_prefix(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map_while(|s| match s {
            Seg::Lit(l) => Some(l.as_str()),
            _ => None,
        })
    }

    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if !text.starts_with('/') {
            return Err(ConfigError::new("", "a path pattern starts with '/'"));
        }
        let stripped = text.strip_suffix('/').filter(|t| !t.is_empty());
        let trimmed = stripped.unwrap_or(text);
        let mut segs = Vec::new();
        let parts: Vec<&str> = trimmed[1..].split('/').collect();
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            let seg = match p {
                "" if n == 1 => continue,
                "" => return Err(ConfigError::new("", "empty segment ('//') in a path pattern")),
                "**" if i + 1 == n => Seg::Rest,
                "**" => return Err(ConfigError::new("", "'**' may only end a pattern")),
                "*" => Seg::One(None),
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                    param(&p[1..p.len() - 1], &segs)?
                }
                // Express's spelling of the same parameter: `:id` is `{id}`.
                p if p.starts_with(':') => {
                    let name = &p[1..];
                    if name.ends_with(['?', '+', '*', ')']) {
                        return Err(ConfigError::new(
                            "",
                            "Express's optional, repeated and regular-expression parameters (':id?', ':id+', ':id(\\d+)') are not supported; declare each path, and check the value with params_schema",
                        ));
                    }
                    param(name, &segs)?
                }
                p if p.contains(['*', '{', '}', '?', '#', ';', '\\', '%']) => {
                    return Err(ConfigError::new(
                        "",
                        "a segment is a literal, '*', '{name}' or a final '**'; no partial wildcards or escapes",
                    ));
                }
                "." | ".." => {
                    return Err(ConfigError::new("", "dot segments can never match a canonical path"));
                }
                p => Seg::Lit(p.to_owned()),
            };
            segs.push(seg);
        }
        Ok(PathPattern { text: text.to_owned(), segs, trailing_slash: stripped.is_some() })
    }

    /// The pattern as written (`:id` stays `:id`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The names of the `{name}` parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            Seg::One(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether a canonical path matches (Express defaults).
    pub fn matches(&self, path: &str) -> bool {
        self.captures(path, MatchOptions::default()).is_some()
    }

    /// Matches a canonical path; on a match, the raw (still percent-encoded)
    /// values of the `{name}` parameters, in pattern order.
    pub fn captures<'p>(&self, path: &'p str, opts: MatchOptions) -> Option<Vec<&'p str>> {
        self.captures_split(&SplitPath::new(path), opts)
    }

    /// [`PathPattern::captures`] on a path split once for a whole route
    /// table (splitting per route allocated once per route tried).
    pub fn captures_split<'p>(&self, path: &SplitPath<'p>, opts: MatchOptions) -> Option<Vec<&'p str>> {
        let (parts, slash) = (&path.parts, path.trailing_slash);
        let mut caps = Vec::new();
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Rest => return Some(caps),
                Seg::One(name) => {
                    let part = parts.get(i).filter(|s| !s.is_empty())?;
                    if name.is_some() {
                        caps.push(*part);
                    }
                }
                Seg::Lit(l) => {
                    let part = parts.get(i)?;
                    let same = if opts.case_sensitive { part == l } else { part.eq_ignore_ascii_case(l) };
                    if !same {
                        return None;
                    }
                }
            }
            i += 1;
        }
        if i != parts.len() {
            return None;
        }
        // Strict: `/a` and `/a/` are different routes (the root is always `/`).
        if opts.strict_trailing_slash && !parts.is_empty() && slash != self.trailing_slash {
            return None;
        }
        Some(caps)
    }

    /// Whether every path this pattern matches is also matched by `self`
    /// (used to find routes shadowed by an earlier, broader one).
    pub fn covers(&self, other: &PathPattern, opts: MatchOptions) -> bool {
        if opts.strict_trailing_slash && self.trailing_slash != other.trailing_slash {
            // A `**` ending covers both spellings.
            if !matches!(self.segs.last(), Some(Seg::Rest)) {
                return false;
            }
        }
        let mut b = other.segs.iter();
        for a in &self.segs {
            match (a, b.next()) {
                (Seg::Rest, _) => return true,
                (_, None) | (_, Some(Seg::Rest)) => return false,
                (Seg::One(_), Some(_)) => {}
                (Seg::Lit(x), Some(Seg::Lit(y))) => {
                    let same = if opts.case_sensitive { x == y } else { x.eq_ignore_ascii_case(y) };
                    if !same {
                        return false;
                    }
                }
                (Seg::Lit(_), Some(Seg::One(_))) => return false,
            }
        }
        b.next().is_none()
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
    fn captures_and_strict_options() {
        let p = PathPattern::parse("/users/{id}/posts/{post}").unwrap();
        assert_eq!(p.params().collect::<Vec<_>>(), ["id", "post"]);
        let lax = MatchOptions::default();
        assert_eq!(p.captures("/USERS/Al%C3%A9/posts/9/", lax), Some(vec!["Al%C3%A9", "9"]));
        let strict = MatchOptions { case_sensitive: true, strict_trailing_slash: true };
        assert_eq!(p.captures("/USERS/7/posts/9", strict), None);
        assert_eq!(p.captures("/users/7/posts/9/", strict), None);
        assert_eq!(p.captures("/users/7/posts/9", strict), Some(vec!["7", "9"]));
        let slash = PathPattern::parse("/dir/").unwrap();
        assert!(slash.captures("/dir/", strict).is_some());
        assert!(slash.captures("/dir", strict).is_none());
        assert!(PathPattern::parse("/").unwrap().captures("/", strict).is_some());
    }

    // Issue 13 item 4: Express's `:id` is the `{id}` parameter.
    #[test]
    fn express_colon_parameters_are_the_same_parameters() {
        let colon = PathPattern::parse("/api/users/:id/posts/:post").unwrap();
        let brace = PathPattern::parse("/api/users/{id}/posts/{post}").unwrap();
        assert_eq!(colon.params().collect::<Vec<_>>(), ["id", "post"]);
        let o = MatchOptions::default();
        for path in ["/api/users/7/posts/9", "/API/users/alice/posts/x/"] {
            assert_eq!(colon.captures(path, o), brace.captures(path, o), "{path}");
            assert!(colon.matches(path), "{path}");
        }
        assert!(!colon.matches("/api/users/:id/posts/:post/x"));
        assert!(colon.covers(&brace, o) && brace.covers(&colon, o));
        assert_eq!(colon.as_str(), "/api/users/:id/posts/:post");
        // A colon inside a segment stays literal (`/v1/models/m:generate`).
        assert!(PathPattern::parse("/v1/models/m:generate").unwrap().matches("/v1/models/m:generate"));
    }

    #[test]
    fn coverage_finds_shadowed_patterns() {
        let o = MatchOptions::default();
        let cases: &[(&str, &str, bool)] = &[
            ("/**", "/admin", true),
            ("/api/**", "/api/users/{id}", true),
            ("/api/*", "/api/users", true),
            ("/api/{id}", "/api/*", true),
            ("/api/users", "/API/users/", true),
            ("/api/users", "/api/{id}", false),
            ("/api/*", "/api/**", false),
            ("/api/*", "/api/a/b", false),
            ("/api/users", "/api/users/x", false),
        ];
        for (a, b, want) in cases {
            let (a, b) = (PathPattern::parse(a).unwrap(), PathPattern::parse(b).unwrap());
            assert_eq!(a.covers(&b, o), *want, "{a:?} covers {b:?}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "auth",
            "/a//b",
            "/a/**/b",
            "/a*",
            "/a/{id",
            "/a/%2f",
            "/a/../b",
            "/a/{x-y}",
            "/{a}/{a}",
            "/a/:",
            "/a/:x-y",
            "/:a/{a}",
            "/a/:id?",
            "/a/:id+",
            "/a/:id*",
            "/a/:id(\\d+)",
        ] {
            assert!(PathPattern::parse(p).is_err(), "{p}");
        }
    }
}
