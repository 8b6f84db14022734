//! Backends that stay up, with several real MariaDB servers: the balancing
//! policies, failover when a backend is killed under load, recovery through
//! health checks, a backend that accepts but never greets, and the admin
//! table following all of it; a backend on a Unix socket.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql_proxy_tests::process::run_with_timeout;
use mysql_proxy_tests::{
    mariadb_cli, Endpoint, MariaDb, Proxy, ProxyBuilder, RawConn, Sysbench, TEST_PASSWORD,
    TEST_USER,
};

fn start(builder: ProxyBuilder) -> Proxy {
    builder
        .plugins(&["proxy", "admin"])
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"))
}

/// The server a new client through the proxy lands on.
fn port_of_new_client(proxy: &Proxy) -> u16 {
    let mut conn = proxy.endpoint().root_conn();
    conn.query_first("SELECT @@port").unwrap().unwrap()
}

#[test]
fn least_connections_spreads_concurrent_clients_evenly() {
    let servers = [MariaDb::start(), MariaDb::start(), MariaDb::start()];
    let mut builder = Proxy::builder();
    for server in &servers {
        builder = builder.backend(server.addr());
    }
    let proxy = start(builder);

    // Six clients connecting at the same moment: each must see the others'
    // choices, not only the sessions already logged in.
    let endpoint = proxy.endpoint();
    let start_line = Barrier::new(6);
    let held: Vec<(mysql::Conn, u16)> = thread::scope(|scope| {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    start_line.wait();
                    let mut conn = endpoint.root_conn();
                    let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
                    (conn, port)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut per_port: HashMap<u16, usize> = HashMap::new();
    for (_, port) in &held {
        *per_port.entry(*port).or_default() += 1;
    }
    for server in &servers {
        assert_eq!(per_port.get(&server.port()), Some(&2), "{per_port:?}");
    }
    assert_eq!(proxy.backend_row(2)["connected_clients"], "2");
}

#[test]
fn round_robin_takes_each_backend_in_turn() {
    let servers = [MariaDb::start(), MariaDb::start(), MariaDb::start()];
    let mut builder = Proxy::builder().arg("--proxy-balance=round-robin");
    for server in &servers {
        builder = builder.backend(server.addr());
    }
    let proxy = start(builder);

    let ports: Vec<u16> = (0..6).map(|_| port_of_new_client(&proxy)).collect();
    let mut first_round = ports[..3].to_vec();
    first_round.sort_unstable();
    let mut all: Vec<u16> = servers.iter().map(MariaDb::port).collect();
    all.sort_unstable();
    assert_eq!(first_round, all, "{ports:?}");
    assert_eq!(ports[..3], ports[3..], "{ports:?}");
}

#[test]
fn weighted_follows_the_weights() {
    let (heavy, light) = (MariaDb::start(), MariaDb::start());
    let proxy = start(
        Proxy::builder()
            .backend(format!("{}@3", heavy.addr()))
            .backend(light.addr())
            .arg("--proxy-balance=weighted"),
    );

    let ports: Vec<u16> = (0..8).map(|_| port_of_new_client(&proxy)).collect();
    let heavy_count = ports.iter().filter(|&&p| p == heavy.port()).count();
    assert_eq!(heavy_count, 6, "{ports:?}");
    assert_eq!(proxy.backend_row(1)["weight"], "3");
}

#[test]
fn first_available_is_an_ordered_failover_list() {
    let (mut first, second) = (MariaDb::start(), MariaDb::start());
    let proxy = start(
        Proxy::builder()
            .backend(first.addr())
            .backend(second.addr())
            .arg("--proxy-balance=first-available"),
    );

    for _ in 0..3 {
        assert_eq!(port_of_new_client(&proxy), first.port());
    }
    first.kill9();
    for _ in 0..3 {
        assert_eq!(port_of_new_client(&proxy), second.port());
    }
    assert_eq!(proxy.backend_row(1)["state"], "down");
}

#[test]
fn kill_9_under_sysbench_fails_over_and_the_backend_comes_back() {
    let (mut victim, survivor) = (MariaDb::start(), MariaDb::start());
    let load = |port| {
        Sysbench::new("oltp_read_only", port)
            .arg("--tables=1")
            .arg("--table-size=2000")
    };
    for server in [&victim, &survivor] {
        load(server.port()).run("prepare", Duration::from_secs(120));
    }
    let interval = Duration::from_secs(1);
    let proxy = start(
        Proxy::builder()
            .backend(victim.addr())
            .backend(survivor.addr())
            .arg(format!("--health-check-interval={}", interval.as_secs())),
    );
    proxy.wait_for_backend(1, "state", "up", Duration::from_secs(5));

    // A client on the victim (index 1 is first on ties), then the load.
    let mut on_victim = proxy.endpoint().root_conn();
    let port: u16 = on_victim.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(port, victim.port());
    // sysbench 1.0.20 crashes when it reconnects after a lost connection
    // (with --mysql-ignore-errors; seen without any proxy too), so it runs
    // without: the first lost connection ends the run, and its report says
    // which error each dead-backend client got.
    let through_proxy = load(proxy.proxy_port()).arg("--threads=8").arg("--time=8");
    let sysbench = thread::spawn(move || {
        run_with_timeout(through_proxy.command("run"), Duration::from_secs(60))
            .expect("sysbench hangs")
    });
    // Kill once some of sysbench's clients are on the victim, however slowly
    // it starts.
    let began = Instant::now();
    while proxy.backend_row(1)["connected_clients"] == "1" {
        if sysbench.is_finished() {
            let out = sysbench.join().unwrap();
            panic!(
                "sysbench ended before any of its clients reached the victim: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "sysbench never connected"
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(1));
    let before = proxy.backend_row(1);
    victim.kill9();

    // The victim's client loses its connection at once, as with a crashed
    // server (libmysqlclient reports it as 2013; sysbench's clients, on
    // libmariadb, must see exactly that, see above), never a hang. An idle
    // session closes its client's connection as soon as it sees its server
    // gone, so the Rust client may meet a reset socket (a codec I/O error)
    // rather than an end of stream.
    let began = Instant::now();
    let error = on_victim.query_drop("SELECT 1").unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            &error,
            mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::CodecError(_)
        ),
        "expected a lost connection, got {error:?}"
    );
    // New connections made after the kill all succeed, on the survivor.
    for _ in 0..10 {
        assert_eq!(port_of_new_client(&proxy), survivor.port());
    }

    let out = sysbench.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let codes: Vec<&str> = report
        .split("errno = ")
        .skip(1)
        .filter_map(|rest| rest.split(',').next())
        .collect();
    assert!(!codes.is_empty(), "no client lost its backend?\n{report}");
    assert!(
        codes.iter().all(|code| ["2013", "2006"].contains(code)),
        "clients of the dead backend must get 2013/2006:\n{report}"
    );

    let down = proxy.backend_row(1);
    assert_eq!(down["state"], "down", "{down:?}");
    assert!(down["state_reason"].contains("failed"), "{down:?}");
    let number = |row: &HashMap<String, String>, key: &str| row[key].parse::<u64>().unwrap();
    assert!(
        number(&down, "errors") > number(&before, "errors"),
        "{before:?} -> {down:?}"
    );
    assert!(number(&down, "queries") > 0);

    // Restarted, it is up again within two health intervals and gets clients.
    victim.restart();
    let took = proxy.wait_for_backend(1, "state", "up", 2 * interval + Duration::from_secs(1));
    eprintln!("backend back up {took:?} after the restart");
    assert_eq!(port_of_new_client(&proxy), victim.port());
}

/// A backend that accepts TCP connections and then says nothing.
fn stalled_backend() -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            // Keep it open, read nothing useful, never greet.
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
            let _ = stream.read(&mut [0u8; 1]);
            held.push(stream);
            if held.len() > 50 {
                break;
            }
        }
    });
    (address, handle)
}

