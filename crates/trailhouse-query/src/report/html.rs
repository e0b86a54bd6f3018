//! The report as one self-contained HTML file: inline CSS and SVG charts, no scripts, no fonts
//! or images from anywhere, readable on a laptop screen and printed.

use std::fmt::Write;

use super::{ControlResult, Count, DayCount, Report};

pub use crate::escape::html as esc;

const STYLE: &str = r#"
:root { --ink:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#f6f7f9; --ok:#1f7a4d; --bad:#b3261e; --bar:#3b6ea8; --err:#c8553d; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; color:var(--ink); background:#fff; }
main { max-width:1180px; margin:0 auto; padding:24px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:17px; margin:28px 0 10px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:15px; margin:0 0 6px; }
.muted { color:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:10px; margin:14px 0; }
.card { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.card b { display:block; font-size:20px; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:16px; }
figure { margin:0; background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
figcaption { font-weight:600; margin-bottom:6px; }
svg { width:100%; height:auto; display:block; }
svg text { font:11px system-ui,sans-serif; fill:var(--muted); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--bg); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; }
.badge.findings { background:var(--bad); } .badge.clean { background:var(--ok); }
.scroll { overflow-x:auto; }
.events td { white-space:nowrap; max-width:420px; overflow:hidden; text-overflow:ellipsis; }
pre { background:var(--bg); border:1px solid var(--line); padding:8px; overflow-x:auto; font-size:12px; white-space:pre-wrap; word-break:break-all; }
section.control { border:1px solid var(--line); border-radius:6px; padding:12px; margin:12px 0; }
@media print {
  main { max-width:none; padding:0; } .charts { display:block; } figure { margin-bottom:10px; break-inside:avoid; }
  section.control { break-inside:avoid-page; } .events td { white-space:normal; max-width:none; } body { font-size:11px; }
}
"#;

/// Renders the report.
pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("trailhouse report: {}", r.packs.join(", "));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>",
        esc(&title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1><div class=\"muted\">Window {} to {} (UTC) · generated {} by trailhouse {} · report format {}</div>",
        esc(&title),
        esc(&r.window.since),
        esc(&r.window.until),
        esc(&r.generated_at),
        esc(&r.trailhouse_version),
        r.report_version
    );
    let t = &r.table;
    let cards = [
        (
            "Controls with findings",
            format!(
                "{} of {}",
                r.summary.controls_with_findings, r.summary.controls
            ),
        ),
        (
            "Matches, summed over controls",
            thousands(r.summary.findings),
        ),
        ("Events in window", thousands(t.records_in_window)),
        (
            "Table",
            format!(
                "version {}",
                t.version.map_or("-".to_string(), |v| v.to_string())
            ),
        ),
        (
            "Last ingest",
            t.last_commit.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "Input",
            format!(
                "{} files, {} records",
                thousands(t.files),
                thousands(t.records)
            ),
        ),
        (
            "Quarantined",
            format!("{} records", thousands(t.quarantined)),
        ),
        (
            "From verified log files",
            t.integrity.as_ref().map_or_else(
                || "not checked (trailhouse verify --record)".to_string(),
                |i| {
                    format!(
                        "{:.1} % ({} events; {} with problems, {} unchecked)",
                        i.percent_verified(),
                        thousands(i.events_verified),
                        thousands(i.events_with_problems),
                        thousands(i.events_unchecked)
                    )
                },
            ),
        ),
    ];
    h.push_str("<div class=\"cards\">");
    for (k, v) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><span class=\"muted\">{}</span><b>{}</b></div>",
            esc(k),
            esc(&v)
        );
    }
    h.push_str("</div>");
    let _ = write!(
        h,
        "<div class=\"muted\">Lake <code>{}</code>. Quarantined records had no usable eventTime or were not JSON objects; \
         list them with <code>trailhouse sql \"SELECT * FROM quarantine\"</code>.</div>",
        esc(&t.lake)
    );

    h.push_str("<h2>Overview</h2><div class=\"charts\">");
    figure(
        &mut h,
        "Events per day (errors in red)",
        &day_bars(&r.activity.days),
    );
    figure(&mut h, "Error rate per day", &error_rate(&r.activity.days));
    let per_control: Vec<(String, u64, bool)> = r
        .controls
        .iter()
        .map(|c| {
            // Security-topic controls are named after their query: no need to say it twice.
            let name = short_name(&c.query);
            let label = if c.id == name {
                name.to_string()
            } else {
                format!("{} {name}", c.id)
            };
            (label, c.count, c.count > 0)
        })
        .collect();
    figure(&mut h, "Findings per control", &hbars(&per_control));
    let fp: Vec<(String, u64, bool)> = counts(&r.activity.finding_principals, true);
    figure(&mut h, "Principals in findings", &hbars(&fp));
    figure(
        &mut h,
        "Top principals (all events in window)",
        &hbars(&counts(&r.activity.top_principals, false)),
    );
    figure(
        &mut h,
        "Top source IPs (all events in window)",
        &hbars(&counts(&r.activity.top_source_ips, false)),
    );
    h.push_str("</div>");

    h.push_str("<h2>Controls</h2><div class=\"scroll\"><table><thead><tr><th>Status</th><th>Pack</th><th>Control</th>\
                <th>Query</th><th>Security Hub</th><th class=\"num\">Count</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>");
    for c in &r.controls {
        let _ = write!(
            h,
            "<tr><td><span class=\"badge {}\">{}</span></td><td>{}</td><td><a href=\"#{}\">{}</a></td><td title=\"{}\">{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.status),
            esc(&c.status),
            esc(&c.pack),
            anchor(c),
            esc(&c.label()),
            esc(&c.title),
            esc(&c.query),
            esc(c.security_hub.as_deref().unwrap_or("")),
            c.count,
            esc(c.first_seen.as_deref().unwrap_or("")),
            esc(c.last_seen.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table></div>");
    if !r.refused_rules.is_empty() {
        h.push_str("<h2>Rules not run</h2><p>These Sigma rules do not compile (they would not run as written):</p><ul>");
        for f in &r.refused_rules {
            let _ = write!(
                h,
                "<li><code>{}</code> ({}): {}</li>",
                esc(&f.query),
                esc(f.title.as_deref().unwrap_or(&f.file)),
                esc(&f.reason)
            );
        }
        h.push_str("</ul>");
    }

    h.push_str("<h2>Findings</h2>");
    let mut any = false;
    for c in r.controls.iter().filter(|c| c.count > 0) {
        any = true;
        control(&mut h, c);
    }
    if !any {
        h.push_str("<p>No control matched any event in the window.</p>");
    }
    h.push_str("</main></body></html>\n");
    h
}

fn anchor(c: &ControlResult) -> String {
    esc(&format!("{}-{}-{}", c.pack, c.id, short_name(&c.query)))
}

fn short_name(query: &str) -> &str {
    query.rsplit('/').next().unwrap_or(query)
}

fn counts(items: &[Count], flag: bool) -> Vec<(String, u64, bool)> {
    items
        .iter()
        .map(|c| (c.value.clone(), c.count, flag))
        .collect()
}

fn figure(h: &mut String, caption: &str, svg: &str) {
    let _ = write!(
        h,
        "<figure><figcaption>{}</figcaption>{svg}</figure>",
        esc(caption)
    );
}

fn control(h: &mut String, c: &ControlResult) {
    let _ = write!(
        h,
        "<section class=\"control\" id=\"{}\"><h3>{} {} <code>{}</code> <span class=\"badge findings\">{} matching</span></h3><p>{}</p>",
        anchor(c),
        esc(&c.pack),
        esc(&c.id),
        esc(&c.query),
        c.count,
        esc(&c.title)
    );
    let _ = write!(
        h,
        "<p class=\"muted\">First seen {} · last seen {}{}</p>",
        esc(c.first_seen.as_deref().unwrap_or("-")),
        esc(c.last_seen.as_deref().unwrap_or("-")),
        c.security_hub
            .as_deref()
            .map(|s| format!(" · Security Hub {}", esc(s)))
            .unwrap_or_default()
    );
    if let Some(rule) = c.rule_line() {
        let _ = write!(h, "<p class=\"muted\">{}</p>", esc(&rule));
    }
    if !c.principals.is_empty() {
        h.push_str("<table><thead><tr><th>Principal</th><th>Origin of its temporary credentials</th><th class=\"num\">Events</th></tr></thead><tbody>");
        for p in &c.principals {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&p.principal),
                esc(&p.origins.join("; ")),
                p.count
            );
        }
        h.push_str("</tbody></table>");
    }
    if !c.source_ips.is_empty() {
        let ips: Vec<String> = c
            .source_ips
            .iter()
            .map(|i| format!("{} ({})", esc(&i.value), i.count))
            .collect();
        let _ = write!(h, "<p><b>Source IPs:</b> {}</p>", ips.join(", "));
    }
    let _ = write!(
        h,
        "<p class=\"muted\">{} of {} matching rows:</p><div class=\"scroll\"><table class=\"events\"><thead><tr>",
        c.events.len(),
        c.count
    );
    for col in &c.columns {
        let _ = write!(h, "<th>{}</th>", esc(col));
    }
    h.push_str("</tr></thead><tbody>");
    for e in &c.events {
        h.push_str("<tr>");
        for col in &c.columns {
            let v = super::value_text(e.get(col));
            let _ = write!(h, "<td title=\"{}\">{}</td>", esc(&v), esc(&v));
        }
        h.push_str("</tr>");
    }
    let _ = write!(
        h,
        "</tbody></table></div><p>Reproduce:</p><pre>{}</pre></section>",
        esc(&c.command)
    );
}

