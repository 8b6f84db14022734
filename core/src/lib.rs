//! mysql-proxy's engine: listeners, client sessions, the backend registry and
//! the connection life cycle that calls plugin hooks.
//!
//! The chassis creates an [`Engine`], hands its [`HostHandle`] to each plugin's
//! `init`, then [`Engine::start`]s it with the plugins inside a running actix
//! system. Every listener a plugin asks for becomes a [`listener::Listener`]
//! actor; every accepted connection becomes a [`session::ClientSession`] actor on
//! one of the event-thread arbiters, which walks the life cycle charted in
//! `core/LIFECYCLE.md`.

// Bytes from clients and servers are untrusted: code here never panics on
// them (an unwrap, an expect or an out-of-range index would end a session
// at best). Tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod address;
pub mod backend;
pub mod engine;
pub mod error;
pub mod host;
pub mod listener;
pub mod logging;
pub mod net;
pub mod session;
pub mod sessions;

pub use backend::HealthConfig;
pub use engine::{Engine, EngineConfig, EngineError, LoadedPlugin, Running};
pub use mysql_proxy_plugin_abi::HostHandle;
