//! `mysql-proxy-bench callgrind` (run it with `bench/callgrind`): how many
//! instructions the proxy executes per relayed point select and per connect
//! cycle, counted by valgrind's callgrind, for one build and optionally a
//! baseline build.
//!
//! Each figure is the difference of two runs, so that what a run costs once
//! (start-up under valgrind, loading the plugins, the first connections,
//! shutdown) cancels:
//!
//! - per point select: the proxy (`--event-threads=1`) under
//!   `valgrind --tool=callgrind` while sysbench `oltp_point_select` (8 client
//!   threads) runs N events, then a fresh proxy while it runs 2N;
//!   (Ir(2N) - Ir(N)) / N (N = 20,000 by default: one query per event);
//! - per connect cycle: the same with a sysbench Lua script that connects,
//!   runs `SELECT 1` and disconnects (COM_QUIT) per event, M and 2M events
//!   (M = 3,000 by default).
//!
//! With `--lua`, the measured build runs again with each script of the
//! benchmark's Lua section (a `read_query` that returns, the timing script,
//! `connect_server` + `read_auth` hooks that return), each a build of its own
//! in the tables; with `--top=K`, the K functions whose own instructions per
//! point select differ most from the first build's are listed for each build
//! (`callgrind_annotate` of the median round's two runs, the difference
//! divided by N).
//!
//! Each pair of runs is repeated (3 rounds by default, the builds
//! alternating) and the median is shown with the range. Ir counts every
//! thread of the proxy (user space only: the kernel's work is not counted).
//! Everything runs against a private MariaDB started here; the binaries of
//! each build are copied first, so a rebuild during the measurement cannot
//! change what is measured. Raw outputs (callgrind.out files for
//! `callgrind_annotate`, sysbench reports, valgrind logs) go to
//! bench/results/callgrind/.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mysql_proxy_tests::net::port_listening;
use mysql_proxy_tests::process::{kill, signal_pid, spawn, tail, wait_timeout};
use mysql_proxy_tests::{free_port, MariaDb};

use crate::report::{num, Table};

