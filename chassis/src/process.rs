//! The process around the proxy: `--daemon`, `--keepalive` (the "angel"),
//! `--pid-file`, `--user`, `--max-open-files`, and the Lua search-path
//! environment.
//!
//! Everything that forks runs before the actix system and its threads exist
//! (forking a threaded process keeps only the calling thread). To still report
//! bind errors with `--daemon` (MySQL Proxy's quirk h: its launcher always
//! exited 0), the launching process waits on a pipe until the daemon reports
//! that it is listening (exit 0) or closes the pipe without doing so (exit 1).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use mysql_proxy_plugin_abi::LogLevel;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{
    dup2_stderr, dup2_stdin, dup2_stdout, fork, geteuid, initgroups, setgid, setsid, setuid,
    ForkResult, Pid, User,
};

use crate::config::ChassisConfig;
use crate::logging::Log;

/// Why a process-management step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("can only use the --user switch if running as root")]
    NotRoot,
    #[error("unknown user: {0}")]
    UnknownUser(String),
    #[error("looking up user {user}: {source}")]
    UserLookup { user: String, source: Errno },
    #[error("switching to user {user} failed: {step}: {source}")]
    SwitchUser {
        user: String,
        step: &'static str,
        source: Errno,
    },
    #[error("could not raise RLIMIT_NOFILE to {wanted}: {source}")]
    OpenFiles { wanted: u64, source: Errno },
    #[error("writing the pid file {}: {source}", .path.display())]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{step} failed: {source}")]
    Daemon { step: &'static str, source: Errno },
    #[error("[angel] {step} failed: {source}")]
    Angel { step: &'static str, source: Errno },
}

/// Sets `LUA_PATH` / `LUA_CPATH` for the Lua states plugins create (COMPAT
/// 1.7): the option's value if given, else the environment's, else
/// `<basedir>/lib/mysql-proxy/lua/?.lua` (`?.so`). Must run before any thread
/// exists (the environment is process-global and unsynchronised).
pub fn set_lua_paths(config: &ChassisConfig) {
    let lua_dir = config.early.basedir.join("lib/mysql-proxy/lua");
    let settings = [
        ("LUA_PATH", &config.lua_path, lua_dir.join("?.lua")),
        ("LUA_CPATH", &config.lua_cpath, lua_dir.join("?.so")),
    ];
    for (variable, forced, default) in settings {
        match forced {
            Some(value) => std::env::set_var(variable, value),
            None if std::env::var_os(variable).is_none() => std::env::set_var(variable, default),
            None => {}
        }
    }
}

/// The user to switch to, checked before anything starts: `--user` needs
/// root, and the user must exist.
pub fn lookup_user(name: &str) -> Result<User, ProcessError> {
    if !geteuid().is_root() {
        return Err(ProcessError::NotRoot);
    }
    User::from_name(name)
        .map_err(|source| ProcessError::UserLookup {
            user: name.to_string(),
            source,
        })?
        .ok_or_else(|| ProcessError::UnknownUser(name.to_string()))
}

/// Switches to `user` (group, supplementary groups, then user) after handing
/// it the log file, so that rotation keeps working after the switch.
pub fn drop_privileges(user: &User, log_file: Option<&Path>) -> Result<(), ProcessError> {
    let fail = |step: &'static str| {
        move |source| ProcessError::SwitchUser {
            user: user.name.clone(),
            step,
            source,
        }
    };
    if let Some(path) = log_file {
        std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            .map_err(fail("chown of the log file"))?;
    }
    let name = CString::new(user.name.as_str()).map_err(|_| ProcessError::SwitchUser {
        user: user.name.clone(),
        step: "initgroups",
        source: Errno::EINVAL,
    })?;
    setgid(user.gid).map_err(fail("setgid"))?;
    initgroups(&name, user.gid).map_err(fail("initgroups"))?;
    setuid(user.uid).map_err(fail("setuid"))?;
    Ok(())
}

/// A soft and a hard resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.soft, self.hard)
    }
}

/// Sets the soft RLIMIT_NOFILE to `wanted`, raising the hard limit too if it
/// is lower (which needs privileges). Returns the limits before and after.
pub fn raise_open_files(wanted: u64) -> Result<(Limit, Limit), ProcessError> {
    let fail = |source| ProcessError::OpenFiles { wanted, source };
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(fail)?;
    let after = Limit {
        soft: wanted,
        hard: hard.max(wanted),
    };
    setrlimit(Resource::RLIMIT_NOFILE, after.soft, after.hard).map_err(fail)?;
    Ok((Limit { soft, hard }, after))
}

