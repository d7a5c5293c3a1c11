//! Secrets (C32): only `${ENV}` or `file:` references in the file, resolved at
//! startup, never printed.

use std::fmt;

/// A secret value. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// `${NAME}`.
    Env(String),
    /// `file:/path`.
    File(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "${{{n}}}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

/// Why a secret could not be had. Messages never contain the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretError {
    /// A literal where a reference is required.
    Literal,
    /// `${...}` with a bad name.
    BadName,
    /// The variable is not set (or empty).
    MissingEnv(String),
    /// The file can't be read.
    File(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Literal => f.write_str(
                "secrets can't be written in the file; use \"${ENV_VAR}\" or \"file:/path/to/secret\"",
            ),
            SecretError::BadName => f.write_str("invalid environment variable name in ${...}"),
            SecretError::MissingEnv(n) => write!(f, "environment variable {n} is not set"),
            SecretError::File(e) => write!(f, "can't read secret file: {e}"),
        }
    }
}

/// A value that is allowed literally (e.g. a URL without credentials).
pub(crate) fn literal(s: &str) -> Secret {
    Secret(s.to_owned())
}

/// Parses a reference; anything else is a literal and refused.
pub fn parse_ref(s: &str) -> Result<SecretRef, SecretError> {
    if let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        let valid = !inner.is_empty()
            && !inner.starts_with(|c: char| c.is_ascii_digit())
            && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        return if valid { Ok(SecretRef::Env(inner.to_owned())) } else { Err(SecretError::BadName) };
    }
    if let Some(path) = s.strip_prefix("file:")
        && !path.is_empty()
    {
        return Ok(SecretRef::File(path.to_owned()));
    }
    Err(SecretError::Literal)
}

/// Resolves a reference through `env` (injected for tests).
pub fn resolve(r: &SecretRef, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, SecretError> {
    match r {
        SecretRef::Env(name) => match env(name) {
            Some(v) if !v.is_empty() => Ok(Secret(v)),
            _ => Err(SecretError::MissingEnv(name.clone())),
        },
        SecretRef::File(path) => match std::fs::read_to_string(path) {
            Ok(v) => {
                let v = v.trim_end_matches(['\n', '\r']).to_owned();
                if v.is_empty() { Err(SecretError::File("file is empty".to_owned())) } else { Ok(Secret(v)) }
            }
            Err(e) => Err(SecretError::File(e.kind().to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c32_references_only() {
        assert_eq!(parse_ref("${API_KEY}"), Ok(SecretRef::Env("API_KEY".into())));
        assert_eq!(parse_ref("file:/run/secrets/k"), Ok(SecretRef::File("/run/secrets/k".into())));
        assert_eq!(parse_ref("hunter2"), Err(SecretError::Literal));
        assert_eq!(parse_ref("${1X}"), Err(SecretError::BadName));
        assert_eq!(parse_ref("${A-B}"), Err(SecretError::BadName));
        assert_eq!(parse_ref("file:"), Err(SecretError::Literal));
    }

    #[test]
    fn c32_never_printed() {
        let s = resolve(&SecretRef::Env("K".into()), &|_| Some("s3cr3t".into())).unwrap();
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let e = resolve(&SecretRef::Env("K".into()), &|_| None).unwrap_err();
        assert_eq!(e.to_string(), "environment variable K is not set");
    }
}
