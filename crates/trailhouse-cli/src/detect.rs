//! `trailhouse detect`: the Sigma rules (built in, and the user's) over a window, as the same
//! report `report` writes, and `detect --list` to see which rules run.

use std::process::ExitCode;

use trailhouse_lake::Lake;
use trailhouse_query::saved::{Catalog, SavedQuery};
use trailhouse_query::sigma;

use crate::cli::{DetectArgs, Level, ReportFormat};

pub async fn run(lake: &Lake, args: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut catalog = Catalog::builtin()?;
    for dir in &args.rules {
        anyhow::ensure!(
            dir.is_dir(),
            "--rules {}: not a directory of Sigma rules",
            dir.display()
        );
        catalog.add_dir(dir)?;
    }
    if let Some(min) = args.min_level {
        catalog.retain(|q| q.rule.is_none() || level(q).is_some_and(|l| l >= min));
    }
    if args.list {
        list(&catalog);
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        catalog.iter().any(|q| q.rule.is_some()),
        "no Sigma rule to run{}",
        args.min_level
            .map(|l| format!(" at level {l:?} or above").to_lowercase())
            .unwrap_or_default()
    );
    for r in catalog.refused() {
        eprintln!("rule not run: {} ({}): {}", r.query, r.file, r.reason);
    }
    crate::report::write(
        lake,
        &catalog,
        vec![sigma::PACK.to_string()],
        args.run,
        ReportFormat::Markdown,
    )
    .await
}

/// A rule's level, when it states a known one.
fn level(q: &SavedQuery) -> Option<Level> {
    let l = q.rule.as_ref()?.level.as_deref()?;
    <Level as clap::ValueEnum>::from_str(l, true).ok()
}

fn list(catalog: &Catalog) {
    let rules: Vec<&SavedQuery> = catalog.iter().filter(|q| q.rule.is_some()).collect();
    println!("{:<14} {:<58} TITLE [ATT&CK]", "LEVEL", "RULE");
    for q in &rules {
        let Some(rule) = q.rule.as_ref() else {
            continue;
        };
        let attack: Vec<&str> = rule.attack().collect();
        println!(
            "{:<14} {:<58} {}{}",
            rule.level.as_deref().unwrap_or("-"),
            q.name,
            q.summary,
            if attack.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attack.join(", "))
            }
        );
    }
    let refused: Vec<&sigma::Refused> = catalog.refused().collect();
    println!("{} rules run; {} refused", rules.len(), refused.len());
    for r in refused {
        println!("refused  {} ({}): {}", r.query, r.file, r.reason);
    }
    for (q, w) in catalog.warnings() {
        println!("warning  {q}: {w}");
    }
}
