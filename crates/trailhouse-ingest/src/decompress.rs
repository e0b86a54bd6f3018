//! Decompresses a source file's bytes when they start with the gzip magic.
//!
//! Files are recognised by content, not by name. Gzip members are read one after another
//! (CloudTrail and `gzip -c a b > c` both produce multi-member files), and the output is capped so
//! that a small malicious file cannot exhaust memory.

use std::io::Read;

use flate2::bufread::MultiGzDecoder;

use crate::error::FileError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A source file's bytes, decompressed when it was gzip.
#[derive(Debug)]
pub struct Content {
    pub bytes: Vec<u8>,
    pub gzip: bool,
    /// Size on disk.
    pub stored_len: u64,
    /// Set when the gzip stream broke off: `bytes` holds what was decompressed before the break.
    pub broken: Option<FileError>,
}

/// Decompresses a file's stored bytes when they are gzip, refusing output larger than `limit`
/// bytes. `buffer` (a previous file's, cleared here) receives the output: reusing one buffer
/// across files spares the allocator and the kernel a fresh allocation, and its page faults, per
/// file.
pub fn decode(stored: Vec<u8>, limit: u64, buffer: Vec<u8>) -> Result<Content, FileError> {
    let stored_len = stored.len() as u64;
    if !stored.starts_with(&GZIP_MAGIC) {
        if stored_len > limit {
            return Err(FileError::TooLarge { limit });
        }
        return Ok(Content {
            bytes: stored,
            gzip: false,
            stored_len,
            broken: None,
        });
    }
    let (bytes, broken) = match gunzip_into(&stored, limit, buffer) {
        Ok(bytes) => (bytes, None),
        Err(Broken { partial, error }) => {
            if let FileError::TooLarge { .. } = error {
                return Err(error);
            }
            (partial, Some(error))
        }
    };
    Ok(Content {
        bytes,
        gzip: true,
        stored_len,
        broken,
    })
}

/// A gzip stream that could not be read to its end, with what was decompressed before.
#[derive(Debug)]
pub struct Broken {
    pub partial: Vec<u8>,
    pub error: FileError,
}

/// Decompresses every gzip member of `data`, at most `limit` bytes of output.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, Broken> {
    gunzip_into(data, limit, Vec::new())
}

/// [`gunzip`] into `out`, which is cleared first.
fn gunzip_into(data: &[u8], limit: u64, mut out: Vec<u8>) -> Result<Vec<u8>, Broken> {
    // ISIZE (the last 4 bytes) is the size of the last member mod 2^32: a good first guess.
    let hint = data
        .len()
        .checked_sub(4)
        .and_then(|i| data.get(i..))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as u64)
        .min(limit);
    out.clear();
    out.reserve(hint as usize + 1);
    // Read from the slice itself (`bufread`): no intermediate buffer to allocate and copy
    // through per file.
    let mut decoder = MultiGzDecoder::new(data).take(limit + 1);
    // On error, read_to_end leaves what it decoded before the break in `out`.
    if let Err(e) = decoder.read_to_end(&mut out) {
        return Err(Broken {
            partial: out,
            error: FileError::Decompress(e),
        });
    }
    if out.len() as u64 > limit {
        return Err(Broken {
            partial: Vec::new(),
            error: FileError::TooLarge { limit },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn reads_every_member() {
        let mut two = gz(b"{\"Records\":[");
        two.extend(gz(b"]}"));
        assert_eq!(gunzip(&two, 1 << 20).expect("gunzip"), b"{\"Records\":[]}");
    }

    #[test]
    fn caps_output() {
        let bomb = gz(&vec![b' '; 1 << 20]);
        assert!(matches!(
            gunzip(&bomb, 1000),
            Err(Broken {
                error: FileError::TooLarge { limit: 1000 },
                ..
            })
        ));
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| i.to_string().into_bytes())
            .collect();
        let data = gz(&text);
        let cut = &data[..data.len() / 2];
        let Err(Broken { partial, error }) = gunzip(cut, 1 << 20) else {
            panic!("a truncated stream must fail")
        };
        assert!(matches!(error, FileError::Decompress(_)));
        assert!(!partial.is_empty() && text.starts_with(&partial));
    }
}
