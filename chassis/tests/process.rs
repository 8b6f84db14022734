//! Black-box tests of the running process: signals, the log file and its
//! rotation, the pid file, `--daemon` and `--keepalive`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use common::*;

fn opt(name: &str, path: &Path) -> String {
    format!("--{name}={}", path.display())
}

fn log_messages(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(parse_log_line)
        .map(|(l, m)| (l.to_string(), m.to_string()))
        .collect()
}

fn has(messages: &[(String, String)], level: &str, message: &str) -> bool {
    messages.iter().any(|(l, m)| l == level && m == message)
}

#[test]
fn sigterm_shuts_down_with_exit_0() {
    require_plugins(&["proxy"]);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("mp.pid");
    let mut proxy = Running::start(
        &[
            "--plugins=proxy",
            "--proxy-address=127.0.0.1:0",
            "--verbose-shutdown",
            &opt("pid-file", &pid_file),
        ],
        dir.path(),
    );
    let stderr_path = proxy.stderr_path.clone();
    proxy.wait_for(&stderr_path, "plugin proxy ");
    proxy.signal(Signal::SIGTERM);
    assert_eq!(proxy.wait().code(), Some(0), "{}", proxy.stderr());
    let messages = log_messages(&stderr_path);
    let version = messages
        .iter()
        .find_map(|(_, m)| m.strip_prefix("plugin proxy ")?.strip_suffix(" started"))
        .unwrap_or_else(|| panic!("{messages:?}"))
        .to_string();
    assert!(!version.is_empty());
    // Default level is critical: only critical lines, and with
    // --verbose-shutdown the last one is the exit line.
    assert!(
        messages.iter().all(|(l, _)| l == "critical"),
        "{messages:?}"
    );
    assert_eq!(
        messages.last().unwrap().1,
        "shutting down normally, exit code is: 0"
    );
    let mode = std::fs::metadata(&pid_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn sigint_without_plugins_and_quiet_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("mp.pid");
    let mut proxy = Running::start(&["--plugins=", &opt("pid-file", &pid_file)], dir.path());
    assert_eq!(proxy.wait_for_pid_file(&pid_file), proxy.pid());
    proxy.signal(Signal::SIGINT);
    assert_eq!(proxy.wait().code(), Some(0));
    // The exit line is at message level, hidden by default.
    assert_eq!(proxy.stderr(), "");
}

#[test]
fn sighup_reopens_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mp.log");
    let rotated = dir.path().join("mp.log.1");
    let pid_file = dir.path().join("mp.pid");
    let mut proxy = Running::start(
        &[
            "--plugins=",
            "--log-level=message",
            &opt("log-file", &log),
            &opt("pid-file", &pid_file),
        ],
        dir.path(),
    );
    proxy.wait_for_pid_file(&pid_file);
    std::fs::rename(&log, &rotated).unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.wait_for(&log, "re-opened log file after SIGHUP");
    proxy.signal(Signal::SIGTERM);
    assert_eq!(proxy.wait().code(), Some(0));
    let old = log_messages(&rotated);
    assert!(
        has(&old, "message", "received a SIGHUP, closing log file"),
        "{old:?}"
    );
    let new = log_messages(&log);
    assert!(
        has(&new, "message", "shutting down normally, exit code is: 0"),
        "{new:?}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "log file mode {mode:o}");
    assert_eq!(proxy.stderr(), "");
}

#[test]
fn bind_failure_is_fatal() {
    require_plugins(&["proxy"]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("--proxy-address={}", taken.local_addr().unwrap());
    let out = run(&["--plugins=proxy", &address]);
    let line = single_fatal_line(&out);
    assert!(line.starts_with("plugin proxy: "), "{line}");
}

/// Kills the daemon named in a pid file when the test ends, however it ends.
struct PidGuard(std::path::PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0).unwrap_or_default().parse() {
            kill(pid, Signal::SIGKILL);
        }
    }
}

