//! One side of a session (client or server): a TCP stream, its read buffer,
//! and packet-level reads and writes with the configured timeouts.
//!
//! Reads land in one `BytesMut` per connection; packets are handed out as
//! zero-copy `Bytes` slices of it. An idle connection gives its buffer back
//! ([`Conn::release_idle_buffer`]) so idle sessions cost little memory.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use mysql_proxy_protocol::codec::{self, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::stream::{ParkedStream, Stream};

/// Bytes requested from the kernel per read: a command or a small result
/// fits in the first size, and a buffer that small is cheap to allocate and
/// free per command; each read that fills the buffer doubles the next one,
/// up to the largest size, for results that stream.
const FIRST_READ_CHUNK: usize = 4 * 1024;
const LARGEST_READ_CHUNK: usize = 64 * 1024;

/// How long an idle session waits for its client before it watches its
/// server too (see [`Conn::readable`]): a server that ends
/// the session is seen within this much.
const IDLE_PATIENCE: Duration = Duration::from_millis(500);

/// How long a session waits for a response before it watches its client
/// for closing (see [`Conn::fill_unless_closed`]).
pub const RESPONSE_PATIENCE: Duration = Duration::from_secs(1);

/// What ended a wait for a response before the response came.
pub enum Interrupt {
    /// The client closed its connection.
    ClientClosed,
    /// A control message came for the session.
    Mail,
    /// The wait has lasted its patience (once per command).
    Lasting,
}

/// Which side of an idle session spoke first.
pub enum Awake {
    Client,
    Server,
}

/// A failure on one side, before it is attributed to client or backend.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection closed")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("packet of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// The packet's sequence id is not the one the protocol requires here.
    #[error("packet with sequence id {got} where {expected} was due")]
    OutOfOrder { expected: u8, got: u8 },
}

/// One logical packet as read: the raw frames (header included, all chunks of
/// a packet over 16 MiB) and the joined payload.
#[derive(Debug, Clone)]
pub struct RawPacket {
    pub raw: Bytes,
    pub payload: Bytes,
    /// Sequence id of the first chunk.
    pub seq: u8,
    /// Sequence id of the last chunk (the next packet continues from it).
    pub last_seq: u8,
}

impl RawPacket {
    /// The raw frames with every chunk's sequence id moved by `shift`
    /// (wrapping), for relaying between sides that number differently.
    pub fn with_seq_shift(&self, shift: u8) -> Bytes {
        if shift == 0 {
            return self.raw.clone();
        }
        let mut shifted = BytesMut::with_capacity(self.raw.len());
        let mut frames = codec::frames(&self.raw);
        for frame in &mut frames {
            codec::put_header(
                &mut shifted,
                frame.payload.len(),
                frame.seq.wrapping_add(shift),
            );
            shifted.extend_from_slice(frame.payload);
        }
        // A packet read whole leaves nothing here; anything would be kept
        // as it is.
        shifted.extend_from_slice(frames.rest());
        shifted.freeze()
    }

    /// The first payload byte (command or packet type), if any.
    pub fn first_byte(&self) -> Option<u8> {
        self.payload.first().copied()
    }
}

/// The limits every connection of a listener works under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest wait for data.
    pub read_timeout: Duration,
    /// Longest wait for a write to be taken.
    pub write_timeout: Duration,
    /// Largest logical packet accepted.
    pub max_packet_size: usize,
}

pub struct Conn {
    stream: Stream,
    pub(crate) buf: BytesMut,
    /// Room to make for the next read (see [`FIRST_READ_CHUNK`]).
    read_chunk: usize,
    /// The timer of every wait on this connection (see [`Deadline`]).
    deadline: Deadline,
    read_timeout: Duration,
    write_timeout: Duration,
    max_packet: usize,
}

impl Conn {
    pub fn new(stream: Stream, limits: Limits) -> Self {
        stream.set_nodelay();
        Self {
            stream,
            buf: BytesMut::new(),
            read_chunk: FIRST_READ_CHUNK,
            deadline: Deadline::default(),
            read_timeout: limits.read_timeout,
            write_timeout: limits.write_timeout,
            max_packet: limits.max_packet_size,
        }
    }

