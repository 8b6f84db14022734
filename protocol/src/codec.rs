//! Framing layer: turns a byte stream into logical MySQL packets and back.
//!
//! On the wire every packet is a 4-byte header (3-byte little-endian payload
//! length, 1-byte sequence id) followed by the payload. A payload of 2^24-1
//! bytes or more is split into chunks of exactly `0xFFFFFF` bytes; a chunk of
//! that size always announces another chunk (possibly empty). The decoder here
//! joins those chunks into one [`Packet`]; the encoder splits them again.
//!
//! [`frames`] is the one walk over physical frames in a buffer: whoever
//! splits a buffer into packets or joins a packet's chunks (this crate's
//! [`PacketCodec`] and [`crate::tracker::ResponseTracker::skip_rows`], the
//! proxy's connection reads and its relay) does it with that iterator and
//! [`Frames::join_packet`]. Only the relay's streaming loop reads bare
//! headers with [`parse_header`]: it passes on packets whose payload has
//! not all arrived yet, which a walk over whole frames never yields.
//!
//! The codec never looks inside payloads: message parsing lives in
//! [`crate::packets`], and the hot-path response tracking in
//! [`crate::tracker`] works on physical chunks.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest payload one physical chunk can carry; a chunk of exactly this size
/// is continued by the next one.
pub const MAX_PAYLOAD_CHUNK: usize = 0xFF_FFFF;

/// Size of the physical packet header (length + sequence id).
pub const HEADER_LEN: usize = 4;

/// A logical packet: the payloads of all continuation chunks joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the *last* physical chunk, so the next packet in the
    /// exchange carries `seq.wrapping_add(1)`.
    pub seq: u8,
    pub payload: Bytes,
}

impl Packet {
    pub fn new(seq: u8, payload: impl Into<Bytes>) -> Self {
        Packet {
            seq,
            payload: payload.into(),
        }
    }

    /// Number of physical chunks this packet occupies on the wire.
    pub fn chunk_count(&self) -> usize {
        self.payload.len() / MAX_PAYLOAD_CHUNK + 1
    }
}

/// Framing errors. Everything that is not "need more bytes" is fatal for the
/// connection: the stream cannot be resynchronised.
#[derive(thiserror::Error, Debug)]
pub enum FrameError {
    #[error("packet of {size} bytes exceeds max_allowed_packet ({max})")]
    PacketTooLarge { size: usize, max: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a physical packet header from the start of `buf`.
///
/// Returns `(payload_len, seq)`, or `None` when fewer than 4 bytes are given.
#[inline]
pub fn parse_header(buf: &[u8]) -> Option<(usize, u8)> {
    buf.first_chunk().map(|&header| decode_header(header))
}

/// The fields of a header: payload length (24 bits, little-endian) and
/// sequence id.
#[inline]
fn decode_header([a, b, c, seq]: [u8; HEADER_LEN]) -> (usize, u8) {
    (
        usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16,
        seq,
    )
}

/// A physical packet header. `payload_len` must not exceed
/// [`MAX_PAYLOAD_CHUNK`] (only its low 24 bits are written). A `const fn`,
/// so that fixed frames can be built at compile time.
pub const fn header(payload_len: usize, seq: u8) -> [u8; HEADER_LEN] {
    let [a, b, c, _] = (payload_len as u32).to_le_bytes();
    [a, b, c, seq]
}

/// Writes a physical packet header (see [`header`]); use
/// [`encode_packet`] for payloads of any size.
pub fn put_header(out: &mut BytesMut, payload_len: usize, seq: u8) {
    out.put_slice(&header(payload_len, seq));
}

/// One physical frame, borrowed from the buffer it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub seq: u8,
    /// The frame's payload: the whole logical packet's, or one chunk of it.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes the frame takes on the wire, header included.
    #[inline]
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Whether the next frame continues this one's logical packet: a
    /// payload of exactly [`MAX_PAYLOAD_CHUNK`] bytes always announces
    /// another chunk (possibly empty).
    #[inline]
    pub fn continues(&self) -> bool {
        self.payload.len() == MAX_PAYLOAD_CHUNK
    }
}

/// The complete frames at the start of `buf`, in order; see [`Frames`].
#[inline]
pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames {
        rest: buf,
        buf_len: buf.len(),
    }
}

