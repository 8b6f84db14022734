//! The backend registry: every backend's address, role, weight, health and
//! counters, and the balancing rules that pick one for a new client.
//!
//! Sessions read it on every new connection, so it is shared state with
//! atomics rather than an actor: choosing a backend costs no message hop.
//! Every state change goes through [`Backend::set_state`], which records why
//! and logs one line (backend, old -> new state, reason).

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_proxy_plugin_abi::{BackendState, BackendType};

use super::pool::BackendPool;
use crate::address::{self, Address};

/// Without health checks, how long a backend stays down before new clients
/// may try it again (MySQL Proxy: more than 4 whole seconds).
const DOWN_RETRY_AFTER: Duration = Duration::from_secs(4);

/// The rule for picking a read-write backend for a new client
/// (`--proxy-balance`). Backends that are down or offline are never picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BalancePolicy {
    /// Fewest connected clients; ties go to the lowest index (MySQL Proxy
    /// 0.8's rule, the default).
    #[default]
    LeastConnections,
    /// Each backend in turn.
    RoundRobin,
    /// In proportion to the backends' weights (smooth weighted round-robin).
    Weighted,
    /// The first usable one in index order: an ordered failover list.
    FirstAvailable,
}

impl BalancePolicy {
    /// Every policy with its option value.
    pub const ALL: [(&'static str, BalancePolicy); 4] = [
        ("least-connections", BalancePolicy::LeastConnections),
        ("round-robin", BalancePolicy::RoundRobin),
        ("weighted", BalancePolicy::Weighted),
        ("first-available", BalancePolicy::FirstAvailable),
    ];

    /// Parses an option value such as `round-robin`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }
}

/// One backend server.
#[derive(Debug)]
pub struct Backend {
    pub ndx: u32,
    pub addr: Address,
    pub name: String,
    pub backend_type: BackendType,
    pub weight: u32,
    state: AtomicU8,
    /// When and why the state last changed.
    change: Mutex<StateChange>,
    connected_clients: AtomicU64,
    pub counters: BackendCounters,
    /// Idle authenticated connections for the next clients.
    pub pool: BackendPool,
    logger: slog::Logger,
}

#[derive(Debug, Clone)]
struct StateChange {
    at: Instant,
    wall: SystemTime,
    reason: String,
}

/// Monotonic counters of a backend.
#[derive(Debug, Default)]
pub struct BackendCounters {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub queries: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl BackendCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Backend {
    pub fn state(&self) -> BackendState {
        state_from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Whether new clients may be sent to it.
    pub fn is_usable(&self) -> bool {
        !matches!(self.state(), BackendState::Down | BackendState::Offline)
    }

    /// Sets the state, recording and logging the change if it is one;
    /// returns the previous state. A backend that takes no new clients
    /// (down, offline) has its pooled connections closed.
    pub fn set_state(&self, state: BackendState, reason: &str) -> BackendState {
        self.change_state(state, reason, |_| true)
    }

    /// Marks it down unless an operator took it offline.
    pub fn mark_down(&self, reason: &str) {
        self.change_state(BackendState::Down, reason, |now| {
            now != BackendState::Offline
        });
    }

    /// Marks it up unless an operator took it offline. Called at every
    /// successful connect: when it is up already, that costs a load.
    pub fn mark_up(&self, reason: &str) {
        if self.state() != BackendState::Up {
            self.change_state(BackendState::Up, reason, |now| now != BackendState::Offline);
        }
    }

    /// Changes the state to `state` if `allowed` accepts the current one,
    /// both under the state's lock: a health check's verdict read before
    /// an operator took the backend offline must not bring it back after.
    fn change_state(
        &self,
        state: BackendState,
        reason: &str,
        allowed: impl Fn(BackendState) -> bool,
    ) -> BackendState {
        let mut change = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.state();
        if !allowed(previous) {
            return previous;
        }
        if matches!(state, BackendState::Down | BackendState::Offline) {
            self.pool.clear();
        }
        self.state.store(state as u8, Ordering::Relaxed);
        if previous != state {
            *change = StateChange {
                at: Instant::now(),
                wall: SystemTime::now(),
                reason: reason.to_string(),
            };
            let line = format!(
                "backend {}: {} -> {} ({})",
                self.name,
                previous.name(),
                state.name(),
                reason
            );
            if state == BackendState::Down {
                slog::error!(self.logger, "{}", line);
            } else {
                slog::info!(self.logger, "{}", line);
            }
        }
        previous
    }

    pub fn connected_clients(&self) -> u64 {
        self.connected_clients.load(Ordering::Relaxed)
    }

    fn state_age(&self) -> Duration {
        self.change
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .at
            .elapsed()
    }

    /// Why the state last changed, and when (seconds since the Unix
    /// epoch).
    pub fn state_change(&self) -> (String, u64) {
        let change = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let since = change
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (change.reason.clone(), since)
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
#[derive(Debug)]
pub struct BackendRegistry {
    backends: RwLock<Vec<Arc<Backend>>>,
    /// Next start position of the round-robin policy.
    round_robin: AtomicUsize,
    /// Current weights of the smooth weighted round-robin, per backend.
    weighted: Mutex<Vec<i64>>,
    /// Whether something actively checks backends; without it, down
    /// backends are retried after a while instead.
    health_checked: std::sync::atomic::AtomicBool,
    logger: slog::Logger,
}

impl BackendRegistry {
    pub fn new(logger: slog::Logger) -> Self {
        Self {
            backends: RwLock::default(),
            round_robin: AtomicUsize::new(0),
            weighted: Mutex::default(),
            health_checked: std::sync::atomic::AtomicBool::new(false),
            logger,
        }
    }

    /// Registers a backend (`host:port`, optionally `@weight`); fails on a
    /// bad address or weight, or a duplicate.
    pub fn add(&self, address: &str, backend_type: BackendType) -> Result<u32, String> {
        let (address, weight) = match address.rsplit_once('@') {
            Some((address, weight)) => match weight.trim().parse::<u32>() {
                Ok(weight) if weight > 0 => (address, weight),
                _ => {
                    return Err(format!(
                        "'{address}@{weight}': the weight must be a positive integer"
                    ))
                }
            },
            None => (address, 1),
        };
        let addr = address::parse_address(address).map_err(|e| e.to_string())?;
        let mut backends = self
            .backends
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if backends.iter().any(|b| b.addr == addr) {
            return Err(format!("backend {addr} is already known!"));
        }
        let ndx = u32::try_from(backends.len()).map_err(|_| "too many backends".to_string())?;
        let name = addr.to_string();
        if matches!(addr, Address::Unix(_)) {
            slog::warn!(
                self.logger,
                "backend {}: on a Unix socket, MariaDB's unix_socket authentication \
                 sees this proxy's OS user, not the client's",
                name
            );
        }
        backends.push(Arc::new(Backend {
            ndx,
            addr,
            logger: self.logger.new(slog::o!("backend" => name.clone())),
            name,
            backend_type,
            weight,
            state: AtomicU8::new(BackendState::Unknown as u8),
            change: Mutex::new(StateChange {
                at: Instant::now(),
                wall: SystemTime::now(),
                reason: "added".to_string(),
            }),
            connected_clients: AtomicU64::new(0),
            counters: BackendCounters::default(),
            pool: BackendPool::default(),
        }));
        self.weighted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(0);
        Ok(ndx)
    }

    pub fn get(&self, ndx: u32) -> Option<Arc<Backend>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ndx as usize)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Backend>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Declares that a health checker now watches the backends.
    pub fn set_health_checked(&self, checked: bool) {
        self.health_checked.store(checked, Ordering::Relaxed);
    }

    /// Picks a read-write backend for a new client under `policy`, among
    /// those neither down nor offline and not in `exclude` (backends that
    /// already failed for this client), and claims it: the lease counts in
    /// its `connected_clients` from this moment, so clients connecting at
    /// the same time see each other's choices and spread instead of all
    /// taking the backend that was least loaded before them. Without health
    /// checks, backends down for a while are first given another chance
    /// (state unknown), as in MySQL Proxy.
    pub fn claim(&self, policy: BalancePolicy, exclude: &[u32]) -> Option<BackendLease> {
        let backends = self.backends.read().unwrap_or_else(PoisonError::into_inner);
        if !self.health_checked.load(Ordering::Relaxed) {
            for backend in backends.iter() {
                if backend.state() == BackendState::Down && backend.state_age() > DOWN_RETRY_AFTER {
                    backend.set_state(BackendState::Unknown, "retrying after being down");
                }
            }
        }
        let eligible: Vec<&Arc<Backend>> = backends
            .iter()
            .filter(|b| b.backend_type == BackendType::ReadWrite)
            .filter(|b| b.is_usable())
            .filter(|b| !exclude.contains(&b.ndx))
            .collect();
        let chosen = match policy {
            BalancePolicy::LeastConnections => return Self::claim_least_connected(&eligible),
            BalancePolicy::FirstAvailable => eligible.first().copied(),
            BalancePolicy::RoundRobin => {
                let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
                start
                    .checked_rem(eligible.len())
                    .and_then(|ndx| eligible.get(ndx))
                    .copied()
            }
            BalancePolicy::Weighted => self.smooth_weighted(&eligible),
        };
        chosen.map(|backend| BackendLease::new(Arc::clone(backend)))
    }

    /// Fewest connected clients, lowest index on ties (MySQL Proxy's rule).
    /// The count is raised only if it is still the one compared, so of two
    /// clients choosing at once the second sees the first's claim.
    fn claim_least_connected(eligible: &[&Arc<Backend>]) -> Option<BackendLease> {
        loop {
            let (backend, clients) = eligible
                .iter()
                .map(|b| (*b, b.connected_clients()))
                .min_by_key(|(b, clients)| (*clients, b.ndx))?;
            if backend
                .connected_clients
                .compare_exchange(clients, clients + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Some(BackendLease {
                    backend: Arc::clone(backend),
                });
            }
        }
    }

    /// Smooth weighted round-robin: every eligible backend gains its weight,
    /// the one with the most is chosen and pays back the total. Over any
    /// window of `total weight` picks each backend gets exactly its share,
    /// evenly spread.
    fn smooth_weighted<'a>(&self, eligible: &[&'a Arc<Backend>]) -> Option<&'a Arc<Backend>> {
        let mut current = self.weighted.lock().unwrap_or_else(PoisonError::into_inner);
        let total: i64 = eligible.iter().map(|b| i64::from(b.weight)).sum();
        let mut best: Option<(&'a Arc<Backend>, i64)> = None;
        for backend in eligible {
            let Some(weight) = current.get_mut(backend.ndx as usize) else {
                continue;
            };
            *weight += i64::from(backend.weight);
            let value = *weight;
            if best.is_none_or(|(_, best_value)| value > best_value) {
                best = Some((backend, value));
            }
        }
        let (chosen, _) = best?;
        if let Some(weight) = current.get_mut(chosen.ndx as usize) {
            *weight -= total;
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(addresses: &[(&str, BackendType)]) -> BackendRegistry {
        let registry = BackendRegistry::new(slog::Logger::root(slog::Discard, slog::o!()));
        for (address, backend_type) in addresses {
            registry.add(address, *backend_type).unwrap();
        }
        registry
    }

    fn picks(registry: &BackendRegistry, policy: BalancePolicy, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                registry
                    .claim(policy, &[])
                    .map_or(99, |lease| lease.backend().ndx)
            })
            .collect()
    }

