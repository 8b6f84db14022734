//! MySQL Proxy's six log levels expressed as slog levels, one-to-one, so the
//! chassis can filter and print them under their MySQL Proxy names.

use mysql_proxy_plugin_abi::LogLevel;

/// The slog level that carries a MySQL Proxy level.
pub fn to_slog(level: LogLevel) -> slog::Level {
    match level {
        LogLevel::Error => slog::Level::Critical,
        LogLevel::Critical => slog::Level::Error,
        LogLevel::Warning => slog::Level::Warning,
        LogLevel::Message => slog::Level::Info,
        LogLevel::Info => slog::Level::Debug,
        LogLevel::Debug => slog::Level::Trace,
    }
}

/// The MySQL Proxy level a slog level carries.
pub fn from_slog(level: slog::Level) -> LogLevel {
    match level {
        slog::Level::Critical => LogLevel::Error,
        slog::Level::Error => LogLevel::Critical,
        slog::Level::Warning => LogLevel::Warning,
        slog::Level::Info => LogLevel::Message,
        slog::Level::Debug => LogLevel::Info,
        slog::Level::Trace => LogLevel::Debug,
    }
}

/// Parses a `--log-level` value (`error`, `critical`, `warning`, `message`,
/// `info`, `debug`; exact, lower case).
pub fn parse_level(name: &str) -> Option<LogLevel> {
    [
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Warning,
        LogLevel::Message,
        LogLevel::Info,
        LogLevel::Debug,
    ]
    .into_iter()
    .find(|level| level.name() == name)
}

/// Logs `message` at a MySQL Proxy level.
pub fn log(logger: &slog::Logger, level: LogLevel, message: &str) {
    let record_level = to_slog(level);
    match record_level {
        slog::Level::Critical => slog::crit!(logger, "{}", message),
        slog::Level::Error => slog::error!(logger, "{}", message),
        slog::Level::Warning => slog::warn!(logger, "{}", message),
        slog::Level::Info => slog::info!(logger, "{}", message),
        slog::Level::Debug => slog::debug!(logger, "{}", message),
        slog::Level::Trace => slog::trace!(logger, "{}", message),
    }
}
