//! Helpers for the black-box tests of the `mysql-proxy` binary: running it
//! with a deadline, reading its log lines, config files, plugin locations.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound on any single run of the binary.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mysql-proxy"))
}

/// `target/<profile>`: where cargo puts the binary and the plugin libraries.
pub fn build_dir() -> PathBuf {
    bin().parent().unwrap().to_path_buf()
}

/// Fails the test with the command to run if a plugin library is missing
/// (`cargo test -p mysql-proxy` does not build the plugin crates).
pub fn require_plugins(names: &[&str]) {
    for name in names {
        let path = build_dir().join(format!("lib{name}.so"));
        assert!(
            path.is_file(),
            "{} not found: run `cargo build --workspace` (same profile) before these tests",
            path.display()
        );
    }
}

/// Runs the binary to completion (killed after [`DEADLINE`]).
pub fn run(args: &[&str]) -> Output {
    let child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mysql-proxy");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("waiting for mysql-proxy"),
        Err(_) => {
            kill(id as i32, nix::sys::signal::Signal::SIGKILL);
            panic!("mysql-proxy {args:?} did not exit within {DEADLINE:?}");
        }
    }
}

pub fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Splits a log line `YYYY-MM-DD HH:MM:SS: (<level>) <message>` into level
/// and message; `None` if it does not have that shape.
pub fn parse_log_line(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    let shaped = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b' ')
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19);
    if !shaped {
        return None;
    }
    let rest = line.get(19..)?.strip_prefix(": (")?;
    let (level, message) = rest.split_once(") ")?;
    Some((level, message))
}

/// Asserts that a failed run exited 1 with exactly one critical log line on
/// stderr, and returns that line's message.
pub fn single_fatal_line(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1; stderr:\n{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    let (level, message) =
        parse_log_line(lines[0]).unwrap_or_else(|| panic!("not a log line: {}", lines[0]));
    assert_eq!(level, "critical", "{}", lines[0]);
    message.to_string()
}

/// Writes a config file with the given mode.
pub fn write_config(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("mysql-proxy.cnf");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A running mysql-proxy whose stderr goes to a file; killed on drop.
pub struct Running {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Running {
    pub fn start(args: &[&str], dir: &Path) -> Running {
        let stderr_path = dir.join("stderr.log");
        let child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawning mysql-proxy");
        Running { child, stderr_path }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until `file` contains `needle` (or the process exits).
    pub fn wait_for(&mut self, file: &Path, needle: &str) {
        let began = Instant::now();
        loop {
            if fs::read_to_string(file)
                .unwrap_or_default()
                .contains(needle)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "mysql-proxy exited ({status}) before logging {needle:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                began.elapsed() < DEADLINE,
                "no {needle:?} in {} within {DEADLINE:?}; stderr:\n{}",
                file.display(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the pid file has been written: from then on signals are
    /// handled (the handlers are installed before it is written).
    pub fn wait_for_pid_file(&mut self, path: &Path) -> i32 {
        let began = Instant::now();
        loop {
            if let Ok(pid) = fs::read_to_string(path).unwrap_or_default().parse::<i32>() {
                return pid;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "mysql-proxy exited ({status}) before writing {}; stderr:\n{}",
                    path.display(),
                    self.stderr()
                );
            }
            assert!(
                began.elapsed() < DEADLINE,
                "no pid file within {DEADLINE:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        kill(self.pid(), signal);
    }

    /// Waits for the exit (killing it after [`DEADLINE`]).
    pub fn wait(&mut self) -> ExitStatus {
        wait_deadline(&mut self.child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_deadline(child: &mut Child) -> ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if began.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("mysql-proxy did not exit within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `cond` holds, failing after [`DEADLINE`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let began = Instant::now();
    while !cond() {
        assert!(began.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}