/// Writes our pid (decimal, no newline) to `path`, mode 0600, truncating it.
pub fn write_pid_file(path: &Path) -> Result<(), ProcessError> {
    let fail = |source| ProcessError::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(std::process::id().to_string().as_bytes())
        .map_err(fail)
}

/// The daemon's end of the pipe its launcher waits on.
#[derive(Debug, Default)]
pub struct Readiness(Option<File>);

impl Readiness {
    /// Tells the launcher that start-up succeeded: it exits 0. Later calls
    /// (e.g. a worker restarted by the angel) do nothing.
    pub fn ready(&mut self) {
        if let Some(mut pipe) = self.0.take() {
            // The launcher may be gone (killed); nobody else needs to know.
            let _ = pipe.write_all(&[0]);
        }
    }

    /// Tells the launcher that start-up failed; it prints `text` (complete
    /// lines, possibly empty) on its stderr and exits 1. Returns false if
    /// there is no launcher waiting (not a daemon, or already reported).
    pub fn failed(&mut self, text: &str) -> bool {
        match self.0.take() {
            Some(mut pipe) => {
                let _ = pipe
                    .write_all(&[1])
                    .and_then(|()| pipe.write_all(text.as_bytes()));
                true
            }
            None => false,
        }
    }
}

/// Detaches into the background (COMPAT 1.8: ignore the terminal stop
/// signals, fork, setsid, fork again, chdir `/`, umask 0). Returns in the
/// daemon; the launching process waits for [`Readiness::ready`] and exits 0,
/// or for [`Readiness::failed`] (or the pipe closing) and exits 1.
///
/// Unlike MySQL Proxy (quirk s), stdin and stdout are redirected to
/// /dev/null, and so is stderr unless the log goes there (`keep_stderr`), so
/// that a daemon does not hold its launcher's terminal or pipes open.
pub fn daemonize(keep_stderr: bool) -> Result<Readiness, ProcessError> {
    let fail = |step: &'static str| move |source| ProcessError::Daemon { step, source };
    for sig in [Signal::SIGTTOU, Signal::SIGTTIN, Signal::SIGTSTP] {
        // SAFETY: installing SIG_IGN runs no code of ours in signal context.
        unsafe { signal::signal(sig, SigHandler::SigIgn) }.map_err(fail("ignoring signals"))?;
    }
    // Close-on-exec: a program the daemon starts must not hold the launcher.
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(fail("pipe"))?;
    // SAFETY: no other thread exists yet (the chassis forks before starting
    // the actix system or the signal thread).
    match unsafe { fork() }.map_err(fail("fork"))? {
        ForkResult::Parent { child } => {
            drop(write_end);
            // The first child exits as soon as it has forked the daemon.
            let _ = waitpid(child, None);
            let mut report = Vec::new();
            // Read until the daemon closes its end: it has either written its
            // status byte, or died.
            let _ = File::from(read_end).read_to_end(&mut report);
            match report.split_first() {
                Some((0, _)) => std::process::exit(0),
                Some((_, message)) => {
                    let _ = std::io::stderr().write_all(message);
                    std::process::exit(1)
                }
                None => std::process::exit(1),
            }
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(fail("setsid"))?;
    // The session leader's exit must not hang up the daemon.
    // SAFETY: as above.
    unsafe { signal::signal(Signal::SIGHUP, SigHandler::SigIgn) }
        .map_err(fail("ignoring SIGHUP"))?;
    // SAFETY: as above; still single-threaded.
    match unsafe { fork() }.map_err(fail("second fork"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/").map_err(|e| ProcessError::Daemon {
        step: "chdir /",
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    umask(Mode::empty());
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| ProcessError::Daemon {
            step: "opening /dev/null",
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    let redirect = fail("redirecting stdio to /dev/null");
    dup2_stdin(&null).map_err(redirect)?;
    dup2_stdout(&null).map_err(redirect)?;
    if !keep_stderr {
        dup2_stderr(&null).map_err(redirect)?;
    }
    Ok(Readiness(Some(File::from(write_end))))
}

/// The worker's pid, for the angel's signal forwarding (read in signal
/// context, hence an atomic); 0 while there is none.
static WORKER: AtomicI32 = AtomicI32::new(0);

/// Set in the angel by SIGINT/SIGTERM: a worker that dies now is not
/// restarted.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Signals the angel passes on to its worker.
const FORWARDED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// `--keepalive`: becomes the supervisor ("angel") and returns only in a
/// worker process. The angel restarts a worker that died from a signal (after
/// 2 s) and otherwise exits with the worker's exit code.
pub fn keepalive(log: &Log) -> Result<(), ProcessError> {
    let fail = |step: &'static str| move |source| ProcessError::Angel { step, source };
    let mut forwarding = false;
    loop {
        // SAFETY: single-threaded (the angel never starts threads; its signal
        // handlers only call kill(2)).
        let child = match unsafe { fork() }.map_err(fail("fork"))? {
            ForkResult::Child => {
                if forwarding {
                    // The inherited forwarding must not act in the worker. The
                    // handlers for INT/TERM/HUP stay installed: signal-hook's
                    // registry (inherited too) believes they are, and the
                    // worker registers its own actions there. USR1/USR2 get
                    // their default action back, as in MySQL Proxy's worker.
                    WORKER.store(0, Ordering::SeqCst);
                    for sig in [Signal::SIGUSR1, Signal::SIGUSR2] {
                        // SAFETY: SIG_DFL runs no code of ours.
                        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
                    }
                }
                return Ok(());
            }
            ForkResult::Parent { child } => child,
        };
        WORKER.store(child.as_raw(), Ordering::SeqCst);
        if !forwarding {
            install_forwarding().map_err(fail("installing signal handlers"))?;
            forwarding = true;
        }
        log.log(
            LogLevel::Message,
            &format!("[angel] we try to keep PID={child} alive"),
        );
        match wait_for(child).map_err(fail("waitpid"))? {
            WaitStatus::Exited(_, code) => std::process::exit(code),
            WaitStatus::Signaled(..) if STOPPING.load(Ordering::SeqCst) => std::process::exit(0),
            WaitStatus::Signaled(_, sig, _) => {
                WORKER.store(0, Ordering::SeqCst);
                log.log(
                    LogLevel::Critical,
                    &format!(
                        "[angel] PID={child} died on signal={sig}, restarting it in 2 seconds"
                    ),
                );
                std::thread::sleep(Duration::from_secs(2));
                if STOPPING.load(Ordering::SeqCst) {
                    std::process::exit(0);
                }
            }
            // Not asked for (no WUNTRACED / WCONTINUED).
            _ => {}
        }
    }
}

fn install_forwarding() -> Result<(), Errno> {
    for sig in FORWARDED {
        let raw = sig as i32;
        // SAFETY: the action only touches atomics and calls kill(2), all
        // async-signal-safe.
        unsafe {
            signal_hook::low_level::register(raw, move || {
                if matches!(sig, Signal::SIGINT | Signal::SIGTERM) {
                    STOPPING.store(true, Ordering::SeqCst);
                }
                let pid = WORKER.load(Ordering::SeqCst);
                if pid > 0 {
                    let _ = signal::kill(Pid::from_raw(pid), sig);
                }
            })
        }
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    }
    Ok(())
}

/// Waits for `child` to end, retrying when a forwarded signal interrupts.
fn wait_for(child: Pid) -> Result<WaitStatus, Errno> {
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::StillAlive) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pid_file_is_private_and_bare() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mp.pid");
        std::fs::write(&path, "a much longer previous content").unwrap();
        write_pid_file(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        // Created earlier by the test with default mode; a fresh one is 0600.
        let fresh = dir.path().join("fresh.pid");
        write_pid_file(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn lua_paths_default_to_basedir_unless_set() {
        // The only test touching these variables.
        std::env::remove_var("LUA_CPATH");
        std::env::set_var("LUA_PATH", "/from/env/?.lua");
        let cli = std::collections::BTreeMap::from([(
            "basedir".to_string(),
            vec!["/opt/mp".to_string()],
        )]);
        let sources = crate::config::Sources {
            cli: &cli,
            file: None,
        };
        let mut config = ChassisConfig::resolve(
            &sources,
            &crate::options::chassis_options(),
            Path::new("/unused"),
        )
        .unwrap();
        set_lua_paths(&config);
        assert_eq!(std::env::var("LUA_PATH").unwrap(), "/from/env/?.lua");
        assert_eq!(
            std::env::var("LUA_CPATH").unwrap(),
            "/opt/mp/lib/mysql-proxy/lua/?.so"
        );
        config.lua_path = Some("/forced/?.lua".to_string());
        set_lua_paths(&config);
        assert_eq!(std::env::var("LUA_PATH").unwrap(), "/forced/?.lua");
    }

    #[test]
    fn user_needs_root() {
        if geteuid().is_root() {
            assert!(matches!(
                lookup_user("no-such-user-here"),
                Err(ProcessError::UnknownUser(_))
            ));
        } else {
            assert!(matches!(lookup_user("root"), Err(ProcessError::NotRoot)));
        }
    }
}
