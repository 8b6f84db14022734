//! Loopback ports for the servers and proxies of concurrent tests.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A port on 127.0.0.1 that nothing listens on right now.
///
/// The kernel picks it (bind to port 0); the harness never hands out the same port
/// twice in one test process, so parallel tests cannot be given the same one.
/// Another process may still take it before the server binds: starters retry with
/// a fresh port when the bind fails.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr of 127.0.0.1:0: {e}"))
            .port();
        let fresh = handed_out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(port);
        if fresh {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Whether a socket listens on `port` (any local address), read from
/// /proc/net/tcp: unlike [`port_accepts`] it opens no connection, so a
/// proxy's balancing sees no probe session (which would briefly count as a
/// client of the backend it picked).
pub fn port_listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let port_hex = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = fields.next().unwrap_or_default();
            let state = fields.nth(1).unwrap_or_default();
            local.ends_with(&port_hex) && state == LISTEN
        })
    })
}

/// Whether a Unix socket listens at `path`, read from /proc/net/unix (no
/// connection, as for [`port_listening`]).
pub fn unix_socket_listening(path: &std::path::Path) -> bool {
    // The flag the kernel shows for a socket that accepts connections.
    const ACCEPTING: &str = "00010000";
    let Some(path) = path.to_str() else {
        return false;
    };
    std::fs::read_to_string("/proc/net/unix").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() >= 8 && fields[3] == ACCEPTING && fields[7] == path
        })
    })
}