    /// Unwraps the socket to park it; `None` if bytes are pending in the
    /// buffer (the connection is not at rest, so it cannot be reused).
    pub fn park(self) -> Option<ParkedStream> {
        if !self.buf.is_empty() {
            return None;
        }
        self.stream.park().ok()
    }

    /// Reads more bytes into the buffer; `Ok(n)` with n > 0, never 0.
    pub async fn fill(&mut self) -> Result<usize, ConnError> {
        let Ok(read) = self.fill_with(Unwatched, None).await?;
        Ok(read)
    }

    /// Like [`Conn::fill`], for a response the session waits on: once the
    /// wait has lasted [`RESPONSE_PATIENCE`], `client` (which owes nothing
    /// meanwhile) is watched for closing its connection, and the session's
    /// `mail` flag for a control message; either ends the wait, and so does
    /// the patience itself the first time (`lasting` false: the session
    /// then shows its command as one that lasts, and sets it). `watching`
    /// goes false for good when the client sends data instead (a pipelined
    /// command: no close).
    ///
    /// Watching only after a while costs the usual quick response nothing:
    /// watching a socket registers with it under a lock, every time.
    pub async fn fill_unless_interrupted(
        &mut self,
        client: &Conn,
        watching: &mut bool,
        mail: &AtomicBool,
        lasting: bool,
    ) -> Result<Result<usize, Interrupt>, ConnError> {
        if !client.buf.is_empty() {
            *watching = false;
        }
        let watch = ClientCloses {
            stream: &client.stream,
            watching,
            mail,
            lasting,
        };
        self.fill_with(watch, Some(RESPONSE_PATIENCE)).await
    }

