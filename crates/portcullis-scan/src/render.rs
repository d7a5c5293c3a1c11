//! Report renderers: plain or colored text, JSON (schema [`crate::SCHEMA`],
//! `docs/scan.md`) and SARIF 2.1.0.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde_json::{Value, json};

use crate::{Outcome, Report};

fn style(outcome: Outcome) -> Style {
    let color = match outcome {
        Outcome::Pass => AnsiColor::Green,
        Outcome::Warn => AnsiColor::Yellow,
        Outcome::Fail => AnsiColor::Red,
        Outcome::Skip => AnsiColor::BrightBlack,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

/// The report as text; `color` adds ANSI colors (for a terminal).
pub fn text(report: &Report, color: bool) -> String {
    let paint = |s: Style, text: &str| if color { format!("{s}{text}{s:#}") } else { text.to_owned() };
    let [pass, warn, fail, skip] = report.counts();
    let mut out = String::new();
    let mode = if report.active { "passive and active checks" } else { "passive checks; --active for more" };
    let _ = writeln!(out, "portcullis scan {} ({mode})", report.target);
    let grade_style = match report.grade {
        crate::Grade::APlus | crate::Grade::A => style(Outcome::Pass),
        crate::Grade::B | crate::Grade::C => style(Outcome::Warn),
        _ => style(Outcome::Fail),
    };
    let _ = writeln!(
        out,
        "Grade {}  score {}/100: {pass} pass, {warn} warn, {fail} fail, {skip} skipped; {} requests\n",
        paint(grade_style, report.grade.name()),
        report.score,
        report.requests
    );
    for f in &report.findings {
        let tag = format!("{:<4}", f.outcome.name().to_ascii_uppercase());
        let _ =
            writeln!(out, "{}  {:<4} {:<34} {}", paint(style(f.outcome), &tag), f.control, f.id, f.detail);
        if matches!(f.outcome, Outcome::Warn | Outcome::Fail) {
            let _ = writeln!(out, "            fix: {}", f.fix);
            for e in f.evidence.iter().take(2) {
                for line in e.request.lines() {
                    let _ = writeln!(out, "            > {line}");
                }
                for line in e.response.lines() {
                    let _ = writeln!(out, "            < {line}");
                }
            }
        }
    }
    out.push_str("\nGrading rules and every check: docs/scan.md\n");
    out
}

/// The report as JSON.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".to_owned())
}

/// The report as a SARIF 2.1.0 log: one rule per check, one result per
/// finding (`kind` pass, fail or notApplicable; `level` error for a fail,
/// warning for a warn).
pub fn sarif(report: &Report) -> String {
    let rules: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.title,
                "shortDescription": { "text": format!("{} {}", f.control, f.title) },
                "help": { "text": format!("Portcullis: {}", f.fix) },
                "properties": { "control": f.control, "tags": [f.control, "security"] }
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (kind, level) = match f.outcome {
                Outcome::Pass => ("pass", "none"),
                Outcome::Skip => ("notApplicable", "none"),
                Outcome::Warn => ("fail", "warning"),
                Outcome::Fail => ("fail", "error"),
            };
            let text = if f.detail.is_empty() { f.title.to_owned() } else { f.detail.clone() };
            json!({
                "ruleId": f.id,
                "ruleIndex": i,
                "kind": kind,
                "level": level,
                "message": { "text": text },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": report.target } } }],
                "properties": { "control": f.control, "active": f.active, "evidence": f.evidence }
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "portcullis-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/portcullis/docs/scan.md",
                "rules": rules
            }},
            "results": results,
            "properties": { "grade": report.grade.name(), "score": report.score }
        }]
    });
    serde_json::to_string_pretty(&log).unwrap_or_else(|_| "{}".to_owned())
}

/// Two reports of the same checks in two columns (for `portcullis demo`):
/// each check's verdict on `left` and on `right`, and both grades.
pub fn side_by_side(left: &Report, right: &Report, names: [&str; 2], color: bool) -> String {
    let paint = |o: Outcome| {
        let tag = format!("{:<6}", o.name().to_ascii_uppercase());
        if color { format!("{}{tag}{:#}", style(o), style(o)) } else { tag }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{:<4} {:<34} {:<12} {:<12}", "", "check", names[0], names[1]);
    for l in &left.findings {
        let Some(r) = right.findings.iter().find(|r| r.id == l.id) else { continue };
        let _ =
            writeln!(out, "{:<4} {:<34} {}       {}", l.control, l.id, paint(l.outcome), paint(r.outcome));
    }
    let _ = writeln!(
        out,
        "\n{:<39} {:<12} {:<12}",
        "grade (score)",
        format!("{} ({})", left.grade.name(), left.score),
        format!("{} ({})", right.grade.name(), right.score)
    );
    out
}