/// Iterator over the complete physical frames at the start of a buffer. It
/// stops at the first frame not wholly in the buffer (cut in its header or
/// in its payload), which [`Frames::peek_header`] and [`Frames::rest`]
/// then show; it never copies and never allocates.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    /// The bytes after the frames yielded so far.
    rest: &'a [u8],
    /// Length of the whole buffer, for [`Frames::consumed`].
    buf_len: usize,
}

impl<'a> Frames<'a> {
    /// Bytes of the frames yielded so far, headers included.
    #[inline]
    pub fn consumed(&self) -> usize {
        self.buf_len - self.rest.len()
    }

    /// The bytes after the frames yielded so far: once the iterator has
    /// ended, nothing or the start of a frame not wholly in the buffer.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The header of the next frame, whether its payload is in the buffer
    /// or not: `(payload_len, seq)`, or `None` before 4 bytes of it are in.
    /// Lets a reader check a header before waiting for its payload.
    #[inline]
    pub fn peek_header(&self) -> Option<(usize, u8)> {
        parse_header(self.rest)
    }

    /// Appends the payload of the next logical packet to `out`: the
    /// payloads of the next frames up to and including the first that does
    /// not [continue](Frame::continues). Returns the sequence id of its last
    /// chunk, or `None` when the buffer ends before the packet does (`out`
    /// then holds the chunks that were complete, and the frames after them
    /// are where the packet was cut).
    pub fn join_packet(&mut self, out: &mut impl BufMut) -> Option<u8> {
        loop {
            let frame = self.next()?;
            out.put_slice(frame.payload);
            if !frame.continues() {
                return Some(frame.seq);
            }
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    #[inline]
    fn next(&mut self) -> Option<Frame<'a>> {
        let (&header, tail) = self.rest.split_first_chunk()?;
        let (len, seq) = decode_header(header);
        let (payload, rest) = tail.split_at_checked(len)?;
        self.rest = rest;
        Some(Frame { seq, payload })
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

/// One packet framed whole, starting at sequence id `seq` (a command starts
/// an exchange: 0).
pub fn frame(seq: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_packet(seq, payload, &mut out);
    out.freeze()
}

/// Frames `payload` starting at sequence id `seq`, splitting it into
/// `0xFFFFFF`-byte chunks as needed, and returns the sequence id the next
/// packet of the exchange must use.
///
/// A payload whose length is a multiple of `0xFFFFFF` (including exactly
/// `0xFFFFFF`) ends with an empty chunk, so the peer knows it is complete.
pub fn encode_packet(seq: u8, payload: &[u8], out: &mut BytesMut) -> u8 {
    let chunks = payload.len() / MAX_PAYLOAD_CHUNK + 1;
    out.reserve(payload.len() + chunks * HEADER_LEN);
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD_CHUNK);
        let (chunk, tail) = rest.split_at(n);
        put_header(out, n, seq);
        out.put_slice(chunk);
        seq = seq.wrapping_add(1);
        rest = tail;
        if n < MAX_PAYLOAD_CHUNK {
            return seq;
        }
    }
}

/// tokio-util codec for MySQL packets.
///
/// Decoding keeps at most one physical chunk in the read buffer: completed
/// full-size chunks are moved into an assembly buffer, so a 64 MiB packet does
/// not need 128 MiB while it is being joined.
#[derive(Debug)]
pub struct PacketCodec {
    max_packet_size: usize,
    /// Payload of the full-size chunks received so far for the packet being
    /// assembled; `None` when no multi-chunk packet is in progress.
    partial: Option<BytesMut>,
}

impl PacketCodec {
    /// `max_packet_size` bounds the *logical* payload (all chunks joined),
    /// like the server's `max_allowed_packet`.
    pub fn new(max_packet_size: usize) -> Self {
        PacketCodec {
            max_packet_size,
            partial: None,
        }
    }

    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    pub fn set_max_packet_size(&mut self, max: usize) {
        self.max_packet_size = max;
    }

