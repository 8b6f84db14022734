//! Stops Lua code that runs away. Every hook call and every chunk of the
//! debug port runs under the one lock of the process's Lua state, so an
//! endless loop in one hook would stall every session (MySQL Proxy 0.8
//! hangs). A count hook looks at the clock every [`CHECK_EVERY`] Lua
//! instructions while something is armed, and once the time limit is
//! past it raises an error where the code is, which ends the hook call
//! (the error keeps coming back at each check, so a `pcall` around the
//! loop does not save it unless it catches every time).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, VmState};

/// Lua instructions between two looks at the clock: a few microseconds
/// of Lua, so a hook that does little is rarely interrupted, and a
/// runaway one is stopped within a fraction of a millisecond of its
/// limit.
const CHECK_EVERY: u32 = 10_000;

/// The default time limit of a hook call.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(5);

/// The time limit and the deadline of the call running now.
pub struct Watchdog {
    started: Instant,
    /// The limit in milliseconds; 0 for none.
    limit_ms: AtomicU64,
    /// The deadline of the armed call, in nanoseconds after `started`;
    /// [`DISARMED`], or [`PENDING`] until the first check of the call
    /// reads the clock (arming reads none: it happens at every hook call,
    /// and most hook calls end before the first check).
    deadline: AtomicU64,
    /// Whether the watchdog stopped the armed call, and where the code
    /// was then (`file:line`).
    stopped: AtomicBool,
    stopped_at: Mutex<Option<String>>,
}

/// [`Watchdog::deadline`] when no call is armed.
const DISARMED: u64 = 0;
/// [`Watchdog::deadline`] of a call armed and not yet checked.
const PENDING: u64 = 1;

impl Watchdog {
    /// Installs the watchdog on `lua` (on every thread, coroutines
    /// included) with the default limit.
    pub fn install(lua: &Lua) -> mlua::Result<Arc<Self>> {
        let watchdog = Arc::new(Watchdog {
            started: Instant::now(),
            limit_ms: AtomicU64::new(DEFAULT_LIMIT.as_millis() as u64),
            deadline: AtomicU64::new(DISARMED),
            stopped: AtomicBool::new(false),
            stopped_at: Mutex::new(None),
        });
        let watching = Arc::clone(&watchdog);
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(CHECK_EVERY),
            move |_, debug| {
                if !watching.expired() {
                    return Ok(VmState::Continue);
                }
                let source = debug.source();
                let place = format!(
                    "{}:{}",
                    source.short_src.as_deref().unwrap_or("?"),
                    debug.current_line().unwrap_or(0)
                );
                let message = format!(
                    "{place}: stopped after running longer than {}",
                    watching.limit_text()
                );
                *watching
                    .stopped_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(place);
                watching.stopped.store(true, Ordering::Relaxed);
                Err(mlua::Error::runtime(message))
            },
        )?;
        Ok(watchdog)
    }

    /// Sets the limit; zero for none.
    pub fn set_limit(&self, limit: Duration) {
        let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.limit_ms.store(millis, Ordering::Relaxed);
    }

    /// The limit as the messages say it, e.g. `5 s`.
    pub fn limit_text(&self) -> String {
        let millis = self.limit_ms.load(Ordering::Relaxed);
        format!("{} s", millis as f64 / 1000.0)
    }

    /// Arms the watchdog for a call, until the guard is dropped. The
    /// call's time is counted from its first check, at most
    /// [`CHECK_EVERY`] instructions after it began.
    pub fn arm(&self) -> Armed<'_> {
        let armed = if self.limit_ms.load(Ordering::Relaxed) == 0 {
            DISARMED
        } else {
            PENDING
        };
        self.deadline.store(armed, Ordering::Relaxed);
        self.stopped.store(false, Ordering::Relaxed);
        Armed { watchdog: self }
    }

    /// Whether the armed call has run past its deadline (setting the
    /// deadline at the call's first check).
    fn expired(&self) -> bool {
        let now = || self.started.elapsed().as_nanos();
        match self.deadline.load(Ordering::Relaxed) {
            DISARMED => false,
            PENDING => {
                let limit = u128::from(self.limit_ms.load(Ordering::Relaxed)) * 1_000_000;
                let deadline = u64::try_from(now().saturating_add(limit)).unwrap_or(u64::MAX);
                self.deadline
                    .store(deadline.max(PENDING + 1), Ordering::Relaxed);
                false
            }
            deadline => now() > u128::from(deadline),
        }
    }
}

/// The armed watchdog of one call.
pub struct Armed<'a> {
    watchdog: &'a Watchdog,
}

impl Armed<'_> {
    /// Where the call was stopped, if the watchdog stopped it.
    pub fn stopped_at(&self) -> Option<String> {
        if !self.watchdog.stopped.load(Ordering::Relaxed) {
            return None;
        }
        self.watchdog
            .stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.watchdog.deadline.store(DISARMED, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_loop_is_stopped_and_said_where() {
        let lua = Lua::new();
        let watchdog = Watchdog::install(&lua).unwrap();
        watchdog.set_limit(Duration::from_millis(50));
        let armed = watchdog.arm();
        let started = Instant::now();
        let error = lua
            .load("local n = 0\nwhile true do n = n + 1 end")
            .set_name("=loop.lua")
            .exec()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error
                .to_string()
                .contains("stopped after running longer than 0.05 s"),
            "{error}"
        );
        assert_eq!(armed.stopped_at().as_deref(), Some("loop.lua:2"));
        drop(armed);
        // Unarmed, code runs as long as it needs.
        lua.load("for i = 1, 100000 do end").exec().unwrap();
    }

    #[test]
    fn pcall_around_the_loop_does_not_save_it() {
        let lua = Lua::new();
        let watchdog = Watchdog::install(&lua).unwrap();
        watchdog.set_limit(Duration::from_millis(20));
        let _armed = watchdog.arm();
        let error = lua
            .load("pcall(function() while true do end end)\nwhile true do end")
            .exec()
            .unwrap_err();
        assert!(error.to_string().contains("stopped"), "{error}");
    }

    #[test]
    fn no_limit_is_zero() {
        let lua = Lua::new();
        let watchdog = Watchdog::install(&lua).unwrap();
        watchdog.set_limit(Duration::ZERO);
        let armed = watchdog.arm();
        lua.load("for i = 1, 3000000 do end").exec().unwrap();
        assert_eq!(armed.stopped_at(), None);
    }
}
