//! Decompresses a source file's bytes when they start with the gzip magic.
//!
//! Files are recognised by content, not by name. Gzip members are read one after another
//! (CloudTrail and `gzip -c a b > c` both produce multi-member files), and the output is capped so
//! that a small malicious file cannot exhaust memory.

use flate2::{Crc, Decompress, FlushDecompress, Status};

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
/// file. (A run over many files keeps a [`Gunzip`] and calls [`Gunzip::decode`].)
pub fn decode(stored: Vec<u8>, limit: u64, buffer: Vec<u8>) -> Result<Content, FileError> {
    Gunzip::default().decode(stored, limit, buffer)
}

/// A gzip stream that could not be read to its end, with what was decompressed before.
#[derive(Debug)]
pub struct Broken {
    pub partial: Vec<u8>,
    pub error: FileError,
}

/// A gzip reader kept from file to file: its inflate state (some 10 KB of tables and a 32 KB
/// window, zeroed when made) is reset, not made again, for each member. `flate2`'s gzip
/// decoders make one per stream, which costs as much as inflating a 700-byte digest.
pub struct Gunzip {
    raw: Decompress,
}

impl Default for Gunzip {
    fn default() -> Self {
        Self {
            raw: Decompress::new(false),
        }
    }
}

impl Gunzip {
    /// [`decode`] with this reader.
    pub fn decode(
        &mut self,
        stored: Vec<u8>,
        limit: u64,
        buffer: Vec<u8>,
    ) -> Result<Content, FileError> {
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
        let (bytes, broken) = match self.gunzip_into(&stored, limit, buffer) {
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

    /// Decompresses every gzip member of `data` into `out` (cleared first), at most `limit`
    /// bytes of output; each member's CRC-32 and length are checked (RFC 1952), as `flate2`'s
    /// `MultiGzDecoder` checks them.
    pub fn gunzip_into(
        &mut self,
        data: &[u8],
        limit: u64,
        mut out: Vec<u8>,
    ) -> Result<Vec<u8>, Broken> {
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
        match self.members(data, limit, &mut out, &mut Sink::Keep) {
            Ok(_) => Ok(out),
            Err(error) => {
                let partial = if matches!(error, FileError::TooLarge { .. }) {
                    Vec::new()
                } else {
                    out
                };
                Err(Broken { partial, error })
            }
        }
    }

    /// Decompresses every gzip member of `data` (checked as [`Gunzip::gunzip_into`] checks
    /// them), handing the output to `sink` one `buffer` (kept from call to call) at a time,
    /// never the whole: hashing a file does not hold it. Returns the size of the output.
    pub fn stream(
        &mut self,
        data: &[u8],
        buffer: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, FileError> {
        const CHUNK: usize = 64 << 10;
        buffer.clear();
        buffer.reserve(CHUNK);
        let produced = self.members(data, u64::MAX, buffer, &mut Sink::Stream(sink))?;
        Ok(produced)
    }

    /// Inflates the members of `data` one after another onto `out`; returns the bytes made.
    fn members(
        &mut self,
        data: &[u8],
        limit: u64,
        out: &mut Vec<u8>,
        sink: &mut Sink<'_>,
    ) -> Result<u64, FileError> {
        let mut produced = 0;
        let mut rest = self.member(data, limit, out, &mut produced, sink)?;
        while !rest.is_empty() {
            // Another member, cut or whole, starts with the magic; anything else was appended.
            if !rest.starts_with(&GZIP_MAGIC) {
                return Err(FileError::Decompress(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} bytes after the gzip stream are not another gzip member",
                        rest.len()
                    ),
                )));
            }
            rest = self.member(rest, limit, out, &mut produced, sink)?;
        }
        if let Sink::Stream(f) = sink {
            f(out);
            out.clear();
        }
        Ok(produced)
    }

