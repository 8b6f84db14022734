//! Running sysbench against an endpoint, and reading numbers off its report.

use std::process::Command;
use std::time::Duration;

use crate::process::{run_with_timeout, tail};

/// One sysbench test (`oltp_read_write`, `oltp_read_only`, ...) against a
/// port on 127.0.0.1, as root, in database `test`.
#[derive(Clone, Debug)]
pub struct Sysbench {
    args: Vec<String>,
}

impl Sysbench {
    pub fn new(test: &str, port: u16) -> Self {
        Self {
            args: vec![
                test.to_string(),
                "--db-driver=mysql".into(),
                "--mysql-host=127.0.0.1".into(),
                format!("--mysql-port={port}"),
                "--mysql-user=root".into(),
                "--mysql-password=".into(),
                "--mysql-db=test".into(),
                "--report-interval=0".into(),
            ],
        }
    }

    /// Adds an option, e.g. `--threads=8`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The command for one phase (`prepare`, `run`, `cleanup`).
    pub fn command(&self, phase: &str) -> Command {
        let mut cmd = Command::new("sysbench");
        cmd.args(&self.args).arg(phase);
        cmd
    }

    /// Runs a phase to completion (bounded by `timeout`) and returns its
    /// report; panics with sysbench's output if it failed.
    pub fn run(&self, phase: &str, timeout: Duration) -> String {
        let out = run_with_timeout(self.command(phase), timeout).unwrap_or_else(|e| {
            panic!("sysbench {phase}: {e} (is sysbench installed? scripts/test installs it)")
        });
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && !stdout.contains("FATAL") && !stderr.contains("FATAL"),
            "sysbench {phase} failed ({}):\n--- stdout:\n{}\n--- stderr:\n{}",
            out.status,
            tail(&stdout, 60),
            tail(&stderr, 60)
        );
        stdout
    }
}

/// The first number after `label` in a sysbench report (e.g.
/// `ignored errors:`).
pub fn counter(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in the sysbench report:\n{report}"))
}
