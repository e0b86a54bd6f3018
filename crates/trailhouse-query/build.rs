//! Embeds the saved queries of `queries/` (`.sql`) and the Sigma rules there (`.yml`) in the
//! library, so the binary carries them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../../queries");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut code = String::new();
    for (ext, list) in [("sql", "BUILTIN"), ("yml", "BUILTIN_RULES")] {
        let mut files = Vec::new();
        collect(&root, ext, &mut files);
        files.sort();
        let _ = writeln!(code, "pub const {list}: &[(&str, &str)] = &[");
        for f in &files {
            println!("cargo:rerun-if-changed={}", f.display());
            let rel = f
                .strip_prefix(&root)
                .expect("under queries/")
                .with_extension("");
            let name = rel.to_string_lossy().replace('\\', "/");
            let _ = writeln!(
                code,
                "    ({name:?}, include_str!({:?})),",
                f.display().to_string()
            );
        }
        code.push_str("];\n");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("queries.rs");
    std::fs::write(out, code).expect("write queries.rs");
}