const USAGE: &str = "usage: bench/callgrind [--build-dir=DIR] [--baseline=DIR] [--no-build]
                       [--point-selects=N] [--connects=M] [--threads=T] [--rounds=R]
                       [--proxy-arg=ARG ...] [--sysbench-arg=ARG ...] [--lua] [--top=K]
  Instructions (callgrind Ir, all threads of the proxy, --event-threads=1)
  per relayed point select and per connect + SELECT 1 + quit cycle, each the
  difference of two runs (N and 2N events; M and 2M) divided by N (M); the
  median of R rounds, the builds alternating.
  --build-dir=DIR  the build to measure: mysql-proxy and its plugins
                   (lib*.so); default target/release
  --baseline=DIR   another build to compare with (e.g. a copy of the previous
                   commit's target/release)
  --no-build       (bench/callgrind) do not build this driver first
  --point-selects=N  default 20000 (0: skip)
  --connects=M       default 3000 (0: skip)
  --threads=T        sysbench client threads, default 8
  --rounds=R         repetitions of each pair of runs, default 3
  --proxy-arg=ARG    an argument for the measured build's mysql-proxy only
                     (repeatable), e.g. --proxy-arg=--proxy-lua-script=s.lua
                     with --baseline=target/release: the cost of a script
  --sysbench-arg=ARG  an option for every sysbench run (repeatable), e.g.
                     --sysbench-arg=--db-ps-mode=disable: queries as text
  --lua              also the measured build with each script of bench/run's
                     lua section (read_query returns; the timing script;
                     connect_server + read_auth return), compared with the
                     first build (the baseline, else the build without script)
  --top=K            for each build, the K functions whose own instructions
                     per point select differ most from the first build's
  Raw outputs go to bench/results/callgrind/.";

/// Rows of the sysbench table the point selects read (the proxy's work does
/// not depend on the table's size).
const TABLE_SIZE: u32 = 10_000;

/// The connect cycle, one per sysbench event.
const CONNECT_SCRIPT: &str = r#"-- connect + SELECT 1 + quit per event (bench/callgrind)
function thread_init()
   drv = sysbench.sql.driver()
end

function event()
   local con = drv:connect()
   con:query("SELECT 1")
   con:disconnect()
end
"#;

/// Set by SIGINT, SIGTERM and SIGHUP: every wait gives up, and what was
/// started is stopped on the way out.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

fn check_interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Options {
    build_dir: PathBuf,
    baseline: Option<PathBuf>,
    point_selects: u64,
    connects: u64,
    threads: u32,
    rounds: u32,
    /// Extra arguments of the measured build's proxy.
    proxy_args: Vec<String>,
    /// Options of every sysbench run.
    sysbench_args: Vec<String>,
    /// Also the measured build with each of the Lua section's scripts.
    lua: bool,
    /// Functions listed per build (0: none).
    top: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            build_dir: mysql_proxy_tests::build_dir(),
            baseline: None,
            point_selects: 20_000,
            connects: 3_000,
            threads: 8,
            rounds: 3,
            proxy_args: Vec::new(),
            sysbench_args: Vec::new(),
            lua: false,
            top: 0,
        };
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg.as_str(), None),
            };
            let int = |v: Option<&str>| -> Result<u64, String> {
                v.and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number: {arg}"))
            };
            let dir = |v: Option<&str>| -> Result<PathBuf, String> {
                let dir = v
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("{name} needs a build directory"))?;
                if !Path::new(dir).join("mysql-proxy").is_file() {
                    return Err(format!("{arg}: no mysql-proxy binary there"));
                }
                Ok(PathBuf::from(dir))
            };
            match name {
                "--build-dir" => o.build_dir = dir(value)?,
                "--baseline" => o.baseline = Some(dir(value)?),
                "--point-selects" => o.point_selects = int(value)?,
                "--connects" => o.connects = int(value)?,
                "--threads" => o.threads = int(value)?.clamp(1, 64) as u32,
                "--rounds" => o.rounds = int(value)?.clamp(1, 20) as u32,
                "--proxy-arg" => o
                    .proxy_args
                    .push(value.ok_or("--proxy-arg needs a value")?.to_string()),
                "--sysbench-arg" => o
                    .sysbench_args
                    .push(value.ok_or("--sysbench-arg needs a value")?.to_string()),
                "--lua" => o.lua = true,
                "--top" => o.top = int(value)? as usize,
                // Handled by bench/callgrind.
                "--no-build" => {}
                "--help" | "-h" => return Err(String::new()),
                _ => return Err(format!("unknown option {arg}")),
            }
        }
        if !o.build_dir.join("mysql-proxy").is_file() {
            return Err(format!(
                "{}: no mysql-proxy binary there (cargo build --release --workspace)",
                o.build_dir.display()
            ));
        }
        if o.point_selects == 0 && o.connects == 0 {
            return Err("nothing to measure (--point-selects=0 and --connects=0)".into());
        }
        Ok(o)
    }
}

/// What a run drives through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    PointSelect,
    Connect,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::PointSelect => "point_select",
            Workload::Connect => "connect",
        }
    }
}

/// One build to measure: where it came from and the copy that runs.
struct Build {
    label: &'static str,
    /// What the tables say it is: the directory, and the script it runs.
    shown: String,
    source: PathBuf,
    copy: PathBuf,
    /// Extra arguments of its proxy.
    args: Vec<String>,
}

/// One proxy process under callgrind during one sysbench run.
#[derive(Clone, Debug)]
struct Run {
    round: u32,
    build: &'static str,
    workload: Workload,
    events: u64,
    /// Instructions of the whole proxy process (callgrind's `summary:`).
    ir: u64,
    queries: u64,
    seconds: f64,
}

/// Per-event figures of one build for one workload in one round.
struct Figure {
    per_event: f64,
    /// 2 Ir(N) - Ir(2N): what the run cost apart from the events.
    fixed: f64,
}

