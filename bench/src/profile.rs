//! Where the proxy's CPU goes: `perf record -g` on the proxy process during a
//! sysbench run (self and inclusive shares of symbols, kernel vs user space),
//! and `strace -c -f` during another (system calls per query).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mysql_proxy_tests::process::{run_with_timeout, signal_pid, spawn, wait_timeout};

/// One line of a perf report: share of samples and the symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub percent: f64,
    pub dso: String,
    pub name: String,
}

/// What perf says.
#[derive(Clone, Debug, Default)]
pub struct PerfProfile {
    pub samples: u64,
    /// Self time, top symbols.
    pub top_self: Vec<Symbol>,
    /// Share of samples per DSO (`[kernel.kallsyms]`, `mysql-proxy`, `libc.so.6`...).
    pub by_dso: Vec<(String, f64)>,
    /// Inclusive ("children") share of chosen kernel entry points.
    pub inclusive: Vec<Symbol>,
}

/// A syscall's count in a strace -c summary.
#[derive(Clone, Debug)]
pub struct Syscall {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
}

/// Whether `perf record` can sample here (a software clock is enough).
pub fn perf_available() -> Result<(), String> {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-e", "cpu-clock", "true"]);
    match run_with_timeout(cmd, Duration::from_secs(20)) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "perf stat failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("perf not usable: {e}")),
    }
}

pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A tracer attached to a pid, stopped with SIGINT (which makes perf and
/// strace write their output) and waited for.
pub struct Attached {
    child: Child,
    what: String,
}

impl Attached {
    fn start(mut cmd: Command, what: &str, log: &Path) -> Result<Attached, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = spawn(cmd).map_err(|e| format!("starting {what}: {e}"))?;
        // Attaching to every thread takes a moment.
        thread::sleep(Duration::from_millis(700));
        let mut attached = Attached {
            child,
            what: what.to_string(),
        };
        if let Ok(Some(status)) = attached.child.try_wait() {
            return Err(format!("{what} exited at once ({status})"));
        }
        attached.what = what.to_string();
        Ok(attached)
    }

    /// SIGINT, then waits up to `bound` (SIGKILL after that).
    pub fn stop(mut self, bound: Duration) -> Result<(), String> {
        signal_pid(self.child.id(), libc::SIGINT);
        match wait_timeout(&mut self.child, bound) {
            Some(_) => Ok(()),
            None => {
                signal_pid(self.child.id(), libc::SIGKILL);
                let _ = self.child.wait();
                Err(format!(
                    "{} did not stop within {bound:?}; killed",
                    self.what
                ))
            }
        }
    }
}

/// Starts `perf record -g` on `pid`, writing `data`.
pub fn perf_record(pid: u32, data: &Path, log: &Path) -> Result<Attached, String> {
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-e", "cpu-clock", "-F", "1999", "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(data);
    Attached::start(cmd, "perf record", log)
}

/// Starts `strace -c -f` on `pid`, summary to `out`.
pub fn strace_count(pid: u32, out: &Path, log: &Path) -> Result<Attached, String> {
    let mut cmd = Command::new("strace");
    cmd.args(["-c", "-f", "-q", "-o"])
        .arg(out)
        .arg("-p")
        .arg(pid.to_string());
    Attached::start(cmd, "strace", log)
}

