//! The listener actor: accepts connections on one address (TCP or a Unix
//! socket) and starts a client-session actor for each on the next event
//! thread.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::net::{TcpListener, TcpSocket, UnixListener};

use crate::address::{socket_addr_text, Address};
use crate::net::Stream;
use crate::session::{ClientSession, ListenerContext};

/// The event threads sessions run on: the current arbiter plus extra ones,
/// handed out round-robin.
pub struct EventThreads {
    arbiters: Vec<ArbiterHandle>,
    /// The extra arbiters this engine created (the current one is not ours
    /// to stop).
    owned: Vec<Arbiter>,
    next: AtomicUsize,
}

impl EventThreads {
    /// `count` threads in all, the current one included.
    pub fn new(count: usize) -> Self {
        let owned: Vec<Arbiter> = (1..count.max(1)).map(|_| Arbiter::new()).collect();
        let mut arbiters = vec![Arbiter::current()];
        arbiters.extend(owned.iter().map(Arbiter::handle));
        Self {
            arbiters,
            owned,
            next: AtomicUsize::new(0),
        }
    }

    /// The thread for the next connection, round robin; `None` for the
    /// current thread (the listeners').
    fn next(&self) -> Option<&ArbiterHandle> {
        let ndx = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters.get(ndx).filter(|_| ndx > 0)
    }

    pub fn stop(&self) {
        for arbiter in &self.owned {
            arbiter.stop();
        }
    }
}

/// A listening socket.
pub enum Acceptor {
    Tcp(TcpListener),
    /// The socket file is removed when the acceptor is dropped.
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
}

impl Acceptor {
    /// Binds the way MySQL Proxy does: TCP with SO_REUSEADDR; a Unix socket
    /// whose file is left over from a process that is gone is replaced.
    pub fn bind(address: &Address) -> io::Result<Acceptor> {
        match address {
            Address::Tcp(addr) => {
                let socket = match addr {
                    std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.set_reuseaddr(true)?;
                socket.set_nodelay(true)?;
                socket.bind(*addr)?;
                socket.listen(1024).map(Acceptor::Tcp)
            }
            Address::Unix(path) => {
                let listener = match UnixListener::bind(path) {
                    Err(error) if error.kind() == io::ErrorKind::AddrInUse && is_stale(path) => {
                        std::fs::remove_file(path)?;
                        UnixListener::bind(path)?
                    }
                    bound => bound?,
                };
                Ok(Acceptor::Unix {
                    listener,
                    path: path.clone(),
                })
            }
        }
    }

    /// Where it listens, for the log: `ip:port` (the port chosen, for
    /// port 0) or the socket path.
    pub fn local_name(&self) -> String {
        match self {
            Acceptor::Tcp(listener) => listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            Acceptor::Unix { path, .. } => path.display().to_string(),
        }
    }

    /// The local name every connection accepted here has, when it is known
    /// without asking the kernel: not for a wildcard address, where each
    /// connection's own address says which interface it came in on.
    fn fixed_local_name(&self) -> Option<String> {
        match self {
            Acceptor::Tcp(listener) => listener
                .local_addr()
                .ok()
                .filter(|addr| !addr.ip().is_unspecified())
                .map(|addr| socket_addr_text(&addr)),
            Acceptor::Unix { path, .. } => Some(path.display().to_string()),
        }
    }

    /// The next connection, with its peer's name and its local name
    /// (`fixed_local` if given).
    async fn accept(&self, fixed_local: Option<&String>) -> io::Result<Accepted> {
        let (stream, peer) = match self {
            Acceptor::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                (Stream::Tcp(stream), socket_addr_text(&peer))
            }
            Acceptor::Unix { listener, path } => {
                let (stream, _) = listener.accept().await?;
                // Unix clients are unnamed: they are known by the socket.
                (Stream::Unix(stream), path.display().to_string())
            }
        };
        let local = fixed_local.cloned().unwrap_or_else(|| stream.local_name());
        Ok(Accepted {
            stream,
            peer,
            local,
        })
    }
}

/// A new client connection and the names the session reports for it.
pub struct Accepted {
    stream: Stream,
    peer: String,
    local: String,
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if let Acceptor::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether a socket file is left over: nothing accepts on it.
fn is_stale(path: &std::path::Path) -> bool {
    matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused
    )
}