    /// Inflates the member at the start of `data` onto `out` (counting its bytes in
    /// `produced`); returns what follows it.
    fn member<'a>(
        &mut self,
        data: &'a [u8],
        limit: u64,
        out: &mut Vec<u8>,
        produced: &mut u64,
        sink: &mut Sink<'_>,
    ) -> Result<&'a [u8], FileError> {
        let body = data.get(header_len(data)?..).unwrap_or_default();
        self.raw.reset(false);
        let mut crc = Crc::new();
        let mut used = 0usize;
        loop {
            if out.len() == out.capacity() {
                match sink {
                    Sink::Stream(f) => {
                        f(out);
                        out.clear();
                    }
                    Sink::Keep => {
                        let room = limit.saturating_add(1).saturating_sub(*produced);
                        if room == 0 {
                            return Err(FileError::TooLarge { limit });
                        }
                        let grow = (out.len().max(1 << 13) as u64).min(room);
                        out.reserve_exact(grow as usize);
                    }
                }
            }
            let (in_before, out_before) = (self.raw.total_in(), out.len());
            let status = self
                .raw
                .decompress_vec(
                    body.get(used..).unwrap_or_default(),
                    out,
                    FlushDecompress::None,
                )
                .map_err(|e| FileError::Decompress(e.into()))?;
            used += (self.raw.total_in() - in_before) as usize;
            let made = out.get(out_before..).unwrap_or_default();
            crc.update(made);
            *produced += made.len() as u64;
            if *produced > limit {
                return Err(FileError::TooLarge { limit });
            }
            if status == Status::StreamEnd {
                break;
            }
            let stalled = self.raw.total_in() == in_before && made.is_empty();
            if stalled && out.len() < out.capacity() {
                return Err(truncated());
            }
        }
        let after = body.get(used..).unwrap_or_default();
        let trailer = after.get(..8).ok_or_else(truncated)?;
        let word = |i: usize| {
            trailer
                .get(i..i + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        if crc.sum() != word(0) || crc.amount() != word(4) {
            return Err(FileError::Decompress(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "corrupt gzip stream does not have a matching checksum",
            )));
        }
        Ok(after.get(8..).unwrap_or_default())
    }
}

/// Where a [`Gunzip`]'s output goes: kept whole in its buffer, or handed on a buffer at a time.
enum Sink<'s> {
    Keep,
    Stream(&'s mut dyn FnMut(&[u8])),
}

/// The length of the gzip member header at the start of `data` (RFC 1952, 2.3.1).
fn header_len(data: &[u8]) -> Result<usize, FileError> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    const FRESERVED: u8 = 0xe0;
    let bad = || {
        FileError::Decompress(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid gzip header",
        ))
    };
    let fixed = data.get(..10).ok_or_else(truncated)?;
    if fixed[..3] != [0x1f, 0x8b, 8] || fixed[3] & FRESERVED != 0 {
        return Err(bad());
    }
    let flags = fixed[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = data.get(at..at + 2).ok_or_else(truncated)?;
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let text = data.get(at..).ok_or_else(truncated)?;
            at += memchr::memchr(0, text).ok_or_else(truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = data.get(at..at + 2).ok_or_else(truncated)?;
        let mut crc = Crc::new();
        crc.update(data.get(..at).unwrap_or_default());
        if crc.sum() as u16 != u16::from_le_bytes([stored[0], stored[1]]) {
            return Err(bad());
        }
        at += 2;
    }
    if at > data.len() {
        return Err(truncated());
    }
    Ok(at)
}

