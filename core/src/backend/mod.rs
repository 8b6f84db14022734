//! The backend side: the registry of backends with their state, counters
//! and balancing; each backend's pool of idle authenticated connections;
//! the health checks; a session's server connection with its login state;
//! and the proxy's own short exchanges with servers (courtesy logins and
//! goodbyes).

pub mod courtesy;
pub mod health;
pub mod pool;
pub mod registry;
pub mod server;

pub use health::HealthConfig;
pub use registry::{Backend, BackendCounters, BackendLease, BackendRegistry};
