//! Tests of the harness itself: server life cycle (crash, restart, parallel
//! starts, cleanup), the raw client, and the proxy fixture's error paths.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use mysql::prelude::*;
use mysql::Conn;
use mysql_proxy_tests::{
    build_dir, free_port, port_accepts, spawn_expect_exit, MariaDb, Proxy, RawConn, RawError,
    TEST_PASSWORD, TEST_USER,
};

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn kill9_then_restart_keeps_data_and_port() {
    let mut db = MariaDb::start();
    let port = db.port();
    db.root_conn()
        .query_drop("CREATE TABLE t (a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let old_pid = db.pid();
    db.kill9();
    assert!(!db.is_running());
    assert!(
        !port_accepts(port),
        "port {port} still accepts after kill -9"
    );
    db.restart();
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), old_pid);
    let sum: u64 = db
        .root_conn()
        .query_first("SELECT SUM(a) FROM t")
        .unwrap()
        .unwrap();
    assert_eq!(sum, 3);
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    let db = MariaDb::start();
    let (pid, datadir, port) = (db.pid(), db.datadir().to_path_buf(), db.port());
    assert!(alive(pid));
    drop(db);
    assert!(!alive(pid), "mariadbd {pid} survived the drop");
    assert!(!datadir.exists(), "{} survived the drop", datadir.display());
    assert!(!port_accepts(port));
}

#[test]
fn servers_start_in_parallel_on_distinct_ports() {
    let servers: Vec<MariaDb> = (0..3)
        .map(|_| thread::spawn(MariaDb::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let ports: HashSet<u16> = servers.iter().map(MariaDb::port).collect();
    assert_eq!(ports.len(), 3);
    for db in &servers {
        let port: u16 = db
            .root_conn()
            .query_first("SELECT @@port")
            .unwrap()
            .unwrap();
        assert_eq!(port, db.port());
        eprintln!("startup {:?}", db.startup_time());
    }
}

#[test]
fn builder_args_reach_the_server() {
    let db = MariaDb::builder().arg("--max-connections=23").start();
    let max: u32 = db
        .root_conn()
        .query_first("SELECT @@max_connections")
        .unwrap()
        .unwrap();
    assert_eq!(max, 23);
}

#[test]
fn users_and_database_exist() {
    let db = MariaDb::start();
    let mut conn = Conn::new(db.user_opts()).unwrap();
    let (user, dbname): (String, String) = conn
        .query_first("SELECT current_user(), database()")
        .unwrap()
        .unwrap();
    assert!(user.starts_with("proxyuser@"), "{user}");
    assert_eq!(dbname, "test");
    assert!(Conn::new(db.url().as_str()).is_ok());
    let cli = mysql_proxy_tests::mariadb_cli(
        db.port(),
        TEST_USER,
        Some(TEST_PASSWORD),
        &["-N", "-e", "select 1"],
    );
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "1");
}

#[test]
fn raw_client_authenticates_and_reports_errors() {
    let db = MariaDb::start();
    let ep = db.endpoint();
    let mut raw = RawConn::connect(&ep, TEST_USER, TEST_PASSWORD, Some("test")).unwrap();
    assert!(raw.greeting.server_version.contains("MariaDB"));
    assert_eq!(
        raw.query("SELECT 1, NULL, 'x'").unwrap(),
        vec![vec![Some("1".to_string()), None, Some("x".to_string())]]
    );
    raw.init_db("mysql").unwrap();
    raw.quit().unwrap();
    match RawConn::connect(&ep, TEST_USER, "wrong", None) {
        Err(RawError::Server(e)) => assert_eq!((e.code, e.state.as_str()), (1045, "28000")),
        Err(e) => panic!("expected access denied, got {e}"),
        Ok(_) => panic!("expected access denied, got a connection"),
    }
    let mut root = RawConn::connect(&ep, "root", "", None).unwrap();
    root.ping().unwrap();
}

#[test]
fn free_ports_are_not_reused() {
    let ports: HashSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50);
}

#[test]
fn proxy_that_exits_early_is_reported_with_its_output() {
    let err = Proxy::builder()
        .backend("127.0.0.1:1")
        .arg("--this-option-does-not-exist")
        .start()
        .expect_err("a proxy given an unknown option must not start");
    let text = err.to_string();
    assert!(err.status.is_some(), "{text}");
    assert!(text.contains("--this-option-does-not-exist"), "{text}");
    assert!(
        text.contains(&format!("--plugin-dir={}", build_dir().display())),
        "{text}"
    );
}

#[test]
fn spawn_expect_exit_returns_status_and_output() {
    let (status, _stdout, _stderr) = spawn_expect_exit(&["--version"], Duration::from_secs(30));
    assert!(status.success(), "mysql-proxy --version: {status}");
}
