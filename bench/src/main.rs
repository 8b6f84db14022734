//! mysql-proxy-bench: the benchmark suite's driver (run it with `bench/run`).
//!
//! Starts a private MariaDB and the built `mysql-proxy`, measures each
//! workload directly and through the proxy in alternating runs (so drift
//! cancels), and prints a table of proxy/direct ratios, proxy CPU per query,
//! added latency and proxy memory against the targets of issue 3; a full run
//! also rewrites the generated part of docs/PERFORMANCE.md. Raw outputs
//! (sysbench reports, perf and strace summaries) go to bench/results/.

mod bigresult;
mod callgrind;
mod connect;
mod failover;
mod haproxy;
mod idle;
mod light;
mod lua;
mod machine;
mod oltp;
mod procfs;
mod profile;
mod report;
mod sysbench;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql_proxy_tests::{MariaDb, Proxy};

use crate::oltp::{Comparison, Endpoint};
use crate::procfs::Cpu;
use crate::report::{num, ratio, Table};

/// Every section, in the order they run.
const SECTIONS: &[&str] = &[
    "oltp", "events", "connect", "profile", "lua", "big", "idle", "failover",
];
const WORKLOADS: &[&str] = &["oltp_point_select", "oltp_read_only"];
const THREADS: &[u32] = &[1, 8, 64];
const EVENT_THREADS_LOADS: &[u32] = &[8, 64];
/// Options of the MariaDB servers the sysbench workloads run against.
const SERVER_ARGS: &[&str] = &[
    "--innodb-buffer-pool-size=2G",
    "--innodb-log-file-size=512M",
    "--max-connections=1000",
];

/// Run parameters (full run by default; `--quick` for a smoke run).
#[derive(Clone, Debug)]
struct Options {
    quick: bool,
    seconds: u32,
    rounds: u32,
    churn_seconds: f64,
    churn_threads: u32,
    result_bytes: u64,
    idle_conns: usize,
    failover_rounds: u32,
    /// A build directory (binary and plugins) to compare this build with.
    baseline: Option<PathBuf>,
    write_doc: bool,
    only: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            seconds: 8,
            rounds: 2,
            churn_seconds: 5.0,
            churn_threads: 8,
            result_bytes: 1 << 30,
            idle_conns: 10_000,
            failover_rounds: 5,
            baseline: None,
            write_doc: true,
            only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        };
        let mut explicit_doc = None;
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg.as_str(), None),
            };
            let int = |v: Option<&str>| -> Result<u64, String> {
                v.and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number: {arg}"))
            };
            match name {
                "--quick" => {
                    o.quick = true;
                    o.seconds = 2;
                    o.rounds = 1;
                    o.churn_seconds = 2.0;
                    o.result_bytes = 128 << 20;
                    o.idle_conns = 1000;
                    o.failover_rounds = 2;
                }
                "--seconds" => o.seconds = int(value)? as u32,
                "--rounds" => o.rounds = int(value)?.max(1) as u32,
                "--idle-connections" => o.idle_conns = int(value)? as usize,
                "--result-mib" => o.result_bytes = int(value)? << 20,
                "--no-doc" => explicit_doc = Some(false),
                "--doc" => explicit_doc = Some(true),
                "--only" => {
                    let list = value.ok_or("--only needs a list, e.g. --only=oltp,idle")?;
                    o.only = list.split(',').map(|s| s.trim().to_string()).collect();
                    if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                        return Err(format!("unknown section {bad}; sections: {SECTIONS:?}"));
                    }
                }
                "--baseline" => {
                    let dir = value.ok_or("--baseline needs a build directory")?;
                    if !Path::new(dir).join("mysql-proxy").is_file() {
                        return Err(format!("--baseline={dir}: no mysql-proxy binary there"));
                    }
                    o.baseline = Some(PathBuf::from(dir));
                    o.only = vec!["baseline".to_string()];
                }
                "--help" | "-h" => return Err(String::new()),
                _ => return Err(format!("unknown option {arg}")),
            }
        }
        // Only a full run of everything with the default durations is the record.
        let full = !o.quick && o.baseline.is_none() && o.only.len() == SECTIONS.len();
        o.write_doc = explicit_doc.unwrap_or(full);
        Ok(o)
    }

    fn runs(&self, section: &str) -> bool {
        self.only.iter().any(|s| s == section)
    }
}

