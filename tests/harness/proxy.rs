//! The real `mysql-proxy` binary with its real plugin libraries, started on free
//! loopback ports with its output captured, and killed when the test is done.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::{mariadb_cli, Endpoint};
use crate::net::{free_port, port_listening, unix_socket_listening};
use crate::paths::{build_dir, proxy_binary};
use crate::process::{
    kill, proc_status_kib, run_with_timeout, signal_pid, spawn, tail, wait_timeout, POLL,
};

/// Bound on waiting for the listening ports.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports when another process took one.
const BIND_ATTEMPTS: usize = 3;

/// How to start a [`Proxy`].
#[derive(Clone, Debug)]
pub struct ProxyBuilder {
    backends: Vec<String>,
    read_only_backends: Vec<String>,
    plugins: Vec<String>,
    /// Listen on this Unix socket instead of a TCP port.
    proxy_socket: Option<PathBuf>,
    /// Run the binary and plugins of this build instead of [`build_dir`]'s.
    build_dir: Option<PathBuf>,
    admin_credentials: Option<(String, String)>,
    log_level: String,
    args: Vec<String>,
    /// Ports of other plugins' listeners to wait for at start.
    wait_for_ports: Vec<u16>,
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        ProxyBuilder {
            backends: Vec::new(),
            read_only_backends: Vec::new(),
            plugins: vec!["proxy".into()],
            proxy_socket: None,
            build_dir: None,
            admin_credentials: None,
            log_level: "debug".into(),
            args: Vec::new(),
            wait_for_ports: Vec::new(),
        }
    }
}

impl ProxyBuilder {
    /// A read/write backend (`--proxy-backend-addresses`), in order.
    pub fn backend(mut self, addr: impl Into<String>) -> Self {
        self.backends.push(addr.into());
        self
    }

    /// A read-only backend (`--proxy-read-only-backend-addresses`), in order.
    pub fn read_only_backend(mut self, addr: impl Into<String>) -> Self {
        self.read_only_backends.push(addr.into());
        self
    }

    /// Plugins to load, in order (default: `proxy`); one `--plugins=NAME` each.
    pub fn plugins(mut self, names: &[&str]) -> Self {
        self.plugins = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// `--admin-username` / `--admin-password`. When the admin plugin is loaded
    /// and this was not called, `admin` / `secret` are passed.
    pub fn admin_credentials(mut self, user: &str, password: &str) -> Self {
        self.admin_credentials = Some((user.into(), password.into()));
        self
    }

    /// `--log-level` (default `debug`).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// Any other argument, passed after the ones the builder generates.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The proxy plugin listens on this Unix socket path instead of a free
    /// TCP port.
    pub fn proxy_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.proxy_socket = Some(path.into());
        self
    }

    /// Also waits, at start, for `port` to listen (a listener of a plugin
    /// other than proxy and admin, whose address the test chose).
    pub fn wait_for_port(mut self, port: u16) -> Self {
        self.wait_for_ports.push(port);
        self
    }

