//! SIGINT/SIGTERM (graceful shutdown) and SIGHUP (reopen the log file),
//! received on a signal-hook thread and forwarded as messages into the actix
//! system, where they are handled like any other event.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use tokio::sync::mpsc;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGINT or SIGTERM: stop accepting, let sessions finish, exit 0.
    Shutdown { signal: &'static str },
    /// SIGHUP: reopen the log file (log rotation).
    ReopenLog,
}

/// The running signal thread; dropping the listener does not stop it, call
/// [`SignalThread::close`].
pub struct SignalThread {
    handle: Handle,
}

impl SignalThread {
    /// Stops the thread (the handlers stay installed, so a late signal is
    /// ignored rather than killing the process mid-exit).
    pub fn close(&self) {
        self.handle.close();
    }
}

/// Installs the handlers and starts the thread that forwards signals to the
/// returned receiver. Signals arriving before anyone reads are queued.
pub fn listen() -> std::io::Result<(SignalThread, mpsc::UnboundedReceiver<Request>)> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let handle = signals.handle();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                let request = match signal {
                    SIGHUP => Request::ReopenLog,
                    SIGINT => Request::Shutdown { signal: "SIGINT" },
                    _ => Request::Shutdown { signal: "SIGTERM" },
                };
                if tx.send(request).is_err() {
                    // The receiving side is gone: the process is exiting.
                    break;
                }
            }
        })?;
    Ok((SignalThread { handle }, rx))
}