#[test]
fn a_backend_that_never_greets_is_marked_down_and_the_client_lands_elsewhere() {
    let (stalled, _stall) = stalled_backend();
    let server = MariaDb::start();
    let proxy = start(
        Proxy::builder()
            .backend(stalled)
            .backend(server.addr())
            .arg("--proxy-connect-timeout=0.5")
            .arg("--health-check-interval=0"),
    );

    let began = Instant::now();
    assert_eq!(port_of_new_client(&proxy), server.port());
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let row = proxy.backend_row(1);
    assert_eq!(row["state"], "down", "{row:?}");
    assert!(row["state_reason"].contains("connect failed"), "{row:?}");
    // (The harness's readiness probe may have tried it as well.)
    assert!(row["connect_failures"] != "0", "{row:?}");
}

/// A backend that answers every connection with ERR 1040 "Too many
/// connections" instead of a handshake, as a full server does. (MariaDB
/// 10.11 only counts connections at login, so it cannot be made to do this
/// reliably here.)
fn full_backend() -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let mut payload = vec![0xff, 0x10, 0x04];
        payload.extend_from_slice(b"Too many connections");
        let mut frame = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        frame.push(0);
        frame.extend_from_slice(&payload);
        for stream in listener.incoming().take(50).flatten() {
            let mut stream = stream;
            let _ = stream.write_all(&frame);
        }
    });
    (address, handle)
}

