//! The proxy's life cycle as a user sees it: unreachable backends, failing
//! over at connect, memory while streaming, read and write timeouts, and a
//! graceful SIGTERM.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql_proxy_tests::process::signal_pid;
use mysql_proxy_tests::{free_port, mariadb_cli, MariaDb, Proxy, RawConn};

/// Rows of 1000 bytes: 100,000 of them make a 100 MB result.
const BIG_QUERY: &str = "SELECT REPEAT('x', 1000) FROM seq_1_to_100000";

fn proxy_for(backends: &[String]) -> Proxy {
    let mut builder = Proxy::builder();
    for backend in backends {
        builder = builder.backend(backend.clone());
    }
    builder
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"))
}

#[test]
fn unreachable_backend_gives_a_clear_error_not_a_hang() {
    let nothing_there = format!("127.0.0.1:{}", free_port());
    let proxy = proxy_for(&[nothing_there]);

    let out = mariadb_cli(proxy.proxy_port(), "root", None, &["-e", "select 1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1105") && stderr.contains("(proxy) all backends are down"),
        "{stderr}"
    );
}

#[test]
fn a_dead_backend_is_skipped_at_connect() {
    let server = MariaDb::start();
    let proxy = proxy_for(&[format!("127.0.0.1:{}", free_port()), server.addr()]);

    for _ in 0..3 {
        let mut conn = proxy.endpoint().root_conn();
        let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
        assert_eq!(port, server.port());
    }
}

#[test]
fn relaying_100mb_keeps_peak_rss_under_64mib() {
    let server = MariaDb::start();
    let proxy = proxy_for(&[server.addr()]);

    let mut conn = proxy.endpoint().root_conn();
    conn.query_drop("USE test").unwrap();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    for row in conn.query_iter(BIG_QUERY).unwrap() {
        let value: Vec<u8> = mysql::from_row(row.unwrap());
        rows += 1;
        bytes += value.len() as u64;
    }
    assert_eq!((rows, bytes), (100_000, 100_000_000));
    let peak = proxy.peak_rss_kib();
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn sigterm_lets_the_running_command_finish_then_exits_0() {
    let server = MariaDb::start();
    let mut proxy = proxy_for(&[server.addr()]);

    // Idle clients (one per event thread: they are handed out in turn),
    // and a client in the middle of a 100 MB result.
    let mut idle: Vec<_> = (0..2).map(|_| proxy.endpoint().root_conn()).collect();
    for conn in &mut idle {
        conn.query_drop("SELECT 1").unwrap();
    }
    let endpoint = proxy.endpoint();
    let (started_tx, started_rx) = mpsc::channel();
    let streaming = thread::spawn(move || {
        let mut conn = endpoint.root_conn();
        conn.query_drop("USE test").unwrap();
        let mut rows = 0u64;
        for row in conn.query_iter(BIG_QUERY).unwrap() {
            let value: Vec<u8> = mysql::from_row(row.unwrap());
            assert_eq!(value.len(), 1000);
            rows += 1;
            if rows == 1 {
                started_tx.send(()).unwrap();
            }
        }
        rows
    });
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    proxy.signal(libc::SIGTERM);

    // The whole result arrives intact, then the proxy exits cleanly.
    assert_eq!(streaming.join().unwrap(), 100_000);
    let status = proxy.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr_text());
    // The idle sessions ended when the shutdown began, not at the end of
    // the grace period.
    assert!(
        !proxy.stderr_text().contains("still busy"),
        "{}",
        proxy.stderr_text()
    );
    // The idle clients find their connections closed: an error, not a hang.
    for conn in &mut idle {
        assert!(conn.query_drop("SELECT 1").is_err());
    }
}

/// Thread ids of the server's client connections, the caller's own excluded.
fn server_threads(server: &MariaDb) -> Vec<u64> {
    server
        .root_conn()
        .query(
            "SELECT id FROM information_schema.processlist \
             WHERE id <> CONNECTION_ID() AND command <> 'Daemon'",
        )
        .unwrap()
}

