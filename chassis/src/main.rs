//! `mysql-proxy`: the chassis that parses options and the config file, sets up
//! logging and the process, loads the plugin libraries, and runs the engine
//! until SIGINT/SIGTERM. See COMPAT.md section 1 for the behaviour it matches.

mod allocator;
mod app;
mod cli;
mod config;
mod error;
mod loader;
mod logging;
mod options;
mod process;
mod signals;

use std::process::ExitCode;

use mysql_proxy_plugin_abi::LogLevel;

use crate::error::FatalError;
use crate::logging::Log;
use crate::process::Readiness;

/// mimalloc instead of glibc's malloc: every command allocates and frees
/// buffers of a few KiB (read buffers, the command's future), which glibc
/// serves outside its per-thread cache through its slower general path.
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> ExitCode {
    // Until the options are known, log to stderr from `message` level up, so
    // that start-up problems are visible (COMPAT 1.1 step 1).
    let log = Log::stderr(LogLevel::Message);
    log.install_panic_hook(false);
    // Held here so that a daemon's launcher learns of a failure only once it
    // has been logged.
    let mut readiness = Readiness::default();
    let args: Vec<_> = std::env::args_os().collect();
    match app::run(&args, &log, &mut readiness) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report(&log, &error, &mut readiness);
            ExitCode::from(error.exit_code())
        }
    }
}

/// The one place a fatal error becomes output: each line logged at critical
/// whatever `--log-level` says. If the log is not stderr, the lines also go
/// to the terminal: a daemon's launcher prints them, anyone else to stderr.
fn report(log: &Log, error: &FatalError, readiness: &mut Readiness) {
    let lines = error.lines();
    for line in &lines {
        log.force(LogLevel::Critical, line);
    }
    let echo: String = if log.is_stderr() {
        // Already on the (inherited) stderr.
        String::new()
    } else {
        lines
            .iter()
            .map(|line| logging::format_line(LogLevel::Critical, line))
            .collect()
    };
    if !readiness.failed(&echo) {
        logging::write_stderr(&echo);
    }
}
