//! HAProxy in TCP mode as a reference relay: it forwards bytes without
//! reading the MySQL protocol, in one event-loop thread, so its throughput
//! and CPU per query show what relaying alone costs on this machine (the
//! floor no protocol-aware proxy can go below). Optional: the section is
//! skipped when `haproxy` is not installed.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_proxy_tests::process::{kill, spawn};
use mysql_proxy_tests::{free_port, port_accepts};

/// A running HAProxy, killed on drop.
pub struct Haproxy {
    child: Child,
    pub port: u16,
}

impl Haproxy {
    /// Starts HAProxy relaying a free local port to `backend_port`, or says
    /// why not (not installed, did not listen).
    pub fn start(backend_port: u16, dir: &Path) -> Result<Haproxy, String> {
        let port = free_port();
        let config = dir.join("haproxy.cfg");
        fs::write(
            &config,
            format!(
                "global\n    maxconn 4000\n    nbthread 1\n\
                 defaults\n    mode tcp\n    timeout connect 2s\n    \
                 timeout client 1h\n    timeout server 1h\n\
                 listen mysql\n    bind 127.0.0.1:{port}\n    \
                 server db 127.0.0.1:{backend_port}\n"
            ),
        )
        .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn(cmd).map_err(|e| format!("haproxy: {e} (apt-get install haproxy)"))?;
        let mut haproxy = Haproxy { child, port };
        let began = Instant::now();
        while !port_accepts(port) {
            if began.elapsed() > Duration::from_secs(10) {
                kill(&mut haproxy.child);
                return Err(format!("haproxy did not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(haproxy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