/// Waits until every thread of a process is stopped (SIGSTOP reaches the
/// threads of a process one by one).
fn wait_until_stopped(pid: u32) {
    let began = Instant::now();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let all_stopped = tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                    Some(state == "T" || state == "t")
                })
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "pid {pid} not stopped"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_backend_that_stops_answering_is_given_up_after_the_read_timeout() {
    let frozen = MariaDb::start();
    let healthy = MariaDb::start();
    // The read timeout also ends idle client connections (as in MySQL
    // Proxy): the clients here never idle for as long.
    let timeout = Duration::from_secs(2);
    let proxy = Proxy::builder()
        .backend(frozen.addr())
        .backend(healthy.addr())
        .arg(format!("--proxy-read-timeout={}", timeout.as_secs()))
        .arg("--health-check-interval=0")
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"));
    let port =
        |conn: &mut mysql::Conn| -> u16 { conn.query_first("SELECT @@port").unwrap().unwrap() };
    let mut on_frozen = proxy.endpoint().root_conn();
    assert_eq!(port(&mut on_frozen), frozen.port());
    let mut on_healthy = proxy.endpoint().root_conn();
    assert_eq!(port(&mut on_healthy), healthy.port());

    // Meanwhile, the session on the other backend keeps working.
    let (stop, stopped) = mpsc::channel::<()>();
    let healthy_port = healthy.port();
    let other = thread::spawn(move || {
        let mut rounds = 0;
        while stopped.try_recv().is_err() {
            assert_eq!(port(&mut on_healthy), healthy_port);
            rounds += 1;
            thread::sleep(Duration::from_millis(100));
        }
        rounds
    });

    // SIGSTOP: the server keeps its sockets open and answers nothing.
    signal_pid(frozen.pid(), libc::SIGSTOP);
    wait_until_stopped(frozen.pid());
    let began = Instant::now();
    let error = on_frozen.query_drop("SELECT 1").unwrap_err();
    let took = began.elapsed();
    signal_pid(frozen.pid(), libc::SIGCONT);
    stop.send(()).unwrap();
    assert!(other.join().unwrap() > 5);
    assert!(
        matches!(
            &error,
            mysql::Error::IoError(_) | mysql::Error::DriverError(_)
        ),
        "expected a lost connection, got {error:?}"
    );
    assert!(
        took >= timeout - Duration::from_millis(100) && took < timeout + Duration::from_secs(3),
        "given up after {took:?} with --proxy-read-timeout={timeout:?}"
    );
}

#[test]
fn a_client_that_stops_reading_is_given_up_after_the_write_timeout() {
    let server = MariaDb::start();
    let proxy = Proxy::builder()
        .backend(server.addr())
        .arg("--proxy-write-timeout=1")
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"));
    let mut reader = RawConn::connect(&proxy.endpoint(), "root", "", Some("test")).unwrap();
    let thread = reader.greeting.connection_id;
    let before = server_threads(&server);
    assert!(before.contains(&u64::from(thread)), "{before:?}");

    // 100 MB asked for, not a byte read: the proxy's writes to this client
    // stall once the socket buffers are full.
    reader
        .send_command(mysql_proxy_tests::raw::cmd::QUERY, BIG_QUERY.as_bytes())
        .unwrap();
    let began = Instant::now();
    while server_threads(&server).contains(&u64::from(thread)) {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the session of a client that reads nothing is still there after {:?}",
            began.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Others are served meanwhile.
    let mut other = proxy.endpoint().root_conn();
    let one: u32 = other.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
    drop(reader);
}

#[test]
fn listening_on_a_unix_socket_replaces_a_stale_file_and_removes_it_at_exit() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.sock");
    // Left over by a process that is gone: nothing accepts on it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let mut proxy = Proxy::builder()
        .backend(server.addr())
        .proxy_socket(&path)
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"));
    let out = std::process::Command::new("mariadb")
        .arg(format!("--socket={}", path.display()))
        .args(["-uroot", "-N", "-e", "SELECT @@port"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        server.port().to_string()
    );

    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_exit(Duration::from_secs(10)).success());
    assert!(!path.exists(), "the socket file is removed at exit");
}

#[test]
fn a_unix_socket_another_process_listens_on_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    let _busy = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (status, _, stderr) = Proxy::builder()
        .backend(format!("127.0.0.1:{}", free_port()))
        .proxy_socket(&path)
        .run_expect_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy.sock"), "{stderr}");
    assert!(path.exists(), "the live socket's file is left alone");
}

#[test]
fn a_misspelt_option_in_the_config_file_is_reported_with_the_option_meant() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mysql-proxy.cnf");
    std::fs::write(
        &file,
        "[mysql-proxy]\nproxy-pool-max-idel = 5\nsomething-else-entirely = 1\n",
    )
    .unwrap();
    // As MySQL Proxy, the file must not be readable by others.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let proxy = Proxy::builder()
        .backend(server.addr())
        .log_level("critical")
        .arg(format!("--defaults-file={}", file.display()))
        .start()
        .expect("proxy with a config file");
    let log = proxy.stderr_text();
    assert!(
        log.contains(&format!(
            "{}:2: unknown option 'proxy-pool-max-idel' ignored; did you mean 'proxy-pool-max-idle'?",
            file.display()
        )),
        "{log}"
    );
    // Not like any option: only at warning level, hidden here.
    assert!(!log.contains("something-else-entirely"), "{log}");
}