    /// `fill` with a watch: `Ok(Err(seen))` when the watch saw something
    /// first.
    async fn fill_with<W: Watch>(
        &mut self,
        watch: W,
        patience: Option<Duration>,
    ) -> Result<Result<usize, W::Seen>, ConnError> {
        if self.buf.capacity() - self.buf.len() < self.read_chunk / 4
            && !self.buf.try_reclaim(self.read_chunk)
        {
            // A new buffer with only the unread bytes (a packet's start)
            // copied over: growing this one would copy its whole capacity,
            // bytes already relayed included.
            let mut bigger = BytesMut::with_capacity(self.buf.len() + self.read_chunk);
            bigger.extend_from_slice(&self.buf);
            self.buf = bigger;
        }
        let room = self.buf.capacity() - self.buf.len();
        // What the kernel already has is read without arming a timer (and
        // without reading the clock): the usual case for a command after
        // the client's socket turned readable.
        let read = match self.stream.try_read_buf(&mut self.buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let wait = self.stream.read_buf(&mut self.buf);
                match self
                    .deadline
                    .within(self.read_timeout, wait, watch, patience)
                    .await?
                {
                    Ok(read) => read,
                    Err(seen) => return Ok(Err(seen)),
                }
            }
            read => read,
        };
        match read {
            Err(e) => Err(ConnError::Io(e)),
            Ok(0) => Err(ConnError::Closed),
            Ok(n) => {
                if n == room {
                    self.read_chunk = (self.read_chunk * 2).min(LARGEST_READ_CHUNK);
                }
                Ok(Ok(n))
            }
        }
    }

    /// Waits until the peer sent something (or closed), without allocating a
    /// buffer: used while idle, by an idle session's client. Once the wait
    /// has lasted [`IDLE_PATIENCE`], the session's `server` connection (if
    /// any) is watched too, which owes nothing now and speaks only to end
    /// the session (its `wait_timeout`, a `KILL`, a restart). Says which
    /// spoke first.
    pub async fn readable(&mut self, server: Option<&Conn>) -> Result<Awake, ConnError> {
        if !self.buf.is_empty() {
            return Ok(Awake::Client);
        }
        if server.is_some_and(|server| !server.buf.is_empty()) {
            return Ok(Awake::Server);
        }
        let watch = ServerSpeaks(server.map(|server| &server.stream));
        let wait = self.deadline.within(
            self.read_timeout,
            self.stream.readable(),
            watch,
            Some(IDLE_PATIENCE),
        );
        match wait.await? {
            Ok(ready) => ready.map(|()| Awake::Client).map_err(ConnError::Io),
            Err(()) => Ok(Awake::Server),
        }
    }

    /// Reads one logical packet.
    pub async fn read_packet(&mut self) -> Result<RawPacket, ConnError> {
        self.read_packet_checked(None).await
    }

    /// Reads one logical packet that must start with sequence id `expected`.
    /// The check is made on the header, so bytes that are not MySQL
    /// protocol (an HTTP request, a port scan) are refused at once instead
    /// of being taken for the start of a huge packet and waited on.
    pub async fn read_packet_numbered(&mut self, expected: u8) -> Result<RawPacket, ConnError> {
        self.read_packet_checked(Some(expected)).await
    }

    async fn read_packet_checked(&mut self, expected: Option<u8>) -> Result<RawPacket, ConnError> {
        loop {
            if let Some(packet) = self.take_packet(expected)? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    /// Takes one complete logical packet from the buffer, if there is one.
    /// The sequence id and the size limit are checked as soon as a header is
    /// seen, before the payload is buffered.
    fn take_packet(&mut self, expected: Option<u8>) -> Result<Option<RawPacket>, ConnError> {
        let mut check = HeaderCheck {
            expected,
            max: self.max_packet,
            total: 0,
            first_seq: None,
        };
        let mut frames = codec::frames(&self.buf);
        let mut chunks = 0usize;
        let last_seq = loop {
            let Some(frame) = frames.next() else {
                // A chunk cut short: its header, if in, is checked now,
                // before its payload is waited for.
                let Some((len, seq)) = frames.peek_header() else {
                    return Ok(None);
                };
                check.chunk(len, seq)?;
                let missing = (HEADER_LEN + len).saturating_sub(frames.rest().len());
                self.buf.reserve(missing);
                return Ok(None);
            };
            check.chunk(frame.payload.len(), frame.seq)?;
            chunks += 1;
            if !frame.continues() {
                break frame.seq;
            }
        };
        let raw = self.buf.split_to(frames.consumed()).freeze();
        let payload = if chunks == 1 {
            raw.slice(HEADER_LEN..)
        } else {
            let mut joined = BytesMut::with_capacity(check.total);
            codec::frames(&raw).join_packet(&mut joined);
            joined.freeze()
        };
        Ok(Some(RawPacket {
            raw,
            payload,
            seq: check.first_seq.unwrap_or(last_seq),
            last_seq,
        }))
    }

    /// Writes bytes, all of them, within the write timeout. What the socket
    /// takes at once is written without arming a timer (the usual case: a
    /// command, or a result the client keeps up with).
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let written = match self.stream.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(ConnError::Io(e)),
        };
        let Some(rest) = bytes.get(written..).filter(|rest| !rest.is_empty()) else {
            return Ok(());
        };
        let Ok(written) = self
            .deadline
            .within(
                self.write_timeout,
                self.stream.write_all(rest),
                Unwatched,
                None,
            )
            .await?;
        written.map_err(ConnError::Io)
    }

    /// Frames payloads with consecutive sequence ids starting at `seq` and
    /// writes them in one go; returns the sequence id after the last.
    pub async fn send_payloads<P: AsRef<[u8]>>(
        &mut self,
        seq: u8,
        payloads: &[P],
    ) -> Result<u8, ConnError> {
        let size: usize = payloads.iter().map(|p| p.as_ref().len() + HEADER_LEN).sum();
        let mut out = BytesMut::with_capacity(size);
        let mut next = seq;
        for payload in payloads {
            next = codec::encode_packet(next, payload.as_ref(), &mut out);
        }
        self.write_all(&out).await?;
        Ok(next)
    }

    /// Drops the buffer's memory if nothing is pending in it.
    pub fn release_idle_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
            self.read_chunk = FIRST_READ_CHUNK;
        }
    }

    /// Discards `n` bytes from the front of the buffer (they were relayed).
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
    }
}