#[test]
fn a_backend_refusing_connections_sends_the_client_elsewhere() {
    let (full, _full) = full_backend();
    let server = MariaDb::start();
    let proxy = start(
        Proxy::builder()
            .backend(full)
            .backend(server.addr())
            .arg("--health-check-interval=0"),
    );

    assert_eq!(port_of_new_client(&proxy), server.port());
    let row = proxy.backend_row(1);
    assert_eq!(row["state"], "down", "{row:?}");
    assert!(row["state_reason"].contains("1040"), "{row:?}");
}

#[test]
fn health_checks_mark_a_silent_backend_down_without_any_client() {
    let (stalled, _stall) = stalled_backend();
    let server = MariaDb::start();
    let proxy = start(
        Proxy::builder()
            .backend(stalled)
            .backend(server.addr())
            .arg("--health-check-interval=0.5")
            .arg("--health-check-timeout=0.3"),
    );

    proxy.wait_for_backend(1, "state", "down", Duration::from_secs(5));
    proxy.wait_for_backend(2, "state", "up", Duration::from_secs(5));
    assert!(proxy.backend_row(1)["state_reason"].contains("health check failed"));
}

#[test]
fn health_checks_with_credentials_log_in_ping_and_quit() {
    let server = MariaDb::start();
    let counters = [
        "Connections",
        "Access_denied_errors",
        "Aborted_connects",
        "Aborted_clients",
    ];
    let before: Vec<u64> = counters.iter().map(|c| server.global_status(c)).collect();
    let checked = |password: &str| {
        let proxy = start(
            Proxy::builder()
                .backend(server.addr())
                .arg("--health-check-interval=0.2")
                .arg(format!("--health-check-user={TEST_USER}"))
                .arg(format!("--health-check-password={password}")),
        );
        proxy.wait_for_backend(1, "state", "up", Duration::from_secs(5));
        thread::sleep(Duration::from_secs(1));
        assert_eq!(proxy.backend_row(1)["state"], "up");
    };

    checked(TEST_PASSWORD);
    let after: Vec<u64> = counters.iter().map(|c| server.global_status(c)).collect();
    assert!(
        after[0] >= before[0] + 5,
        "checks connect: {before:?} -> {after:?}"
    );
    assert_eq!(
        after[1..],
        before[1..],
        "each check logs in and quits cleanly"
    );

    // A wrong password is the operator's mistake, not the server's: the
    // backend stays up.
    checked("not the password");
    assert!(server.global_status("Access_denied_errors") > after[1]);
}

/// This machine's address on its network, if it has one: the address a
/// packet to another host would leave from (a UDP connect sends nothing).
fn network_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A server reachable at this machine's network address (where it has
/// one) that blocks a client host after two connection errors: name
/// resolution on, as by default, so it counts errors per host (it keeps no
/// count for loopback clients).
fn server_blocking_hosts_after_two_errors() -> Option<(MariaDb, Endpoint)> {
    let Some(ip) = network_address() else {
        eprintln!("skipped: this machine has no address but loopback");
        return None;
    };
    let server = MariaDb::builder()
        .arg(format!("--bind-address=127.0.0.1,{ip}"))
        .arg("--skip-name-resolve=0")
        .arg("--max-connect-errors=2")
        .start();
    let endpoint = Endpoint::new(ip.to_string(), server.port());
    Some((server, endpoint))
}

/// Whether `endpoint` still lets this host log in.
fn assert_login_works(endpoint: &Endpoint) {
    let login = mysql::Conn::new(endpoint.user_opts());
    assert!(login.is_ok(), "login at {endpoint}: {:?}", login.err());
}

