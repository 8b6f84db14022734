//! The listener actor: accepts connections on one address and starts a
//! client-session actor for each on the next event thread.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::{TcpListener, TcpStream};

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
        (ndx > 0).then(|| &self.arbiters[ndx])
    }

    pub fn stop(&self) {
        for arbiter in &self.owned {
            arbiter.stop();
        }
    }
}

/// Accepts on one listening socket.
pub struct Listener {
    socket: Option<TcpListener>,
    context: Arc<ListenerContext>,
    threads: Arc<EventThreads>,
}

/// Stop accepting new connections (existing sessions are not affected).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Listener {
    pub fn new(
        socket: TcpListener,
        context: Arc<ListenerContext>,
        threads: Arc<EventThreads>,
    ) -> Self {
        Self {
            socket: Some(socket),
            context,
            threads,
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(socket) = self.socket.take() {
            ctx.add_stream(futures_util::stream::unfold(socket, |socket| async move {
                let accepted = socket.accept().await;
                if accepted.is_err() {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some((accepted, socket))
            }));
        }
    }
}

impl StreamHandler<io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>, _: &mut Self::Context) {
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                slog::error!(self.context.logger, "accept failed: {}", error);
                return;
            }
        };
        let context = Arc::clone(&self.context);
        let connection_id = context.sessions.next_connection_id();
        let Some(thread) = self.threads.next() else {
            // This thread's turn: the stream is registered here already.
            ClientSession::new(context, connection_id, stream, peer).start();
            return;
        };
        // A tokio stream belongs to the runtime that registered it: move it
        // to the event thread as a std socket and register it there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                slog::error!(self.context.logger, "accept failed: {}", error);
                return;
            }
        };
        thread.spawn_fn(move || match TcpStream::from_std(stream) {
            Ok(stream) => {
                ClientSession::new(context, connection_id, stream, peer).start();
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
