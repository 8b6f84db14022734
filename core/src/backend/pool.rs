//! Idle authenticated server connections of one backend, kept for the next
//! client instead of being closed (MySQL Proxy 0.8's pool, made automatic).
//!
//! A parked connection is stored as a plain std socket, deregistered from the
//! event thread that used it, so whichever event thread takes it registers
//! it with its own runtime. Along with it is kept what its next client needs:
//! the handshake its first client saw (a new client must answer that same
//! challenge) and the credentials it was opened with.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mysql_proxy_protocol::constants::CapabilityFlags;

use crate::net::ParkedStream;

/// The pool's settings (`--proxy-pool-*`), shared by every backend: when a
/// client leaves an idle session, its authenticated server connection is
/// kept for the next client of the same backend instead of being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    /// Idle connections kept per backend; 0 turns the pool off.
    pub max_idle: u32,
    /// Idle connections never closed for being idle too long.
    pub min_idle: u32,
    /// Idle connections beyond `min_idle` are closed after this long, in
    /// milliseconds.
    pub idle_timeout_ms: u64,
    /// How a pooled connection is handed to its next client.
    pub reset: PoolReset,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            max_idle: 0,
            min_idle: 0,
            idle_timeout_ms: 300_000,
            reset: PoolReset::ChangeUser,
        }
    }
}

/// How a pooled connection is handed to a new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReset {
    /// COM_CHANGE_USER with the new client's credentials: the server checks
    /// them and resets all session state.
    ChangeUser,
    /// No round trip for the login: the client must log in as the user the
    /// connection was opened with, with the same password (checked by the
    /// proxy); COM_RESET_CONNECTION then resets the session state
    /// (`--proxy-pool-no-change-user`).
    ResetConnection,
}

/// Who a connection is logged in as, and how: the handshake frame and auth
/// response that did it, the capabilities negotiated then (which the server
/// keeps using), and what a returning client must ask for the same to be
/// let in without the server (see `session/pooled_login.rs`).
#[derive(Clone, Debug, Default)]
pub struct Login {
    /// The handshake frame (header included) its first client was sent: the
    /// next client must answer that same challenge.
    pub greeting: Bytes,
    pub username: Bytes,
    pub auth_response: Bytes,
    pub auth_plugin: Bytes,
    pub capabilities: CapabilityFlags,
    pub character_set: u8,
    /// The connection attributes the server has for the session.
    pub attributes: Bytes,
    /// The session's default database when it was parked (empty: none).
    pub database: Bytes,
    /// The server's id for the connection (from its handshake).
    pub thread_id: u32,
    /// The server status flags when it was parked.
    pub server_status: u16,
    /// Reset when it was parked (COM_RESET_CONNECTION): nothing of its
    /// previous client's session remains. A connection a plugin parked
    /// between commands is not: whoever takes it next gets its session.
    pub pristine: bool,
}

/// An authenticated server connection waiting for a client.
#[derive(Debug)]
pub struct PooledConn {
    pub stream: ParkedStream,
    pub login: Login,
    parked_at: Instant,
}

impl PooledConn {
    pub fn new(stream: ParkedStream, login: Login) -> Self {
        Self {
            stream,
            login,
            parked_at: Instant::now(),
        }
    }

    pub fn into_parts(self) -> (ParkedStream, Login) {
        (self.stream, self.login)
    }
}

/// The idle connections of one backend, most recently parked last.
#[derive(Debug, Default)]
pub struct BackendPool {
    idle: Mutex<VecDeque<PooledConn>>,
}

impl BackendPool {
    /// Keeps a connection if the pool has room (true); closes it otherwise.
    pub fn park(&self, conn: PooledConn, spec: &PoolSpec) -> bool {
        let mut idle = self.lock();
        trim(&mut idle, spec);
        if idle.len() >= spec.max_idle as usize {
            conn.stream.quit();
            return false;
        }
        idle.push_back(conn);
        true
    }

    /// The most recently parked connection that is still alive; stale and
    /// expired ones met on the way are closed.
    pub fn take(&self, spec: &PoolSpec) -> Option<PooledConn> {
        self.take_matching(spec, |_| true)
    }