#[test]
fn health_checks_without_credentials_do_not_get_the_proxy_host_blocked() {
    let Some((server, backend)) = server_blocking_hosts_after_two_errors() else {
        return;
    };
    let proxy = start(
        Proxy::builder()
            .backend(backend.to_string())
            .arg("--health-check-interval=0.2"),
    );
    proxy.wait_for_backend(1, "state", "up", Duration::from_secs(5));
    // Several times max_connect_errors checks.
    thread::sleep(Duration::from_secs(2));

    assert_login_works(&backend);
    assert_login_works(&proxy.endpoint());
    assert_eq!(proxy.backend_row(1)["state"], "up");
    assert!(
        server
            .error_log()
            .contains("Access denied for user 'mysql-proxy-ping'"),
        "the checks log in, as a user the server's log names"
    );
}

#[test]
fn clients_that_leave_before_or_while_logging_in_do_not_get_the_proxy_host_blocked() {
    let Some((_server, backend)) = server_blocking_hosts_after_two_errors() else {
        return;
    };
    let proxy = start(
        Proxy::builder()
            .backend(backend.to_string())
            .arg("--health-check-interval=0"),
    );
    // Port checks (connect, read the greeting, close) and a client that
    // speaks another protocol: each gets a server connection that greeted.
    let address = format!("127.0.0.1:{}", proxy.proxy_port());
    for probe in 0..5 {
        let mut client = TcpStream::connect(&address).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut greeting = [0u8; 4];
        client.read_exact(&mut greeting).unwrap();
        if probe == 4 {
            client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _ = client.read(&mut [0u8; 512]);
        }
    }
    // Clients that give up when the server switches their login to another
    // auth plugin (here: they propose one MariaDB does not have).
    for _ in 0..3 {
        let mut client = RawConn::open(&proxy.endpoint()).unwrap();
        let reply = client
            .propose_auth_plugin(TEST_USER, "caching_sha2_password")
            .unwrap();
        assert_eq!(reply.first(), Some(&0xfe), "an auth switch: {reply:02x?}");
    }
    // The server connections end as the clients leave.
    let began = Instant::now();
    while proxy.backend_row(1)["connected_clients"] != "0" {
        assert!(began.elapsed() < Duration::from_secs(5), "sessions linger");
        thread::sleep(Duration::from_millis(20));
    }

    assert_login_works(&backend);
    assert_login_works(&proxy.endpoint());
}

#[test]
fn an_offline_backend_drains() {
    let (first, second) = (MariaDb::start(), MariaDb::start());
    let proxy = start(
        Proxy::builder()
            .backend(first.addr())
            .backend(second.addr()),
    );

    let mut staying = proxy.endpoint().root_conn();
    let port: u16 = staying.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(port, first.port());
    let update = "UPDATE backends SET state = 'offline' WHERE backend_ndx = 1";
    let out = mariadb_cli(proxy.admin_port(), "admin", Some("secret"), &["-e", update]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.backend_row(1)["state"], "offline");

    // New clients go elsewhere; the existing session carries on.
    for _ in 0..3 {
        assert_eq!(port_of_new_client(&proxy), second.port());
    }
    let still: u16 = staying.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(still, first.port());

    let update = "UPDATE backends SET state = 'online' WHERE backend_ndx = 1";
    let out = mariadb_cli(proxy.admin_port(), "admin", Some("secret"), &["-e", update]);
    assert!(out.status.success());
    proxy.wait_for_backend(1, "state", "up", Duration::from_secs(5));
}

#[test]
fn a_backend_on_a_unix_socket_is_relayed_checked_and_pooled() {
    let server = MariaDb::start();
    let socket = server.socket().display().to_string();
    let proxy = start(
        Proxy::builder()
            .backend(socket.clone())
            .arg("--proxy-pool-max-idle=2")
            .arg("--health-check-interval=1"),
    );

    let mut first = proxy.endpoint().root_conn();
    let (port, thread_id): (u16, u32) = first
        .query_first("SELECT @@port, CONNECTION_ID()")
        .unwrap()
        .unwrap();
    assert_eq!(port, server.port());
    let big: String = first
        .query_first("SELECT REPEAT('x', 1000000)")
        .unwrap()
        .unwrap();
    assert_eq!(big.len(), 1_000_000);
    drop(first);

    let row = proxy.backend_row(1);
    assert_eq!(row["address"], socket, "{row:?}");
    proxy.wait_for_backend(1, "state", "up", Duration::from_secs(5));
    proxy.wait_for_backend(1, "idle_connections", "1", Duration::from_secs(5));
    let mut second = proxy.endpoint().root_conn();
    let reused: u32 = second
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    assert_eq!(reused, thread_id, "the pooled socket connection is reused");
}