    #[test]
    fn least_connected_read_write_backend_wins() {
        let registry = registry(&[
            ("127.0.0.1:1", BackendType::ReadWrite),
            ("127.0.0.1:2", BackendType::ReadWrite),
            ("127.0.0.1:3", BackendType::ReadOnly),
        ]);
        assert!(registry.add("127.0.0.1:2", BackendType::ReadOnly).is_err());
        let policy = BalancePolicy::LeastConnections;
        let ndx = |lease: Option<BackendLease>| lease.map(|l| l.backend().ndx);

        let first = registry.claim(policy, &[]);
        assert_eq!(first.as_ref().map(|l| l.backend().ndx), Some(0));
        assert_eq!(ndx(registry.claim(policy, &[])), Some(1), "0 is claimed");
        drop(first);
        assert_eq!(ndx(registry.claim(policy, &[])), Some(0), "released");
        assert_eq!(ndx(registry.claim(policy, &[0])), Some(1));
        assert!(
            registry.claim(policy, &[0, 1]).is_none(),
            "read-only is never chosen"
        );

        registry
            .get(0)
            .map(|b| b.set_state(BackendState::Down, "test"));
        assert_eq!(ndx(registry.claim(policy, &[])), Some(1));
        registry
            .get(1)
            .map(|b| b.set_state(BackendState::Offline, "test"));
        assert!(registry.claim(policy, &[]).is_none());
        assert_eq!(registry.get(0).map(|b| b.connected_clients()), Some(0));
        assert_eq!(registry.get(1).map(|b| b.connected_clients()), Some(0));
    }

