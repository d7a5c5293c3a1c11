//! Sizes (`100kb`, `1mb`, `1MiB`, `512`) and durations (`250ms`, `30s`, `5m`,
//! `1h`, `365d`) as written in the config file.

use std::time::Duration;

/// Parses a byte size. `kb`/`mb`/`gb` are 1024-based like Express's `bytes`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a size such as \"100kb\" or \"1mb\"".to_owned())?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" | "kib" | "k" => 1024,
        "mb" | "mib" | "m" => 1024 * 1024,
        "gb" | "gib" | "g" => 1024 * 1024 * 1024,
        _ => return Err("unknown size unit (use b, kb, mb or gb)".to_owned()),
    };
    n.checked_mul(mult).ok_or_else(|| "size too large".to_owned())
}

/// Parses a duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a duration such as \"30s\" or \"500ms\"".to_owned())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err("missing or unknown duration unit (use ms, s, m, h or d)".to_owned()),
    };
    Ok(d)
}

/// Renders a duration the way the file writes it.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) { format!("{ms}ms") } else { format!("{}s", d.as_secs()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100kb"), Ok(102_400));
        assert_eq!(parse_size("1MB"), Ok(1_048_576));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1tb").is_err());
        assert!(parse_size("99999999999999gb").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("365d"), Ok(Duration::from_secs(31_536_000)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
