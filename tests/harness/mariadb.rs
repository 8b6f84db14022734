//! Private MariaDB servers for the tests: own datadir, socket and free port,
//! started and stopped by the harness, never the machine's shared server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts};
use tempfile::TempDir;

use crate::client::Endpoint;
use crate::net::free_port;
use crate::paths::cache_dir;
use crate::process::{kill, run_with_timeout, spawn, tail, terminate, POLL};

/// Bound on waiting for a server to answer `SELECT 1`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period of a SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts at a fresh port when another process took the one picked.
const BIND_ATTEMPTS: usize = 5;
/// Bump when the template's content (users, databases, install options) changes.
const TEMPLATE_FORMAT: u32 = 1;

/// Server options of every test server (the template's too).
const SERVER_ARGS: &[&str] = &[
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=48M",
    "--innodb-flush-log-at-trx-commit=2",
    "--max-allowed-packet=1G",
    "--local-infile=1",
    "--performance-schema=OFF",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--skip-log-bin",
];

/// Run once in the template: the database and the password user the tests rely on.
const SETUP_SQL: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS test",
    "CREATE USER 'proxyuser'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('secret')",
    "CREATE USER 'proxyuser'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('secret')",
    "CREATE USER 'proxyuser'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('secret')",
    "GRANT ALL PRIVILEGES ON *.* TO 'proxyuser'@'%' WITH GRANT OPTION",
    "GRANT ALL PRIVILEGES ON *.* TO 'proxyuser'@'localhost' WITH GRANT OPTION",
    "GRANT ALL PRIVILEGES ON *.* TO 'proxyuser'@'127.0.0.1' WITH GRANT OPTION",
];

/// Options for [`MariaDb`] beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct MariaDbBuilder {
    args: Vec<String>,
}

impl MariaDbBuilder {
    /// An extra `mariadbd` option, e.g. `--max-connections=20` (placed after the defaults, so it wins).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Several extra `mariadbd` options.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Copies the template datadir and starts the server; panics (with the tail of
    /// the error log) if it does not answer `SELECT 1` within 60 s.
    pub fn start(self) -> MariaDb {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("mariadb-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a tempdir for MariaDB: {e}"));
        let datadir = dir.path().join("data");
        copy_dir(template(), &datadir).unwrap_or_else(|e| panic!("{e}"));
        let mut db = MariaDb {
            datadir,
            port: 0,
            child: None,
            args: self.args,
            startup: Duration::ZERO,
            dir,
        };
        db.launch_on_fresh_port();
        db.startup = began.elapsed();
        eprintln!(
            "[harness] MariaDB on port {} (pid {}) ready in {:.2?}",
            db.port,
            db.pid(),
            db.startup
        );
        db
    }
}

/// A running private MariaDB server with database `test`, `root` (no password)
/// and `proxyuser`/`secret` (all privileges). Dropping it stops the server
/// (SIGTERM, then SIGKILL after 10 s) and removes its files.
#[derive(Debug)]
pub struct MariaDb {
    datadir: PathBuf,
    port: u16,
    child: Option<Child>,
    args: Vec<String>,
    startup: Duration,
    // Last, so it is removed after the server is gone.
    dir: TempDir,
}

impl MariaDb {
    /// A server with the default options.
    pub fn start() -> MariaDb {
        MariaDb::builder().start()
    }