const USAGE: &str =
    "usage: bench/run [--quick] [--only=oltp,events,connect,profile,lua,big,idle,failover]
                 [--seconds=N] [--rounds=N] [--idle-connections=N] [--result-mib=N]
                 [--doc | --no-doc] [--baseline=DIR]
  --quick   2 s runs, 1 round, 128 MiB result, 1000 idle connections,
            2 failovers (a smoke run)
  --baseline=DIR  only compare this build with the one in DIR (a copy of
            another build's target/release: mysql-proxy and lib*.so), both
            with one event thread: sysbench point_select at 8 and 64 threads
  A full run (no option) rewrites the generated part of docs/PERFORMANCE.md;
  raw outputs go to bench/results/.";

/// Progress messages with the time since the start.
struct Log {
    started: Instant,
}

impl Log {
    fn say(&self, msg: &str) {
        eprintln!(
            "[bench {:>6.1}s] {msg}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Connection churn against one endpoint: every round's run, and the
/// proxy's CPU over them (none for the direct side).
struct ChurnSide {
    label: &'static str,
    runs: Vec<connect::Churn>,
    proxy_cpu: Option<Cpu>,
}

impl ChurnSide {
    fn rate(&self) -> f64 {
        self.runs.iter().map(connect::Churn::rate).sum::<f64>() / self.runs.len().max(1) as f64
    }

    fn cycles(&self) -> u64 {
        self.runs.iter().map(|c| c.cycles).sum()
    }

    fn errors(&self) -> u64 {
        self.runs.iter().map(|c| c.errors).sum()
    }

    fn cpu_per_cycle(&self) -> Option<f64> {
        self.proxy_cpu
            .map(|cpu| cpu.total_us() as f64 / self.cycles().max(1) as f64)
    }
}

/// Direct, through the proxy without pool, and with the pool on.
struct ChurnResult {
    threads: u32,
    sides: Vec<ChurnSide>,
}

impl ChurnResult {
    fn side(&self, label: &str) -> Option<&ChurnSide> {
        self.sides.iter().find(|s| s.label == label)
    }

    /// Rate of side `label` over the rate of side `reference`.
    fn ratio(&self, label: &str, reference: &str) -> Option<f64> {
        Some(self.side(label)?.rate() / self.side(reference)?.rate())
    }
}

#[derive(Default)]
struct BigResult {
    bytes: u64,
    rows: u64,
    fill_seconds: f64,
    direct: Vec<f64>,
    proxy: Vec<f64>,
    proxy_rss_start_kib: u64,
    proxy_peak_kib: u64,
    proxy_cpu: Cpu,
}

impl BigResult {
    fn mib_per_s(&self, side: &[f64]) -> f64 {
        let mean = side.iter().sum::<f64>() / side.len().max(1) as f64;
        self.bytes as f64 / (1u64 << 20) as f64 / mean
    }

    fn ratio(&self) -> f64 {
        self.mib_per_s(&self.proxy) / self.mib_per_s(&self.direct)
    }
}

#[derive(Default)]
struct IdleResult {
    count: usize,
    base_kib: u64,
    at_1k_kib: Option<u64>,
    at_n_kib: u64,
    after_close_kib: u64,
    threads_connected: u64,
    open_seconds: f64,
    proxy_threads: u64,
}

impl IdleResult {
    fn per_conn_kib(&self) -> f64 {
        (self.at_n_kib as f64 - self.base_kib as f64) / self.count as f64
    }
}

#[derive(Default)]
struct ProfileResult {
    perf: Option<profile::PerfProfile>,
    perf_error: Option<String>,
    perf_queries: u64,
    perf_cpu: Cpu,
    strace: Option<Vec<profile::Syscall>>,
    strace_error: Option<String>,
    strace_queries: u64,
}

#[derive(Default)]
struct Results {
    oltp: Vec<Comparison>,
    events: Vec<Comparison>,
    baseline: Vec<Comparison>,
    churn: Option<ChurnResult>,
    big: Option<BigResult>,
    idle: Option<IdleResult>,
    profile: Option<ProfileResult>,
    lua: Option<lua::LuaResult>,
    failover: Vec<failover::Cycle>,
    errors: Vec<(String, String)>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // bench/callgrind: instruction counts per query and per connect cycle.
    if args.first().is_some_and(|a| a == "callgrind") {
        return callgrind::main(&args[1..]);
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mysql-proxy-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = repo_root();
    let log = Log {
        started: Instant::now(),
    };
    let sysbench_version = match sysbench::check_installed() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mysql-proxy-bench: {e}");
            return ExitCode::from(1);
        }
    };
    let results_dir = root.join("bench").join("results");
    let _ = fs::remove_dir_all(&results_dir);
    if let Err(e) = fs::create_dir_all(&results_dir) {
        eprintln!("mysql-proxy-bench: creating {}: {e}", results_dir.display());
        return ExitCode::from(1);
    }
    let proxy_bin = mysql_proxy_tests::proxy_binary();
    let mut machine = machine::Machine::describe(&root, &proxy_bin);
    machine.sysbench = sysbench_version;
    log.say(&format!("options: {opts:?}"));
    log.say(&format!(
        "proxy: {} --plugin-dir={}",
        proxy_bin.display(),
        mysql_proxy_tests::build_dir().display()
    ));

    let mut results = Results::default();
    let db = MariaDb::builder().args(SERVER_ARGS.iter().copied()).start();
    machine.mariadb = db
        .root_conn()
        .query_first::<String, _>("SELECT VERSION()")
        .ok()
        .flatten()
        .unwrap_or_default();
    log.say(&format!(
        "MariaDB {} on port {}",
        machine.mariadb,
        db.port()
    ));

    let need_sysbench_data = ["oltp", "events", "profile", "lua", "baseline"]
        .iter()
        .any(|s| opts.runs(s));
    if need_sysbench_data {
        log.say(&format!(
            "sysbench prepare: {} tables x {} rows",
            sysbench::TABLES,
            sysbench::TABLE_SIZE
        ));
        let prep = sysbench::Sysbench {
            workload: "oltp_read_only",
            port: db.port(),
            threads: sysbench::TABLES,
            seconds: 1,
            options: &[],
        };
        if let Err(e) = prep.prepare(&results_dir.join("sysbench-prepare.txt")) {
            eprintln!("mysql-proxy-bench: {e}");
            return ExitCode::from(1);
        }
    }

    let main_proxy = start_proxy(&db, &[]);
    if need_sysbench_data {
        warm_up(&db, &main_proxy, &results_dir, &log);
    }

    if opts.runs("oltp") {
        match section_oltp(&db, &main_proxy, &opts, &results_dir, &log) {
            Ok(c) => results.oltp = c,
            Err(e) => results.errors.push(("oltp".into(), e)),
        }
    }
    if opts.runs("events") {
        match section_events(&db, &opts, &results_dir, &log) {
            Ok(c) => results.events = c,
            Err(e) => results.errors.push(("events".into(), e)),
        }
    }
    if let Some(dir) = &opts.baseline {
        match section_baseline(&db, dir, &opts, &results_dir, &log) {
            Ok(c) => results.baseline = c,
            Err(e) => results.errors.push(("baseline".into(), e)),
        }
    }
    if opts.runs("connect") {
        match section_connect(&db, &opts, &results_dir, &log) {
            Ok(c) => results.churn = Some(c),
            Err(e) => results.errors.push(("connect".into(), e)),
        }
    }
    if opts.runs("profile") {
        results.profile = Some(section_profile(&db, &main_proxy, &opts, &results_dir, &log));
    }
    if opts.runs("lua") {
        let lua = lua::section(&db, &opts, &root, &results_dir, &log);
        for e in &lua.errors {
            results.errors.push(("lua".into(), e.clone()));
        }
        results.lua = Some(lua);
    }
    drop(main_proxy);
    if opts.runs("big") {
        match section_big(&db, &opts, &log) {
            Ok(b) => results.big = Some(b),
            Err(e) => results.errors.push(("big".into(), e)),
        }
    }
    drop(db);
    if opts.runs("idle") {
        match section_idle(&opts, &log) {
            Ok(i) => results.idle = Some(i),
            Err(e) => results.errors.push(("idle".into(), e)),
        }
    }
    if opts.runs("failover") {
        let rounds = opts.failover_rounds;
        let measured = std::panic::catch_unwind(|| failover::measure(rounds, |line| log.say(line)))
            .unwrap_or_else(|_| Err("the failover measurement panicked".into()));
        match measured {
            Ok(cycles) => results.failover = cycles,
            Err(e) => results.errors.push(("failover".into(), e)),
        }
    }

    let took = log.started.elapsed();
    let summary = summary_table(&results);
    println!();
    println!(
        "mysql-proxy vs. direct connection, same MariaDB, same run ({:.0} s)",
        took.as_secs_f64()
    );
    println!();
    if opts.baseline.is_none() {
        print!("{}", summary.text());
        println!();
    }
    for (title, table) in detail_tables(&results) {
        println!("{title}");
        print!("{}", table.text());
        println!();
    }
    for (section, e) in &results.errors {
        println!("ERROR in section {section}: {e}");
    }
    let generated = generated_markdown(&opts, &machine, &results, &summary, took);
    let _ = fs::write(results_dir.join("PERFORMANCE-generated.md"), &generated);
    if opts.write_doc {
        let doc = root.join("docs").join("PERFORMANCE.md");
        match report::update_doc(&doc, &generated, &skeleton()) {
            Ok(()) => log.say(&format!("wrote {}", doc.display())),
            Err(e) => {
                eprintln!("mysql-proxy-bench: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        log.say(&format!(
            "not a full run: docs/PERFORMANCE.md left alone; the Markdown is in {}",
            results_dir.join("PERFORMANCE-generated.md").display()
        ));
    }
    log.say(&format!("done in {:.0} s", took.as_secs_f64()));
    if results.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The workspace root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn start_proxy(db: &MariaDb, extra: &[&str]) -> Proxy {
    start_proxy_to(db.addr(), extra)
}

/// A proxy in front of `backend` (`host:port` or a Unix socket path).
fn start_proxy_to(backend: String, extra: &[&str]) -> Proxy {
    let mut builder = Proxy::builder().backend(backend).log_level("critical");
    for arg in extra {
        builder = builder.arg(*arg);
    }
    builder
        .start()
        .unwrap_or_else(|e| panic!("starting mysql-proxy {extra:?}: {e}"))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A short unrecorded run each way, so the first measured runs do not pay
/// for cold caches.
fn warm_up(db: &MariaDb, proxy: &Proxy, dir: &Path, log: &Log) {
    log.say("warm-up (not recorded)");
    for (label, port) in [("direct", db.port()), ("proxy", proxy.proxy_port())] {
        let sb = sysbench::Sysbench {
            workload: "oltp_read_only",
            port,
            threads: 8,
            seconds: 2,
            options: &[],
        };
        if let Err(e) = sb.run(&dir.join(format!("sysbench-warmup-{label}.txt"))) {
            log.say(&format!("warm-up {label}: {e}"));
        }
    }
}

fn section_oltp(
    db: &MariaDb,
    proxy: &Proxy,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<Vec<Comparison>, String> {
    let endpoints = [
        Endpoint {
            label: "direct".into(),
            port: db.port(),
            proxy_pid: None,
        },
        Endpoint {
            label: "proxy".into(),
            port: proxy.proxy_port(),
            proxy_pid: Some(proxy.pid()),
        },
    ];
    let mut all = Vec::new();
    for workload in WORKLOADS {
        for &threads in THREADS {
            let c = oltp::compare(
                &endpoints,
                db.pid(),
                workload,
                &[],
                threads,
                opts.seconds,
                opts.rounds,
                dir,
                &mut |m| log.say(m),
            )?;
            log.say(&format!(
                "{workload} threads={threads}: proxy/direct {}",
                ratio(c.side("proxy").tps() / c.side("direct").tps())
            ));
            all.push(c);
        }
    }
    Ok(all)
}

fn section_events(
    db: &MariaDb,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<Vec<Comparison>, String> {
    let et1 = start_proxy(db, &["--event-threads=1"]);
    let et2 = start_proxy(db, &["--event-threads=2"]);
    let et1_unix = start_proxy_to(db.socket().display().to_string(), &["--event-threads=1"]);
    let endpoints = [
        Endpoint {
            label: "direct".into(),
            port: db.port(),
            proxy_pid: None,
        },
        Endpoint {
            label: "et1".into(),
            port: et1.proxy_port(),
            proxy_pid: Some(et1.pid()),
        },
        Endpoint {
            label: "et2".into(),
            port: et2.proxy_port(),
            proxy_pid: Some(et2.pid()),
        },
    ];
    let mut endpoints = endpoints.to_vec();
    endpoints.push(Endpoint {
        label: "et1-unix".into(),
        port: et1_unix.proxy_port(),
        proxy_pid: Some(et1_unix.pid()),
    });
    // The reference relay, when installed.
    let haproxy = reference_relay(db, dir, log);
    if let Some(haproxy) = &haproxy {
        endpoints.push(Endpoint {
            label: "haproxy".into(),
            port: haproxy.port,
            proxy_pid: Some(haproxy.pid()),
        });
    }
    point_select_loads(&endpoints, db, opts, dir, log)
}

/// oltp_point_select against `endpoints`, alternating, at each of
/// [`EVENT_THREADS_LOADS`] client threads.
fn point_select_loads(
    endpoints: &[Endpoint],
    db: &MariaDb,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<Vec<Comparison>, String> {
    EVENT_THREADS_LOADS
        .iter()
        .map(|&threads| {
            oltp::compare(
                endpoints,
                db.pid(),
                "oltp_point_select",
                &[],
                threads,
                opts.seconds,
                opts.rounds,
                dir,
                &mut |m| log.say(m),
            )
        })
        .collect()
}

/// This build against another one (e.g. the previous commit's), both with one
/// event thread so that scheduling noise is lowest, alternating.
fn section_baseline(
    db: &MariaDb,
    baseline: &Path,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<Vec<Comparison>, String> {
    let start = |builder: mysql_proxy_tests::ProxyBuilder| {
        builder
            .backend(db.addr())
            .log_level("critical")
            .arg("--event-threads=1")
            .start()
            .map_err(|e| format!("starting mysql-proxy: {e}"))
    };
    let old = start(Proxy::builder().build_dir(baseline))?;
    let new = start(Proxy::builder())?;
    let endpoints = [
        Endpoint {
            label: "baseline".into(),
            port: old.proxy_port(),
            proxy_pid: Some(old.pid()),
        },
        Endpoint {
            label: "proxy".into(),
            port: new.proxy_port(),
            proxy_pid: Some(new.pid()),
        },
    ];
    point_select_loads(&endpoints, db, opts, dir, log)
}

/// HAProxy relaying to `db`, when installed (the relay-only reference);
/// why not is logged.
fn reference_relay(db: &MariaDb, dir: &Path, log: &Log) -> Option<haproxy::Haproxy> {
    haproxy::Haproxy::start(db.port(), dir)
        .map_err(|e| log.say(&format!("no HAProxy reference: {e}")))
        .ok()
}

fn section_connect(
    db: &MariaDb,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<ChurnResult, String> {
    let proxy = start_proxy(db, &[]);
    let pooled = start_proxy(db, &["--proxy-pool-max-idle=64"]);
    let mut result = ChurnResult {
        threads: opts.churn_threads,
        sides: vec![
            ChurnSide {
                label: "direct",
                runs: Vec::new(),
                proxy_cpu: None,
            },
            ChurnSide {
                label: "proxy",
                runs: Vec::new(),
                proxy_cpu: Some(Cpu::default()),
            },
            ChurnSide {
                label: "proxy, pool on",
                runs: Vec::new(),
                proxy_cpu: Some(Cpu::default()),
            },
        ],
    };
    let mut endpoints = vec![
        (db.port(), None),
        (proxy.proxy_port(), Some(proxy.pid())),
        (pooled.proxy_port(), Some(pooled.pid())),
    ];
    // The reference relay, when installed: what the TCP set-up and tear-down
    // of a second connection cost without any protocol work.
    let haproxy = reference_relay(db, dir, log);
    if let Some(haproxy) = &haproxy {
        endpoints.push((haproxy.port, Some(haproxy.pid())));
        result.sides.push(ChurnSide {
            label: "haproxy",
            runs: Vec::new(),
            proxy_cpu: Some(Cpu::default()),
        });
    }
    churn_rounds(&endpoints, &mut result, opts, log)?;
    Ok(result)
}

/// Connection churn against `endpoints` (port, proxy pid) in turn,
/// `opts.rounds` times, the order mirrored every second round; each run goes
/// to the side of `result` at the endpoint's index, the proxy's CPU around
/// it to the side's total.
fn churn_rounds(
    endpoints: &[(u16, Option<u32>)],
    result: &mut ChurnResult,
    opts: &Options,
    log: &Log,
) -> Result<(), String> {
    for round in 0..opts.rounds {
        let mut order: Vec<usize> = (0..endpoints.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let (port, pid) = endpoints[index];
            let side = &mut result.sides[index];
            let before = pid.map(procfs::cpu);
            let churn = connect::churn(local(port), opts.churn_threads, opts.churn_seconds);
            if let (Some(pid), Some(before), Some(total)) = (pid, before, side.proxy_cpu.as_mut()) {
                total.add(procfs::cpu(pid).since(before));
            }
            log.say(&format!(
                "connect+SELECT 1+quit {:<14} round {}: {:.0} cycles/s, {} errors{}",
                side.label,
                round + 1,
                churn.rate(),
                churn.errors,
                churn
                    .first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            ));
            if churn.cycles == 0 {
                return Err(format!(
                    "no connection cycle completed against {}: {}",
                    side.label,
                    churn.first_error.unwrap_or_default()
                ));
            }
            side.runs.push(churn);
            // Let the sockets of the run close before the next.
            thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

fn section_profile(
    db: &MariaDb,
    proxy: &Proxy,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> ProfileResult {
    let mut result = ProfileResult::default();
    let endpoint = Endpoint {
        label: "proxy".into(),
        port: proxy.proxy_port(),
        proxy_pid: Some(proxy.pid()),
    };
    // perf record -g during oltp_point_select, 8 threads.
    match profile::perf_available() {
        Err(e) => result.perf_error = Some(e),
        Ok(()) => {
            log.say("profile: perf record -g on the proxy during oltp_point_select, 8 threads");
            let data = profile::data_path(dir);
            match profile::perf_record(proxy.pid(), &data, &dir.join("perf-record.log")) {
                Err(e) => result.perf_error = Some(e),
                Ok(perf) => {
                    let run = oltp::run_once(
                        &endpoint,
                        db.pid(),
                        "oltp_point_select",
                        &[],
                        8,
                        opts.seconds,
                        &dir.join("sysbench-profile-perf.txt"),
                    );
                    let stopped = perf.stop(Duration::from_secs(60));
                    match (run, stopped) {
                        (Ok(run), Ok(())) => {
                            result.perf_queries = run.report.queries;
                            result.perf_cpu = run.proxy.map(|p| p.cpu).unwrap_or_default();
                            log.say("profile: perf report");
                            match profile::analyse_perf(&data, dir) {
                                Ok(p) => result.perf = Some(p),
                                Err(e) => result.perf_error = Some(e),
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => result.perf_error = Some(e),
                    }
                }
            }
            // The data file is large and its text reports are kept.
            let _ = fs::remove_file(&data);
        }
    }
    // strace -c -f during a shorter run.
    if !profile::strace_available() {
        result.strace_error = Some("strace is not installed".into());
        return result;
    }
    log.say("profile: strace -c -f on the proxy during oltp_point_select, 8 threads");
    let summary = dir.join("strace-c.txt");
    match profile::strace_count(proxy.pid(), &summary, &dir.join("strace.log")) {
        Err(e) => result.strace_error = Some(e),
        Ok(strace) => {
            let run = oltp::run_once(
                &endpoint,
                db.pid(),
                "oltp_point_select",
                &[],
                8,
                opts.seconds.min(5),
                &dir.join("sysbench-profile-strace.txt"),
            );
            let stopped = strace.stop(Duration::from_secs(60));
            match (run, stopped) {
                (Ok(run), Ok(())) => {
                    result.strace_queries = run.report.queries;
                    match profile::parse_strace(&summary) {
                        Ok(s) => result.strace = Some(s),
                        Err(e) => result.strace_error = Some(e),
                    }
                }
                (Err(e), _) | (_, Err(e)) => result.strace_error = Some(e),
            }
        }
    }
    result
}

fn section_big(db: &MariaDb, opts: &Options, log: &Log) -> Result<BigResult, String> {
    let rows = bigresult::rows_for(opts.result_bytes);
    log.say(&format!(
        "large result: filling test.{} with {rows} rows of {} bytes",
        bigresult::TABLE,
        bigresult::ROW_BYTES
    ));
    let began = Instant::now();
    let mut conn = db.root_conn();
    bigresult::fill(&mut conn, rows, &mut |m| log.say(m))?;
    let fill_seconds = began.elapsed().as_secs_f64();
    settle_dirty_pages(&mut conn, log);
    drop(conn);
    let proxy = start_proxy(db, &[]);
    let mut result = BigResult {
        rows,
        fill_seconds,
        proxy_rss_start_kib: proxy.rss_kib(),
        ..BigResult::default()
    };
    for round in 0..opts.rounds {
        let mut order = [("direct", db.port()), ("proxy", proxy.proxy_port())];
        if round % 2 == 1 {
            order.reverse();
        }
        for (label, port) in order {
            let before = procfs::cpu(proxy.pid());
            let (count, took) = bigresult::read_all(local(port))?;
            if count.rows != rows {
                return Err(format!(
                    "{label}: {} rows where {rows} were expected",
                    count.rows
                ));
            }
            if label == "proxy" {
                result.proxy.push(took.as_secs_f64());
                result.proxy_cpu.add(procfs::cpu(proxy.pid()).since(before));
            } else {
                result.direct.push(took.as_secs_f64());
            }
            result.bytes = count.bytes;
            log.say(&format!(
                "large result {label:<6} round {}: {:.0} MiB in {:.2} s = {:.0} MiB/s",
                round + 1,
                count.bytes as f64 / (1u64 << 20) as f64,
                took.as_secs_f64(),
                count.bytes as f64 / (1u64 << 20) as f64 / took.as_secs_f64()
            ));
        }
    }
    result.proxy_peak_kib = proxy.peak_rss_kib();
    Ok(result)
}

/// Waits (at most 60 s) for InnoDB to write out the freshly filled table, so
/// its flushing does not run during the measurements.
fn settle_dirty_pages(conn: &mut mysql::Conn, log: &Log) {
    let _ = conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0");
    let began = Instant::now();
    loop {
        let dirty: u64 = conn
            .query_first::<(String, u64), _>(
                "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'",
            )
            .ok()
            .flatten()
            .map(|(_, v)| v)
            .unwrap_or(0);
        if dirty < 500 || began.elapsed() > Duration::from_secs(60) {
            log.say(&format!(
                "dirty pages: {dirty} after {:.1} s of flushing",
                began.elapsed().as_secs_f64()
            ));
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let _ = conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 90");
}

/// The hard limit on open files this process (and what it starts) can raise
/// its soft limit to.
fn open_files_hard_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_max
}

fn section_idle(opts: &Options, log: &Log) -> Result<IdleResult, String> {
    // The proxy holds two sockets per pair: where the hard limit on open
    // files is lower than that (a container), as many pairs as fit.
    let hard = open_files_hard_limit();
    let fit = usize::try_from(hard.saturating_sub(500) / 2).unwrap_or(usize::MAX);
    let n = opts.idle_conns.min(fit);
    if n < opts.idle_conns {
        log.say(&format!(
            "open files are limited to {hard} here: {n} idle pairs instead of {}",
            opts.idle_conns
        ));
    }
    let limit = (n as u64 * 3 + 1000).min(hard).to_string();
    log.say(&format!(
        "idle connections: a MariaDB with a thread pool for {n} connections"
    ));
    let db = MariaDb::builder()
        .args([
            "--thread-handling=pool-of-threads".to_string(),
            format!("--max-connections={}", n + 1000),
            format!("--open-files-limit={limit}"),
        ])
        .start();
    let proxy = start_proxy(&db, &[&format!("--max-open-files={limit}")]);
    let addr = local(proxy.proxy_port());
    // One round of connections first, so what is allocated once is not counted.
    drop(idle::open(addr, 100.min(n), 4)?);
    thread::sleep(Duration::from_millis(500));
    let mut result = IdleResult {
        count: n,
        base_kib: proxy.rss_kib(),
        ..IdleResult::default()
    };
    let began = Instant::now();
    let mut held = Vec::with_capacity(n);
    if n > 1000 {
        held.extend(idle::open(addr, 1000, 8)?);
        thread::sleep(Duration::from_millis(500));
        result.at_1k_kib = Some(proxy.rss_kib());
    }
    held.extend(idle::open(addr, n - held.len(), 8)?);
    result.open_seconds = began.elapsed().as_secs_f64();
    thread::sleep(Duration::from_secs(1));
    result.at_n_kib = proxy.rss_kib();
    result.proxy_threads = procfs::threads(proxy.pid());
    result.threads_connected = db
        .root_conn()
        .query_first::<(String, u64), _>("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        .ok()
        .flatten()
        .map(|(_, v)| v)
        .unwrap_or(0);
    log.say(&format!(
        "idle connections: {n} open in {:.1} s; proxy RSS {} KiB (was {} KiB): {:.2} KiB per connection; \
         server sees {} connections",
        result.open_seconds,
        result.at_n_kib,
        result.base_kib,
        result.per_conn_kib(),
        result.threads_connected
    ));
    drop(held);
    thread::sleep(Duration::from_secs(2));
    result.after_close_kib = proxy.rss_kib();
    Ok(result)
}

/// A target line: what is measured, MySQL Proxy 0.8.5's figure, the target,
/// the result and whether it is met.
fn target_row(
    table: &mut Table,
    measure: &str,
    reference: &str,
    target: &str,
    result: Option<f64>,
    shown: impl Fn(f64) -> String,
    met: impl Fn(f64) -> bool,
) {
    let (result, verdict) = match result {
        Some(v) if v.is_finite() => (shown(v), if met(v) { "met" } else { "MISSED" }),
        _ => ("not measured".to_string(), "-"),
    };
    table.row(vec![
        measure.to_string(),
        reference.to_string(),
        target.to_string(),
        result,
        verdict.to_string(),
    ]);
}

/// How an endpoint label reads in a table.
fn endpoint_name(label: &str) -> &str {
    match label {
        "et1" => "mysql-proxy --event-threads=1",
        "et2" => "mysql-proxy --event-threads=2",
        "et1-unix" => "mysql-proxy --event-threads=1, backend on the Unix socket",
        "haproxy" => "HAProxy, TCP mode",
        other => other,
    }
}

fn find<'a>(list: &'a [Comparison], workload: &str, threads: u32) -> Option<&'a Comparison> {
    list.iter()
        .find(|c| c.workload == workload && c.threads == threads)
}

fn tps_ratio(c: &Comparison, a: &str, b: &str) -> f64 {
    c.side(a).tps() / c.side(b).tps()
}

fn summary_table(r: &Results) -> Table {
    let mut t = Table::new(&[
        "Measure",
        "MySQL Proxy 0.8.5",
        "Target",
        "Result",
        "Verdict",
    ]);
    let always = |_: f64| true;
    for workload in WORKLOADS {
        let short = workload.trim_start_matches("oltp_");
        for &threads in THREADS {
            let c = find(&r.oltp, workload, threads);
            let (reference, target, threshold) = match (short, threads) {
                ("point_select", 8) => ("0.40x", ">= 0.80x", Some(0.80)),
                ("read_only", 8) => ("0.44x", ">= 0.85x", Some(0.85)),
                _ => ("", "", None),
            };
            target_row(
                &mut t,
                &format!("{short}, {threads} thr: throughput proxy/direct"),
                reference,
                target,
                c.map(|c| tps_ratio(c, "proxy", "direct")),
                ratio,
                |v| threshold.map(|th| v >= th).unwrap_or(true),
            );
        }
    }
    let ps8 = find(&r.oltp, "oltp_point_select", 8);
    target_row(
        &mut t,
        "proxy CPU per point select, 8 thr (user+sys)",
        "32 us",
        "<= 10 us",
        ps8.and_then(|c| c.side("proxy").proxy_cpu_per_query())
            .map(|(u, s)| u + s),
        |v| format!("{v:.1} us"),
        |v| v <= 10.0,
    );
    let ps1 = find(&r.oltp, "oltp_point_select", 1);
    target_row(
        &mut t,
        "added p99 latency, point_select 1 thr",
        "",
        "<= 100 us",
        ps1.map(|c| c.side("proxy").percentile_us(99.0) - c.side("direct").percentile_us(99.0)),
        |v| format!("{v:.0} us"),
        |v| v <= 100.0,
    );
    target_row(
        &mut t,
        "added p50 latency, point_select 1 thr",
        "",
        "",
        ps1.map(|c| c.side("proxy").percentile_us(50.0) - c.side("direct").percentile_us(50.0)),
        |v| format!("{v:.0} us"),
        always,
    );
    let churn_label = r
        .churn
        .as_ref()
        .map(|c| format!(", {} thr", c.threads))
        .unwrap_or_default();
    target_row(
        &mut t,
        &format!("connect+SELECT 1+quit rate proxy/direct{churn_label}"),
        "0.5x",
        ">= 0.80x",
        r.churn.as_ref().and_then(|c| c.ratio("proxy", "direct")),
        ratio,
        |v| v >= 0.80,
    );
    target_row(
        &mut t,
        "proxy CPU per connect+query+quit cycle",
        "190 us",
        "<= 60 us",
        r.churn
            .as_ref()
            .and_then(|c| c.side("proxy")?.cpu_per_cycle()),
        |v| format!("{v:.0} us"),
        |v| v <= 60.0,
    );
    let big_label = r
        .big
        .as_ref()
        .map(|b| format!("{:.2} GiB", b.bytes as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "large".into());
    target_row(
        &mut t,
        &format!("{big_label} result: throughput proxy/direct"),
        "",
        ">= 0.90x",
        r.big.as_ref().map(BigResult::ratio),
        ratio,
        |v| v >= 0.90,
    );
    target_row(
        &mut t,
        &format!("{big_label} result: proxy peak RSS (VmHWM)"),
        "",
        "<= 32 MiB",
        r.big.as_ref().map(|b| b.proxy_peak_kib as f64 / 1024.0),
        |v| format!("{v:.1} MiB"),
        |v| v <= 32.0,
    );
    let idle_label = r
        .idle
        .as_ref()
        .map(|i| format!("{}", i.count))
        .unwrap_or_else(|| "10000".into());
    target_row(
        &mut t,
        &format!("proxy RSS per idle client+backend pair at {idle_label}"),
        "6.2 KiB (at 1000)",
        "<= 6 KiB at 10000",
        r.idle.as_ref().map(IdleResult::per_conn_kib),
        |v| format!("{v:.2} KiB"),
        |v| v <= 6.0,
    );
    target_row(
        &mut t,
        &format!(
            "failover: kill -9 to first new connection (median of {})",
            r.failover.len()
        ),
        "",
        "< 1 s",
        failover::median(&r.failover, |c| c.to_first_connection).map(|d| d.as_secs_f64()),
        |v| format!("{:.1} ms", v * 1000.0),
        |v| v < 1.0,
    );
    for &threads in EVENT_THREADS_LOADS {
        target_row(
            &mut t,
            &format!("--event-threads 2 vs 1, point_select {threads} thr"),
            "",
            "",
            find(&r.events, "oltp_point_select", threads).map(|c| tps_ratio(c, "et2", "et1")),
            ratio,
            always,
        );
    }
    let relay_only = find(&r.events, "oltp_point_select", 8)
        .filter(|c| c.sides.iter().any(|(label, _)| label == "haproxy"));
    target_row(
        &mut t,
        "reference: HAProxy TCP relay/direct, point_select 8 thr",
        "",
        "",
        relay_only.map(|c| tps_ratio(c, "haproxy", "direct")),
        ratio,
        always,
    );
    target_row(
        &mut t,
        "reference: HAProxy CPU per point select, 8 thr",
        "",
        "",
        relay_only.and_then(|c| c.side("haproxy").proxy_cpu_per_query().map(|(u, s)| u + s)),
        |v| format!("{v:.1} us"),
        always,
    );
    lua::target_rows(&mut t, r.lua.as_ref());
    t
}

fn detail_tables(r: &Results) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    if !r.oltp.is_empty() {
        let mut t = Table::new(&[
            "Workload",
            "Thr",
            "Direct tps",
            "Proxy tps",
            "Ratio",
            "p95 us D / P",
            "p99 us D / P",
            "Added p50 / p99 us",
            "Proxy CPU/query us (user+sys)",
            "Proxy ctx sw/query",
            "MariaDB CPU/query us D / P",
            "sysbench CPU/query us D / P",
            "Errors",
        ]);
        for c in &r.oltp {
            let (d, p) = (c.side("direct"), c.side("proxy"));
            let cpu = p
                .proxy_cpu_per_query()
                .map(|(u, s)| format!("{:.1} ({:.1}+{:.1})", u + s, u, s))
                .unwrap_or_default();
            t.row(vec![
                c.workload.trim_start_matches("oltp_").to_string(),
                c.threads.to_string(),
                num(d.tps(), 0),
                num(p.tps(), 0),
                ratio(p.tps() / d.tps()),
                format!(
                    "{} / {}",
                    num(d.percentile_us(95.0), 0),
                    num(p.percentile_us(95.0), 0)
                ),
                format!(
                    "{} / {}",
                    num(d.percentile_us(99.0), 0),
                    num(p.percentile_us(99.0), 0)
                ),
                format!(
                    "{} / {}",
                    num(p.percentile_us(50.0) - d.percentile_us(50.0), 0),
                    num(p.percentile_us(99.0) - d.percentile_us(99.0), 0)
                ),
                cpu,
                p.proxy_ctx_switches_per_query()
                    .map(|x| num(x, 2))
                    .unwrap_or_default(),
                format!(
                    "{} / {}",
                    num(d.server_cpu_per_query(), 1),
                    num(p.server_cpu_per_query(), 1)
                ),
                format!(
                    "{} / {}",
                    num(d.client_cpu_per_query(), 1),
                    num(p.client_cpu_per_query(), 1)
                ),
                (d.errors() + p.errors()).to_string(),
            ]);
        }
        out.push((
            "sysbench (tps = transactions/s; read_only: 16 queries per transaction)".into(),
            t,
        ));
    }
    if !r.events.is_empty() {
        let mut t = Table::new(&[
            "Workload",
            "Thr",
            "Endpoint",
            "tps",
            "vs direct",
            "Relay CPU/query us (user+sys)",
            "Relay ctx sw/query",
            "p99 us",
        ]);
        for c in &r.events {
            let direct = c.side("direct").tps();
            for (label, side) in &c.sides {
                t.row(vec![
                    c.workload.trim_start_matches("oltp_").to_string(),
                    c.threads.to_string(),
                    endpoint_name(label).to_string(),
                    num(side.tps(), 0),
                    ratio(side.tps() / direct),
                    side.proxy_cpu_per_query()
                        .map(|(u, s)| format!("{} ({}+{})", num(u + s, 1), num(u, 1), num(s, 1)))
                        .unwrap_or_default(),
                    side.proxy_ctx_switches_per_query()
                        .map(|x| num(x, 2))
                        .unwrap_or_default(),
                    num(side.percentile_us(99.0), 0),
                ]);
            }
        }
        out.push((
            "--event-threads 1 and 2, a Unix-socket backend, and HAProxy (TCP mode, 1 thread) as the relay-only reference"
                .into(),
            t,
        ));
    }
    if !r.baseline.is_empty() {
        let mut t = Table::new(&[
            "Workload",
            "Thr",
            "Build",
            "tps",
            "vs baseline",
            "Proxy CPU/query us (user+sys)",
            "p99 us",
        ]);
        for c in &r.baseline {
            let base = c.side("baseline").tps();
            for (label, side) in &c.sides {
                t.row(vec![
                    c.workload.trim_start_matches("oltp_").to_string(),
                    c.threads.to_string(),
                    if label == "proxy" {
                        "this build"
                    } else {
                        "baseline"
                    }
                    .to_string(),
                    num(side.tps(), 0),
                    ratio(side.tps() / base),
                    side.proxy_cpu_per_query()
                        .map(|(u, s)| format!("{} ({}+{})", num(u + s, 1), num(u, 1), num(s, 1)))
                        .unwrap_or_default(),
                    num(side.percentile_us(99.0), 0),
                ]);
            }
        }
        out.push((
            "this build against the baseline build (one event thread each)".into(),
            t,
        ));
    }
    if let Some(c) = &r.churn {
        let t = churn_table(c, "direct");
        out.push((
            "connect + handshake/auth + SELECT 1 + COM_QUIT, a new connection each time".into(),
            t,
        ));
    }
    if !r.failover.is_empty() {
        let mut t = Table::new(&[
            "Round",
            "kill -9 to first new connection ms",
            "Failed attempts",
            "kill -9 to marked down ms",
            "Restart to marked up ms",
        ]);
        let ms = |d: Duration| num(d.as_secs_f64() * 1000.0, 1);
        for (round, c) in r.failover.iter().enumerate() {
            t.row(vec![
                (round + 1).to_string(),
                ms(c.to_first_connection),
                c.failed_attempts.to_string(),
                ms(c.to_marked_down),
                ms(c.back_up),
            ]);
        }
        out.push((
            "failover: kill -9 of the backend the next client would get (2 backends, default settings)"
                .into(),
            t,
        ));
    }
    if let Some(b) = &r.big {
        let mut t = Table::new(&[
            "Result",
            "Rows",
            "Direct MiB/s",
            "Proxy MiB/s",
            "Ratio",
            "Proxy RSS start / peak MiB",
            "Proxy CPU per MiB us",
            "Fill time s",
        ]);
        let proxy_mib = b.bytes as f64 / (1u64 << 20) as f64 * b.proxy.len() as f64;
        t.row(vec![
            format!("{:.0} MiB", b.bytes as f64 / (1u64 << 20) as f64),
            b.rows.to_string(),
            num(b.mib_per_s(&b.direct), 0),
            num(b.mib_per_s(&b.proxy), 0),
            ratio(b.ratio()),
            format!(
                "{:.1} / {:.1}",
                b.proxy_rss_start_kib as f64 / 1024.0,
                b.proxy_peak_kib as f64 / 1024.0
            ),
            num(b.proxy_cpu.total_us() as f64 / proxy_mib, 0),
            num(b.fill_seconds, 0),
        ]);
        out.push(("large result set (SELECT pad FROM big: 1020-byte rows, streamed and discarded by the client)".into(), t));
    }
    if let Some(i) = &r.idle {
        let mut t = Table::new(&[
            "Idle pairs",
            "Proxy RSS before KiB",
            "at 1000 KiB (per pair)",
            "at all KiB (per pair)",
            "after closing KiB",
            "Server connections",
            "Proxy threads",
            "Open time s",
        ]);
        t.row(vec![
            i.count.to_string(),
            i.base_kib.to_string(),
            i.at_1k_kib
                .map(|k| format!("{k} ({:.2})", (k as f64 - i.base_kib as f64) / 1000.0))
                .unwrap_or_default(),
            format!("{} ({:.2})", i.at_n_kib, i.per_conn_kib()),
            i.after_close_kib.to_string(),
            i.threads_connected.to_string(),
            i.proxy_threads.to_string(),
            num(i.open_seconds, 1),
        ]);
        out.push((
            "idle client connections, each with its backend connection (RSS = VmRSS)".into(),
            t,
        ));
    }
    if let Some(p) = &r.profile {
        if let Some(perf) = &p.perf {
            out.extend(perf_tables(
                perf,
                "oltp_point_select 8 thr",
                p.perf_cpu.total_us() as f64 / p.perf_queries.max(1) as f64,
                15,
            ));
            let mut t = Table::new(&["Inclusive %", "Kernel function"]);
            for s in &perf.inclusive {
                t.row(vec![format!("{:.1}%", s.percent), s.name.clone()]);
            }
            out.push(("perf: inclusive share of kernel entry points".into(), t));
        }
        if let Some(calls) = &p.strace {
            let q = p.strace_queries.max(1) as f64;
            let mut t = Table::new(&["Syscall", "Calls", "Per query", "Errors"]);
            for s in calls.iter().take(10) {
                t.row(vec![
                    s.name.clone(),
                    s.calls.to_string(),
                    format!("{:.2}", s.calls as f64 / q),
                    s.errors.to_string(),
                ]);
            }
            out.push((
                format!(
                    "strace -c -f: proxy system calls during oltp_point_select 8 thr ({} queries)",
                    p.strace_queries
                ),
                t,
            ));
        }
        for e in p.perf_error.iter().chain(&p.strace_error) {
            let mut t = Table::new(&["Profile error"]);
            t.row(vec![e.clone()]);
            out.push(("profile".into(), t));
        }
    }
    if let Some(l) = &r.lua {
        out.extend(lua::tables(l));
    }
    out
}

/// A perf profile of the proxy during `run`: its CPU by DSO, and the `top`
/// symbols by self time.
fn perf_tables(
    perf: &profile::PerfProfile,
    run: &str,
    cpu_per_query: f64,
    top: usize,
) -> [(String, Table); 2] {
    let mut dsos = Table::new(&["DSO", "Share of proxy CPU samples"]);
    for (dso, pct) in perf.by_dso.iter().take(8) {
        dsos.row(vec![dso.clone(), format!("{pct:.1}%")]);
    }
    let mut symbols = Table::new(&["Self %", "DSO", "Symbol"]);
    for s in perf.top_self.iter().take(top) {
        symbols.row(vec![
            format!("{:.1}%", s.percent),
            s.dso.clone(),
            s.name.clone(),
        ]);
    }
    [
        (
            format!(
                "perf: proxy CPU by DSO ({run}, {} samples, {cpu_per_query:.1} us proxy CPU/query)",
                perf.samples
            ),
            dsos,
        ),
        (format!("perf: top symbols by self time ({run})"), symbols),
    ]
}

/// Connection churn: each side's rate, its ratio to side `reference`, and
/// the proxy's CPU per cycle.
fn churn_table(c: &ChurnResult, reference: &str) -> Table {
    let versus = format!("vs {reference}");
    let mut t = Table::new(&[
        "Endpoint",
        "Client threads",
        "Cycles/s",
        &versus,
        "Proxy CPU/cycle us (user+sys)",
        "Errors",
    ]);
    for side in &c.sides {
        let cycles = side.cycles().max(1) as f64;
        t.row(vec![
            endpoint_name(side.label).to_string(),
            c.threads.to_string(),
            num(side.rate(), 0),
            c.ratio(side.label, reference)
                .map(ratio)
                .unwrap_or_default(),
            side.proxy_cpu
                .map(|cpu| {
                    format!(
                        "{:.0} ({:.0}+{:.0})",
                        cpu.total_us() as f64 / cycles,
                        cpu.user_us as f64 / cycles,
                        cpu.sys_us as f64 / cycles
                    )
                })
                .unwrap_or_default(),
            side.errors().to_string(),
        ]);
    }
    t
}

fn generated_markdown(
    opts: &Options,
    machine: &machine::Machine,
    r: &Results,
    summary: &Table,
    took: Duration,
) -> String {
    let mut md = String::new();
    md.push_str("## Last run\n\n");
    md.push_str(&format!(
        "Command: `bench/run` (its measurements took {} min {:02} s, the build before them not counted). \
         Each sysbench run lasts {} s; \
         each comparison is {} rounds, direct and proxy alternating in the order \
         direct, proxy, proxy, direct (A B B A cancels linear drift); the figures are means over \
         the runs of a side, latency percentiles come from the merged histograms.\n\n",
        took.as_secs() / 60,
        took.as_secs() % 60,
        opts.seconds,
        opts.rounds
    ));
    md.push_str("### Machine\n\n");
    md.push_str(&machine.markdown());
    md.push_str("\n### Targets\n\n");
    md.push_str(&summary.markdown());
    for (title, table) in detail_tables(r) {
        md.push_str(&format!("\n### {title}\n\n"));
        md.push_str(&table.markdown());
    }
    if !r.errors.is_empty() {
        md.push_str("\n### Errors\n\n");
        for (section, e) in &r.errors {
            md.push_str(&format!("- {section}: `{}`\n", e.replace('\n', " ")));
        }
    }
    md
}

/// docs/PERFORMANCE.md when it does not exist yet.
fn skeleton() -> String {
    format!(
        "# Performance\n\nMeasured by `bench/run` (see the README, section Benchmarks).\n\n{}\n{}\n",
        report::BEGIN,
        report::END
    )
}
