//! What the benchmarks read about a process from /proc: CPU time (user and
//! system, all threads), context switches, resident memory.

use std::fs;

pub use mysql_proxy_tests::process::proc_status_kib;

/// CPU time of a process so far, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    pub user_us: u64,
    pub sys_us: u64,
}

impl Cpu {
    pub fn total_us(&self) -> u64 {
        self.user_us + self.sys_us
    }

    /// `self - earlier`.
    pub fn since(&self, earlier: Cpu) -> Cpu {
        Cpu {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            sys_us: self.sys_us.saturating_sub(earlier.sys_us),
        }
    }

    pub fn add(&mut self, other: Cpu) {
        self.user_us += other.user_us;
        self.sys_us += other.sys_us;
    }
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// utime + stime of `/proc/<pid>/stat` (every thread of the process, dead
/// ones included), in microseconds. Zero if the process is gone.
pub fn cpu(pid: u32) -> Cpu {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Cpu::default();
    };
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Cpu::default();
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14, stime 15.
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    let per_tick = 1_000_000 / clock_ticks_per_second();
    Cpu {
        user_us: field(14) * per_tick,
        sys_us: field(15) * per_tick,
    }
}

/// Voluntary + involuntary context switches of the process's live threads.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// Number of threads of the process.
pub fn threads(pid: u32) -> u64 {
    proc_status_kib(pid, "Threads").unwrap_or(0)
}

/// A snapshot of a process's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub cpu: Cpu,
    pub ctx_switches: u64,
}

pub fn snapshot(pid: u32) -> Snapshot {
    Snapshot {
        cpu: cpu(pid),
        ctx_switches: context_switches(pid),
    }
}

impl Snapshot {
    pub fn since(&self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            cpu: self.cpu.since(earlier.cpu),
            ctx_switches: self.ctx_switches.saturating_sub(earlier.ctx_switches),
        }
    }
}
