//! Where a document build writes: a byte counter that refuses to go past the budget, feeding a
//! SHA-256 (the etag, over the uncompressed JSON) and a gzip encoder (the stored body). The
//! uncompressed document is never held in memory; the build's output buffer is the compressed
//! body, which is bounded by the budget.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// Bytes gathered before they are hashed and compressed: fewer, larger calls are much faster
/// than one per JSON token.
const CHUNK: usize = 64 * 1024;

pub(crate) struct BudgetedSink {
    written: u64,
    budget: u64,
    exceeded: bool,
    chunk: Vec<u8>,
    hasher: Sha256,
    gzip: GzEncoder<Vec<u8>>,
}

/// What a finished sink produced.
pub(crate) struct SinkOutput {
    pub body: Vec<u8>,
    pub etag: String,
    pub bytes: u64,
}

impl BudgetedSink {
    pub fn new(budget: u64, level: u32) -> Self {
        BudgetedSink {
            written: 0,
            budget,
            exceeded: false,
            chunk: Vec::with_capacity(CHUNK),
            hasher: Sha256::new(),
            gzip: GzEncoder::new(Vec::new(), Compression::new(level)),
        }
    }

    /// True once a write was refused for passing the budget.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Bytes accepted or attempted so far (past the budget when `exceeded`).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    fn drain(&mut self) -> io::Result<()> {
        self.hasher.update(&self.chunk);
        self.gzip.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<SinkOutput> {
        self.drain()?;
        let digest = self.hasher.finalize();
        Ok(SinkOutput {
            body: self.gzip.finish()?,
            // 128 bits are plenty to tell revisions apart and keep headers short.
            etag: hex::encode(&digest[..16]),
            bytes: self.written,
        })
    }
}

impl Write for BudgetedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.budget {
            self.exceeded = true;
            return Err(io::Error::other("document budget exceeded"));
        }
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.drain()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compresses_hashes_and_counts() {
        let mut s = BudgetedSink::new(1_000_000, 1);
        for _ in 0..10_000 {
            s.write_all(b"{\"a\":1}").unwrap();
        }
        let out = s.finish().unwrap();
        assert_eq!(out.bytes, 70_000);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&out.body[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain.len(), 70_000);
        assert_eq!(out.etag.len(), 32);
    }

    #[test]
    fn refuses_past_the_budget() {
        let mut s = BudgetedSink::new(10, 1);
        s.write_all(b"0123456789").unwrap();
        assert!(s.write_all(b"x").is_err());
        assert!(s.exceeded());
        assert_eq!(s.written(), 11);
    }
}
