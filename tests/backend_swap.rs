//! A plugin changing a session's server connection between commands (the
//! engine's `set_backend_ndx`, MySQL Proxy's `proxy.connection.backend_ndx`):
//! read/write splitting by the test plugin tests/fixtures/rwsplit-plugin
//! over two real MariaDB servers, a read/write one and a read-only one,
//! followed in the answers (`@@port`, `CURRENT_USER()`) and in the admin
//! table's `connected_clients` and `idle_connections`.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mysql::prelude::Queryable;
use mysql::{Conn, Opts};
use mysql_proxy_tests::{free_port, Endpoint, MariaDb, Proxy, TEST_PASSWORD, TEST_USER};

/// Options for a client of the plugin's port that sends nothing of its own
/// at connect (the crate otherwise asks for `@@max_allowed_packet`, a
/// SELECT the plugin would route like any other).
fn quiet(endpoint: &Endpoint, user: &str, password: Option<&str>) -> Opts {
    endpoint
        .opts(user, password)
        .max_allowed_packet(Some(16 << 20))
        .into()
}

/// (connected_clients, idle_connections) of backend `ndx` (1-based).
fn load(proxy: &Proxy, ndx: u32) -> (u32, u32) {
    let row = proxy.backend_row(ndx);
    let number = |key: &str| row[key].parse::<u32>().unwrap();
    (number("connected_clients"), number("idle_connections"))
}

fn port_and_user(conn: &mut Conn, query: &str) -> (u16, String) {
    conn.query_first(query).unwrap().unwrap()
}

#[test]
fn sessions_move_between_pooled_connections_of_their_own_user() {
    let (primary, replica) = (MariaDb::start(), MariaDb::start());
    let port = free_port();
    let proxy = Proxy::builder()
        .plugins(&["rwsplit", "admin"])
        .arg(format!("--rwsplit-address=127.0.0.1:{port}"))
        .arg(format!("--rwsplit-backend={}", primary.addr()))
        .arg(format!("--rwsplit-read-only-backend={}", replica.addr()))
        .wait_for_port(port)
        .start()
        .expect("proxy with the rwsplit plugin");
    let endpoint = Endpoint::local(port);
    let root = |endpoint: &Endpoint| Conn::new(quiet(endpoint, "root", None)).unwrap();
    let (rw, ro) = (1, 2);

    // Two clients of root log in, one on each backend (the one with fewer
    // idle connections), and park their connections once logged in.
    let mut first = root(&endpoint);
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((0, 1), (0, 0)));
    let second = root(&endpoint);
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((0, 1), (0, 1)));

    // A SELECT takes root's connection to the replica; anything else the
    // one to the primary, parking the other; the admin table follows.
    let select = "SELECT @@port, CURRENT_USER()";
    let show = "SHOW VARIABLES LIKE 'port'";
    assert_eq!(port_and_user(&mut first, select).0, replica.port());
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((0, 1), (1, 0)));
    let (_, shown): (String, u16) = first.query_first(show).unwrap().unwrap();
    assert_eq!(shown, primary.port());
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((1, 0), (0, 1)));
    assert_eq!(port_and_user(&mut first, select).0, replica.port());
    // Leaving, the session parks its connection: both are idle again.
    drop(first);
    drop(second);
    proxy.wait_for_backend(
        ro,
        "idle_connections",
        "1",
        std::time::Duration::from_secs(5),
    );
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((0, 1), (0, 1)));

    // Another user greeted by root's pooled connection on the primary logs
    // in on it with COM_CHANGE_USER: the server checks the password.
    let refused = Conn::new(quiet(&endpoint, TEST_USER, Some("not the password")));
    match refused {
        Err(mysql::Error::MySqlError(error)) => assert_eq!(error.code, 1045, "{error:?}"),
        other => panic!("expected ERR 1045, got {other:?}"),
    }
    // (The server closes a connection whose COM_CHANGE_USER failed.)
    proxy.wait_for_backend(
        rw,
        "idle_connections",
        "0",
        std::time::Duration::from_secs(5),
    );

    // With the right password it logs in on a new connection (the primary
    // has fewer idle ones now), parks it, and never gets root's: its
    // SELECT finds no connection of its own on the replica and keeps the
    // one it has.
    let mut other_user = Conn::new(quiet(&endpoint, TEST_USER, Some(TEST_PASSWORD))).unwrap();
    for _ in 0..2 {
        let (port, user) = port_and_user(&mut other_user, select);
        assert_eq!(port, primary.port());
        assert!(user.starts_with(&format!("{TEST_USER}@")), "{user}");
    }
    assert_eq!((load(&proxy, rw), load(&proxy, ro)), ((1, 0), (0, 1)));

    // root still finds its own connection on the replica.
    let mut third = root(&endpoint);
    let (port, user) = port_and_user(&mut third, select);
    assert_eq!(port, replica.port());
    assert!(user.starts_with("root@"), "{user}");
    drop(proxy);
}
