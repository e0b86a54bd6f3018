//! Finds the tools some integration tests need beyond Rust (headless Chromium, Python 3 with
//! venv, Java for Spark), so that a test whose tool is missing is built `#[ignore]`d with the
//! reason instead of passing without checking anything. CI sets `TRAILHOUSE_REQUIRE_CHROMIUM`,
//! `TRAILHOUSE_REQUIRE_PYTHON` and `TRAILHOUSE_REQUIRE_JAVA`: then a missing tool fails the build.
//! And links the binary with packed relative relocations where the toolchain can.

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

/// Whether the C toolchain links a program with packed relative relocations (`DT_RELR`: GNU ld
/// 2.38, lld 15, glibc 2.36) that then runs here. The binary holds some 330,000 relative
/// relocations (DataFusion's tables of functions and types); as a `.rela.dyn` table (8 MB) the
/// loader read and applied them at every start: 5-10 ms, a fifth of a short question's run. A
/// build for another machine, or with an older toolchain, links as before.
fn links_packed_relocations() -> bool {
    let same = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    if !(same && linux_gnu) {
        return false;
    }
    let source = out.join("relr-probe.c");
    let probe = out.join("relr-probe");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    std::fs::write(&source, "int main(void) { return 0; }\n").is_ok()
        && Command::new(cc)
            .arg(&source)
            .arg("-o")
            .arg(&probe)
            .arg("-Wl,-z,pack-relative-relocs")
            .output()
            .is_ok_and(|o| o.status.success() && o.stderr.is_empty())
        && Command::new(&probe).status().is_ok_and(|s| s.success())
}

fn main() {
    println!("cargo::rerun-if-env-changed=CC");
    if links_packed_relocations() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
