//! Many idle connections: the light client opens them in parallel (handshake
//! and authentication complete, so each has its backend connection), then keeps
//! only the sockets while the proxy's memory is read.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use crate::light::LightConn;

/// Opens `count` authenticated connections with `threads` threads; returns
/// the sockets, or the first error.
pub fn open(addr: SocketAddr, count: usize, threads: usize) -> Result<Vec<TcpStream>, String> {
    let threads = threads.max(1).min(count.max(1));
    let per = count / threads;
    let extra = count % threads;
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let n = per + usize::from(i < extra);
            thread::spawn(move || -> Result<Vec<TcpStream>, String> {
                let mut held = Vec::with_capacity(n);
                for _ in 0..n {
                    let conn =
                        LightConn::connect(addr, "root", "test", 1024, Duration::from_secs(30))
                            .map_err(|e| {
                                format!("connection {} of a thread: {e}", held.len() + 1)
                            })?;
                    held.push(conn.into_stream());
                }
                Ok(held)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    let mut first_error = None;
    for w in workers {
        match w.join() {
            Ok(Ok(held)) => all.extend(held),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a connecting thread panicked".to_string());
            }
        }
    }
    match first_error {
        Some(e) => Err(format!("after {} connections: {e}", all.len())),
        None => Ok(all),
    }
}
