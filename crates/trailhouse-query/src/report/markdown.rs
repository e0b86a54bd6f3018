//! The report as Markdown, for tickets and chat: a summary table of every control, then the
//! findings with their principals, a few rows and the command that lists them all.

use std::fmt::Write;

use super::Report;

/// How many rows of each control the Markdown shows (the JSON and HTML keep the full sample).
const ROWS: usize = 10;

/// Attacker text (any value from the trail) for a table cell or a line of prose.
use crate::escape::markdown as cell;

/// A name as inline code: backslash escapes are not read inside a code span, so a name is
/// written as it is, unless a backtick or a pipe (which would end the span or the cell) asks
/// for escaped text instead.
fn code(name: &str) -> String {
    if name.contains(['`', '|']) || name.chars().any(char::is_control) {
        cell(name)
    } else {
        format!("`{name}`")
    }
}

pub fn render(r: &Report) -> String {
    let mut m = String::new();
    let t = &r.table;
    let _ = writeln!(m, "# trailhouse report: {}\n", r.packs.join(", "));
    let _ = writeln!(
        m,
        "Window **{}** to **{}** (UTC) · generated {} by trailhouse {} · report format {}\n",
        r.window.since, r.window.until, r.generated_at, r.trailhouse_version, r.report_version
    );
    let _ = writeln!(
        m,
        "**{} of {} controls matched**, {} matches summed over controls. Table `{}` version {}, last ingest {}; \
         input {} files, {} records ({} in the window), {} quarantined.\n",
        r.summary.controls_with_findings,
        r.summary.controls,
        r.summary.findings,
        t.lake,
        t.version.map_or("-".into(), |v| v.to_string()),
        t.last_commit.as_deref().unwrap_or("-"),
        t.files,
        t.records,
        t.records_in_window,
        t.quarantined
    );
    let _ = writeln!(
        m,
        "{}\n",
        t.integrity.as_ref().map_or_else(
            || "Integrity: the log files were not checked against CloudTrail's digests \
                (`trailhouse verify --record`)."
                .to_string(),
            |i| format!(
                "Integrity: **{:.1} %** of the window's events came from log files verified \
                 against CloudTrail's signed digests ({} events; {} from files with problems, \
                 {} from files never checked; last check {}).",
                i.percent_verified(),
                i.events_verified,
                i.events_with_problems,
                i.events_unchecked,
                i.last_checked.as_deref().unwrap_or("-")
            )
        )
    );
    m.push_str(
        "| Status | Pack | Control | Query | Security Hub | Count | First seen | Last seen |\n",
    );
    m.push_str("|---|---|---|---|---|---:|---|---|\n");
    for c in &r.controls {
        let status = if c.count > 0 { "**FINDINGS**" } else { "clean" };
        let _ = writeln!(
            m,
            "| {status} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&c.pack),
            cell(&c.label()),
            code(&c.query),
            cell(c.security_hub.as_deref().unwrap_or("")),
            c.count,
            cell(c.first_seen.as_deref().unwrap_or("")),
            cell(c.last_seen.as_deref().unwrap_or(""))
        );
    }
    if !r.refused_rules.is_empty() {
        m.push_str("\nSigma rules not run (they do not compile):\n\n");
        for f in &r.refused_rules {
            let _ = writeln!(
                m,
                "- {} ({}): {}",
                code(&f.query),
                cell(f.title.as_deref().unwrap_or(&f.file)),
                cell(&f.reason)
            );
        }
    }
    for c in r.controls.iter().filter(|c| c.count > 0) {
        let _ = writeln!(
            m,
            "\n## {} {} (`{}`): {} matching\n\n{}\n",
            c.pack, c.id, c.query, c.count, c.title
        );
        if let Some(rule) = c.rule_line() {
            let _ = writeln!(m, "{}\n", cell(&rule));
        }
        if !c.principals.is_empty() {
            m.push_str(
                "| Principal | Origin of its temporary credentials | Events |\n|---|---|---:|\n",
            );
            for p in &c.principals {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} |",
                    cell(&p.principal),
                    cell(&p.origins.join("; ")),
                    p.count
                );
            }
            m.push('\n');
        }
        if !c.source_ips.is_empty() {
            let ips: Vec<String> = c
                .source_ips
                .iter()
                .map(|i| format!("{} ({})", cell(&i.value), i.count))
                .collect();
            let _ = writeln!(m, "Source IPs: {}\n", ips.join(", "));
        }
        let shown = c.events.len().min(ROWS);
        let _ = writeln!(m, "{shown} of {} rows:\n", c.count);
        let _ = writeln!(
            m,
            "| {} |",
            c.columns
                .iter()
                .map(|c| cell(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(m, "|{}", "---|".repeat(c.columns.len()));
        for e in c.events.iter().take(ROWS) {
            let values: Vec<String> = c
                .columns
                .iter()
                .map(|col| cell(&super::value_text(e.get(col))))
                .collect();
            let _ = writeln!(m, "| {} |", values.join(" | "));
        }
        let _ = writeln!(m, "\n```\n{}\n```", c.command);
    }
    m
}
