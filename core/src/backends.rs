//! The backend registry: every backend's address, role, health and counters,
//! and the default balancing rule.
//!
//! Sessions read it on every new connection, so it is shared state with
//! atomics rather than an actor: choosing a backend costs no message hop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mysql_proxy_plugin_abi::{BackendInfo, BackendState, BackendType};

use crate::address;

/// How long a backend stays down before new clients may try it again
/// (MySQL Proxy: more than 4 whole seconds).
const DOWN_RETRY_AFTER: Duration = Duration::from_secs(4);

/// One backend server.
#[derive(Debug)]
pub struct Backend {
    pub ndx: u32,
    pub addr: SocketAddr,
    pub name: String,
    pub backend_type: BackendType,
    state: AtomicU8,
    /// When the state last changed, to wake up down backends after a while.
    state_since: Mutex<Instant>,
    connected_clients: AtomicU64,
    pub counters: BackendCounters,
}

/// Monotonic counters of a backend.
#[derive(Debug, Default)]
pub struct BackendCounters {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
}

impl Backend {
    pub fn state(&self) -> BackendState {
        state_from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state; returns the previous one.
    pub fn set_state(&self, state: BackendState) -> BackendState {
        let previous = state_from_u8(self.state.swap(state as u8, Ordering::Relaxed));
        if previous != state {
            *self
                .state_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
        previous
    }

    pub fn connected_clients(&self) -> u64 {
        self.connected_clients.load(Ordering::Relaxed)
    }

    fn down_for(&self) -> Duration {
        self.state_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    pub fn info(&self) -> BackendInfo {
        BackendInfo {
            ndx: self.ndx,
            address: self.name.as_str().into(),
            state: self.state(),
            backend_type: self.backend_type,
            connected_clients: self.connected_clients(),
        }
    }
}

fn state_from_u8(value: u8) -> BackendState {
    match value {
        x if x == BackendState::Up as u8 => BackendState::Up,
        x if x == BackendState::Down as u8 => BackendState::Down,
        x if x == BackendState::Offline as u8 => BackendState::Offline,
        _ => BackendState::Unknown,
    }
}

/// A client's claim on a backend: counted in `connected_clients` for as long
/// as it lives.
#[derive(Debug)]
pub struct BackendLease {
    backend: Arc<Backend>,
}

impl BackendLease {
    pub fn new(backend: Arc<Backend>) -> Self {
        backend.connected_clients.fetch_add(1, Ordering::Relaxed);
        Self { backend }
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for BackendLease {
    fn drop(&mut self) {
        self.backend
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// All backends, in registration order (read-write ones as the plugin added
/// them, then read-only ones).
#[derive(Debug, Default)]
pub struct BackendRegistry {
    backends: RwLock<Vec<Arc<Backend>>>,
}

impl BackendRegistry {
    /// Registers a backend; fails on a bad address or a duplicate.
    pub fn add(&self, address: &str, backend_type: BackendType) -> Result<u32, String> {
        let addr = address::parse(address).map_err(|e| e.to_string())?;
        let mut backends = self
            .backends
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if backends.iter().any(|b| b.addr == addr) {
            return Err(format!("backend {addr} is already known!"));
        }
        let ndx = u32::try_from(backends.len()).map_err(|_| "too many backends".to_string())?;
        backends.push(Arc::new(Backend {
            ndx,
            addr,
            name: address::display_name(&addr),
            backend_type,
            state: AtomicU8::new(BackendState::Unknown as u8),
            state_since: Mutex::new(Instant::now()),
            connected_clients: AtomicU64::new(0),
            counters: BackendCounters::default(),
        }));
        Ok(ndx)
    }

    pub fn get(&self, ndx: u32) -> Option<Arc<Backend>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ndx as usize)
            .cloned()
    }

    pub fn snapshot(&self) -> Vec<BackendInfo> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|b| b.info())
            .collect()
    }

    /// MySQL Proxy 0.8's default rule: among read-write backends that are
    /// neither down nor offline, the one with the fewest connected clients;
    /// ties go to the lowest index. Backends down for a while are first
    /// given another chance (state unknown). `exclude` lists backends that
    /// already failed for this client.
    pub fn select(&self, exclude: &[u32]) -> Option<Arc<Backend>> {
        let backends = self.backends.read().unwrap_or_else(PoisonError::into_inner);
        for backend in backends.iter() {
            if backend.state() == BackendState::Down && backend.down_for() > DOWN_RETRY_AFTER {
                backend.set_state(BackendState::Unknown);
            }
        }
        backends
            .iter()
            .filter(|b| b.backend_type == BackendType::ReadWrite)
            .filter(|b| !matches!(b.state(), BackendState::Down | BackendState::Offline))
            .filter(|b| !exclude.contains(&b.ndx))
            .min_by_key(|b| (b.connected_clients(), b.ndx))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_connected_read_write_backend_wins() {
        let registry = BackendRegistry::default();
        assert_eq!(registry.add("127.0.0.1:1", BackendType::ReadWrite), Ok(0));
        assert_eq!(registry.add("127.0.0.1:2", BackendType::ReadWrite), Ok(1));
        assert_eq!(registry.add("127.0.0.1:3", BackendType::ReadOnly), Ok(2));
        assert!(registry.add("127.0.0.1:2", BackendType::ReadOnly).is_err());

        let first = registry.select(&[]).map(|b| b.ndx);
        assert_eq!(first, Some(0));
        let lease = registry.get(0).map(BackendLease::new);
        assert_eq!(registry.select(&[]).map(|b| b.ndx), Some(1));
        drop(lease);
        assert_eq!(registry.select(&[]).map(|b| b.ndx), Some(0));
        assert_eq!(registry.select(&[0]).map(|b| b.ndx), Some(1));
        assert!(
            registry.select(&[0, 1]).is_none(),
            "read-only is never chosen"
        );

        registry.get(0).map(|b| b.set_state(BackendState::Down));
        assert_eq!(registry.select(&[]).map(|b| b.ndx), Some(1));
    }
}
