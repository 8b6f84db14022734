//! sysbench OLTP runs, direct and through proxies, in alternating order
//! (A B B A, or A B C C B A) so that drift over time cancels in the means; the
//! CPU time of the proxy, the server and sysbench is measured around each run.

use std::path::Path;

use crate::procfs::{self, Cpu, Snapshot};
use crate::sysbench::{Histogram, Report, Sysbench};

/// Something sysbench can be pointed at.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `direct`, `proxy`, `proxy-et1`...
    pub label: String,
    pub port: u16,
    /// The proxy's pid (none for a direct connection).
    pub proxy_pid: Option<u32>,
}

/// One run's measurements.
#[derive(Clone, Debug)]
pub struct Run {
    pub report: Report,
    pub proxy: Option<Snapshot>,
    pub server: Snapshot,
}

/// All runs of one side of a comparison.
#[derive(Clone, Debug, Default)]
pub struct Side {
    pub runs: Vec<Run>,
}

impl Side {
    fn mean(&self, f: impl Fn(&Run) -> f64) -> f64 {
        if self.runs.is_empty() {
            return 0.0;
        }
        self.runs.iter().map(f).sum::<f64>() / self.runs.len() as f64
    }

    pub fn tps(&self) -> f64 {
        self.mean(|r| r.report.tps)
    }

    pub fn qps(&self) -> f64 {
        self.mean(|r| r.report.qps)
    }

    pub fn queries(&self) -> u64 {
        self.runs.iter().map(|r| r.report.queries).sum()
    }

    pub fn errors(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.report.errors + r.report.reconnects)
            .sum()
    }

    /// The runs' latency histograms merged.
    pub fn histogram(&self) -> Histogram {
        let mut h = Histogram::default();
        for r in &self.runs {
            h.merge(&r.report.histogram);
        }
        h
    }

    pub fn percentile_us(&self, p: f64) -> f64 {
        self.histogram().percentile_us(p).unwrap_or(f64::NAN)
    }

    fn per_query(&self, total: f64) -> f64 {
        let q = self.queries();
        if q == 0 {
            f64::NAN
        } else {
            total / q as f64
        }
    }

    /// Proxy CPU (user, sys) per query, microseconds.
    pub fn proxy_cpu_per_query(&self) -> Option<(f64, f64)> {
        let mut cpu = Cpu::default();
        for r in &self.runs {
            cpu.add(r.proxy?.cpu);
        }
        Some((
            self.per_query(cpu.user_us as f64),
            self.per_query(cpu.sys_us as f64),
        ))
    }

    pub fn proxy_ctx_switches_per_query(&self) -> Option<f64> {
        let mut n = 0;
        for r in &self.runs {
            n += r.proxy?.ctx_switches;
        }
        Some(self.per_query(n as f64))
    }

    pub fn server_cpu_per_query(&self) -> f64 {
        self.per_query(
            self.runs
                .iter()
                .map(|r| r.server.cpu.total_us())
                .sum::<u64>() as f64,
        )
    }

    pub fn client_cpu_per_query(&self) -> f64 {
        self.per_query(
            self.runs
                .iter()
                .map(|r| r.report.client_cpu.total_us())
                .sum::<u64>() as f64,
        )
    }
}

/// One workload / thread count, each endpoint's side.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub workload: String,
    pub threads: u32,
    pub sides: Vec<(String, Side)>,
}

impl Comparison {
    pub fn side(&self, label: &str) -> &Side {
        self.sides
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no side {label} in {}", self.workload))
    }
}

/// One sysbench run against `endpoint`, with the CPU counters around it;
/// `options` are sysbench options beyond the suite's.
pub fn run_once(
    endpoint: &Endpoint,
    server_pid: u32,
    workload: &str,
    options: &[&str],
    threads: u32,
    seconds: u32,
    log: &Path,
) -> Result<Run, String> {
    let sb = Sysbench {
        workload,
        port: endpoint.port,
        threads,
        seconds,
        options,
    };
    let proxy_before = endpoint.proxy_pid.map(procfs::snapshot);
    let server_before = procfs::snapshot(server_pid);
    let report = sb.run(log)?;
    let server = procfs::snapshot(server_pid).since(server_before);
    let proxy = match (endpoint.proxy_pid, proxy_before) {
        (Some(pid), Some(before)) => Some(procfs::snapshot(pid).since(before)),
        _ => None,
    };
    Ok(Run {
        report,
        proxy,
        server,
    })
}

/// Runs `workload` (with sysbench `options` beyond the suite's) at `threads`
/// against every endpoint, `rounds` times, in the order A B .. B A (mirrored
/// every second round).
#[allow(clippy::too_many_arguments)]
pub fn compare(
    endpoints: &[Endpoint],
    server_pid: u32,
    workload: &str,
    options: &[&str],
    threads: u32,
    seconds: u32,
    rounds: u32,
    logs: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Comparison, String> {
    let mut sides: Vec<(String, Side)> = endpoints
        .iter()
        .map(|e| (e.label.clone(), Side::default()))
        .collect();
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..endpoints.len()).collect()
        } else {
            (0..endpoints.len()).rev().collect()
        };
        for i in order {
            let endpoint = &endpoints[i];
            let log = logs.join(format!(
                "sysbench-{workload}{}-t{threads}-{}-r{round}.txt",
                options.concat(),
                endpoint.label
            ));
            let run = run_once(
                endpoint, server_pid, workload, options, threads, seconds, &log,
            )?;
            progress(&format!(
                "{workload} threads={threads} {:<10} round {}: {:>9.0} tps {:>9.0} qps p99 {:>8.0} us{}",
                endpoint.label,
                round + 1,
                run.report.tps,
                run.report.qps,
                run.report.histogram.percentile_us(99.0).unwrap_or(f64::NAN),
                run.proxy
                    .map(|p| format!(
                        "  proxy {:.1} us/query",
                        p.cpu.total_us() as f64 / run.report.queries.max(1) as f64
                    ))
                    .unwrap_or_default()
            ));
            sides[i].1.runs.push(run);
        }
    }
    Ok(Comparison {
        workload: workload.to_string(),
        threads,
        sides,
    })
}
