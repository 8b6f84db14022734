//! Child processes of the tests: die with the test, signal by PID, wait with a deadline.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How often the waiting loops poll a child or a port.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// A spawn request for the spawner thread: the command and where to send the child.
type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that the child receives SIGKILL when the test process dies
/// (however it dies), so no server outlives its test run.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the
/// process; so every child is forked by one spawner thread that lives as long as
/// the process, and a server started from a short-lived helper thread survives it.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    die_with_parent(&mut cmd);
                    // The requester may have gone; then the child is dropped (not killed)
                    // and dies with the process.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap_or_else(|e| panic!("starting the spawner thread: {e}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// Makes the child receive SIGKILL when the thread that forks it dies; use
/// [`spawn`], which forks from a thread that lives as long as the process.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        })
    }
}

/// Sends `sig` to `pid`; an already reaped or vanished process is not an error.
pub fn signal_pid(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits at most `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(POLL),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the child.
pub fn terminate(child: &mut Child, grace: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    signal_pid(child.id(), libc::SIGTERM);
    if let Some(status) = wait_timeout(child, grace) {
        return status;
    }
    kill(child)
}

/// SIGKILL and reap.
pub fn kill(child: &mut Child) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    signal_pid(child.id(), libc::SIGKILL);
    child
        .wait()
        .unwrap_or_else(|e| panic!("reaping child {}: {e}", child.id()))
}

/// Runs `cmd` to completion with captured output; kills it and returns a
/// `TimedOut` error carrying whatever it printed if it outlives `timeout`.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> io::Result<Output> {
    let mut cmd = cmd;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = spawn(cmd)?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    let status = match status {
        Some(status) => status,
        None => {
            kill(&mut child);
            let (stdout, stderr) = (join(out), join(err));
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{shown} still running after {timeout:?}; killed\n--- stdout:\n{}\n--- stderr:\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                ),
            ));
        }
    };
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just truncates the captured text.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn join(handle: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A field of `/proc/<pid>/status` in KiB (e.g. `VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
