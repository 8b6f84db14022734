//! The network under sessions, health checks and the pool: a socket of
//! either kind (TCP, Unix), parked or registered with an event thread, and a
//! connection that reads and writes whole MySQL packets with timeouts.
//!
//! Nothing here knows who is at the other end; the session and the backend
//! side attribute failures to client or server themselves.

mod conn;
mod stream;

pub use conn::{Awake, Conn, ConnError, Interrupt, Limits, RawPacket, RESPONSE_PATIENCE};
pub use stream::{ParkedStream, Stream};