    #[test]
    fn clients_claiming_at_once_spread_evenly() {
        let registry = registry(&[
            ("127.0.0.1:1", BackendType::ReadWrite),
            ("127.0.0.1:2", BackendType::ReadWrite),
            ("127.0.0.1:3", BackendType::ReadWrite),
        ]);
        let leases: Vec<BackendLease> = std::thread::scope(|scope| {
            let claimers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..300)
                            .filter_map(|_| registry.claim(BalancePolicy::LeastConnections, &[]))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            claimers
                .into_iter()
                .flat_map(|claimer| claimer.join().unwrap())
                .collect()
        });
        assert_eq!(leases.len(), 1200);
        for backend in registry.all() {
            assert_eq!(backend.connected_clients(), 400, "{}", backend.name);
        }
    }

    #[test]
    fn round_robin_and_first_available() {
        let registry = registry(&[
            ("127.0.0.1:1", BackendType::ReadWrite),
            ("127.0.0.1:2", BackendType::ReadWrite),
            ("127.0.0.1:3", BackendType::ReadWrite),
        ]);
        assert_eq!(
            picks(&registry, BalancePolicy::RoundRobin, 6),
            [0, 1, 2, 0, 1, 2]
        );
        assert_eq!(
            picks(&registry, BalancePolicy::FirstAvailable, 3),
            [0, 0, 0]
        );
        if let Some(b) = registry.get(0) {
            b.mark_down("test");
        }
        assert_eq!(picks(&registry, BalancePolicy::FirstAvailable, 2), [1, 1]);
    }

    #[test]
    fn weighted_spreads_by_weight() {
        let registry = registry(&[
            ("127.0.0.1:1@3", BackendType::ReadWrite),
            ("127.0.0.1:2", BackendType::ReadWrite),
        ]);
        let chosen = picks(&registry, BalancePolicy::Weighted, 8);
        assert_eq!(chosen.iter().filter(|&&n| n == 0).count(), 6, "{chosen:?}");
        assert_eq!(registry.get(0).map(|b| b.weight), Some(3));
        assert!(registry
            .add("127.0.0.1:4@0", BackendType::ReadWrite)
            .is_err());
        assert!(registry
            .add("127.0.0.1:4@x", BackendType::ReadWrite)
            .is_err());
    }

    #[test]
    fn offline_is_kept_by_health_reports() {
        let registry = registry(&[("127.0.0.1:1", BackendType::ReadWrite)]);
        let backend = registry.get(0).unwrap();
        backend.set_state(BackendState::Offline, "operator");
        backend.mark_up("health check passed");
        backend.mark_down("health check failed");
        assert_eq!(backend.state(), BackendState::Offline);
        assert_eq!(backend.state_change().0, "operator");
    }
}
