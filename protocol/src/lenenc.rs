//! Primitive wire types: a bounds-checked reader over a payload and writers
//! for fixed-width and length-encoded ("lenenc") integers and strings.
//!
//! Every read returns a [`DecodeError`] naming the packet (or field) being
//! parsed instead of panicking: payloads come from peers we do not trust.

use bytes::{BufMut, BytesMut};

/// Why a payload could not be decoded. `what` names the packet and, where
/// useful, the field (e.g. `"HandshakeV10.auth_plugin_data"`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{what}: unexpected end of packet")]
    UnexpectedEof { what: &'static str },
    #[error("{what}: invalid value")]
    Invalid { what: &'static str },
    #[error("{what}: unexpected trailing bytes")]
    TrailingBytes { what: &'static str },
}

/// Cursor over a packet payload. Slices it returns borrow from the payload,
/// so callers holding the payload as `Bytes` can turn them into shared
/// sub-buffers with `Bytes::slice_ref` instead of copying.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            what: "packet",
        }
    }

    /// A reader whose errors name `what` (the packet being parsed).
    pub fn with_context(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Changes the name reported by subsequent errors, typically to the
    /// field about to be read.
    pub fn set_context(&mut self, what: &'static str) {
        self.what = what;
    }

    pub fn context(&self) -> &'static str {
        self.what
    }

    fn eof(&self) -> DecodeError {
        DecodeError::UnexpectedEof { what: self.what }
    }

    /// An `Invalid` error carrying the current context.
    pub fn invalid(&self) -> DecodeError {
        DecodeError::Invalid { what: self.what }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Next byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes exactly `n` bytes.
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.eof())?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.eof())?;
        self.pos = end;
        Ok(s)
    }

    /// Consumes `N` bytes into an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.fixed(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek().ok_or_else(|| self.eof())?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u24_le(&mut self) -> Result<u32, DecodeError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length-encoded integer in its canonical (shortest) form.
    ///
    /// `0xFB` (NULL in rows) and `0xFF` (ERR marker) are not integers.
    /// Non-minimal encodings (e.g. `FC 05 00`) are rejected too: servers and
    /// connectors always write the shortest form, and accepting others would
    /// make re-encoding a decoded packet change its bytes.
    pub fn lenenc_int(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let v = self.lenenc_int_lenient()?;
        if self.pos - start != lenenc_int_len(v) {
            self.pos = start;
            return Err(self.invalid());
        }
        Ok(v)
    }

    /// A length-encoded integer, accepting non-minimal encodings. For
    /// inspection paths that never re-encode (e.g. the response tracker).
    pub fn lenenc_int_lenient(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let r = match self.u8()? {
            b @ 0..=0xFA => Ok(u64::from(b)),
            0xFC => self.u16_le().map(u64::from),
            0xFD => self.u24_le().map(u64::from),
            0xFE => self.u64_le(),
            _ => Err(self.invalid()),
        };
        if r.is_err() {
            self.pos = start;
        }
        r
    }

    /// A length-encoded string.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.lenenc_int()?;
        let r = usize::try_from(len)
            .map_err(|_| self.eof())
            .and_then(|n| self.fixed(n));
        if r.is_err() {
            self.pos = start;
        }
        r
    }

    /// A length-encoded string or the NULL marker `0xFB` (text rows).
    pub fn lenenc_bytes_or_null(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        if self.peek() == Some(crate::constants::NULL_VALUE) {
            self.pos += 1;
            return Ok(None);
        }
        self.lenenc_bytes().map(Some)
    }

    /// A NUL-terminated string; the NUL is consumed but not returned.
    pub fn null_terminated(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self.peek_rest();
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.eof())?;
        let s = rest.get(..n).ok_or_else(|| self.eof())?;
        self.pos += n + 1;
        Ok(s)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.peek_rest();
        self.pos = self.buf.len();
        s
    }

    /// Errors with `TrailingBytes` unless the whole payload was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { what: self.what })
        }
    }
}

/// Number of bytes `put_lenenc_int` writes for `v`.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..=0xFA => 1,
        0xFB..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 9,
    }
}

/// Writes `v` as a length-encoded integer in its shortest form.
pub fn put_lenenc_int(out: &mut BytesMut, v: u64) {
    match lenenc_int_len(v) {
        1 => out.put_u8(v as u8),
        3 => {
            out.put_u8(0xFC);
            out.put_u16_le(v as u16);
        }
        4 => {
            out.put_u8(0xFD);
            out.put_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(v);
        }
    }
}

/// Writes a length-encoded string.
pub fn put_lenenc_bytes(out: &mut BytesMut, s: &[u8]) {
    put_lenenc_int(out, s.len() as u64);
    out.put_slice(s);
}

/// Number of bytes `put_lenenc_bytes` writes for a string of `len` bytes.
pub fn lenenc_bytes_len(len: usize) -> usize {
    lenenc_int_len(len as u64) + len
}

/// Writes a fixed 3-byte little-endian integer (the low 24 bits of `v`).
pub fn put_u24_le(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_le_bytes()[..3]);
}

/// Writes `s` followed by a NUL byte.
pub fn put_null_terminated(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_int_boundaries() {
        for v in [
            0u64,
            1,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            put_lenenc_int(&mut out, v);
            assert_eq!(out.len(), lenenc_int_len(v));
            let mut r = Reader::new(&out);
            assert_eq!(r.lenenc_int().unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn lenenc_int_rejects() {
        for bad in [
            &[0xFB][..],
            &[0xFF],
            &[0xFC, 1],
            &[0xFD, 1, 2],
            &[0xFE, 1],
            &[],
        ] {
            let mut r = Reader::new(bad);
            assert!(r.lenenc_int().is_err(), "{bad:?}");
            assert_eq!(r.position(), 0);
        }
        // Non-minimal: strict rejects, lenient accepts.
        let mut r = Reader::new(&[0xFC, 5, 0]);
        assert_eq!(r.lenenc_int(), Err(DecodeError::Invalid { what: "packet" }));
        assert_eq!(r.lenenc_int_lenient().unwrap(), 5);
    }

    #[test]
    fn strings() {
        let data = b"\x03abcxyz\0\xfbtail";
        let mut r = Reader::with_context(data, "test");
        assert_eq!(r.lenenc_bytes().unwrap(), b"abc");
        assert_eq!(r.null_terminated().unwrap(), b"xyz");
        assert_eq!(r.lenenc_bytes_or_null().unwrap(), None);
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { what: "test" }));
        assert_eq!(r.fixed(5), Err(DecodeError::UnexpectedEof { what: "test" }));
        assert_eq!(r.rest(), b"tail");
        assert!(r.is_empty());
        assert!(r.u8().is_err());
        assert!(Reader::new(b"no nul").null_terminated().is_err());
        assert!(Reader::new(b"\x05abc").lenenc_bytes().is_err());
        let mut r = Reader::new(&[0xFE, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert!(r.lenenc_bytes().is_err());
    }

    #[test]
    fn fixed_ints() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(r.u16_le().unwrap(), 0x0201);
        assert_eq!(r.u24_le().unwrap(), 0x050403);
        assert_eq!(r.u32_le().unwrap(), 0x09080706);
        assert!(r.u64_le().is_err());
        assert_eq!(r.u8().unwrap(), 10);
    }
}
