//! Sizes (`100kb`, `1mb`, `1MiB`, `512`), durations (`250ms`, `30s`, `5m`,
//! `1h`, `365d`) and keywords (`"fail_open"`) as written in the config
//! file: the one parser of each, as serde types ([`Size`], [`Dur`],
//! [`keywords!`]) so that a raw struct field is typed and a bad value is
//! reported at its key like any other type error; and the one range check
//! ([`within`]) every bounded number, size and duration uses.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::Problems;

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
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if d.as_secs() >= 86_400 && d.as_secs().is_multiple_of(86_400) {
        format!("{}d", d.as_secs() / 86_400)
    } else if d.as_secs() >= 3600 && d.as_secs().is_multiple_of(3600) {
        format!("{}h", d.as_secs() / 3600)
    } else if d.as_secs() >= 60 && d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Renders a size the way the file writes it.
pub(crate) fn show_size(n: u64) -> String {
    const MB: u64 = 1024 * 1024;
    const GB: u64 = 1024 * MB;
    if n >= GB && n.is_multiple_of(GB) {
        format!("{}gb", n / GB)
    } else if n >= MB && n.is_multiple_of(MB) {
        format!("{}mb", n / MB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}kb", n / 1024)
    } else if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// A duration field: `"30s"`. A number or a string without a unit is a
/// type error at its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Dur(pub(crate) Duration);

/// A size field: `"100kb"`, `"1mb"`, or a whole number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Size(pub(crate) u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"100kb\" or \"1mb\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size(s).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n).map(Size).map_err(|_| E::custom("a size can't be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Declares a keyword field: a newtype over the value a keyword stands for,
/// deserialized from exactly these words. Anything else is a problem at
/// the key listing the words, without echoing what was written.
macro_rules! keywords {
    ($(#[$m:meta])* $name:ident => $target:ty { $($word:literal => $value:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name(pub(crate) $target);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const WORDS: &[&str] = &[$($word),+];
                fn words() -> String {
                    WORDS.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ")
                }
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {}", words())
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        match s {
                            $($word => Ok($name($value)),)+
                            _ => Err(E::custom(format!("expected one of {}", words()))),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use keywords;

/// A value with a range: how it reads in a problem message.
pub(crate) trait Bounded: Copy + PartialOrd {
    /// The value as the file writes it.
    fn show(self) -> String;
}

impl Bounded for Duration {
    fn show(self) -> String {
        show_duration(self)
    }
}

impl Bounded for Dur {
    fn show(self) -> String {
        show_duration(self.0)
    }
}

impl Bounded for Size {
    fn show(self) -> String {
        show_size(self.0)
    }
}

impl Bounded for u64 {
    fn show(self) -> String {
        self.to_string()
    }
}

/// A timeout: at least 1ms, at most a day.
pub(crate) fn timeout(at: &str, value: Option<Dur>, default: Duration, p: &mut Problems) -> Duration {
    within(at, value.map(|d| d.0), default, Duration::from_millis(1), Duration::from_secs(86_400), p)
}

/// The one range check: `value` (or `default` when the key is absent) must
/// lie in `min..=max`; otherwise a problem at `at` and the default.
pub(crate) fn within<T: Bounded>(
    at: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
    p: &mut Problems,
) -> T {
    match value {
        None => default,
        Some(v) if v >= min && v <= max => v,
        Some(_) => {
            p.push(at, format!("must be between {} and {}", min.show(), max.show()));
            p.refused(at.to_owned());
            default
        }
    }
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
        assert_eq!(show_size(1_048_576), "1mb");
        assert_eq!(show_size(8192), "8kb");
        assert_eq!(show_size(1), "1 byte");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("365d"), Ok(Duration::from_secs(31_536_000)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(show_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(show_duration(Duration::from_millis(1)), "1ms");
    }

    #[derive(serde::Deserialize)]
    struct Typed {
        d: Option<Dur>,
        s: Option<Size>,
    }

    #[test]
    fn typed_fields_parse_and_refuse_with_a_message_that_does_not_echo() {
        let t: Typed = toml::from_str("d = \"5m\"\ns = \"2kb\"").unwrap();
        assert_eq!((t.d, t.s), (Some(Dur(Duration::from_secs(300))), Some(Size(2048))));
        let t: Typed = toml::from_str("s = 512").unwrap();
        assert_eq!(t.s, Some(Size(512)));
        for (text, want) in [
            ("d = 30", "expected a duration"),
            ("d = \"30\"", "missing or unknown duration unit"),
            ("s = \"lots-of-secret\"", "expected a size"),
            ("s = -1", "negative"),
        ] {
            // As the loader does it: from a parsed value, so no source snippet.
            let v: toml::Value = toml::from_str(text).unwrap();
            let e = v.try_into::<Typed>().err().unwrap().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("lots-of-secret"), "{e}");
        }
    }

    #[test]
    fn within_reports_the_range_in_file_units() {
        let mut p = Problems::default();
        let one = Duration::from_millis(1);
        let ten = Duration::from_secs(10);
        assert_eq!(within("a", None, ten, one, ten, &mut p), ten);
        assert_eq!(within("a", Some(one), ten, one, ten, &mut p), one);
        assert_eq!(within("b", Some(Duration::ZERO), ten, one, ten, &mut p), ten);
        assert_eq!(within("c", Some(Size(1)), Size(9), Size(8192), Size(1 << 20), &mut p), Size(9));
        let msgs: Vec<String> = p.0.iter().map(|x| format!("{}: {}", x.at, x.message)).collect();
        assert_eq!(msgs, ["b: must be between 1ms and 10s", "c: must be between 8kb and 1mb"]);
    }
}
