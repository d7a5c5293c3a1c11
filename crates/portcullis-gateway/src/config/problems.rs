//! The one problem collector: every problem of a file with its place
//! ([`Problems`]), and the reading of a section into its typed raw struct
//! with one located problem per bad key ([`section`], [`table_array`]).

use std::fmt;

use serde::de::DeserializeOwned;

/// One configuration problem and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path in the file (`server.tls.cert`, `server.trusted_proxies[2]`,
    /// `route[0].path`), or `line L, column C` for syntax errors.
    pub at: String,
    /// What is wrong. Never contains a secret.
    pub message: String,
    /// Line and column (1-based) of the key, or of its table when the key
    /// is missing.
    pub line_col: Option<(usize, usize)>,
    /// The file, when read from one.
    pub file: Option<String>,
}

impl fmt::Display for Problem {
    /// `route #2 allow.owner: names no {id} parameter of the path pattern
    /// (portcullis.toml:14:26)`: routes counted as a user counts them, the
    /// place as `file:line:column`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", user_path(&self.at), user_path(&self.message))?;
        match (&self.file, self.line_col) {
            (Some(file), Some((l, c))) => write!(f, " ({file}:{l}:{c})"),
            (None, Some((l, c))) => write!(f, " (line {l}, column {c})"),
            _ => Ok(()),
        }
    }
}

/// `route[1].allow` as a user counts routes: `route #2 allow`.
fn user_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("route[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "route[".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match (after[..digits].parse::<usize>(), after[digits..].strip_prefix(']')) {
            (Ok(n), Some(tail)) if digits > 0 => {
                out.push_str(&format!("route #{}", n + 1));
                rest = match tail.strip_prefix('.') {
                    Some(t) => {
                        out.push(' ');
                        t
                    }
                    None => tail,
                };
            }
            _ => {
                out.push_str("route[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>, Vec<String>);

impl Problems {
    /// Records a problem, unless it is about a key whose value was already
    /// refused (a refused `url` is not also "missing").
    pub(crate) fn push(&mut self, at: impl Into<String>, message: impl Into<String>) {
        let at = at.into();
        let message = message.into();
        let under = |k: &str| at.strip_prefix(k).is_some_and(|r| r.starts_with(['.', '[']));
        let said = |r: &String| match r.strip_prefix('~') {
            // A table with a misspelt key: its own verdicts and its
            // "missing" keys are unreliable; its other values are not.
            Some(table) => at == table || (under(table) && message.starts_with("missing")),
            None => at == *r || under(r),
        };
        if self.1.iter().any(said) {
            return;
        }
        self.0.push(Problem { at, message, line_col: None, file: None });
    }

    /// Marks a key whose value was refused: later problems about it are
    /// not reported.
    pub(crate) fn refused(&mut self, key: String) {
        self.1.push(key);
    }

    /// Marks a table with a misspelt key: later problems about the table
    /// itself, or about keys it lacks (perhaps the misspelt one), are not
    /// reported.
    pub(crate) fn misspelt_in(&mut self, table: &str) {
        self.1.push(format!("~{table}"));
    }

    /// Locates every problem in `text`.
    pub(crate) fn locate(&mut self, text: &str) {
        let l = super::locate::Locator::new(text);
        for p in &mut self.0 {
            if p.line_col.is_none() {
                p.line_col = l.find(&p.at);
            }
        }
    }

    /// Names the file every problem is in.
    pub(crate) fn in_file(mut self, file: &str) -> Problems {
        for p in &mut self.0 {
            p.file = Some(file.to_owned());
        }
        self
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Deserializes one section; on failure, checks each key alone so that every
/// bad key is reported, not just the first, and builds the section from the
/// good keys: a bad key never makes its neighbours look missing.
pub(super) fn section<T: DeserializeOwned + Default>(name: &str, doc: &toml::Table, p: &mut Problems) -> T {
    let Some(value) = doc.get(name) else { return T::default() };
    let Some(table) = value.as_table() else {
        p.push(name, "expected a table, e.g. [".to_owned() + name + "]");
        p.refused(name.to_owned());
        return T::default();
    };
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(t) => t,
        Err(whole) => {
            let before = p.0.len();
            let mut good = toml::Table::new();
            for (k, v) in table {
                let mut one = toml::Table::new();
                one.insert(k.clone(), v.clone());
                match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(one)) {
                    Ok(_) => {
                        good.insert(k.clone(), v.clone());
                    }
                    Err(e) => {
                        let message = e.inner().to_string();
                        p.push(format!("{name}.{}", e.path()), clean_message(&message));
                        // A misspelt key leaves its table's meaning unknown
                        // (`publik = true` would make a route protected).
                        if message.starts_with("unknown field") {
                            p.misspelt_in(name);
                        } else {
                            p.refused(format!("{name}.{k}"));
                        }
                    }
                }
            }
            if p.0.len() == before {
                p.push(format!("{name}.{}", whole.path()), clean_message(&whole.inner().to_string()));
                p.refused(name.to_owned());
                return T::default();
            }
            serde_path_to_error::deserialize::<_, T>(toml::Value::Table(good)).unwrap_or_default()
        }
    }
}

/// `[[name]]`: an array of tables, each checked on its own.
pub(super) fn table_array<T: DeserializeOwned + Default>(
    name: &str,
    doc: &toml::Table,
    p: &mut Problems,
) -> Vec<T> {
    let Some(v) = doc.get(name) else { return Vec::new() };
    let Some(items) = v.as_array() else {
        p.push(name, format!("expected [[{name}]] tables"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut wrapper = toml::Table::new();
        wrapper.insert(format!("{name}[{i}]"), item.clone());
        out.push(section(&format!("{name}[{i}]"), &wrapper, p));
    }
    out
}

/// serde's messages in user words, without echoing the value (it could be a
/// secret typed in the wrong place): `invalid type: integer `5`, expected a
/// string` becomes `expected text, found a number`.
fn clean_message(m: &str) -> String {
    // toml appends "\nin `key`": the key is already in the problem's place.
    let m = m.split('\n').next().unwrap_or(m).trim();
    if m.starts_with("data did not match any variant") {
        return "invalid value: expected a string or false (or a table where documented)".to_owned();
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = match found.split([' ', '`']).next().unwrap_or("") {
            "string" => "text",
            "integer" | "float" => "a number",
            "boolean" => "true or false",
            "sequence" => "a list",
            "map" => "a table",
            other => other,
        };
        return format!("expected {}, found {found}", user_type(expected));
    }
    if let Some(rest) = m.strip_prefix("invalid value: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("invalid value: expected {}", user_type(expected));
    }
    m.to_owned()
}

/// serde's names of expected types in user words.
fn user_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i64" => "a whole number",
        "a boolean" | "bool" => "true or false",
        "a string" => "text (in quotes)",
        "a sequence" => "a list, e.g. [\"a\", \"b\"]",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        "" => "another type",
        e => e,
    }
}