    /// Runs the `mysql-proxy` binary and plugins found in `dir` (another
    /// build, e.g. the previous commit's, to compare with).
    pub fn build_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.build_dir = Some(dir.into());
        self
    }

    /// The directory with the binary and the plugins to run.
    fn binaries(&self) -> PathBuf {
        self.build_dir.clone().unwrap_or_else(build_dir)
    }

    fn has_plugin(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| p == name)
    }

    /// Free ports for the proxy plugin (unless it listens on a Unix socket)
    /// and the admin plugin, where loaded.
    fn free_ports(&self) -> (Option<u16>, Option<u16>) {
        let proxy = self.has_plugin("proxy") && self.proxy_socket.is_none();
        (
            proxy.then(free_port),
            self.has_plugin("admin").then(free_port),
        )
    }

    /// The full command line for the given ports.
    fn command_line(&self, proxy_port: Option<u16>, admin_port: Option<u16>) -> Vec<String> {
        let mut args = vec![format!("--plugin-dir={}", self.binaries().display())];
        args.extend(self.plugins.iter().map(|p| format!("--plugins={p}")));
        if let Some(port) = proxy_port {
            args.push(format!("--proxy-address=127.0.0.1:{port}"));
        }
        if let Some(path) = &self.proxy_socket {
            args.push(format!("--proxy-address={}", path.display()));
        }
        args.extend(
            self.backends
                .iter()
                .map(|b| format!("--proxy-backend-addresses={b}")),
        );
        args.extend(
            self.read_only_backends
                .iter()
                .map(|b| format!("--proxy-read-only-backend-addresses={b}")),
        );
        if let Some(port) = admin_port {
            args.push(format!("--admin-address=127.0.0.1:{port}"));
            let (user, password) = self.admin_login();
            args.push(format!("--admin-username={user}"));
            args.push(format!("--admin-password={password}"));
        }
        args.push(format!("--log-level={}", self.log_level));
        args.extend(self.args.iter().cloned());
        args
    }

    /// Starts the proxy and waits (up to 20 s) until its ports accept TCP
    /// connections. If the process exits first, the error carries its output.
    pub fn start(self) -> Result<Proxy, StartError> {
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS {
            match self.try_start() {
                Err(e) if e.is_bind_conflict() => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| StartError::new("no start attempt made", None, "", "")))
    }

    /// The admin plugin's credentials: as set, or `admin` / `secret`.
    fn admin_login(&self) -> (String, String) {
        self.admin_credentials
            .clone()
            .unwrap_or_else(|| ("admin".into(), "secret".into()))
    }

    fn try_start(&self) -> Result<Proxy, StartError> {
        let (proxy_port, admin_port) = self.free_ports();
        let args = self.command_line(proxy_port, admin_port);
        let bin = match &self.build_dir {
            Some(dir) => dir.join(crate::paths::PROXY_BIN),
            None => proxy_binary(),
        };
        let dir = tempfile::Builder::new()
            .prefix("mysql-proxy-")
            .tempdir()
            .map_err(|e| StartError::new(format!("creating a tempdir: {e}"), None, "", ""))?;
        let stdout_path = dir.path().join("stdout.log");
        let stderr_path = dir.path().join("stderr.log");
        let open = |path: &PathBuf| {
            File::create(path).map_err(|e| {
                StartError::new(format!("creating {}: {e}", path.display()), None, "", "")
            })
        };
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(open(&stdout_path)?)
            .stderr(open(&stderr_path)?);
        let child = spawn(cmd).map_err(|e| {
            StartError::new(format!("spawning {}: {e}", bin.display()), None, "", "")
        })?;
        let mut proxy = Proxy {
            child,
            proxy_port,
            admin_port,
            admin_credentials: self.admin_login(),
            args,
            stdout_path,
            stderr_path,
            _dir: dir,
        };
        let began = Instant::now();
        let ports: Vec<u16> = proxy_port
            .into_iter()
            .chain(admin_port)
            .chain(self.wait_for_ports.iter().copied())
            .collect();
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(StartError::new(
                    format!("mysql-proxy exited with {status} before listening"),
                    Some(status),
                    &proxy.stdout_text(),
                    &proxy.stderr_text(),
                )
                .with_args(&proxy.args));
            }
            let socket_listens = self
                .proxy_socket
                .as_ref()
                .is_none_or(|path| unix_socket_listening(path));
            if socket_listens && ports.iter().all(|&p| port_listening(p)) {
                eprintln!(
                    "[harness] mysql-proxy (pid {}) listening on {:?} in {:.2?}",
                    proxy.pid(),
                    ports,
                    began.elapsed()
                );
                return Ok(proxy);
            }
            if began.elapsed() >= START_TIMEOUT {
                kill(&mut proxy.child);
                return Err(StartError::new(
                    format!("mysql-proxy did not listen on {ports:?} within {START_TIMEOUT:?}"),
                    None,
                    &proxy.stdout_text(),
                    &proxy.stderr_text(),
                )
                .with_args(&proxy.args));
            }
            thread::sleep(POLL);
        }
    }

    /// Runs the proxy with the builder's command line (free ports included) and
    /// expects it to exit by itself within `timeout`: for start-up error tests.
    pub fn run_expect_exit(self, timeout: Duration) -> (ExitStatus, String, String) {
        let (proxy_port, admin_port) = self.free_ports();
        let args = self.command_line(proxy_port, admin_port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_expect_exit(&args, timeout)
    }
}