fn perf_report(data: &Path, args: &[&str], save: &Path) -> Result<String, String> {
    let mut cmd = Command::new("perf");
    cmd.arg("report")
        .arg("-i")
        .arg(data)
        .args(["--stdio", "-g", "none", "--percent-limit", "0.3"])
        .args(args);
    let began = Instant::now();
    let out =
        run_with_timeout(cmd, Duration::from_secs(240)).map_err(|e| format!("perf report: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::write(save, &text);
    if !out.status.success() {
        return Err(format!(
            "perf report {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = began;
    Ok(text)
}

/// Reads a `perf record` data file: self shares by symbol and by DSO, and
/// the inclusive share of the kernel entry points that tell what the time is
/// spent doing.
pub fn analyse_perf(data: &Path, dir: &Path) -> Result<PerfProfile, String> {
    let mut profile = PerfProfile::default();
    let by_sym = perf_report(
        data,
        &["--no-children", "--sort", "dso,sym"],
        &dir.join("perf-self.txt"),
    )?;
    for line in by_sym.lines() {
        if let Some(n) = line
            .strip_prefix("# Samples: ")
            .or_else(|| line.strip_prefix("# Total Lost Samples"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(parse_count)
        {
            if line.starts_with("# Samples") {
                profile.samples = n;
            }
        }
        // "    12.34%  [kernel.kallsyms]  [k] _raw_spin_unlock_irqrestore"
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 4 && words[0].ends_with('%') && words[2].starts_with('[') {
            if let Ok(p) = words[0].trim_end_matches('%').parse() {
                profile.top_self.push(Symbol {
                    percent: p,
                    dso: words[1].to_string(),
                    name: words[3..].join(" "),
                });
            }
        }
    }
    let by_dso = perf_report(
        data,
        &["--no-children", "--sort", "dso"],
        &dir.join("perf-dso.txt"),
    )?;
    for line in by_dso.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 2 && words[0].ends_with('%') {
            if let Ok(p) = words[0].trim_end_matches('%').parse() {
                profile.by_dso.push((words[1..].join(" "), p));
            }
        }
    }
    let children = perf_report(
        data,
        &["--children", "--sort", "sym"],
        &dir.join("perf-children.txt"),
    )?;
    for line in children.lines() {
        // "    45.67%     1.23%  [k] __x64_sys_sendto"
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 4 && words[0].ends_with('%') && words[1].ends_with('%') {
            let name = words[3..].join(" ");
            if interesting_inclusive(&name) {
                if let Ok(p) = words[0].trim_end_matches('%').parse() {
                    profile.inclusive.push(Symbol {
                        percent: p,
                        dso: words[2].to_string(),
                        name,
                    });
                }
            }
        }
    }
    Ok(profile)
}

fn parse_count(text: &str) -> Option<u64> {
    // perf prints "12K" or "12345".
    let (num, mult) = match text.chars().last()? {
        'K' => (&text[..text.len() - 1], 1_000.0),
        'M' => (&text[..text.len() - 1], 1_000_000.0),
        _ => (text, 1.0),
    };
    num.parse::<f64>().ok().map(|n| (n * mult) as u64)
}

/// Kernel entry points and scheduler functions whose inclusive share says
/// what the proxy's time is spent doing.
fn interesting_inclusive(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "entry_SYSCALL_64",
        "do_syscall_64",
        "__x64_sys_sendto",
        "__x64_sys_recvfrom",
        "__x64_sys_epoll_wait",
        "__x64_sys_write",
        "__x64_sys_read",
        "__x64_sys_writev",
        "__x64_sys_futex",
        "__x64_sys_epoll_ctl",
        "__x64_sys_accept4",
        "__x64_sys_close",
        "tcp_sendmsg",
        "tcp_recvmsg",
        "sock_def_readable",
        "ep_poll",
        "schedule",
        "__schedule",
        "try_to_wake_up",
        "__wake_up_sync_key",
        "finish_task_switch.isra.0",
        "syscall_exit_to_user_mode",
        "asm_sysvec_apic_timer_interrupt",
        "tcp_v4_rcv",
        "__dev_queue_xmit",
        "net_rx_action",
        "__local_bh_enable_ip",
        "do_softirq",
    ];
    NAMES.contains(&name)
}

/// Parses `strace -c` output.
pub fn parse_strace(path: &Path) -> Result<Vec<Syscall>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut calls = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if words.len() < 5 || words[0].parse::<f64>().is_err() {
            continue;
        }
        let name = words[words.len() - 1];
        if name == "total" {
            continue;
        }
        let Ok(n) = words[3].parse::<u64>() else {
            continue;
        };
        let errors = if words.len() >= 6 {
            words[4].parse().unwrap_or(0)
        } else {
            0
        };
        calls.push(Syscall {
            name: name.to_string(),
            calls: n,
            errors,
        });
    }
    if calls.is_empty() {
        return Err(format!("no syscall counts in {}", path.display()));
    }
    calls.sort_by_key(|c| std::cmp::Reverse(c.calls));
    Ok(calls)
}

pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("perf.data")
}
