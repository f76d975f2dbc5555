//! COMPRESS=DEFLATE (RFC 4978) on the driver side: raw DEFLATE (no zlib
//! header) in both directions once the session has accepted COMPRESS.
//!
//! Output is flushed with a sync flush after every write, so each response
//! reaches the client whole at once (a client waits for it; Thunderbird
//! stalls otherwise). Input is inflated in bounded pieces: the driver takes
//! at most [`INFLATE_CHUNK`] bytes of plain text at a time and lets the
//! session consume them before inflating more, so a small "zip bomb" can not
//! make the connection buffer more than the session's own limits allow.

use flate2::{Compress, Compression as Level, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest piece of inflated input handed to the session at once.
pub const INFLATE_CHUNK: usize = 16 * 1024;

/// The two DEFLATE streams of one connection.
pub struct Deflate {
    deflate: Compress,
    inflate: Decompress,
    /// Compressed input not inflated yet.
    pending: Vec<u8>,
}

/// The client's compressed stream is corrupt.
#[derive(Debug)]
pub struct CorruptStream;

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    /// Fresh raw-DEFLATE streams.
    pub fn new() -> Self {
        Self {
            deflate: Compress::new(Level::default(), false),
            inflate: Decompress::new(false),
            pending: Vec::new(),
        }
    }

    /// Compresses `plain` with a sync flush: the result decompresses to
    /// exactly `plain` with nothing held back.
    pub fn compress(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut input = plain;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(plain.len().max(1024));
            }
            let before = self.deflate.total_in();
            // With FlushCompress::Sync an in-memory stream cannot fail.
            let _ = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            let used = (self.deflate.total_in() - before) as usize;
            input = &input[used.min(input.len())..];
            // Done when all input is in and the flush did not fill the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// Adds compressed bytes read from the client.
    pub fn push_compressed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Whether compressed input is waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Inflates up to [`INFLATE_CHUNK`] bytes of the pending input. An empty
    /// result means more compressed input is needed.
    pub fn inflate_chunk(&mut self) -> Result<Vec<u8>, CorruptStream> {
        let mut out = Vec::with_capacity(INFLATE_CHUNK);
        let before = self.inflate.total_in();
        let status = self
            .inflate
            .decompress_vec(&self.pending, &mut out, FlushDecompress::None)
            .map_err(|_| CorruptStream)?;
        let used = (self.inflate.total_in() - before) as usize;
        self.pending.drain(..used.min(self.pending.len()));
        if status == Status::StreamEnd {
            // A client may not end the stream (RFC 4978 §4): treat as corrupt.
            return Err(CorruptStream);
        }
        Ok(out)
    }

    /// Whether inflating made no progress on what is pending (needs more input).
    pub fn stalled(&self, last: &[u8], pending_before: usize) -> bool {
        last.is_empty() && self.pending.len() == pending_before
    }

    /// Compressed bytes pending.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's stream: the server's output inflated by an independent
    /// Decompress, and input deflated by an independent Compress.
    #[test]
    fn round_trip_each_write_is_complete() {
        let mut server = Deflate::new();
        let mut client_in = Decompress::new(false);
        for msg in [
            &b"* OK hello\r\n"[..],
            &[b'x'; 100_000][..],
            b"a1 OK done\r\n",
        ] {
            let wire = server.compress(msg);
            let mut plain = Vec::with_capacity(msg.len() + 64);
            client_in
                .decompress_vec(&wire, &mut plain, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(plain, msg, "a sync-flushed write must inflate completely");
        }
    }

    #[test]
    fn inflate_is_bounded_per_chunk() {
        // 1 MiB of NOOPs compresses to a few KiB; inflating hands it out in pieces.
        let plain: Vec<u8> = b"a NOOP\r\n"
            .iter()
            .cycle()
            .take(1 << 20)
            .copied()
            .collect();
        let mut client_out = Compress::new(Level::default(), false);
        let mut wire = Vec::with_capacity(1 << 20);
        client_out
            .compress_vec(&plain, &mut wire, FlushCompress::Sync)
            .unwrap();
        let mut server = Deflate::new();
        server.push_compressed(&wire);
        let mut got = Vec::new();
        loop {
            let before = server.pending_len();
            let chunk = server.inflate_chunk().unwrap();
            assert!(chunk.len() <= INFLATE_CHUNK);
            if server.stalled(&chunk, before) {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, plain);
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut server = Deflate::new();
        server.push_compressed(&[0xff; 64]);
        assert!(server.inflate_chunk().is_err());
    }
}