/// One timer for all the waits of a connection, instead of a new one per
/// wait: registering a timer in tokio's wheel and removing it again cost
/// more than the rest of relaying a small query. Each wait reads the clock
/// and notes its own deadline; the timer stays armed at an earlier deadline
/// (a previous wait's, which is never later with the same timeout) and,
/// when it fires before the current wait's deadline, is moved there. So it
/// is re-armed about once per timeout while the connection is busy.
///
/// Waits that watch the other side after a patience use the same timer: it
/// is armed at the first such wait's patience and stays there (never later
/// than a later wait's, the patience of a connection being always the
/// same) until it fires, so the usual quick wait costs a flag check.
#[derive(Default)]
struct Deadline {
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is armed at a watching wait's patience.
    for_patience: bool,
}

impl Deadline {
    /// Waits for `wait` for at most `timeout`; after `patience` (if any),
    /// `watch` is polled beside it.
    fn within<F: Future, W: Watch>(
        &mut self,
        timeout: Duration,
        wait: F,
        watch: W,
        patience: Option<Duration>,
    ) -> Within<'_, F, W> {
        let started = Instant::now();
        let deadline = started + timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match patience {
            Some(patience) if !self.for_patience => {
                timer.as_mut().reset((started + patience).min(deadline));
                self.for_patience = true;
            }
            // A longer timeout armed it (a read's, now a write's).
            None if timer.deadline() > deadline => {
                timer.as_mut().reset(deadline);
                self.for_patience = false;
            }
            _ => {}
        }
        Within {
            wait,
            timer,
            for_patience: &mut self.for_patience,
            deadline,
            started,
            watch,
            patience,
        }
    }
}

/// The other side of a session, watched during a wait on this one.
trait Watch {
    /// What the other side did.
    type Seen;
    /// Ready once the other side did what is watched for.
    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<Self::Seen>;
}

/// No watch: the wait is on its own, and nothing can be seen.
struct Unwatched;

impl Watch for Unwatched {
    type Seen = Infallible;

    fn poll_watch(&mut self, _: &mut Context<'_>) -> Poll<Infallible> {
        Poll::Pending
    }
}

/// An idle session's server (if it has one), which speaks (or closes)
/// only to end the session.
struct ServerSpeaks<'a>(Option<&'a Stream>);

impl Watch for ServerSpeaks<'_> {
    type Seen = ();

    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.0 {
            Some(server) => server.readable_poll(cx).map(|_| ()),
            None => Poll::Pending,
        }
    }
}

/// A client waiting for its response, which closes or, pipelining, sends
/// its next command (see [`Stream::poll_closed`]), and the session's mail.
struct ClientCloses<'a> {
    stream: &'a Stream,
    watching: &'a mut bool,
    mail: &'a AtomicBool,
    /// The wait is known to last already.
    lasting: bool,
}

impl Watch for ClientCloses<'_> {
    type Seen = Interrupt;

    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<Interrupt> {
        if !self.lasting {
            self.lasting = true;
            return Poll::Ready(Interrupt::Lasting);
        }
        // The sender of the mail wakes the task, which polls this.
        if self.mail.load(Ordering::SeqCst) {
            return Poll::Ready(Interrupt::Mail);
        }
        self.stream
            .poll_closed(cx, self.watching)
            .map(|()| Interrupt::ClientClosed)
    }
}

pin_project_lite::pin_project! {
    /// A wait under a [`Deadline`]. A future of its own rather than an
    /// `async fn`, which would hold the wait twice (as its argument and
    /// pinned): every read and write of a session, idle ones included,
    /// is one of these.
    struct Within<'a, F, W> {
        #[pin]
        wait: F,
        timer: &'a mut Pin<Box<Sleep>>,
        for_patience: &'a mut bool,
        deadline: Instant,
        started: Instant,
        watch: W,
        // How long after `started` the watch begins; `None` once it has
        // (or for no patience).
        patience: Option<Duration>,
    }
}

