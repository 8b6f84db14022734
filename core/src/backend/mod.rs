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

pub use pool::{PoolReset, PoolSpec};
pub use registry::BalancePolicy;

/// How sessions use the backends, set by the plugin that adds them
/// ([`BackendSettings::set`], reached through the host's `set_option`):
/// the balancing rule and the pool. The engine hands them to every
/// listener when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSettings {
    pub balance: BalancePolicy,
    pub pool: PoolSpec,
    /// The most bytes of one injected query's result a session buffers for
    /// a plugin (`Injection::buffer_result`); 0 for no limit.
    pub buffered_result_limit: u64,
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            balance: BalancePolicy::default(),
            pool: PoolSpec::default(),
            buffered_result_limit: 64 << 20,
        }
    }
}

impl BackendSettings {
    /// Sets one setting by its option name (the proxy plugin's option
    /// without its `proxy-` prefix); the error names the setting and what
    /// it expects.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let count = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{name}: '{value}' is not a number >= 0"))
        };
        match name {
            "balance" => {
                self.balance = BalancePolicy::parse(value.trim()).ok_or_else(|| {
                    let known: Vec<&str> = BalancePolicy::ALL.iter().map(|(n, _)| *n).collect();
                    format!("balance={value}: expected one of {}", known.join(", "))
                })?;
            }
            "pool-max-idle" => self.pool.max_idle = count()?,
            "buffered-result-limit" => {
                let mib = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{name}: '{value}' is not a number of MiB >= 0"))?;
                self.buffered_result_limit = mib.saturating_mul(1 << 20);
            }
            "pool-min-idle" => self.pool.min_idle = count()?,
            "pool-idle-timeout" => {
                let seconds = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("{name}: '{value}' is not a number of seconds >= 0"))?;
                self.pool.idle_timeout_ms = (seconds * 1000.0).round() as u64;
            }
            "pool-reset" => {
                self.pool.reset = match value.trim() {
                    "change-user" => PoolReset::ChangeUser,
                    "reset-connection" => PoolReset::ResetConnection,
                    _ => {
                        return Err(format!(
                            "{name}: expected change-user or reset-connection, got '{value}'"
                        ))
                    }
                }
            }
            _ => return Err(format!("unknown host setting '{name}'")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_set_by_name_and_refused_with_a_reason() {
        let mut settings = BackendSettings::default();
        settings.set("balance", "round-robin").unwrap();
        settings.set("pool-max-idle", "8").unwrap();
        settings.set("pool-min-idle", " 2 ").unwrap();
        settings.set("pool-idle-timeout", "1.5").unwrap();
        settings.set("pool-reset", "reset-connection").unwrap();
        assert_eq!(settings.balance, BalancePolicy::RoundRobin);
        assert_eq!(
            settings.pool,
            PoolSpec {
                max_idle: 8,
                min_idle: 2,
                idle_timeout_ms: 1500,
                reset: PoolReset::ResetConnection,
            }
        );
        let refused = |name: &str, value: &str| {
            BackendSettings::default()
                .set(name, value)
                .expect_err("refused")
        };
        assert!(refused("balance", "random").contains("least-connections"));
        assert!(refused("pool-max-idle", "-1").contains("pool-max-idle"));
        assert!(refused("pool-idle-timeout", "soon").contains("seconds"));
        assert_eq!(
            refused("pool-size", "3"),
            "unknown host setting 'pool-size'"
        );
    }
}
