//! Other engines read our table: Python's deltalake, pyarrow, DuckDB and polars (the last as
//! `trailhouse ddl polars` says; tests/interop/*.py), from a local lake and (deltalake, polars)
//! from a lake in S3, served on 127.0.0.1 by s3s-fs for the run; and the saved queries as
//! `trailhouse ddl duckdb|spark --query all` writes them, run by DuckDB and by Apache Spark
//! (PySpark, on the machine's Java). The packages are installed once into a virtualenv under the
//! target directory.

use std::path::{Path, PathBuf};
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

/// The virtualenv with tests/interop/requirements.txt, made or brought up to date once (tests
/// running at once, in threads or processes, wait for the first).
fn interop_python() -> PathBuf {
    let root = repo_root();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let lock = std::fs::File::create(tmp.join("interop-venv.lock")).expect("lock file");
    lock.lock().expect("lock");
    let venv = tmp.join("interop-venv");
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
    python
}

/// Runs the interop tests `select` picks (pytest's `-k`) and checks that `passed` of them passed.
fn pytest(select: &str, passed: usize, env: &[(&str, String)]) {
    let python = interop_python();
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select])
        .arg(repo_root().join("tests/interop"))
        .env("TRAILHOUSE_BIN", env!("CARGO_BIN_EXE_trailhouse"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("pytest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("{passed} passed")), "{text}");
}

#[test]
#[cfg_attr(
    not(has_python),
    ignore = "Python 3 with venv was not on PATH when the tests were built"
)]
fn python_deltalake_pyarrow_and_duckdb_read_the_table() {
    let s3 = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(s3.path().join("interop-lake")).expect("bucket");
    let server = trailhouse_benches::s3_server::S3Server::start(s3.path());
    let mut env = server.env();
    env.push(("TRAILHOUSE_TEST_S3_LAKE", "s3://interop-lake/trail".into()));
    pytest("not spark", 9, &env);
}

#[test]
#[cfg_attr(
    not(all(has_python, has_java)),
    ignore = "Python 3 with venv, or Java for Apache Spark, was not on PATH when the tests were built"
)]
fn spark_runs_the_saved_queries_as_trailhouse_does() {
    pytest("spark", 1, &[]);
}
