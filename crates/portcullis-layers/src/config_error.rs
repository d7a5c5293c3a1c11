//! Builder errors: bad configuration is a value, never a panic.

use std::fmt;

/// A configuration problem found by a builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, relative to the builder (e.g. `script-src[1]`); may be empty.
    pub at: String,
    /// What is wrong. Never contains a secret.
    pub message: String,
}

impl ConfigError {
    /// A new error at a place.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { at: at.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