    /// True while a multi-chunk packet has been partially received.
    pub fn is_assembling(&self) -> bool {
        self.partial.is_some()
    }

    /// Fails if a chunk of `len` bytes would take the packet being
    /// assembled over the limit.
    fn check_size(&self, len: usize) -> Result<(), FrameError> {
        let already = self.partial.as_ref().map_or(0, BytesMut::len);
        let size = already.saturating_add(len);
        if size > self.max_packet_size {
            return Err(FrameError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        Ok(())
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, FrameError> {
        loop {
            let mut frames = frames(src);
            let Some(frame) = frames.next() else {
                // A header already in is checked before its payload is
                // buffered, so a hostile length cannot make us allocate.
                let wanted = match frames.peek_header() {
                    Some((len, _)) => {
                        self.check_size(len)?;
                        HEADER_LEN + len
                    }
                    None => HEADER_LEN,
                };
                src.reserve(wanted.saturating_sub(src.len()));
                return Ok(None);
            };
            self.check_size(frame.payload.len())?;
            let (len, seq, continues) = (frame.payload.len(), frame.seq, frame.continues());
            src.advance(HEADER_LEN);
            let chunk = src.split_to(len);

            if continues {
                // More chunks follow; park this one and look for the next.
                match &mut self.partial {
                    Some(buf) => buf.extend_from_slice(&chunk),
                    None => self.partial = Some(chunk),
                }
                continue;
            }
            let payload = match self.partial.take() {
                Some(mut buf) => {
                    buf.extend_from_slice(&chunk);
                    buf.freeze()
                }
                // Common case: a single chunk, handed out without copying.
                None => chunk.freeze(),
            };
            return Ok(Some(Packet { seq, payload }));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, FrameError> {
        match self.decode(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty() && self.partial.is_none() => Ok(None),
            None => Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a packet",
            ))),
        }
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_packet(item.seq, &item.payload, dst);
        Ok(())
    }
}

impl Encoder<&Packet> for PacketCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_packet(item.seq, &item.payload, dst);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SIZES: [usize; 7] = [
        0,
        1,
        MAX_PAYLOAD_CHUNK - 1,
        MAX_PAYLOAD_CHUNK,
        MAX_PAYLOAD_CHUNK + 1,
        2 * MAX_PAYLOAD_CHUNK,
        2 * MAX_PAYLOAD_CHUNK + 5,
    ];

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    /// Feeds `wire` to a fresh codec in pieces of `step` bytes (cycling over
    /// `steps`), collecting every decoded packet.
    fn decode_in_steps(wire: &[u8], steps: &[usize], max: usize) -> Vec<Packet> {
        let mut codec = PacketCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = steps[i % steps.len()].min(wire.len() - pos);
            i += 1;
            buf.extend_from_slice(&wire[pos..pos + n]);
            pos += n;
            while let Some(p) = codec.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        out
    }

    fn expected_chunks(n: usize) -> usize {
        n / MAX_PAYLOAD_CHUNK + 1
    }

    #[test]
    fn encode_chunk_layout() {
        for &n in &SIZES {
            let mut out = BytesMut::new();
            let next = encode_packet(7, &payload(n), &mut out);
            let chunks = expected_chunks(n);
            assert_eq!(out.len(), n + 4 * chunks, "size {n}");
            assert_eq!(next, 7u8.wrapping_add(chunks as u8));
            // Walk the headers.
            let mut pos = 0;
            let mut seq = 7u8;
            for c in 0..chunks {
                let (len, s) = parse_header(&out[pos..]).unwrap();
                assert_eq!(s, seq);
                if c + 1 < chunks {
                    assert_eq!(len, MAX_PAYLOAD_CHUNK);
                } else {
                    assert!(len < MAX_PAYLOAD_CHUNK);
                }
                pos += 4 + len;
                seq = seq.wrapping_add(1);
            }
            assert_eq!(pos, out.len());
        }
        // Exactly 0xFFFFFF: one full chunk plus one empty chunk.
        let mut out = BytesMut::new();
        encode_packet(0, &payload(MAX_PAYLOAD_CHUNK), &mut out);
        assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 1]);
    }