#[test]
fn daemon_detaches_and_reports_bind_errors() {
    require_plugins(&["proxy"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mp.log");
    let pid_file = dir.path().join("mp.pid");
    let _guard = PidGuard(pid_file.clone());
    let out = run(&[
        "--daemon",
        "--plugins=proxy",
        "--proxy-address=127.0.0.1:0",
        "--log-level=message",
        &opt("log-file", &log),
        &opt("pid-file", &pid_file),
    ]);
    // The launcher exits 0 only once the daemon listens.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(has(
        &log_messages(&log),
        "critical",
        &format!("plugin proxy {} started", plugin_version())
    ));
    // Detached: its own session, no longer our child.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, sid): (i32, i32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(ppid, std::process::id() as i32);
    assert_ne!(sid, nix::unistd::getsid(None).unwrap().as_raw());

    kill(pid, Signal::SIGTERM);
    eventually("the daemon to exit", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(
        has(
            &log_messages(&log),
            "message",
            "shutting down normally, exit code is: 0"
        ),
        "{:?}",
        log_messages(&log)
    );

    // A bind error reaches the launcher's exit code (unlike MySQL Proxy).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run(&[
        "--daemon",
        "--plugins=proxy",
        &format!("--proxy-address={}", taken.local_addr().unwrap()),
        &opt("log-file", &dir.path().join("fail.log")),
    ]);
    // The launcher prints the daemon's error (the log went to a file).
    let line = single_fatal_line(&out);
    assert!(line.starts_with("plugin proxy: "), "{line}");
}

fn plugin_version() -> String {
    let out = run(&["--plugins=proxy", "--version"]);
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("  proxy: "))
        .unwrap()
        .to_string()
}

#[test]
fn keepalive_restarts_a_killed_worker() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("mp.pid");
    let log = dir.path().join("mp.log");
    let mut angel = Command::new(bin())
        .args([
            "--keepalive",
            "--plugins=",
            "--log-level=message",
            &opt("pid-file", &pid_file),
            &opt("log-file", &log),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read_pid = || std::fs::read_to_string(&pid_file).ok()?.parse::<i32>().ok();
    eventually("the first worker", || read_pid().is_some());
    let first = read_pid().unwrap();
    let _guard = PidGuard(pid_file.clone());
    assert_ne!(first, angel.id() as i32);
    kill(first, Signal::SIGKILL);
    eventually("a new worker", || read_pid().is_some_and(|p| p != first));
    // SIGTERM to the angel reaches the worker, which exits 0, and so does the angel.
    angel_signal(&angel, Signal::SIGTERM);
    assert_eq!(wait_deadline(&mut angel).code(), Some(0));
    let messages = log_messages(&log);
    assert!(
        messages.iter().any(|(l, m)| l == "critical"
            && m == &format!(
                "[angel] PID={first} died on signal=SIGKILL, restarting it in 2 seconds"
            )),
        "{messages:?}"
    );
    assert!(
        has(
            &messages,
            "message",
            "shutting down normally, exit code is: 0"
        ),
        "{messages:?}"
    );
}

fn angel_signal(angel: &std::process::Child, signal: Signal) {
    kill(angel.id() as i32, signal);
}

#[test]
fn user_switch_and_open_files_limit() {
    if !nix::unistd::geteuid().is_root() {
        let out = run(&["--plugins=", "--user=nobody"]);
        assert_eq!(
            single_fatal_line(&out),
            "can only use the --user switch if running as root"
        );
        return;
    }
    let out = run(&["--plugins=", "--user=no-such-user-here"]);
    assert_eq!(single_fatal_line(&out), "unknown user: no-such-user-here");

    require_plugins(&["proxy"]);
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a 'nobody' user");
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = Running::start(
        &[
            "--plugins=proxy",
            "--proxy-address=127.0.0.1:0",
            "--user=nobody",
            "--max-open-files=2000",
            "--event-threads=2",
        ],
        dir.path(),
    );
    let stderr_path = proxy.stderr_path.clone();
    // Logged once the listeners are bound and privileges dropped.
    proxy.wait_for(&stderr_path, "plugin proxy ");
    let pid = proxy.pid();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert!(tasks.len() > 1, "expected several threads");
    let expected = format!("{0}\t{0}\t{0}\t{0}", nobody.uid);
    for task in tasks {
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:\t"))
            .unwrap();
        assert_eq!(uid, expected, "thread {}", task.display());
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().nth(3),
        Some("2000"),
        "{open_files}"
    );
    proxy.signal(Signal::SIGTERM);
    assert_eq!(proxy.wait().code(), Some(0), "{}", proxy.stderr());
}
