//! Little-endian binary encoding helpers for checkpoints (stream indexes, counters,
//! consumer groups). Decoding never panics: a short or malformed buffer is `None`,
//! which recovery reports as corruption with the file and offset.

use bytes::Bytes;

use crate::engine::id::StreamId;

/// Appends values to a byte vector.
pub trait Put {
    /// A u8.
    fn put_u8v(&mut self, v: u8);
    /// A u32.
    fn put_u32v(&mut self, v: u32);
    /// A u64.
    fn put_u64v(&mut self, v: u64);
    /// A stream ID (ms, seq).
    fn put_id(&mut self, id: StreamId);
    /// A length-prefixed byte string.
    fn put_bytes(&mut self, b: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8v(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32v(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64v(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_id(&mut self, id: StreamId) {
        self.put_u64v(id.ms);
        self.put_u64v(id.seq);
    }
    fn put_bytes(&mut self, b: &[u8]) {
        self.put_u32v(b.len() as u32);
        self.extend_from_slice(b);
    }
}

/// Reads values from the front of a buffer.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A u8.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    /// A u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    }

    /// A u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    }

    /// A stream ID.
    pub fn id(&mut self) -> Option<StreamId> {
        Some(StreamId::new(self.u64()?, self.u64()?))
    }

    /// A length-prefixed byte string (a slice of the buffer, no copy).
    pub fn bytes(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        Some(self.buf.slice(start..start + n))
    }

    /// A count of items that each take at least `min_size` bytes, checked against
    /// what is left so a corrupt count cannot make the caller allocate wildly.
    pub fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min_size.max(1)) <= self.buf.len() - self.pos).then_some(n)
    }
}