fn truncated() -> FileError {
    FileError::Decompress(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the gzip stream ends early",
    ))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, Broken> {
        Gunzip::default().gunzip_into(data, limit, Vec::new())
    }

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

    /// The error of a stream that must not decompress.
    fn refused(data: &[u8]) -> String {
        match gunzip(data, 1 << 20) {
            Err(Broken { error, .. }) => error.to_string(),
            Ok(out) => panic!("decompressed to {} bytes", out.len()),
        }
    }

    #[test]
    fn reads_the_optional_header_fields() {
        // Name, comment, extra field and header CRC, as `GzBuilder` writes them.
        let mut e = flate2::GzBuilder::new()
            .filename("a.json")
            .comment("made here")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::default());
        e.write_all(b"{\"Records\":[]}").expect("write");
        let mut data = e.finish().expect("finish");
        assert_eq!(gunzip(&data, 1 << 20).expect("gunzip"), b"{\"Records\":[]}");
        // With a header CRC (FHCRC): a matching one is read, a wrong one refused.
        let header_end = 10 + 2 + 3 + b"a.json\0".len() + b"made here\0".len();
        let mut crc = Crc::new();
        data[3] |= 1 << 1;
        crc.update(&data[..header_end]);
        let stamped: Vec<u8> = data[..header_end]
            .iter()
            .copied()
            .chain((crc.sum() as u16).to_le_bytes())
            .chain(data[header_end..].iter().copied())
            .collect();
        assert_eq!(
            gunzip(&stamped, 1 << 20).expect("gunzip"),
            b"{\"Records\":[]}"
        );
        let mut wrong = stamped.clone();
        wrong[header_end] ^= 1;
        assert!(refused(&wrong).contains("invalid gzip header"));
    }

    #[test]
    fn refuses_a_wrong_checksum_length_header_or_trailing_bytes() {
        let data = gz(b"{\"Records\":[]}");
        let n = data.len();
        let mut crc = data.clone();
        crc[n - 8] ^= 1;
        assert!(refused(&crc).contains("checksum"));
        let mut size = data.clone();
        size[n - 4] ^= 1;
        assert!(refused(&size).contains("checksum"));
        let mut reserved = data.clone();
        reserved[3] = 0x20;
        assert!(refused(&reserved).contains("invalid gzip header"));
        let mut method = data.clone();
        method[2] = 7;
        assert!(refused(&method).contains("invalid gzip header"));
        let mut garbage = data.clone();
        garbage.extend_from_slice(b"not another gzip member");
        assert!(refused(&garbage).contains("23 bytes after the gzip stream are not"));
        let mut short = data.clone();
        short.extend_from_slice(b"xyz");
        assert!(refused(&short).contains("3 bytes after the gzip stream are not"));
        assert!(refused(&data[..n - 3]).contains("ends early"));
        assert!(refused(&data[..6]).contains("ends early"));
        assert!(refused(&[]).contains("ends early"));
    }

    #[test]
    fn one_reader_reads_file_after_file_whatever_came_before() {
        let texts: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                (0..i * 400)
                    .flat_map(|j| (j * i).to_string().into_bytes())
                    .collect()
            })
            .collect();
        let mut reader = Gunzip::default();
        let mut buffer = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let data = gz(text);
            // Every third file broken off halfway: the next one is read whole all the same.
            if i % 3 == 0 && data.len() > 40 {
                let Err(Broken { partial, .. }) =
                    reader.gunzip_into(&data[..data.len() / 2], 1 << 24, buffer)
                else {
                    panic!("file {i} is truncated")
                };
                assert!(text.starts_with(&partial));
                buffer = partial;
            }
            let out = reader.gunzip_into(&data, 1 << 24, buffer).expect("gunzip");
            assert_eq!(&out, text, "file {i}");
            buffer = out;
        }
        // Output grows past a wrong size hint (the last member's ISIZE is of the last member).
        let mut two = gz(&texts[49]);
        two.extend(gz(b"!"));
        let out = reader
            .gunzip_into(&two, 1 << 24, Vec::new())
            .expect("gunzip");
        assert_eq!(out.len(), texts[49].len() + 1);
        // The limit is exact.
        let limit = texts[49].len() as u64;
        assert!(
            reader
                .gunzip_into(&gz(&texts[49]), limit, Vec::new())
                .is_ok()
        );
        assert!(matches!(
            reader.gunzip_into(&gz(&texts[49]), limit - 1, Vec::new()),
            Err(Broken {
                error: FileError::TooLarge { .. },
                ..
            })
        ));
    }

    #[test]
    fn streaming_hands_on_what_keeping_would_keep_a_buffer_at_a_time() {
        let text: Vec<u8> = (0..60_000u32)
            .flat_map(|i| (i * 7).to_string().into_bytes())
            .collect();
        let mut data = gz(&text);
        data.extend(gz(b"and a second member"));
        let mut reader = Gunzip::default();
        let mut buffer = Vec::new();
        let (mut streamed, mut calls) = (Vec::new(), 0);
        let size = reader
            .stream(&data, &mut buffer, &mut |chunk| {
                calls += 1;
                assert!(chunk.len() <= 64 << 10, "one buffer at a time");
                streamed.extend_from_slice(chunk);
            })
            .expect("stream");
        let kept = reader
            .gunzip_into(&data, 1 << 24, Vec::new())
            .expect("gunzip");
        assert_eq!(streamed, kept);
        assert_eq!(size, kept.len() as u64);
        assert!(calls > 1, "{} bytes in {calls} calls", kept.len());
        // Checked as kept output is: a cut stream and a wrong checksum fail.
        let mut sink = |_: &[u8]| {};
        let cut = reader.stream(&data[..data.len() / 2], &mut buffer, &mut sink);
        assert!(matches!(cut, Err(FileError::Decompress(_))));
        let mut crc = gz(&text);
        let n = crc.len();
        crc[n - 6] ^= 1;
        let wrong = reader.stream(&crc, &mut buffer, &mut sink);
        assert!(wrong.is_err_and(|e| e.to_string().contains("checksum")));
    }
}