impl<F: Future, W: Watch> Future for Within<'_, F, W> {
    /// The wait's output, or what the watch saw first.
    type Output = Result<Result<F::Output, W::Seen>, ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.wait.poll(cx) {
            return Poll::Ready(Ok(Ok(output)));
        }
        if this.patience.is_none() {
            if let Poll::Ready(seen) = this.watch.poll_watch(cx) {
                return Poll::Ready(Ok(Err(seen)));
            }
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if now >= *this.deadline {
                return Poll::Ready(Err(ConnError::Timeout));
            }
            let started = *this.started;
            if this
                .patience
                .is_some_and(|patience| now >= started + patience)
            {
                *this.patience = None;
                if let Poll::Ready(seen) = this.watch.poll_watch(cx) {
                    return Poll::Ready(Ok(Err(seen)));
                }
            }
            let next = match *this.patience {
                Some(patience) => (started + patience).min(*this.deadline),
                None => *this.deadline,
            };
            **this.for_patience = this.patience.is_some();
            this.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// The checks a packet's chunk headers pass as soon as each is in, before
/// its payload is waited for: the first chunk's sequence id, and the size
/// so far against the limit.
struct HeaderCheck {
    expected: Option<u8>,
    max: usize,
    /// Payload bytes of the chunks seen so far.
    total: usize,
    /// Sequence id of the first chunk, once seen.
    first_seq: Option<u8>,
}

impl HeaderCheck {
    fn chunk(&mut self, len: usize, seq: u8) -> Result<(), ConnError> {
        if self.first_seq.is_none() {
            if let Some(expected) = self.expected.filter(|&expected| expected != seq) {
                return Err(ConnError::OutOfOrder { expected, got: seq });
            }
            self.first_seq = Some(seq);
        }
        self.total += len;
        if self.total > self.max {
            return Err(ConnError::TooLarge {
                size: self.total,
                max: self.max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use mysql_proxy_protocol::codec::MAX_PAYLOAD_CHUNK;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_does_not_end_times_out_at_its_deadline() {
        let mut deadline = Deadline::default();
        let began = Instant::now();
        let outcome = deadline
            .within(secs(2), pending::<()>(), Unwatched, None)
            .await;
        assert!(matches!(outcome, Err(ConnError::Timeout)));
        assert_eq!(began.elapsed(), secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_wait_gets_its_whole_timeout_from_the_reused_timer() {
        let mut deadline = Deadline::default();
        let began = Instant::now();
        // Armed for 0 + 10 s; this wait ends at 3 s.
        let first = deadline
            .within(secs(10), tokio::time::sleep(secs(3)), Unwatched, None)
            .await;
        assert!(first.is_ok());
        // The timer fires at 10 s, before this wait's deadline of 13 s.
        let outcome = deadline
            .within(secs(10), pending::<()>(), Unwatched, None)
            .await;
        assert!(matches!(outcome, Err(ConnError::Timeout)));
        assert_eq!(began.elapsed(), secs(13));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_timeout_moves_the_timer_earlier() {
        let mut deadline = Deadline::default();
        let began = Instant::now();
        let first = deadline
            .within(secs(60), tokio::time::sleep(secs(1)), Unwatched, None)
            .await;
        assert!(first.is_ok());
        let outcome = deadline
            .within(secs(2), pending::<()>(), Unwatched, None)
            .await;
        assert!(matches!(outcome, Err(ConnError::Timeout)));
        assert_eq!(began.elapsed(), secs(3));
    }

    /// A watch that has seen something from the start.
    struct AlreadySeen;

    impl Watch for AlreadySeen {
        type Seen = &'static str;

        fn poll_watch(&mut self, _: &mut Context<'_>) -> Poll<&'static str> {
            Poll::Ready("seen")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_begins_after_the_patience_not_before() {
        let mut deadline = Deadline::default();
        let began = Instant::now();
        let outcome = deadline
            .within(secs(10), pending::<()>(), AlreadySeen, Some(secs(1)))
            .await;
        assert!(matches!(outcome, Ok(Err("seen"))));
        assert_eq!(began.elapsed(), secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_ends_before_the_patience_is_not_watched() {
        let mut deadline = Deadline::default();
        let quick = deadline
            .within(
                secs(10),
                tokio::time::sleep(secs(0)),
                AlreadySeen,
                Some(secs(1)),
            )
            .await;
        assert!(matches!(quick, Ok(Ok(()))));
        // The timer armed for that patience serves the next wait's deadline.
        let began = Instant::now();
        let outcome = deadline
            .within(secs(2), pending::<()>(), Unwatched, None)
            .await;
        assert!(matches!(outcome, Err(ConnError::Timeout)));
        assert_eq!(began.elapsed(), secs(2));
    }

    /// A connection reading what the returned socket writes.
    fn socket_pair(max_packet_size: usize) -> (Conn, tokio::net::UnixStream) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let limits = Limits {
            read_timeout: secs(10),
            write_timeout: secs(10),
            max_packet_size,
        };
        (Conn::new(Stream::Unix(ours), limits), theirs)
    }

    #[tokio::test]
    async fn packets_are_read_whole_however_they_arrive() {
        let (mut conn, mut peer) = socket_pair(64 << 20);
        let big: Vec<u8> = (0..MAX_PAYLOAD_CHUNK + 10).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        let next = codec::encode_packet(3, b"hello", &mut wire);
        let next = codec::encode_packet(next, &big, &mut wire);
        codec::encode_packet(next, b"", &mut wire);
        let writer = async {
            // Cut inside a header and inside a payload.
            for piece in [&wire[..2], &wire[2..7], &wire[7..]] {
                peer.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        };
        let reader = async {
            let mut packets = Vec::new();
            for _ in 0..3 {
                packets.push(conn.read_packet().await.unwrap());
            }
            packets
        };
        let ((), packets) = tokio::join!(writer, reader);
        assert_eq!(&packets[0].payload[..], b"hello");
        assert_eq!((packets[0].seq, packets[0].last_seq), (3, 3));
        assert_eq!(&packets[0].raw[..], &wire[..9]);
        assert!(packets[1].payload[..] == big[..]);
        assert_eq!((packets[1].seq, packets[1].last_seq), (4, 5));
        assert_eq!(packets[1].raw.len(), big.len() + 2 * HEADER_LEN);
        assert!(packets[2].payload.is_empty());
        assert_eq!((packets[2].seq, packets[2].last_seq), (6, 6));
        assert!(conn.buf.is_empty());
    }

    #[tokio::test]
    async fn a_header_is_checked_before_its_payload_comes() {
        let (mut conn, mut peer) = socket_pair(100);
        // Announces 101 bytes and sends none of them.
        peer.write_all(&codec::header(101, 0)).await.unwrap();
        assert!(matches!(
            conn.read_packet().await,
            Err(ConnError::TooLarge {
                size: 101,
                max: 100
            })
        ));
        let (mut conn, mut peer) = socket_pair(100);
        peer.write_all(&codec::header(5, 2)).await.unwrap();
        assert!(matches!(
            conn.read_packet_numbered(1).await,
            Err(ConnError::OutOfOrder {
                expected: 1,
                got: 2
            })
        ));
    }

    #[test]
    fn a_seq_shift_moves_every_chunk() {
        let big = vec![7u8; MAX_PAYLOAD_CHUNK];
        let mut wire = BytesMut::new();
        codec::encode_packet(254, &big, &mut wire);
        let raw = wire.freeze();
        let packet = RawPacket {
            payload: Bytes::from(big),
            raw: raw.clone(),
            seq: 254,
            last_seq: 255,
        };
        assert_eq!(packet.with_seq_shift(0), raw);
        let shifted = packet.with_seq_shift(3);
        let seqs: Vec<u8> = codec::frames(&shifted).map(|f| f.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
        assert_eq!(shifted.len(), raw.len());
        assert!(codec::frames(&shifted)
            .zip(codec::frames(&raw))
            .all(|(a, b)| a.payload == b.payload));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_ends_in_time_gives_its_output() {
        let mut deadline = Deadline::default();
        let outcome = deadline.within(secs(2), async { 7 }, Unwatched, None).await;
        assert!(matches!(outcome, Ok(Ok(7))));
    }
}
