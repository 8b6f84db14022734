//! Failover: kill -9 of the backend the next client would get, then how long
//! until a new client gets through the proxy (on the survivor), how long
//! until the proxy shows the backend down, and, after a restart, how long
//! until it is up again. Default settings (least connections, health checks
//! every 2 s, connect timeout 2 s).

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use mysql_proxy_tests::{MariaDb, Proxy};

use crate::light::LightConn;

/// Bound on each wait, so a broken failover ends the section, not the run.
const WITHIN: Duration = Duration::from_secs(30);

/// One kill-and-restart cycle.
#[derive(Clone, Copy, Debug)]
pub struct Cycle {
    /// kill -9 to the first new connection + `SELECT 1` that succeeded.
    pub to_first_connection: Duration,
    /// Connection attempts that failed before that.
    pub failed_attempts: u32,
    /// kill -9 to `state = down` in the admin table.
    pub to_marked_down: Duration,
    /// Restart complete (MariaDB answers) to `state = up` in the admin table.
    pub back_up: Duration,
}

/// `rounds` cycles against two private MariaDB servers.
pub fn measure(rounds: u32, mut say: impl FnMut(&str)) -> Result<Vec<Cycle>, String> {
    let mut victim = MariaDb::start();
    let survivor = MariaDb::start();
    let proxy = Proxy::builder()
        .plugins(&["proxy", "admin"])
        .backend(victim.addr())
        .backend(survivor.addr())
        .log_level("critical")
        .start()
        .map_err(|e| format!("starting mysql-proxy: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.proxy_port()));
    let mut cycles = Vec::new();
    for round in 1..=rounds {
        proxy.wait_for_backend(1, "state", "up", WITHIN);
        proxy.wait_for_backend(2, "state", "up", WITHIN);
        // With no clients, least connections picks backend 1 first: the
        // next client would land on the victim.
        let killed = Instant::now();
        victim.kill9();
        let mut failed_attempts = 0;
        let to_first_connection = loop {
            match query_once(addr) {
                Ok(()) => break killed.elapsed(),
                Err(_) if killed.elapsed() < WITHIN => failed_attempts += 1,
                Err(e) => return Err(format!("no connection within {WITHIN:?}: {e}")),
            }
        };
        let to_marked_down = killed.elapsed() + proxy.wait_for_backend(1, "state", "down", WITHIN);
        victim.restart();
        let back_up = proxy.wait_for_backend(1, "state", "up", WITHIN);
        say(&format!(
            "failover round {round}: first new connection after {to_first_connection:.2?} \
             ({failed_attempts} failed attempts), down after {to_marked_down:.2?}, \
             up {back_up:.2?} after the restart"
        ));
        cycles.push(Cycle {
            to_first_connection,
            failed_attempts,
            to_marked_down,
            back_up,
        });
        thread::sleep(Duration::from_millis(200));
    }
    Ok(cycles)
}

fn query_once(addr: SocketAddr) -> std::io::Result<()> {
    let mut conn = LightConn::connect(addr, "root", "test", 4096, Duration::from_secs(10))?;
    conn.query("SELECT 1")?;
    conn.quit()
}

/// The median of one measure over the cycles.
pub fn median(cycles: &[Cycle], measure: impl Fn(&Cycle) -> Duration) -> Option<Duration> {
    let mut values: Vec<Duration> = cycles.iter().map(measure).collect();
    values.sort();
    values.get(values.len() / 2).copied()
}
