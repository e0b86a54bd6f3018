//! Other engines read our table: Python's deltalake, pyarrow, DuckDB and polars (the last as
//! `trailhouse ddl polars` says; tests/interop/*.py), from a local lake and (deltalake, polars)
//! from a lake in S3, served on 127.0.0.1 by s3s-fs for the run. The packages are installed once
//! into a virtualenv under the target directory.

use std::path::Path;
use std::process::Command;

use crate::support::repo_root;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(has_python),
    ignore = "Python 3 with venv was not on PATH when the tests were built"
)]
fn python_deltalake_pyarrow_and_duckdb_read_the_table() {
    let root = repo_root();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/interop/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            "pip install",
        );
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    let s3 = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(s3.path().join("interop-lake")).expect("bucket");
    let server = trailhouse_benches::s3_server::S3Server::start(s3.path());
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/interop"))
        .env("TRAILHOUSE_BIN", env!("CARGO_BIN_EXE_trailhouse"))
        .env("TRAILHOUSE_TEST_S3_LAKE", "s3://interop-lake/trail")
        .envs(server.env())
        .output()
        .expect("pytest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("10 passed"), "{text}");
}
