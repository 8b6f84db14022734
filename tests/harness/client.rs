//! Client side of the tests: an endpoint (server or proxy) and the real clients
//! that talk to it (the `mysql` crate, the `mariadb` and `mariadb-admin` programs).

use std::fmt;
use std::process::{Command, Output};
use std::time::Duration;

use mysql::{Conn, Opts, OptsBuilder};

use crate::process::run_with_timeout;

/// The password user every test server has (`proxyuser`@`%`, mysql_native_password).
pub const TEST_USER: &str = "proxyuser";
/// Password of [`TEST_USER`].
pub const TEST_PASSWORD: &str = "secret";
/// The database every test server has.
pub const TEST_DB: &str = "test";

/// How long one run of a command-line client may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// Something that speaks the MySQL protocol on TCP: a MariaDB or a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// A loopback endpoint.
    pub fn local(port: u16) -> Self {
        Endpoint::new("127.0.0.1", port)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Options for `user` (with `password`, if any), default database `test`.
    ///
    /// `prefer_socket(false)` matters: by default the crate switches a loopback TCP
    /// connection over to the server's Unix socket, which would bypass the proxy.
    pub fn opts(&self, user: &str, password: Option<&str>) -> OptsBuilder {
        OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(user))
            .pass(password)
            .db_name(Some(TEST_DB))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .read_timeout(Some(Duration::from_secs(120)))
            .write_timeout(Some(Duration::from_secs(120)))
    }

    /// `root` with no password.
    pub fn root_opts(&self) -> Opts {
        self.opts("root", None).into()
    }

    /// [`TEST_USER`] with [`TEST_PASSWORD`].
    pub fn user_opts(&self) -> Opts {
        self.opts(TEST_USER, Some(TEST_PASSWORD)).into()
    }

    /// A URL for the crate (`mysql://root@127.0.0.1:PORT/test?prefer_socket=false`).
    pub fn url(&self) -> String {
        format!("mysql://root@{}/{TEST_DB}?prefer_socket=false", self.addr())
    }

    /// Connects with `opts`; panics with the endpoint and the error.
    pub fn connect(&self, opts: impl Into<Opts>) -> Conn {
        Conn::new(opts.into()).unwrap_or_else(|e| panic!("connecting to {self}: {e}"))
    }

    /// A connection as `root`.
    pub fn root_conn(&self) -> Conn {
        self.connect(self.root_opts())
    }

    /// A connection as [`TEST_USER`].
    pub fn user_conn(&self) -> Conn {
        self.connect(self.user_opts())
    }

    /// Runs `mariadb` against this endpoint; see [`mariadb_cli`].
    pub fn cli(&self, user: &str, password: Option<&str>, args: &[&str]) -> Output {
        client_command("mariadb", &self.host, self.port, user, password, args)
    }

    /// Runs `mariadb-admin` against this endpoint; see [`mariadb_admin`].
    pub fn admin_cli(&self, user: &str, password: Option<&str>, args: &[&str]) -> Output {
        client_command("mariadb-admin", &self.host, self.port, user, password, args)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Runs the `mariadb` command-line client on 127.0.0.1:`port` over TCP in batch
/// mode (`--no-defaults`, so no option file on the machine interferes); `args`
/// follow, e.g. `["-e", "select 1"]`.
pub fn mariadb_cli(port: u16, user: &str, password: Option<&str>, args: &[&str]) -> Output {
    client_command("mariadb", "127.0.0.1", port, user, password, args)
}

/// Runs `mariadb-admin` like [`mariadb_cli`] (e.g. `["status"]` sends COM_STATISTICS).
pub fn mariadb_admin(port: u16, user: &str, password: Option<&str>, args: &[&str]) -> Output {
    client_command("mariadb-admin", "127.0.0.1", port, user, password, args)
}

fn client_command(
    program: &str,
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(program);
    cmd.arg("--no-defaults")
        .arg("--protocol=TCP")
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--user={user}"))
        .arg("--connect-timeout=10");
    if let Some(password) = password {
        cmd.arg(format!("--password={password}"));
    }
    if program == "mariadb" {
        cmd.arg("--batch");
    }
    cmd.args(args);
    run_with_timeout(cmd, CLI_TIMEOUT).unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// Asserts the command succeeded and returns its stdout as text.
pub fn expect_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
