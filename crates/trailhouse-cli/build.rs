//! Finds the tools some integration tests need beyond Rust (headless Chromium, Python 3 with
//! venv, Java for Spark), so that a test whose tool is missing is built `#[ignore]`d with the
//! reason instead of passing without checking anything. CI sets `TRAILHOUSE_REQUIRE_CHROMIUM`,
//! `TRAILHOUSE_REQUIRE_PYTHON` and `TRAILHOUSE_REQUIRE_JAVA`: then a missing tool fails the build.

use std::path::PathBuf;
use std::process::Command;

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn require(var: &str, found: bool, what: &str) {
    println!("cargo::rerun-if-env-changed={var}");
    if !found && std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
        panic!("{var} is set but {what} was not found on PATH");
    }
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_chromium, has_python, has_java)");
    println!("cargo::rerun-if-env-changed=PATH");
    // A tool installed later changes a PATH directory: look again then.
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths).filter(|d| d.is_dir()) {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]).is_some();
    if chromium {
        println!("cargo::rustc-cfg=has_chromium");
    }
    require("TRAILHOUSE_REQUIRE_CHROMIUM", chromium, "Chromium");
    let python = on_path(&["python3"]).is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if python {
        println!("cargo::rustc-cfg=has_python");
    }
    require(
        "TRAILHOUSE_REQUIRE_PYTHON",
        python,
        "Python 3 with venv and ensurepip",
    );
    let java = on_path(&["java"]).is_some();
    if java {
        println!("cargo::rustc-cfg=has_java");
    }
    require("TRAILHOUSE_REQUIRE_JAVA", java, "Java (for Apache Spark)");
}