    pub fn builder() -> MariaDbBuilder {
        MariaDbBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the running `mariadbd`; panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("MariaDB on port {} is not running", self.port))
    }

    /// `127.0.0.1:PORT`, the form `--proxy-backend-addresses` takes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::local(self.port)
    }

    /// Crate options for `root`, database `test`, TCP only.
    pub fn root_opts(&self) -> Opts {
        self.endpoint().root_opts()
    }

    /// Crate options for `proxyuser`/`secret`.
    pub fn user_opts(&self) -> Opts {
        self.endpoint().user_opts()
    }

    /// `mysql://root@127.0.0.1:PORT/test?prefer_socket=false`.
    pub fn url(&self) -> String {
        self.endpoint().url()
    }

    /// A direct connection as `root`. A server that refuses it is a broken
    /// test set-up: the panic shows the server's error log, since a server
    /// that dies under a loaded machine (seen once: every connection reset a
    /// second after start) says why only there.
    pub fn root_conn(&self) -> Conn {
        Conn::new(self.root_opts()).unwrap_or_else(|error| {
            panic!(
                "connecting to MariaDB on port {} as root: {error}\n--- its error log:\n{}",
                self.port,
                tail(&self.error_log(), 40)
            )
        })
    }

    /// How long [`MariaDbBuilder::start`] took, copy of the datadir included.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The server's Unix socket (for direct administrative access).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The error log's content.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.err_log_path()).unwrap_or_default()
    }

    /// A counter of `SHOW GLOBAL STATUS` (e.g. `Aborted_clients`).
    pub fn global_status(&self, name: &str) -> u64 {
        let row: Option<(String, u64)> = self
            .root_conn()
            .query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .unwrap_or_else(|e| panic!("SHOW GLOBAL STATUS: {e}"));
        row.unwrap_or_else(|| panic!("no status variable {name}")).1
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server with SIGKILL (a crash, for failover tests) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Stops the server cleanly (SIGTERM; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, STOP_GRACE);
        }
    }

    /// Starts the server again on the same datadir and port (stopping it first if
    /// it runs); waits until it answers like [`MariaDbBuilder::start`].
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch() {
                Ok(()) => return,
                // The old socket may linger a moment; the port is ours to retake.
                Err(Launch::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200))
                }
                Err(Launch::PortTaken) => panic!(
                    "restarting MariaDB: port {} stays taken\n{}",
                    self.port,
                    tail(&self.error_log(), 30)
                ),
            }
        }
    }

    fn err_log_path(&self) -> PathBuf {
        self.dir.path().join("err.log")
    }

    fn launch_on_fresh_port(&mut self) {
        for _ in 0..BIND_ATTEMPTS {
            self.port = free_port();
            match self.launch() {
                Ok(()) => return,
                Err(Launch::PortTaken) => continue,
            }
        }
        panic!(
            "MariaDB could not bind a free port in {BIND_ATTEMPTS} attempts\n{}",
            tail(&self.error_log(), 30)
        );
    }

    /// Starts `mariadbd` on `self.port` and waits until it answers.
    fn launch(&mut self) -> Result<(), Launch> {
        let log = self.err_log_path();
        // Only this launch's lines matter when looking for a bind error.
        let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let child = spawn_mariadbd(
            &self.datadir,
            &self.socket(),
            self.port,
            &log,
            &self.dir.path().join("mariadbd.pid"),
            &self.args,
        );
        self.child = Some(child);
        // No default database: the template server does not have `test` yet.
        let opts: Opts = self
            .endpoint()
            .opts("root", None)
            .db_name(None::<String>)
            .into();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let text = fs::read_to_string(&log).unwrap_or_default();
                let this_run = text.get(log_start as usize..).unwrap_or(&text);
                if is_bind_error(this_run) {
                    return Err(Launch::PortTaken);
                }
                panic!(
                    "mariadbd exited with {status} before answering on port {}; error log {}:\n{}",
                    self.port,
                    log.display(),
                    tail(this_run, 40)
                );
            }
            if answers(&opts) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "MariaDB on port {} did not answer SELECT 1 within {READY_TIMEOUT:?}; error log:\n{}",
                    self.port,
                    tail(&self.error_log(), 40)
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a launch did not produce a running server (other failures panic).
enum Launch {
    PortTaken,
}

fn is_bind_error(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Do you already have another")
}

fn answers(opts: &Opts) -> bool {
    let opts = mysql::OptsBuilder::from_opts(opts.clone())
        .tcp_connect_timeout(Some(Duration::from_secs(1)))
        .read_timeout(Some(Duration::from_secs(5)));
    match Conn::new(opts) {
        Ok(mut conn) => conn.query_drop("SELECT 1").is_ok(),
        Err(_) => false,
    }
}

fn spawn_mariadbd(
    datadir: &Path,
    socket: &Path,
    port: u16,
    log: &Path,
    pid_file: &Path,
    extra: &[String],
) -> Child {
    let mut cmd = Command::new(mariadbd());
    cmd.arg("--no-defaults")
        .args(user_arg())
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--log-error={}", log.display()))
        .arg(format!("--pid-file={}", pid_file.display()))
        .args(SERVER_ARGS)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let shown = format!("{cmd:?}");
    spawn(cmd).unwrap_or_else(|e| panic!("starting {shown}: {e} (is mariadb-server installed?)"))
}

/// `--user=root` when running as root (mariadbd refuses to run as root without
/// it); nothing otherwise, so the server runs as the invoking user.
fn user_arg() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root.then_some("--user=root")
}