/// Whether day `i` of `n` gets an axis label: every `every`-th day, and the last day, whose
/// label must not run into the one before it.
fn tick(i: usize, n: usize, every: usize) -> bool {
    i + 1 == n || (i.is_multiple_of(every) && n - 1 - i > every / 2)
}

/// 1234567 as "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A readable axis maximum: 1, 2 or 5 times a power of ten at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn no_data() -> String {
    "<svg viewBox=\"0 0 600 40\" role=\"img\"><text x=\"8\" y=\"24\">no events in the window</text></svg>".into()
}

/// Stacked bars: events per day, the errors part in red.
fn day_bars(days: &[DayCount]) -> String {
    if days.is_empty() {
        return no_data();
    }
    let (w, hgt, left, bottom) = (600.0, 200.0, 48.0, 22.0);
    let max = nice_max(days.iter().map(|d| d.events).max().unwrap_or(0) as f64);
    let plot_w = w - left - 8.0;
    let plot_h = hgt - bottom - 8.0;
    let step = plot_w / days.len() as f64;
    let bar = (step * 0.8).max(1.0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"events per day\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d9dee7\"/>\
         <text x=\"{}\" y=\"12\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        8.0 + plot_h,
        w - 8.0,
        8.0 + plot_h,
        left - 4.0,
        max as u64,
        left - 4.0,
        8.0 + plot_h
    );
    let label_every = (days.len() / 8).max(1);
    for (i, d) in days.iter().enumerate() {
        let x = left + i as f64 * step + (step - bar) / 2.0;
        let total_h = d.events as f64 / max * plot_h;
        let err_h = d.errors as f64 / max * plot_h;
        let y = 8.0 + plot_h - total_h;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#3b6ea8\"><title>{}: {} events, {} errors</title></rect>",
            (total_h - err_h).max(0.0),
            esc(&d.day),
            d.events,
            d.errors
        );
        if err_h > 0.0 {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{err_h:.1}\" fill=\"#c8553d\"/>",
                8.0 + plot_h - err_h
            );
        }
        if tick(i, days.len(), label_every) {
            let (anchor, at) = if i + 1 == days.len() && days.len() > 1 {
                ("end", x + bar)
            } else {
                ("middle", x + bar / 2.0)
            };
            let _ = write!(
                s,
                "<text x=\"{at:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                hgt - 6.0,
                esc(d.day.get(5..).unwrap_or(&d.day))
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A line of errors / events per day, in percent.
fn error_rate(days: &[DayCount]) -> String {
    if days.is_empty() {
        return no_data();
    }
    let (w, hgt, left, bottom) = (600.0, 200.0, 48.0, 22.0);
    let rates: Vec<f64> = days
        .iter()
        .map(|d| {
            if d.events == 0 {
                0.0
            } else {
                d.errors as f64 * 100.0 / d.events as f64
            }
        })
        .collect();
    let max = nice_max(rates.iter().cloned().fold(0.0, f64::max));
    let plot_w = w - left - 8.0;
    let plot_h = hgt - bottom - 8.0;
    let x_of = |i: usize| {
        if days.len() == 1 {
            left + plot_w / 2.0
        } else {
            left + i as f64 * plot_w / (days.len() - 1) as f64
        }
    };
    let points: Vec<String> = rates
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{:.1},{:.1}", x_of(i), 8.0 + plot_h - r / max * plot_h))
        .collect();
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"error rate per day\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d9dee7\"/>\
         <text x=\"{}\" y=\"12\" text-anchor=\"end\">{max}%</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0%</text>\
         <polyline fill=\"none\" stroke=\"#c8553d\" stroke-width=\"2\" points=\"{}\"/>",
        8.0 + plot_h,
        w - 8.0,
        8.0 + plot_h,
        left - 4.0,
        left - 4.0,
        8.0 + plot_h,
        points.join(" ")
    );
    let label_every = (days.len() / 8).max(1);
    for (i, (d, r)) in days.iter().zip(&rates).enumerate() {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#c8553d\"><title>{}: {r:.1}% ({} of {})</title></circle>",
            x_of(i),
            8.0 + plot_h - r / max * plot_h,
            esc(&d.day),
            d.errors,
            d.events
        );
        if tick(i, days.len(), label_every) {
            let anchor = if i + 1 == days.len() && days.len() > 1 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x_of(i),
                hgt - 6.0,
                esc(d.day.get(5..).unwrap_or(&d.day))
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars with labels; `flag` colours a bar red (a finding) instead of blue.
fn hbars(items: &[(String, u64, bool)]) -> String {
    if items.is_empty() {
        return no_data();
    }
    let row = 18.0;
    let (w, label_w) = (600.0, 300.0);
    let hgt = row * items.len() as f64 + 6.0;
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    let plot_w = w - label_w - 60.0;
    let mut s = format!("<svg viewBox=\"0 0 {w} {hgt}\" role=\"img\">");
    for (i, (label, n, flag)) in items.iter().enumerate() {
        let y = 3.0 + i as f64 * row;
        let shown: String = if label.chars().count() > 48 {
            let tail: String = label
                .chars()
                .rev()
                .take(47)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("…{tail}")
        } else {
            label.clone()
        };
        let bw = if *n == 0 {
            0.0
        } else {
            (*n as f64 / max * plot_w).max(2.0)
        };
        let colour = if *flag { "#b3261e" } else { "#3b6ea8" };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>\
             <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 6.0,
            y + row * 0.7,
            esc(label),
            esc(&shown),
            row - 5.0,
            label_w + bw + 4.0,
            y + row * 0.7,
            thousands(*n)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_scales() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(4000.0), 5000.0);
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_337_204), "1,337,204");
        // 90 days labelled every 11th: day 88 is too close to the last to get its own.
        assert!(tick(0, 90, 11) && tick(89, 90, 11) && tick(77, 90, 11) && !tick(88, 90, 11));
        assert!((0..3).all(|i| tick(i, 3, 1)));
    }
}