pub fn main(args: &[String]) -> ExitCode {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mysql-proxy-bench callgrind: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    install_signal_handlers();
    match measure(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mysql-proxy-bench callgrind: {e}");
            if INTERRUPTED.load(Ordering::SeqCst) {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn say(started: Instant, msg: &str) {
    eprintln!(
        "[callgrind {:>6.1}s] {msg}",
        started.elapsed().as_secs_f64()
    );
}

fn measure(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let valgrind =
        tool_version("valgrind").map_err(|e| format!("{e} (apt-get install valgrind)"))?;
    let sysbench = crate::sysbench::check_installed()?;
    let root = crate::repo_root();
    let results = root.join("bench").join("results").join("callgrind");
    let _ = fs::remove_dir_all(&results);
    fs::create_dir_all(&results).map_err(|e| format!("creating {}: {e}", results.display()))?;
    let script = results.join("connect.lua");
    fs::write(&script, CONNECT_SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
    say(
        started,
        &format!(
            "{valgrind}, {sysbench}; raw outputs in {}",
            results.display()
        ),
    );

    // The binaries as they are now, removed at the end.
    let copies = RemovedOnDrop(results.join("builds"));
    let mut builds = Vec::new();
    let sources = opts
        .baseline
        .iter()
        .map(|dir| ("baseline", dir))
        .chain([("this build", &opts.build_dir)]);
    for (label, source) in sources {
        let copy = copies.0.join(label.replace(' ', "-"));
        copy_build(source, &copy)?;
        say(started, &format!("{label}: {}", describe_build(source)));
        let args = if label == "this build" {
            opts.proxy_args.clone()
        } else {
            Vec::new()
        };
        if !args.is_empty() {
            say(started, &format!("{label} runs with {}", args.join(" ")));
        }
        builds.push(Build {
            label,
            shown: format!("{label} ({})", source.display()),
            source: source.clone(),
            copy,
            args,
        });
    }
    if opts.lua {
        for script in crate::lua::SCRIPTS {
            let file = results.join(format!("{}.lua", script.label));
            fs::write(&file, script.text)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            let mut args = opts.proxy_args.clone();
            args.push(format!("--proxy-lua-script={}", file.display()));
            say(
                started,
                &format!("{}: this build with {}", script.label, args.join(" ")),
            );
            builds.push(Build {
                label: script.label,
                shown: format!("this build, Lua: {}", script.title),
                source: opts.build_dir.clone(),
                copy: copies.0.join("this-build"),
                args,
            });
        }
    }

    let db = MariaDb::builder().start();
    check_interrupted()?;
    say(started, &format!("MariaDB on port {}", db.port()));
    if opts.point_selects > 0 {
        say(
            started,
            &format!("sysbench prepare: 1 table x {TABLE_SIZE} rows"),
        );
        let prepare = sysbench_command("oltp_point_select", db.port(), 1, &[], None);
        run_sysbench(prepare, &results.join("sysbench-prepare.txt"), true)?;
    }

    let mut runs = Vec::new();
    for round in 1..=opts.rounds {
        // Alternating: A B, B A, ...
        let order: Vec<&Build> = if round % 2 == 1 {
            builds.iter().collect()
        } else {
            builds.iter().rev().collect()
        };
        for build in order {
            for (workload, unit) in [
                (Workload::PointSelect, opts.point_selects),
                (Workload::Connect, opts.connects),
            ] {
                if unit == 0 {
                    continue;
                }
                for events in [unit, 2 * unit] {
                    let run =
                        run_once(round, build, workload, events, opts, &db, &script, &results)?;
                    say(
                        started,
                        &format!(
                            "round {round} {:<10} {:<12} {:>6} events: {} Ir ({} queries, {:.1} s)",
                            build.label,
                            workload.name(),
                            events,
                            run.ir,
                            run.queries,
                            run.seconds
                        ),
                    );
                    runs.push(run);
                }
            }
        }
    }
    drop(db);

    let summary = summary_table(&builds, &runs, opts);
    let raw = raw_table(&runs);
    let mut text = format!(
        "\ncallgrind: instructions executed by mysql-proxy (--event-threads=1, all threads), \
         sysbench with {} client thread(s); each figure is (Ir(2N) - Ir(N)) / N, N = {} point \
         selects, {} connect cycles; median of {} round(s) [min - max]\n\n{}\n\
         raw totals (Ir of the whole proxy process; fixed = 2 Ir(N) - Ir(2N): start-up, \
         shutdown, first connections)\n\n{}",
        opts.threads,
        opts.point_selects,
        opts.connects,
        opts.rounds,
        summary.markdown(),
        raw.markdown()
    );
    if opts.top > 0 && opts.point_selects > 0 {
        say(started, "callgrind_annotate of the median rounds");
        for (title, table) in function_tables(&builds, &runs, opts, &results)? {
            text.push_str(&format!("\n{title}\n\n{}", table.markdown()));
        }
    }
    print!("{text}");
    let _ = fs::write(results.join("summary.md"), &text);
    say(
        started,
        &format!("done in {:.0} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// `TOOL --version`, first line.
fn tool_version(tool: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| format!("{tool} not found ({e})"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// Copies `mysql-proxy` and the plugin libraries (`lib*.so`) of a build.
fn copy_build(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = name == "mysql-proxy" || (name.starts_with("lib") && name.ends_with(".so"));
        if !wanted {
            continue;
        }
        fs::copy(entry.path(), to.join(&name))
            .map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
    }
    if !to.join("libproxy.so").is_file() {
        return Err(format!(
            "{}: no libproxy.so (the proxy plugin) beside mysql-proxy",
            from.display()
        ));
    }
    Ok(())
}

/// The directory and when its binary was built, for the log.
fn describe_build(dir: &Path) -> String {
    let age = fs::metadata(dir.join("mysql-proxy"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|d| format!(" (mysql-proxy built {} min ago)", d.as_secs() / 60))
        .unwrap_or_default();
    format!("{}{age}", dir.display())
}

/// A sysbench command against 127.0.0.1:`port`: `script` is a built-in
/// workload or a Lua file, with `options` beyond these; `events` None means
/// `prepare`.
fn sysbench_command(
    script: &str,
    port: u16,
    threads: u32,
    options: &[String],
    events: Option<u64>,
) -> Command {
    let mut cmd = Command::new("sysbench");
    cmd.arg(script)
        .arg("--db-driver=mysql")
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={port}"))
        .arg("--mysql-user=root")
        .arg("--mysql-password=")
        .arg("--mysql-db=test")
        .arg(format!("--threads={threads}"));
    if script.starts_with("oltp_") {
        cmd.arg("--tables=1")
            .arg(format!("--table-size={TABLE_SIZE}"))
            .arg("--rand-type=uniform");
    }
    cmd.args(options);
    match events {
        None => {
            cmd.arg("prepare");
        }
        Some(n) => {
            cmd.arg(format!("--events={n}"))
                .arg("--time=0")
                .arg("--report-interval=0")
                .arg("--histogram=on")
                .arg("run");
        }
    }
    cmd
}

/// Runs sysbench to its end (or an interruption); its output goes to `log`.
/// Returns the report of a `run` (None for `prepare`).
fn run_sysbench(
    mut cmd: Command,
    log: &Path,
    prepare: bool,
) -> Result<Option<crate::sysbench::Report>, String> {
    let out = fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let shown = format!("{cmd:?}");
    let mut child = Guard(spawn(cmd).map_err(|e| format!("starting {shown}: {e}"))?);
    let status =
        wait_for(&mut child.0, Duration::from_secs(900)).map_err(|e| format!("{shown}: {e}"))?;
    check_interrupted()?;
    let text = fs::read_to_string(log).unwrap_or_default();
    if !status.success() || text.contains("FATAL") {
        return Err(format!(
            "{shown} failed ({status}); see {}\n{}",
            log.display(),
            tail(&text, 15)
        ));
    }
    if prepare {
        return Ok(None);
    }
    let report = crate::sysbench::parse(&text)
        .map_err(|e| format!("parsing the sysbench report {}: {e}", log.display()))?;
    if report.errors > 0 || report.reconnects > 0 {
        return Err(format!(
            "sysbench reported {} errors and {} reconnects; see {}",
            report.errors,
            report.reconnects,
            log.display()
        ));
    }
    Ok(Some(report))
}

/// A directory removed (with its content) when dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills (SIGKILL) and reaps its child when dropped, unless it has exited.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// Waits for `child` to exit, at most `bound`; gives up when interrupted.
fn wait_for(child: &mut Child, bound: Duration) -> Result<std::process::ExitStatus, String> {
    let began = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting: {e}")),
        }
        check_interrupted()?;
        if began.elapsed() > bound {
            return Err(format!("still running after {bound:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What the files of a run are named after.
fn run_name(round: u32, build: &str, workload: Workload, events: u64) -> String {
    format!(
        "r{round}-{}-{}-{events}",
        build.replace(' ', "-"),
        workload.name()
    )
}

/// One proxy under callgrind, one sysbench run through it, the proxy stopped
/// (SIGTERM: callgrind writes its counts when the process exits).
#[allow(clippy::too_many_arguments)]
fn run_once(
    round: u32,
    build: &Build,
    workload: Workload,
    events: u64,
    opts: &Options,
    db: &MariaDb,
    script: &Path,
    results: &Path,
) -> Result<Run, String> {
    check_interrupted()?;
    let name = run_name(round, build.label, workload, events);
    let out_file = results.join(format!("callgrind.out.{name}"));
    let valgrind_log = results.join(format!("{name}.valgrind.log"));
    let proxy_log = results.join(format!("{name}.proxy.log"));
    let port = free_port();
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--log-file={}", valgrind_log.display()))
        .arg(build.copy.join("mysql-proxy"))
        .arg(format!("--plugin-dir={}", build.copy.display()))
        .arg("--plugins=proxy")
        .arg(format!("--proxy-address=127.0.0.1:{port}"))
        .arg(format!("--proxy-backend-addresses={}", db.addr()))
        .arg("--log-level=critical")
        .arg("--event-threads=1")
        .args(&build.args);
    let log = fs::File::create(&proxy_log)
        .map_err(|e| format!("creating {}: {e}", proxy_log.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("opening {}: {e}", proxy_log.display()))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    let shown = format!("{cmd:?}");
    let mut proxy = Guard(spawn(cmd).map_err(|e| format!("starting {shown}: {e}"))?);
    let pid = proxy.0.id();

    // Valgrind takes seconds to start a large binary with its debug info.
    let began = Instant::now();
    while !port_listening(port) {
        check_interrupted()?;
        if let Ok(Some(status)) = proxy.0.try_wait() {
            return Err(format!(
                "mysql-proxy under valgrind exited with {status} before listening ({})\n{}\n{}",
                build.source.display(),
                tail(&fs::read_to_string(&proxy_log).unwrap_or_default(), 15),
                tail(&fs::read_to_string(&valgrind_log).unwrap_or_default(), 15)
            ));
        }
        if began.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "mysql-proxy under valgrind did not listen within 120 s: {shown}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }

    let sb_script = match workload {
        Workload::PointSelect => "oltp_point_select".to_string(),
        Workload::Connect => script.display().to_string(),
    };
    let ran = Instant::now();
    let report = run_sysbench(
        sysbench_command(
            &sb_script,
            port,
            opts.threads,
            &opts.sysbench_args,
            Some(events),
        ),
        &results.join(format!("{name}.sysbench.txt")),
        false,
    )?
    .unwrap_or_default();
    let seconds = ran.elapsed().as_secs_f64();
    if report.transactions != events {
        return Err(format!(
            "sysbench ran {} events where {events} were asked for",
            report.transactions
        ));
    }

    // A graceful shutdown; callgrind writes its file as the process exits.
    signal_pid(pid, libc::SIGTERM);
    let status = match wait_timeout(&mut proxy.0, Duration::from_secs(60)) {
        Some(status) => status,
        None => {
            return Err(format!(
                "mysql-proxy under valgrind (pid {pid}) did not exit within 60 s of SIGTERM"
            ))
        }
    };
    check_interrupted()?;
    if !status.success() {
        return Err(format!(
            "mysql-proxy under valgrind exited with {status}; see {}",
            proxy_log.display()
        ));
    }
    let ir = callgrind_total(&out_file)?;
    Ok(Run {
        round,
        build: build.label,
        workload,
        events,
        ir,
        queries: report.queries,
        seconds,
    })
}

/// The instruction count of a callgrind output file (`summary:` or `totals:`).
fn callgrind_total(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("callgrind wrote no {}", path.display()),
        _ => format!("reading {}: {e}", path.display()),
    })?;
    let events = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .map(str::split_whitespace)
        .and_then(|mut e| e.next())
        .unwrap_or_default();
    if events != "Ir" {
        return Err(format!(
            "{}: first event is {events:?}, not Ir",
            path.display()
        ));
    }
    ["summary:", "totals:"]
        .iter()
        .find_map(|label| {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .ok_or_else(|| format!("{}: no summary: or totals: line", path.display()))
}

fn find(runs: &[Run], round: u32, build: &str, workload: Workload, events: u64) -> Option<u64> {
    runs.iter()
        .find(|r| {
            r.round == round && r.build == build && r.workload == workload && r.events == events
        })
        .map(|r| r.ir)
}

/// (Ir(2N) - Ir(N)) / N, and 2 Ir(N) - Ir(2N), of one round.
fn figure(runs: &[Run], round: u32, build: &str, workload: Workload, unit: u64) -> Option<Figure> {
    if unit == 0 {
        return None;
    }
    let one = find(runs, round, build, workload, unit)? as f64;
    let two = find(runs, round, build, workload, 2 * unit)? as f64;
    Some(Figure {
        per_event: (two - one) / unit as f64,
        fixed: 2.0 * one - two,
    })
}

/// The per-event figures of every round, sorted.
fn per_event(runs: &[Run], build: &str, workload: Workload, unit: u64) -> Vec<f64> {
    let mut all: Vec<f64> = runs
        .iter()
        .map(|r| r.round)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|round| figure(runs, round, build, workload, unit))
        .map(|f| f.per_event)
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

/// The round whose per-event figure is the median (the lower one of an even
/// count).
fn median_round(runs: &[Run], build: &str, workload: Workload, unit: u64) -> Option<u32> {
    let mut rounds: Vec<(f64, u32)> = runs
        .iter()
        .map(|r| r.round)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|round| Some((figure(runs, round, build, workload, unit)?.per_event, round)))
        .collect();
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    rounds.get(rounds.len().checked_sub(1)? / 2).map(|r| r.1)
}

/// Own instructions (self cost) of each function in a callgrind output, by
/// name, from `callgrind_annotate`, and the objects it named for each (a
/// generic function may be in several, and a function's lines, one per
/// source file its code came from, name an object only now and then).
fn functions(path: &Path) -> Result<FunctionCosts, String> {
    let mut cmd = Command::new("callgrind_annotate");
    cmd.args([
        "--inclusive=no",
        "--threshold=100",
        "--auto=no",
        "--show-percs=no",
    ])
    .arg(path);
    let out = cmd
        .output()
        .map_err(|e| format!("callgrind_annotate {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_annotate {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut costs = FunctionCosts::default();
    // "1,234,567  src/x.rs:mysql_proxy_core::session::... [/path/to/mysql-proxy]"
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((count, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(ir) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim();
        if rest == "PROGRAM TOTALS" {
            continue;
        }
        // The source file (before the first ':') is dropped, the object's
        // path shortened to its file name.
        let function = rest.split_once(':').map_or(rest, |(_, f)| f);
        let name = match function.rsplit_once(" [") {
            Some((name, object)) => {
                let object = object.trim_end_matches(']');
                let object = object.rsplit('/').next().unwrap_or(object);
                costs
                    .objects
                    .entry(name.to_string())
                    .or_default()
                    .insert(object.to_string());
                name
            }
            None => function,
        };
        *costs.ir.entry(name.to_string()).or_default() += ir as f64;
    }
    if costs.ir.is_empty() {
        return Err(format!(
            "callgrind_annotate {}: no function counts",
            path.display()
        ));
    }
    Ok(costs)
}

/// Instructions by function name, and the objects seen for each.
#[derive(Default)]
struct FunctionCosts {
    ir: BTreeMap<String, f64>,
    objects: BTreeMap<String, BTreeSet<String>>,
}

impl FunctionCosts {
    fn get(&self, function: &str) -> f64 {
        self.ir.get(function).copied().unwrap_or(0.0)
    }

    fn total(&self) -> f64 {
        self.ir.values().sum()
    }
}

/// One build's functions per point select: the median round's
/// (Ir(2N) - Ir(N)) / N of each.
struct BuildFunctions<'a> {
    build: &'a Build,
    round: u32,
    per_event: FunctionCosts,
}

fn build_functions<'a>(
    build: &'a Build,
    runs: &[Run],
    unit: u64,
    results: &Path,
) -> Result<Option<BuildFunctions<'a>>, String> {
    let Some(round) = median_round(runs, build.label, Workload::PointSelect, unit) else {
        return Ok(None);
    };
    let file = |events| {
        let name = run_name(round, build.label, Workload::PointSelect, events);
        results.join(format!("callgrind.out.{name}"))
    };
    let mut per_event = functions(&file(2 * unit))?;
    for (function, ir) in functions(&file(unit))?.ir {
        *per_event.ir.entry(function).or_default() -= ir;
    }
    for ir in per_event.ir.values_mut() {
        *ir /= unit as f64;
    }
    Ok(Some(BuildFunctions {
        build,
        round,
        per_event,
    }))
}

/// For each build, the `opts.top` functions whose own instructions per point
/// select differ most from the first build's (for the first build, its
/// costliest), and all functions together.
fn function_tables(
    builds: &[Build],
    runs: &[Run],
    opts: &Options,
    results: &Path,
) -> Result<Vec<(String, Table)>, String> {
    let mut all = Vec::new();
    for b in builds {
        all.extend(build_functions(b, runs, opts.point_selects, results)?);
    }
    let first = all.first().filter(|_| all.len() > 1);
    Ok(all
        .iter()
        .map(|this| {
            let against = first.filter(|f| f.build.label != this.build.label);
            function_table(this, against, opts.top)
        })
        .collect())
}

fn function_table(
    this: &BuildFunctions<'_>,
    against: Option<&BuildFunctions<'_>>,
    top: usize,
) -> (String, Table) {
    let own = &this.per_event;
    let base = against.map(|a| &a.per_event);
    let difference = |function: &str| own.get(function) - base.map_or(0.0, |b| b.get(function));
    let mut names: Vec<&String> = own.ir.keys().collect();
    if let Some(base) = base {
        names.extend(base.ir.keys().filter(|f| !own.ir.contains_key(*f)));
    }
    names.sort_by(|a, b| difference(b).total_cmp(&difference(a)));
    let shown = |function: &str| {
        let mut objects = BTreeSet::new();
        for costs in std::iter::once(own).chain(base) {
            objects.extend(costs.objects.get(function).into_iter().flatten());
        }
        let objects: Vec<&str> = objects.into_iter().map(String::as_str).collect();
        let name = if objects.is_empty() {
            function.to_string()
        } else {
            format!("{function} [{}]", objects.join(", "))
        };
        // (a `|` would end the Markdown table's cell)
        name.replace('|', "\\|")
    };
    let mut headers = vec!["Function [objects]", "Ir per point select"];
    if let Some(a) = against {
        headers.extend([a.build.label, "Difference"]);
    }
    let mut t = Table::new(&headers);
    let mut row = |name: String, own: f64, base: Option<f64>| {
        let mut cells = vec![name, thousands(own)];
        if let Some(base) = base {
            cells.extend([thousands(base), thousands(own - base)]);
        }
        t.row(cells);
    };
    for function in names.into_iter().take(top) {
        row(
            shown(function),
            own.get(function),
            base.map(|b| b.get(function)),
        );
    }
    row(
        "(all functions)".into(),
        own.total(),
        base.map(FunctionCosts::total),
    );
    let order = match against {
        Some(a) => format!("the {top} that differ most from {}", a.build.label),
        None => format!("the {top} costliest"),
    };
    (
        format!(
            "{}: own instructions per point select by function, {order} (round {})",
            this.build.shown, this.round
        ),
        t,
    )
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// 12345.6 -> "12,346".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == digits.len() % 3 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// "5,230 [5,217 - 5,280]" (the range only with more than one round).
fn median_range(sorted: &[f64]) -> String {
    match (median(sorted), sorted.first(), sorted.last()) {
        (Some(m), Some(lo), Some(hi)) if sorted.len() > 1 => {
            format!("{} [{} - {}]", thousands(m), thousands(*lo), thousands(*hi))
        }
        (Some(m), _, _) => thousands(m),
        _ => String::new(),
    }
}

fn versus(this: f64, base: f64) -> String {
    let r = this / base;
    format!("{}x ({:+.1} %)", num(r, 3), (r - 1.0) * 100.0)
}

/// The build the others are compared with: the first, when there are several
/// (the baseline if given, else the build without script).
fn reference(builds: &[Build]) -> Option<&Build> {
    builds.first().filter(|_| builds.len() > 1)
}

fn summary_table(builds: &[Build], runs: &[Run], opts: &Options) -> Table {
    let base = reference(builds);
    let name = base.map(|b| b.label).unwrap_or("baseline");
    let point_vs = format!("vs {name} (point select)");
    let connect_vs = format!("vs {name} (connect cycle)");
    let mut t = Table::new(&[
        "Build",
        "Ir per point select",
        "Ir per connect cycle",
        &point_vs,
        &connect_vs,
    ]);
    for b in builds {
        let point = per_event(runs, b.label, Workload::PointSelect, opts.point_selects);
        let connect = per_event(runs, b.label, Workload::Connect, opts.connects);
        let rel = |this: &[f64], workload, unit| match (median(this), base) {
            (Some(this), Some(base)) if b.label != base.label => {
                median(&per_event(runs, base.label, workload, unit))
                    .map(|base| versus(this, base))
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        t.row(vec![
            b.shown.clone(),
            median_range(&point),
            median_range(&connect),
            rel(&point, Workload::PointSelect, opts.point_selects),
            rel(&connect, Workload::Connect, opts.connects),
        ]);
    }
    t
}

fn raw_table(runs: &[Run]) -> Table {
    let mut t = Table::new(&[
        "Round",
        "Build",
        "Workload",
        "Events",
        "Ir total",
        "Queries (sysbench)",
        "Run s",
        "Ir per event",
        "Fixed Ir",
    ]);
    for r in runs {
        let unit = runs
            .iter()
            .filter(|o| o.round == r.round && o.build == r.build && o.workload == r.workload)
            .map(|o| o.events)
            .min()
            .unwrap_or(r.events);
        let pair = (r.events == 2 * unit)
            .then(|| figure(runs, r.round, r.build, r.workload, unit))
            .flatten();
        t.row(vec![
            r.round.to_string(),
            r.build.to_string(),
            r.workload.name().to_string(),
            r.events.to_string(),
            thousands(r.ir as f64),
            r.queries.to_string(),
            num(r.seconds, 1),
            pair.as_ref()
                .map(|f| thousands(f.per_event))
                .unwrap_or_default(),
            pair.as_ref()
                .map(|f| thousands(f.fixed))
                .unwrap_or_default(),
        ]);
    }
    t
}