    /// Like [`BackendPool::take`], among the connections `wanted` accepts.
    pub fn take_matching(
        &self,
        spec: &PoolSpec,
        wanted: impl Fn(&PooledConn) -> bool,
    ) -> Option<PooledConn> {
        let mut idle = self.lock();
        trim(&mut idle, spec);
        while let Some(found) = idle.iter().rposition(&wanted) {
            let conn = idle.remove(found)?;
            if !conn.stream.is_stale() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes the connections idle too long (down to `min_idle`) and those
    /// the server closed meanwhile (its `wait_timeout`, a restart), so that
    /// a pool without traffic does not hold dead or unwanted sockets.
    pub fn sweep(&self, spec: &PoolSpec) {
        let mut idle = self.lock();
        trim(&mut idle, spec);
        idle.retain(|conn| !conn.stream.is_stale());
    }

    /// Closes every idle connection (e.g. the backend went down).
    pub fn clear(&self) {
        for conn in self.lock().drain(..) {
            conn.stream.quit();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<PooledConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes connections idle longer than the timeout, oldest first, keeping
/// at least `min_idle`. Connections closed for the pool's own reasons say
/// COM_QUIT first (see [`ParkedStream::quit`]); stale ones, which the server
/// ended or spoke on unasked, are just closed.
fn trim(idle: &mut VecDeque<PooledConn>, spec: &PoolSpec) {
    let timeout = Duration::from_millis(spec.idle_timeout_ms);
    while idle.len() > spec.min_idle as usize
        && idle
            .front()
            .is_some_and(|c| c.parked_at.elapsed() > timeout)
    {
        if let Some(expired) = idle.pop_front() {
            expired.stream.quit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn spec(max_idle: u32, min_idle: u32, idle_timeout_ms: u64) -> PoolSpec {
        PoolSpec {
            max_idle,
            min_idle,
            idle_timeout_ms,
            reset: PoolReset::ChangeUser,
        }
    }

    /// A connected pair: the pooled side, and the "server" side.
    fn pair(listener: &TcpListener) -> (PooledConn, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        let conn = PooledConn::new(ParkedStream::Tcp(client), Login::default());
        (conn, server)
    }

    #[test]
    fn keeps_up_to_max_idle_and_skips_closed_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = BackendPool::default();
        let spec = spec(2, 0, 60_000);
        let (a, _server_a) = pair(&listener);
        let (b, server_b) = pair(&listener);
        let (c, _server_c) = pair(&listener);
        assert!(pool.park(a, &spec));
        assert!(pool.park(b, &spec));
        assert!(!pool.park(c, &spec), "full");
        drop(server_b);
        std::thread::sleep(Duration::from_millis(50));
        // b (the newest) is closed by its server: skipped, a comes out.
        assert!(pool.take(&spec).is_some());
        assert!(pool.is_empty());
    }

    #[test]
    fn idle_connections_expire_down_to_min_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = BackendPool::default();
        let keep = spec(3, 0, 60_000);
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (conn, server) = pair(&listener);
            servers.push(server);
            assert!(pool.park(conn, &keep));
        }
        std::thread::sleep(Duration::from_millis(20));
        let expire = spec(3, 1, 1);
        assert!(pool.take(&expire).is_some());
        assert!(pool.is_empty(), "two expired, the kept one was taken");
    }

    #[test]
    fn a_sweep_closes_expired_and_server_closed_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = BackendPool::default();
        let keep = spec(4, 0, 60_000);
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (conn, server) = pair(&listener);
            servers.push(server);
            assert!(pool.park(conn, &keep));
        }
        // The newest one's server goes away: swept although not expired.
        drop(servers.pop());
        std::thread::sleep(Duration::from_millis(50));
        pool.sweep(&keep);
        assert_eq!(pool.len(), 2);
        // Expiry keeps min_idle.
        pool.sweep(&spec(4, 1, 1));
        assert_eq!(pool.len(), 1);
    }
}