/// The server executable: `MARIADBD` if set, else `mariadbd` from PATH or /usr/sbin.
fn mariadbd() -> PathBuf {
    if let Some(path) = std::env::var_os("MARIADBD") {
        return path.into();
    }
    let sbin = Path::new("/usr/sbin/mariadbd");
    if sbin.is_file() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("mariadbd")
    }
}

/// `cp -a --sparse=always`: the 48 MiB redo log is mostly holes, so a copy takes ~50 ms.
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let mut cp = Command::new("cp");
    cp.arg("-a").arg("--sparse=always").arg(from).arg(to);
    let out = run_with_timeout(cp, Duration::from_secs(60))
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "copying {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The initialised datadir every server starts from, built once per machine and
/// server version (`target/mysql-proxy-tests/mariadb-template-<key>/data`) and
/// reused across test processes; creation is atomic (built aside, then renamed).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match TEMPLATE.get_or_init(find_or_build_template) {
        Ok(path) => path,
        Err(e) => panic!("building the MariaDB template datadir: {e}"),
    }
}

fn find_or_build_template() -> Result<PathBuf, String> {
    let root = cache_dir();
    let home = root.join(format!("mariadb-template-{}", template_key()?));
    let data = home.join("data");
    if home.join("ready").is_file() {
        return Ok(data);
    }
    fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    remove_stale_builds(&root);
    let staging = tempfile::Builder::new()
        .prefix("mariadb-template-build-")
        .tempdir_in(&root)
        .map_err(|e| format!("creating a staging dir in {}: {e}", root.display()))?;
    let began = Instant::now();
    build_template(staging.path())?;
    fs::write(staging.path().join("ready"), b"")
        .map_err(|e| format!("marking the template ready: {e}"))?;
    let staging = staging.keep();
    if fs::rename(&staging, &home).is_err() {
        // Another test process won the race; use its template.
        let _ = fs::remove_dir_all(&staging);
        if !home.join("ready").is_file() {
            return Err(format!(
                "{} exists but is not a finished template",
                home.display()
            ));
        }
    }
    eprintln!(
        "[harness] built MariaDB template {} in {:.2?}",
        home.display(),
        began.elapsed()
    );
    Ok(data)
}

/// Staging directories left by a test process killed while building the template.
fn remove_stale_builds(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        let name = entry.file_name();
        if stale
            && name
                .to_string_lossy()
                .starts_with("mariadb-template-build-")
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The server version and harness format, so a MariaDB upgrade gets a new template.
fn template_key() -> Result<String, String> {
    let mut cmd = Command::new(mariadbd());
    cmd.arg("--version");
    let out = run_with_timeout(cmd, Duration::from_secs(30))
        .map_err(|e| format!("running mariadbd --version: {e} (is mariadb-server installed?)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "Ver")
        .nth(1)
        .unwrap_or("unknown");
    let clean: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!("v{TEMPLATE_FORMAT}-{clean}"))
}

/// mariadb-install-db, then one boot to create the test database and users.
fn build_template(dir: &Path) -> Result<(), String> {
    let data = dir.join("data");
    let mut install = Command::new("mariadb-install-db");
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(user_arg())
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--innodb-log-file-size=48M")
        .arg("--innodb-buffer-pool-size=64M");
    let out = run_with_timeout(install, Duration::from_secs(120))
        .map_err(|e| format!("running mariadb-install-db: {e} (is mariadb-server installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "mariadb-install-db failed ({}):\n{}\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 20),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        ));
    }
    // Boot it once as a normal server to run the setup, then shut it down cleanly.
    let mut db = MariaDb {
        datadir: data,
        port: 0,
        child: None,
        args: Vec::new(),
        startup: Duration::ZERO,
        dir: tempfile::Builder::new()
            .prefix("mariadb-template-run-")
            .tempdir()
            .map_err(|e| format!("creating a tempdir: {e}"))?,
    };
    db.launch_on_fresh_port();
    let mut conn = Conn::new(db.endpoint().opts("root", None).db_name(None::<String>))
        .map_err(|e| format!("connecting to the template server: {e}"))?;
    for sql in SETUP_SQL {
        conn.query_drop(sql)
            .map_err(|e| format!("template setup `{sql}`: {e}"))?;
    }
    drop(conn);
    db.stop();
    // The server's own files from the template run do not belong in the copy.
    let _ = fs::remove_file(db.datadir.join("mariadbd.pid"));
    Ok(())
}
