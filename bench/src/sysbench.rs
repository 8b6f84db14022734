//! Runs sysbench (prepare / run) against an endpoint, parses its report
//! (throughput, latency histogram) and measures its own CPU time (wait4).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mysql_proxy_tests::process::spawn;

use crate::procfs::Cpu;

/// The sysbench data set: tables x rows.
pub const TABLES: u32 = 4;
pub const TABLE_SIZE: u32 = 100_000;

/// Fails with a clear message if sysbench is not installed.
pub fn check_installed() -> Result<String, String> {
    let out = Command::new("sysbench")
        .arg("--version")
        .output()
        .map_err(|e| format!("sysbench not found ({e}): install it (apt-get install sysbench)"))?;
    if !out.status.success() {
        return Err(format!("`sysbench --version` failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A latency distribution: bucket value (nanoseconds) -> count.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    buckets: BTreeMap<u64, u64>,
}

impl Histogram {
    pub fn add(&mut self, value_ns: u64, count: u64) {
        *self.buckets.entry(value_ns).or_insert(0) += count;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&v, &c) in &other.buckets {
            self.add(v, c);
        }
    }

    pub fn total(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The `p`-th percentile (0 < p <= 100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&v, &c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(v as f64 / 1000.0);
            }
        }
        self.buckets.keys().last().map(|&v| v as f64 / 1000.0)
    }
}

/// What one sysbench run reported.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub transactions: u64,
    pub tps: f64,
    pub queries: u64,
    pub qps: f64,
    pub errors: u64,
    pub reconnects: u64,
    pub seconds: f64,
    pub histogram: Histogram,
    /// sysbench's own CPU time.
    pub client_cpu: Cpu,
}

/// One sysbench invocation.
pub struct Sysbench<'a> {
    pub workload: &'a str,
    pub port: u16,
    pub threads: u32,
    pub seconds: u32,
    /// Options beyond the suite's, e.g. `--db-ps-mode=disable`.
    pub options: &'a [&'a str],
}

impl Sysbench<'_> {
    fn command(&self, phase: &str) -> Command {
        let mut cmd = Command::new("sysbench");
        cmd.arg(self.workload)
            .arg("--db-driver=mysql")
            .arg("--mysql-host=127.0.0.1")
            .arg(format!("--mysql-port={}", self.port))
            .arg("--mysql-user=root")
            .arg("--mysql-password=")
            .arg("--mysql-db=test")
            .arg(format!("--tables={TABLES}"))
            .arg(format!("--table-size={TABLE_SIZE}"))
            .arg(format!("--threads={}", self.threads))
            .arg(format!("--time={}", self.seconds))
            .arg("--rand-type=uniform")
            .arg("--report-interval=0")
            .arg("--histogram=on")
            .arg("--percentile=99")
            .args(self.options)
            .arg(phase);
        cmd
    }

    /// `sysbench ... prepare` (creates and fills the tables).
    pub fn prepare(&self, log: &Path) -> Result<(), String> {
        let (code, stdout, stderr, _) = run(self.command("prepare"), Duration::from_secs(600))?;
        save(log, &stdout, &stderr);
        if code != 0 || stdout.contains("FATAL") || stderr.contains("FATAL") {
            return Err(format!(
                "sysbench prepare failed ({code}); see {}\n{}",
                log.display(),
                tail(&stderr, 10)
            ));
        }
        Ok(())
    }

    /// `sysbench ... run`; the report is saved to `log`.
    pub fn run(&self, log: &Path) -> Result<Report, String> {
        let bound = Duration::from_secs(u64::from(self.seconds) + 60);
        let (code, stdout, stderr, cpu) = run(self.command("run"), bound)?;
        save(log, &stdout, &stderr);
        if code != 0 || stdout.contains("FATAL") || stderr.contains("FATAL") {
            return Err(format!(
                "sysbench {} run failed ({code}); see {}\n{}\n{}",
                self.workload,
                log.display(),
                tail(&stdout, 10),
                tail(&stderr, 10)
            ));
        }
        let mut report = parse(&stdout)
            .map_err(|e| format!("parsing the sysbench report {}: {e}", log.display()))?;
        report.client_cpu = cpu;
        Ok(report)
    }
}

fn save(log: &Path, stdout: &str, stderr: &str) {
    let _ = std::fs::write(log, format!("{stdout}\n--- stderr:\n{stderr}"));
}

fn tail(text: &str, n: usize) -> String {
    mysql_proxy_tests::process::tail(text, n)
}

/// Parses sysbench 1.0's final report.
pub fn parse(out: &str) -> Result<Report, String> {
    let mut r = Report::default();
    let pair = |label: &str| -> Option<(u64, f64)> {
        let line = out
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))?;
        let mut words = line.split_whitespace();
        let n = words.next()?.parse().ok()?;
        let rate = words.next()?.trim_start_matches('(').parse().ok()?;
        Some((n, rate))
    };
    (r.transactions, r.tps) = pair("transactions:").ok_or("no `transactions:` line")?;
    (r.queries, r.qps) = pair("queries:").ok_or("no `queries:` line")?;
    r.errors = pair("ignored errors:").map(|p| p.0).unwrap_or(0);
    r.reconnects = pair("reconnects:").map(|p| p.0).unwrap_or(0);
    r.seconds = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("total time:"))
        .and_then(|v| v.trim().trim_end_matches('s').parse().ok())
        .ok_or("no `total time:` line")?;
    // Histogram lines: "       0.105 |**********                  1234".
    for line in out.lines() {
        let Some((value, rest)) = line.split_once('|') else {
            continue;
        };
        let (Ok(ms), Some(Ok(count))) = (
            value.trim().parse::<f64>(),
            rest.split_whitespace().last().map(str::parse::<u64>),
        ) else {
            continue;
        };
        r.histogram.add((ms * 1_000_000.0).round() as u64, count);
    }
    if r.histogram.total() == 0 {
        return Err("no latency histogram (--histogram=on)".into());
    }
    Ok(r)
}

/// Runs `cmd` with captured output and a time bound; returns the exit code,
/// stdout, stderr and the child's CPU time (from wait4's rusage).
fn run(mut cmd: Command, bound: Duration) -> Result<(i32, String, String, Cpu), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = spawn(cmd).map_err(|e| format!("starting {shown}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let began = Instant::now();
    let mut killed = false;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child; status and usage are valid out-pointers.
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if got == pid {
            break (status, usage);
        }
        if got < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("waiting for {shown}: {e}"));
        }
        if !killed && began.elapsed() > bound {
            mysql_proxy_tests::process::signal_pid(pid as u32, libc::SIGKILL);
            killed = true;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if killed {
        return Err(format!(
            "{shown} still running after {bound:?}; killed\n{}\n{}",
            tail(&stdout, 20),
            tail(&stderr, 20)
        ));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    let cpu = Cpu {
        user_us: us(usage.ru_utime),
        sys_us: us(usage.ru_stime),
    };
    Ok((code, stdout, stderr, cpu))
}
