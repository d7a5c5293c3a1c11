//! The score and the grade (`docs/scan.md` states the same rules).
//!
//! The score starts at 100. A `fail` costs its check's weight, a `warn` a
//! third of it (at least 2); `pass` and `skip` cost nothing; the score stops
//! at 0. Grades: A+ at 100, A from 90, B from 75, C from 60, D from 45, F
//! below. One failed check of weight 20 or more caps the grade at B, two
//! at C: a missing CSP or a reflected credentialed CORS origin is never an A.

use serde::Serialize;

use crate::{Finding, Outcome};

/// A+ to F, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Grade {
    /// 100: every check passed or was skipped.
    #[serde(rename = "A+")]
    APlus,
    /// 90 or more.
    A,
    /// 75 or more.
    B,
    /// 60 or more.
    C,
    /// 45 or more.
    D,
    /// Below 45.
    F,
}

impl Grade {
    /// `A+`, `A`, ... `F`.
    pub fn name(self) -> &'static str {
        match self {
            Grade::APlus => "A+",
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::F => "F",
        }
    }

    /// Parses `A+`, `a`, `B`, ... (for `--fail-under`).
    pub fn parse(s: &str) -> Option<Grade> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "A+" => Grade::APlus,
            "A" => Grade::A,
            "B" => Grade::B,
            "C" => Grade::C,
            "D" => Grade::D,
            "F" => Grade::F,
            _ => return None,
        })
    }
}

/// What a warn costs for a check of `weight`.
pub fn warn_cost(weight: u32) -> u32 {
    (weight / 3).max(2)
}

/// The score and grade of a set of findings.
pub fn grade(findings: &[Finding]) -> (u32, Grade) {
    let lost: u32 = findings
        .iter()
        .map(|f| match f.outcome {
            Outcome::Fail => f.weight,
            Outcome::Warn => warn_cost(f.weight),
            Outcome::Pass | Outcome::Skip => 0,
        })
        .sum();
    let score = 100u32.saturating_sub(lost);
    let by_score = match score {
        100 => Grade::APlus,
        90.. => Grade::A,
        75.. => Grade::B,
        60.. => Grade::C,
        45.. => Grade::D,
        _ => Grade::F,
    };
    let major = findings.iter().filter(|f| f.outcome == Outcome::Fail && f.weight >= 20).count();
    let cap = match major {
        0 => Grade::APlus,
        1 => Grade::B,
        _ => Grade::C,
    };
    (score, by_score.max(cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::finding;

    fn f(outcome: Outcome, weight: u32) -> Finding {
        finding("x", "C0", "x", weight, "").set(outcome, "")
    }

    #[test]
    fn scores_and_grades() {
        assert_eq!(grade(&[f(Outcome::Pass, 20), f(Outcome::Skip, 20)]), (100, Grade::APlus));
        assert_eq!(grade(&[f(Outcome::Warn, 6)]), (98, Grade::A));
        assert_eq!(grade(&[f(Outcome::Warn, 20)]), (94, Grade::A));
        assert_eq!(grade(&[f(Outcome::Fail, 10)]), (90, Grade::A));
        assert_eq!(grade(&[f(Outcome::Fail, 10), f(Outcome::Fail, 10)]), (80, Grade::B));
        // One major failure caps at B even with a high score, two at C.
        assert_eq!(grade(&[f(Outcome::Fail, 20)]), (80, Grade::B));
        assert_eq!(grade(&[f(Outcome::Fail, 20), f(Outcome::Fail, 20)]), (60, Grade::C));
        assert_eq!(
            grade(&[f(Outcome::Fail, 25), f(Outcome::Fail, 25), f(Outcome::Fail, 20)]),
            (30, Grade::F)
        );
        assert_eq!(grade(&vec![f(Outcome::Fail, 20); 10]), (0, Grade::F));
        assert_eq!(Grade::parse("a+"), Some(Grade::APlus));
        assert_eq!(Grade::parse("Z"), None);
        assert!(Grade::APlus < Grade::F);
    }
}