/// Runs `mysql-proxy` with exactly `args` (nothing added: pass `--plugin-dir`
/// yourself, see [`crate::build_dir`]) and waits at most `timeout` for it to exit;
/// panics if it is still running then. Returns (status, stdout, stderr).
pub fn spawn_expect_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let bin = proxy_binary();
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    let out = run_with_timeout(cmd, timeout)
        .unwrap_or_else(|e| panic!("expected mysql-proxy {args:?} to exit by itself: {e}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `mysql-proxy`. Dropping it kills the process (SIGKILL by PID); if the
/// test is failing, the tail of the proxy's stderr is printed first.
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    proxy_port: Option<u16>,
    admin_port: Option<u16>,
    admin_credentials: (String, String),
    args: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    // Holds the captured output; removed on drop.
    _dir: TempDir,
}

impl Proxy {
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// The proxy plugin's port; panics if the proxy plugin is not loaded.
    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
            .unwrap_or_else(|| panic!("the proxy plugin is not loaded: {:?}", self.args))
    }

    /// The admin plugin's port; panics if the admin plugin is not loaded.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
            .unwrap_or_else(|| panic!("the admin plugin is not loaded: {:?}", self.args))
    }

    /// Where clients connect: the proxy port.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::local(self.proxy_port())
    }

    /// The admin port.
    pub fn admin_endpoint(&self) -> Endpoint {
        Endpoint::local(self.admin_port())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One backend's row of the admin port's `backends` table, as column
    /// name -> value (read with the `mariadb` CLI).
    pub fn backend_row(&self, backend_ndx: u32) -> HashMap<String, String> {
        let (user, password) = &self.admin_credentials;
        let out = mariadb_cli(
            self.admin_port(),
            user,
            Some(password),
            &["-e", "SELECT * FROM backends"],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let row = lines
            .find(|line| line.starts_with(&format!("{backend_ndx}\t")))
            .unwrap_or_else(|| {
                panic!(
                    "no backend {backend_ndx} in the admin table:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        header
            .iter()
            .zip(row.split('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Waits until a backend's `column` in the admin table reads `value`;
    /// returns how long that took, panics after `within`.
    pub fn wait_for_backend(
        &self,
        backend_ndx: u32,
        column: &str,
        value: &str,
        within: Duration,
    ) -> Duration {
        let began = Instant::now();
        loop {
            let row = self.backend_row(backend_ndx);
            if row.get(column).is_some_and(|v| v == value) {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < within,
                "backend {backend_ndx}: {column} not {value} within {within:?}: {row:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The command line the proxy was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Sends a signal (e.g. `libc::SIGTERM`, `libc::SIGHUP`).
    pub fn signal(&self, sig: i32) {
        signal_pid(self.pid(), sig);
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; panics with its stderr after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => status,
            None => panic!(
                "mysql-proxy (pid {}) still running after {timeout:?}; stderr:\n{}",
                self.pid(),
                tail(&self.stderr_text(), 40)
            ),
        }
    }

    /// Everything the proxy wrote to stderr so far (its log, by default).
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Everything the proxy wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM")
            .unwrap_or_else(|| panic!("no VmHWM for mysql-proxy pid {}", self.pid()))
    }

    /// Current resident set size (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS")
            .unwrap_or_else(|| panic!("no VmRSS for mysql-proxy pid {}", self.pid()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        kill(&mut self.child);
        if thread::panicking() {
            eprintln!(
                "[harness] mysql-proxy {:?}\n--- stderr (tail):\n{}",
                self.args,
                tail(&self.stderr_text(), 60)
            );
        }
    }
}

/// The proxy did not come up; carries its exit status and output.
pub struct StartError {
    pub message: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl StartError {
    fn new(
        message: impl Into<String>,
        status: Option<ExitStatus>,
        stdout: &str,
        stderr: &str,
    ) -> Self {
        StartError {
            message: message.into(),
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            args: Vec::new(),
        }
    }

    fn with_args(mut self, args: &[String]) -> Self {
        self.args = args.to_vec();
        self
    }

    /// A listen address was taken by someone else between picking and binding it.
    fn is_bind_conflict(&self) -> bool {
        self.status.is_some()
            && (self.stderr.contains("Address already in use")
                || self.stderr.contains("os error 98"))
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        writeln!(f, "command line: {:?}", self.args)?;
        writeln!(f, "--- stdout:\n{}", tail(&self.stdout, 40))?;
        write!(f, "--- stderr:\n{}", tail(&self.stderr, 80))
    }
}

// Debug shows the same text, so `proxy.start().unwrap()` prints readable output.
impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for StartError {}
