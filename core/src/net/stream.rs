//! The socket under a [`Conn`](super::Conn): TCP, or a Unix domain socket
//! (a client or a backend on the same host), and the same socket parked
//! (unregistered from any event thread) while it is handed to another event
//! thread or waits in the connection pool.

use std::future::{poll_fn, Future};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use mysql_proxy_protocol::packets::ComQuit;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::address::{socket_addr_text, Address};

/// A connected socket registered with the current event thread.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects to a backend.
    pub async fn connect(address: &Address) -> io::Result<Stream> {
        match address {
            Address::Tcp(addr) => TcpStream::connect(addr).await.map(Stream::Tcp),
            Address::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
        }
    }

    /// Small request/response exchanges must not wait for Nagle (TCP only).
    pub fn set_nodelay(&self) {
        if let Stream::Tcp(stream) = self {
            let _ = stream.set_nodelay(true);
        }
    }

    /// This end's address: `ip:port` or the socket path.
    pub fn local_name(&self) -> String {
        match self {
            Stream::Tcp(stream) => stream
                .local_addr()
                .map(|a| socket_addr_text(&a))
                .unwrap_or_default(),
            Stream::Unix(stream) => stream
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_default(),
        }
    }

    /// Reads what the kernel has now; `WouldBlock` if nothing.
    ///
    /// A read that leaves room in the buffer took all the kernel had, so the
    /// socket is marked not readable: the next read then waits for the
    /// event loop's word instead of asking the kernel first and hearing
    /// `EAGAIN` (a system call per relayed query, the server's socket being
    /// read again as soon as the query is sent). Bytes that arrive after
    /// this read raise a new edge-triggered event, so none are missed.
    pub fn try_read_buf(&self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        let room = buf.capacity() - buf.len();
        let read = match self {
            Stream::Tcp(stream) => stream.try_read_buf(buf),
            Stream::Unix(stream) => stream.try_read_buf(buf),
        };
        if matches!(read, Ok(n) if n > 0 && n < room) {
            let drained = || Err::<(), _>(io::ErrorKind::WouldBlock.into());
            let _ = match self {
                Stream::Tcp(stream) => stream.try_io(Interest::READABLE, drained),
                Stream::Unix(stream) => stream.try_io(Interest::READABLE, drained),
            };
        }
        read
    }

    /// Writes what the kernel takes now; `WouldBlock` if nothing.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.try_write(bytes),
            Stream::Unix(stream) => stream.try_write(bytes),
        }
    }

    /// Ready once the peer sent something (or closed). Through the
    /// socket's reader slot, as reads wait, not tokio's `readable()`, whose
    /// future joins and leaves a list of waiters under a lock each time:
    /// an idle session waits like this before every command.
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        poll_fn(move |cx| self.readable_poll(cx))
    }

    /// The poll behind [`Stream::readable`].
    pub fn readable_poll(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(stream) => stream.poll_read_ready(cx),
            Stream::Unix(stream) => stream.poll_read_ready(cx),
        }
    }

    /// Ready once the peer closed the connection (or it failed), while the
    /// peer owes nothing: the client while its response is on the way.
    /// Data the peer sends meanwhile (a pipelined command) is left where it
    /// is, and the watch ends for `watching` (it stays pending from then on).
    pub fn poll_closed(&self, cx: &mut Context<'_>, watching: &mut bool) -> Poll<()> {
        while *watching {
            match self.readable_poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            // Readable: end of stream, an error, or data. Looked at without
            // taking it; `WouldBlock` clears the readiness and waits again.
            let peek = || peek_byte(self.as_raw_fd());
            let peeked = match self {
                Stream::Tcp(stream) => stream.try_io(Interest::READABLE, peek),
                Stream::Unix(stream) => stream.try_io(Interest::READABLE, peek),
            };
            match peeked {
                Ok(0) => return Poll::Ready(()),
                Ok(_) => *watching = false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(()),
            }
        }
        Poll::Pending
    }

    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }

    /// Unregisters the socket from this event thread, for the pool.
    pub fn park(self) -> io::Result<ParkedStream> {
        match self {
            Stream::Tcp(stream) => stream.into_std().map(ParkedStream::Tcp),
            Stream::Unix(stream) => stream.into_std().map(ParkedStream::Unix),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// A socket no event thread watches: whichever thread takes it from the
/// pool registers it with its own.
#[derive(Debug)]
pub enum ParkedStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl ParkedStream {
    /// Registers the socket with the current event thread.
    pub fn resume(self) -> io::Result<Stream> {
        match self {
            ParkedStream::Tcp(stream) => TcpStream::from_std(stream).map(Stream::Tcp),
            ParkedStream::Unix(stream) => UnixStream::from_std(stream).map(Stream::Unix),
        }
    }

    /// Ends the server session with COM_QUIT before the socket is closed, so
    /// that the server sees a client's goodbye rather than a lost connection
    /// (which it counts in `Aborted_clients` and logs). The socket is
    /// non-blocking: if it cannot take the five bytes at once, it is closed
    /// regardless.
    pub fn quit(&self) {
        let _ = match self {
            ParkedStream::Tcp(stream) => (&*stream).write(&ComQuit::FRAME),
            ParkedStream::Unix(stream) => (&*stream).write(&ComQuit::FRAME),
        };
    }

    /// Whether the peer closed it (or sent something unasked, such as a
    /// timeout notice) while it was parked. Parked sockets are non-blocking.
    pub fn is_stale(&self) -> bool {
        let fd = match self {
            ParkedStream::Tcp(stream) => stream.as_raw_fd(),
            ParkedStream::Unix(stream) => stream.as_raw_fd(),
        };
        !matches!(peek_byte(fd), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Looks at whether a non-blocking socket has a byte to read, without
/// taking it: `Ok(0)` at end of stream, `WouldBlock` when nothing came.
fn peek_byte(fd: std::os::fd::RawFd) -> io::Result<usize> {
    let mut probe = [0u8; 1];
    // SAFETY: `probe` is a valid buffer of the length given; MSG_PEEK leaves
    // the socket's data where it is.
    let n = unsafe {
        libc::recv(
            fd,
            probe.as_mut_ptr().cast(),
            probe.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
