//! A description of the machine and software a benchmark ran on: cores, CPU
//! model, memory, kernel, versions, date, source revision.

use std::fs;
use std::path::Path;
use std::process::Command;

#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub mem_gib: f64,
    pub kernel: String,
    pub mariadb: String,
    pub sysbench: String,
    pub proxy: String,
    pub date: String,
    pub revision: String,
    pub load_before: String,
}

fn command_line(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    /// Everything but the MariaDB version (asked of the server) and sysbench's.
    pub fn describe(root: &Path, proxy_binary: &Path) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|r| r.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_kib: f64 = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let revision = {
            let head = command_line("git", &["rev-parse", "--short", "HEAD"], Some(root));
            let dirty = !command_line("git", &["status", "--porcelain"], Some(root)).is_empty();
            if head.is_empty() {
                "unknown".into()
            } else if dirty {
                format!("{head} + uncommitted changes")
            } else {
                head
            }
        };
        let proxy = command_line(&proxy_binary.to_string_lossy(), &["--version"], None)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model,
            mem_gib: mem_kib / (1024.0 * 1024.0),
            kernel,
            mariadb: String::new(),
            sysbench: String::new(),
            proxy,
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"], None),
            revision,
            load_before: fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "- cores (`nproc`): {}\n- CPU: {}\n- RAM: {:.1} GiB\n- kernel: {}\n- MariaDB: {}\n\
             - sysbench: {}\n- mysql-proxy: {} (revision {})\n- date: {}\n\
             - load average before the run: {}\n",
            self.cores,
            self.cpu_model,
            self.mem_gib,
            self.kernel,
            self.mariadb,
            self.sysbench,
            self.proxy,
            self.revision,
            self.date,
            self.load_before
        )
    }
}