    #[test]
    fn round_trip_boundaries_odd_steps() {
        for &n in &SIZES {
            let data = payload(n);
            let mut wire = BytesMut::new();
            let next = encode_packet(250, &data, &mut wire);
            // A second small packet right behind, to check nothing leaks.
            encode_packet(next, b"tail", &mut wire);
            for steps in [&[65_537usize, 3, 1_000_003][..], &[7_777_777, 13]] {
                let got = decode_in_steps(&wire, steps, 64 << 20);
                assert_eq!(got.len(), 2, "size {n}");
                assert_eq!(got[0].payload.len(), n);
                assert!(got[0].payload[..] == data[..], "size {n}");
                assert_eq!(got[0].seq.wrapping_add(1), next);
                assert_eq!(got[1].seq, next);
                assert_eq!(&got[1].payload[..], b"tail");
            }
        }
    }

    #[test]
    fn byte_by_byte_small_sizes() {
        for n in [0usize, 1, 2, 300] {
            let mut wire = BytesMut::new();
            encode_packet(3, &payload(n), &mut wire);
            let got = decode_in_steps(&wire, &[1], 1024);
            assert_eq!(got, vec![Packet::new(3, payload(n))]);
        }
    }

    #[test]
    fn byte_by_byte_large_sizes() {
        // Byte-by-byte over tens of MiB would be slow in debug builds; feed
        // the headers and the bytes around every chunk boundary one at a
        // time and the bulk in big slices.
        for &n in &SIZES[2..] {
            let data = payload(n);
            let mut wire = BytesMut::new();
            encode_packet(0, &data, &mut wire);
            let mut codec = PacketCodec::new(64 << 20);
            let mut buf = BytesMut::new();
            let mut got = None;
            let mut pos = 0;
            while pos < wire.len() {
                let chunk_off = pos % (MAX_PAYLOAD_CHUNK + 4);
                let near_edge = !(8..=MAX_PAYLOAD_CHUNK - 4).contains(&chunk_off);
                let step = if near_edge {
                    1
                } else {
                    (MAX_PAYLOAD_CHUNK - 4 - chunk_off).max(1)
                };
                let step = step.min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..pos + step]);
                pos += step;
                if let Some(p) = codec.decode(&mut buf).unwrap() {
                    assert!(got.is_none());
                    assert_eq!(pos, wire.len());
                    got = Some(p);
                }
            }
            let p = got.unwrap();
            assert_eq!(p.payload.len(), n);
            assert!(p.payload[..] == data[..]);
            assert_eq!(p.seq as usize, expected_chunks(n) - 1);
        }
    }

    #[test]
    fn seq_wraps_across_chunks() {
        let data = payload(2 * MAX_PAYLOAD_CHUNK);
        let mut wire = BytesMut::new();
        let next = encode_packet(254, &data, &mut wire);
        // Three chunks: 254, 255, 0.
        assert_eq!(next, 1);
        let got = decode_in_steps(&wire, &[1 << 20], 64 << 20);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 0);
        // Single chunk at 255.
        let mut wire = BytesMut::new();
        assert_eq!(encode_packet(255, b"x", &mut wire), 0);
        assert_eq!(decode_in_steps(&wire, &[1], 10)[0].seq, 255);
    }

    #[test]
    fn too_large_detected_from_header() {
        let mut codec = PacketCodec::new(1000);
        // Header announcing 1001 bytes, no payload at all.
        let mut buf = BytesMut::from(&[0xE9, 0x03, 0x00, 0x00][..]);
        match codec.decode(&mut buf) {
            Err(FrameError::PacketTooLarge { size, max }) => {
                assert_eq!((size, max), (1001, 1000));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Nothing was reserved for the payload.
        assert!(buf.capacity() < 1000);

        // Exactly max is fine.
        let mut codec = PacketCodec::new(3);
        let mut buf = BytesMut::from(&[3, 0, 0, 9, b'a', b'b', b'c'][..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::new(9, &b"abc"[..]))
        );

        // Multi-chunk: the second header pushes the total over the limit.
        let max = MAX_PAYLOAD_CHUNK + 10;
        let mut codec = PacketCodec::new(max);
        let mut buf = BytesMut::new();
        put_header(&mut buf, MAX_PAYLOAD_CHUNK, 0);
        buf.extend_from_slice(&payload(MAX_PAYLOAD_CHUNK));
        put_header(&mut buf, 11, 1);
        match codec.decode(&mut buf) {
            Err(FrameError::PacketTooLarge { size, .. }) => {
                assert_eq!(size, MAX_PAYLOAD_CHUNK + 11)
            }
            other => panic!("unexpected {other:?}"),
        }
        // A full-size chunk with a limit below 0xFFFFFF fails at once.
        let mut codec = PacketCodec::new(1 << 20);
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::PacketTooLarge { .. })
        ));
    }

    #[test]
    fn eof_mid_packet_is_an_error() {
        let mut codec = PacketCodec::new(100);
        let mut buf = BytesMut::from(&[5, 0, 0, 0, b'a'][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(codec.decode_eof(&mut buf), Err(FrameError::Io(_))));
        let mut empty = BytesMut::new();
        assert!(PacketCodec::new(1)
            .decode_eof(&mut empty)
            .unwrap()
            .is_none());
    }

    /// The frames of `buf` as `(seq, payload)` pairs, and what the
    /// iterator consumed.
    fn walk(buf: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
        let mut frames = frames(buf);
        let got = frames
            .by_ref()
            .map(|f| (f.seq, f.payload.to_vec()))
            .collect();
        (got, frames.consumed())
    }

    #[test]
    fn frames_yields_every_complete_frame() {
        let mut wire = BytesMut::new();
        encode_packet(0, b"abc", &mut wire);
        encode_packet(1, b"", &mut wire);
        encode_packet(255, b"xy", &mut wire);
        let (got, consumed) = walk(&wire);
        assert_eq!(
            got,
            vec![(0, b"abc".to_vec()), (1, vec![]), (255, b"xy".to_vec())]
        );
        assert_eq!(consumed, wire.len());
        let mut frames = frames(&wire);
        let lens: Vec<usize> = frames.by_ref().map(|f| f.wire_len()).collect();
        assert_eq!(lens, vec![7, 4, 6]);
        assert!(frames.rest().is_empty());
        assert_eq!(frames.peek_header(), None);
        assert!(frames.next().is_none());
        assert_eq!(walk(&[]), (vec![], 0));
    }

    #[test]
    fn frames_stop_at_a_frame_cut_in_its_header() {
        let mut wire = BytesMut::new();
        encode_packet(3, b"abc", &mut wire);
        wire.extend_from_slice(&[2, 0]);
        let mut frames = frames(&wire);
        assert_eq!(frames.next().map(|f| f.seq), Some(3));
        assert!(frames.next().is_none());
        // Stays ended, and shows where it stopped.
        assert!(frames.next().is_none());
        assert_eq!(frames.consumed(), 7);
        assert_eq!(frames.rest(), &[2, 0]);
        assert_eq!(frames.peek_header(), None);
    }

    #[test]
    fn frames_stop_at_a_frame_cut_in_its_payload() {
        let mut wire = BytesMut::new();
        encode_packet(3, b"abc", &mut wire);
        encode_packet(4, b"hello", &mut wire);
        let cut = &wire[..wire.len() - 3];
        let (got, consumed) = walk(cut);
        assert_eq!(got, vec![(3, b"abc".to_vec())]);
        assert_eq!(consumed, 7);
        let mut frames = frames(cut);
        frames.by_ref().for_each(drop);
        // The cut frame's header, for checks before its payload is in.
        assert_eq!(frames.peek_header(), Some((5, 4)));
        assert_eq!(frames.rest(), &[5, 0, 0, 4, b'h', b'e']);
    }

    #[test]
    fn frames_of_an_empty_payload() {
        let (got, consumed) = walk(&[0, 0, 0, 9]);
        assert_eq!(got, vec![(9, vec![])]);
        assert_eq!(consumed, HEADER_LEN);
        let mut frames = frames(&[0, 0, 0, 9]);
        let frame = frames.next().unwrap();
        assert_eq!(frame.wire_len(), HEADER_LEN);
        assert!(!frame.continues());
        let mut out = Vec::new();
        assert_eq!(super::frames(&[0, 0, 0, 9]).join_packet(&mut out), Some(9));
        assert!(out.is_empty());
    }

    #[test]
    fn frames_of_16_mib_continuation_chunks() {
        for n in [
            MAX_PAYLOAD_CHUNK,
            MAX_PAYLOAD_CHUNK + 10,
            2 * MAX_PAYLOAD_CHUNK,
        ] {
            let data = payload(n);
            let mut wire = BytesMut::new();
            let next = encode_packet(254, &data, &mut wire);
            encode_packet(next, b"tail", &mut wire);
            let mut frames = frames(&wire);
            let chunks: Vec<(u8, usize, bool)> = frames
                .clone()
                .map(|f| (f.seq, f.payload.len(), f.continues()))
                .collect();
            let last = n % MAX_PAYLOAD_CHUNK;
            let mut expected: Vec<(u8, usize, bool)> = (0..n / MAX_PAYLOAD_CHUNK)
                .map(|i| (254u8.wrapping_add(i as u8), MAX_PAYLOAD_CHUNK, true))
                .collect();
            expected.push((next.wrapping_sub(1), last, false));
            expected.push((next, 4, false));
            assert_eq!(chunks, expected, "size {n}");

            let mut joined = Vec::new();
            assert_eq!(frames.join_packet(&mut joined), Some(next.wrapping_sub(1)));
            assert!(joined == data, "size {n}");
            assert_eq!(frames.consumed(), wire.len() - 8);
            let mut tail = BytesMut::new();
            assert_eq!(frames.join_packet(&mut tail), Some(next));
            assert_eq!(&tail[..], b"tail");
            assert_eq!(frames.join_packet(&mut tail), None);
        }
    }

    #[test]
    fn a_packet_cut_in_its_last_chunk_is_not_joined() {
        let data = payload(MAX_PAYLOAD_CHUNK + 10);
        let mut wire = BytesMut::new();
        encode_packet(0, &data, &mut wire);
        let cut = &wire[..wire.len() - 1];
        let mut frames = frames(cut);
        let mut out = Vec::new();
        assert_eq!(frames.join_packet(&mut out), None);
        // The complete chunk was taken; the cut one is what is left.
        assert_eq!(out.len(), MAX_PAYLOAD_CHUNK);
        assert_eq!(frames.peek_header(), Some((10, 1)));
    }

    #[test]
    fn header_is_usable_in_constants() {
        const QUIT: [u8; 4] = header(1, 0);
        assert_eq!(QUIT, [1, 0, 0, 0]);
        assert_eq!(header(MAX_PAYLOAD_CHUNK, 7), [0xFF, 0xFF, 0xFF, 7]);
        assert_eq!(header(0x01_0203, 9), [3, 2, 1, 9]);
        assert_eq!(parse_header(&header(0x01_0203, 9)), Some((0x01_0203, 9)));
    }

    #[test]
    fn encoder_trait() {
        let mut codec = PacketCodec::new(100);
        let mut out = BytesMut::new();
        codec.encode(Packet::new(2, &b"hi"[..]), &mut out).unwrap();
        assert_eq!(&out[..], &[2, 0, 0, 2, b'h', b'i']);
    }
}