/// How often the pools of a listener's backends are swept: a pooled
/// connection is closed within this long after its idle timeout.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts on one listening socket.
pub struct Listener {
    socket: Option<Acceptor>,
    context: Arc<ListenerContext>,
    threads: Arc<EventThreads>,
    /// When an accept error was last logged, and how many since: out of
    /// file descriptors, accept fails every time it is retried (every
    /// 50 ms), and one line a second is enough to say so.
    accept_errors: (Option<Instant>, u64),
}

/// Stop accepting new connections (existing sessions are not affected).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Listener {
    pub fn new(
        socket: Acceptor,
        context: Arc<ListenerContext>,
        threads: Arc<EventThreads>,
    ) -> Self {
        Self {
            socket: Some(socket),
            context,
            threads,
            accept_errors: (None, 0),
        }
    }

    /// Logs an accept error, at most once a second (with the count of the
    /// ones not logged since).
    fn accept_failed(&mut self, error: &io::Error) {
        let (last, suppressed) = &mut self.accept_errors;
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            *suppressed += 1;
            return;
        }
        if *suppressed > 0 {
            slog::error!(
                self.context.logger,
                "accept failed: {} ({} more since the last report)",
                error,
                suppressed
            );
        } else {
            slog::error!(self.context.logger, "accept failed: {}", error);
        }
        *last = Some(Instant::now());
        *suppressed = 0;
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.context.pool.max_idle > 0 {
            // Without this, a pool that sees no traffic would keep expired
            // connections and ones the server has closed until the next
            // take. Only with the pool on: an armed timer costs every
            // event thread a clock read each time it goes idle (about 2 %
            // per relayed query). Connections a plugin parks with the pool
            // off are trimmed when the next one is parked or taken.
            ctx.run_interval(POOL_SWEEP_INTERVAL, |listener, _| {
                for backend in listener.context.registry.all() {
                    backend.pool.sweep(&listener.context.pool);
                }
            });
        }
        if let Some(socket) = self.socket.take() {
            let fixed_local = socket.fixed_local_name();
            let state = (socket, fixed_local);
            ctx.add_stream(futures_util::stream::unfold(
                state,
                |(socket, fixed_local)| async move {
                    let accepted = socket.accept(fixed_local.as_ref()).await;
                    if accepted.is_err() {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some((accepted, (socket, fixed_local)))
                },
            ));
        }
    }
}

impl StreamHandler<io::Result<Accepted>> for Listener {
    fn handle(&mut self, accepted: io::Result<Accepted>, _: &mut Self::Context) {
        let Accepted {
            stream,
            peer,
            local,
        } = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                self.accept_failed(&error);
                return;
            }
        };
        let context = Arc::clone(&self.context);
        let seat = if context.counted {
            match context.sessions.take_seat() {
                Some(seat) => Some(seat),
                None => {
                    slog::info!(
                        context.logger,
                        "turned a client away: too many connections (--max-connections={})",
                        context.sessions.max_connections();
                        "client" => peer
                    );
                    actix::spawn(crate::session::turn_away(stream, context.limits));
                    return;
                }
            }
        } else {
            None
        };
        let connection_id = context.sessions.next_connection_id();
        let Some(thread) = self.threads.next() else {
            // This thread's turn: the stream is registered here already.
            ClientSession::new(context, connection_id, stream, peer, local, seat).start();
            return;
        };
        // A tokio stream belongs to the runtime that registered it: move it
        // to the event thread unregistered and register it there.
        let stream = match stream.park() {
            Ok(stream) => stream,
            Err(error) => {
                slog::error!(self.context.logger, "accept failed: {}", error);
                return;
            }
        };
        thread.spawn_fn(move || match stream.resume() {
            Ok(stream) => {
                ClientSession::new(context, connection_id, stream, peer, local, seat).start();
            }
            Err(error) => slog::error!(context.logger, "cannot register connection: {}", error),
        });
    }
}

impl Handler<StopAccepting> for Listener {
    type Result = ();

    fn handle(&mut self, _: StopAccepting, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
