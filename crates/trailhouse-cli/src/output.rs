//! Where a command's results go: a file named by `--output`, or standard output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// A buffered writer to `path`, or to standard output when there is none.
pub fn open(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => {
            Box::new(BufWriter::new(File::create(path).with_context(|| {
                format!("failed to create `{}`", path.display())
            })?))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}
