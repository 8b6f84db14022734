//! What Lua scripting (`--proxy-lua-script`) costs: the same proxy build with
//! and without a script, alternating in the same run, as ratios and as proxy
//! CPU added per query or per connection:
//!
//! - point selects (sysbench `oltp_point_select`, 8 client threads): no
//!   script, a script whose `read_query` only returns, and the classic timing
//!   script (each query queued with `proxy.queries:append`, its
//!   `query_time` and `response_time` read in `read_query_result`);
//! - connect + `SELECT 1` + quit cycles (as the connect section runs them):
//!   no script, and a script whose `connect_server` and `read_auth` return;
//! - read/write splitting (`etc/lua/rw-splitting.lua`, skipped when the file
//!   is not there) on `oltp_read_only` over one read/write and two read-only
//!   backends: three private MariaDB servers, each with the sysbench tables
//!   of its own (they are not replicas), against the proxy without a script
//!   over the read/write backend alone; with perf installed, a profile of
//!   the script's proxy during one more run.
//!
//! The scripts are written to bench/results/ (`bench/callgrind --lua` runs
//! the same ones).

use std::fs;
use std::path::Path;
use std::time::Duration;

use mysql_proxy_tests::{MariaDb, Proxy};

use crate::oltp::{self, Comparison, Endpoint, Side};
use crate::procfs::Cpu;
use crate::profile::{self, PerfProfile};
use crate::report::{num, ratio, Table};
use crate::{sysbench, ChurnResult, ChurnSide, Log, Options};

/// A script measured against no script.
pub struct Script {
    /// The endpoint's label (and the script's file name, with `.lua`).
    pub label: &'static str,
    /// How tables show it.
    pub title: &'static str,
    pub text: &'static str,
}

/// A `read_query` that decides nothing: the hook call alone.
pub const READ_QUERY_RETURNS: Script = Script {
    label: "lua-read-query",
    title: "read_query returns",
    text: "-- bench: a read_query hook that decides nothing
function read_query(packet)
	return
end
",
};

/// The classic timing script of MySQL Proxy 0.8's tutorials.
pub const TIMING: Script = Script {
    label: "lua-timing",
    title: "timing script (queries:append, query_time, response_time)",
    text: "-- bench: the classic timing script; each query queued (its result
-- streamed to the client), its times read when its result comes
local query_time, response_time = 0, 0

function read_query(packet)
	proxy.queries:append(1, packet, { resultset_is_needed = false })
	return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
	query_time = query_time + inj.query_time
	response_time = response_time + inj.response_time
end
",
};

/// Hooks of the connection's set-up that decide nothing.
pub const CONNECT_HOOKS: Script = Script {
    label: "lua-connect-hooks",
    title: "connect_server + read_auth return",
    text: "-- bench: the connection's set-up hooks, deciding nothing
function connect_server()
	return
end

function read_auth()
	return
end
",
};

/// Every script above, for `bench/callgrind --lua`.
pub const SCRIPTS: &[&Script] = &[&READ_QUERY_RETURNS, &TIMING, &CONNECT_HOOKS];

/// Client threads of the point selects and of the read/write split.
const THREADS: u32 = 8;

/// The read/write splitting script, from the repository's root.
const RW_SPLITTING: &str = "etc/lua/rw-splitting.lua";

/// The pool the read/write splitting script needs (its header: room for every
/// client's connection, and idle read/write connections kept while their
/// sessions read elsewhere); the proxy without a script runs with it too.
const SPLIT_POOL: &[&str] = &["--proxy-pool-max-idle=64", "--proxy-pool-min-idle=64"];

/// The `oltp_read_only` runs of the split: a title and sysbench's options.
/// Statements go as text (the script routes COM_QUERY; a prepared statement
/// keeps its session on the read/write backend).
const SPLIT_LOADS: &[(&str, &[&str])] = &[
    (
        "oltp_read_only --skip_trx=on (14 reads per event, no transaction)",
        &["--db-ps-mode=disable", "--skip_trx=on"],
    ),
    (
        "oltp_read_only (14 reads in BEGIN ... COMMIT)",
        &["--db-ps-mode=disable"],
    ),
];

/// The endpoint labels of the split.
const RW_ONLY: &str = "rw-only";
const SPLIT: &str = "rw-splitting";

/// One `oltp_read_only` comparison of the split.
pub struct Split {
    pub title: &'static str,
    pub comparison: Comparison,
    /// SELECTs each read-only backend ran during the comparison (only the
    /// script's side reaches them).
    pub ro_selects: Vec<u64>,
}

/// What the section measured; a part that failed is missing, with its error.
#[derive(Default)]
pub struct LuaResult {
    /// Sides "no-script" and the labels of [`READ_QUERY_RETURNS`] and [`TIMING`].
    pub point_select: Option<Comparison>,
    /// Sides "no script" and [`CONNECT_HOOKS`]'s title.
    pub churn: Option<ChurnResult>,
    pub split: Vec<Split>,
    /// Why the read/write split was not measured.
    pub split_skipped: Option<String>,
    /// The script's proxy under perf during the first load, and its CPU per
    /// query there.
    pub split_perf: Option<(PerfProfile, f64)>,
    pub errors: Vec<String>,
}

impl LuaResult {
    /// `(throughput ratio, proxy CPU per query added, us)` of side `label`
    /// of the point selects against no script.
    fn point_select_cost(&self, label: &str) -> Option<(f64, f64)> {
        let c = self.point_select.as_ref()?;
        versus(c.side(label), c.side("no-script"))
    }

    /// `(rate ratio, proxy CPU per cycle added, us)` of the connect hooks.
    fn churn_cost(&self) -> Option<(f64, f64)> {
        let c = self.churn.as_ref()?;
        let hooks = c.side(CONNECT_HOOKS.title)?;
        let plain = c.side("no script")?;
        Some((
            c.ratio(CONNECT_HOOKS.title, "no script")?,
            hooks.cpu_per_cycle()? - plain.cpu_per_cycle()?,
        ))
    }
}

/// Proxy CPU per query, user + system, microseconds.
fn cpu_per_query(side: &Side) -> Option<f64> {
    side.proxy_cpu_per_query().map(|(u, s)| u + s)
}

/// `side`'s throughput over `reference`'s, and the proxy CPU per query it adds.
fn versus(side: &Side, reference: &Side) -> Option<(f64, f64)> {
    Some((
        side.tps() / reference.tps(),
        cpu_per_query(side)? - cpu_per_query(reference)?,
    ))
}

/// The three parts against `db` (the read/write backend of the split, with
/// the sysbench tables); the scripts and raw outputs go to `dir`.
pub fn section(db: &MariaDb, opts: &Options, root: &Path, dir: &Path, log: &Log) -> LuaResult {
    let mut result = LuaResult::default();
    match point_selects(db, opts, dir, log) {
        Ok(c) => result.point_select = Some(c),
        Err(e) => result.errors.push(format!("point selects: {e}")),
    }
    match connect_cycles(db, opts, dir, log) {
        Ok(c) => result.churn = Some(c),
        Err(e) => result.errors.push(format!("connect cycles: {e}")),
    }
    let script = root.join(RW_SPLITTING);
    if !script.is_file() {
        let why = format!("{RW_SPLITTING} does not exist");
        log.say(&format!("lua: read/write split skipped: {why}"));
        result.split_skipped = Some(why);
        return result;
    }
    if let Err(e) = read_write_split(db, &script, opts, dir, log, &mut result) {
        result.errors.push(format!("read/write split: {e}"));
    }
    result
}

/// Writes `script` into `dir`; the proxy's argument that runs it.
fn script_arg(script: &Script, dir: &Path) -> Result<String, String> {
    let path = dir.join(format!("{}.lua", script.label));
    fs::write(&path, script.text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(format!("--proxy-lua-script={}", path.display()))
}

fn endpoint(label: &str, proxy: &Proxy) -> Endpoint {
    Endpoint {
        label: label.into(),
        port: proxy.proxy_port(),
        proxy_pid: Some(proxy.pid()),
    }
}

fn point_selects(
    db: &MariaDb,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<Comparison, String> {
    let plain = crate::start_proxy(db, &[]);
    let read_query = crate::start_proxy(db, &[&script_arg(&READ_QUERY_RETURNS, dir)?]);
    let timing = crate::start_proxy(db, &[&script_arg(&TIMING, dir)?]);
    let endpoints = [
        endpoint("no-script", &plain),
        endpoint(READ_QUERY_RETURNS.label, &read_query),
        endpoint(TIMING.label, &timing),
    ];
    let c = oltp::compare(
        &endpoints,
        db.pid(),
        "oltp_point_select",
        &[],
        THREADS,
        opts.seconds,
        opts.rounds,
        dir,
        &mut |m| log.say(m),
    )?;
    for script in [&READ_QUERY_RETURNS, &TIMING] {
        if let Some((r, cpu)) = versus(c.side(script.label), c.side("no-script")) {
            log.say(&format!(
                "lua: {}: {} of no script's throughput, {cpu:+.1} us proxy CPU per query",
                script.title,
                ratio(r)
            ));
        }
    }
    Ok(c)
}

fn connect_cycles(
    db: &MariaDb,
    opts: &Options,
    dir: &Path,
    log: &Log,
) -> Result<ChurnResult, String> {
    let plain = crate::start_proxy(db, &[]);
    let hooks = crate::start_proxy(db, &[&script_arg(&CONNECT_HOOKS, dir)?]);
    let side = |label| ChurnSide {
        label,
        runs: Vec::new(),
        proxy_cpu: Some(Cpu::default()),
    };
    let mut result = ChurnResult {
        threads: opts.churn_threads,
        sides: vec![side("no script"), side(CONNECT_HOOKS.title)],
    };
    let endpoints = [
        (plain.proxy_port(), Some(plain.pid())),
        (hooks.proxy_port(), Some(hooks.pid())),
    ];
    crate::churn_rounds(&endpoints, &mut result, opts, log)?;
    Ok(result)
}

/// The read-only backends: private servers with the sysbench tables.
fn read_only_servers(count: usize, dir: &Path, log: &Log) -> Result<Vec<MariaDb>, String> {
    let mut servers = Vec::new();
    for n in 1..=count {
        let db = MariaDb::builder()
            .args(crate::SERVER_ARGS.iter().copied())
            .start();
        log.say(&format!(
            "lua: read-only backend {n} on port {}: sysbench prepare",
            db.port()
        ));
        let prepare = sysbench::Sysbench {
            workload: "oltp_read_only",
            port: db.port(),
            threads: sysbench::TABLES,
            seconds: 1,
            options: &[],
        };
        prepare.prepare(&dir.join(format!("sysbench-prepare-ro{n}.txt")))?;
        servers.push(db);
    }
    Ok(servers)
}

fn read_write_split(
    db: &MariaDb,
    script: &Path,
    opts: &Options,
    dir: &Path,
    log: &Log,
    result: &mut LuaResult,
) -> Result<(), String> {
    let read_only = read_only_servers(2, dir, log)?;
    let plain = crate::start_proxy(db, SPLIT_POOL);
    let mut args: Vec<String> = SPLIT_POOL.iter().map(|a| a.to_string()).collect();
    args.extend(
        read_only
            .iter()
            .map(|r| format!("--proxy-read-only-backend-addresses={}", r.addr())),
    );
    args.push(format!("--proxy-lua-script={}", script.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = crate::start_proxy(db, &args);
    let endpoints = [endpoint(RW_ONLY, &plain), endpoint(SPLIT, &split)];

    // Unrecorded: the script's sessions log in on the read/write backend
    // until the pool holds idle connections there for the others; the
    // second run's sessions start on the read-only backends.
    log.say("lua: read/write split warm-up (not recorded)");
    for (n, e) in [&endpoints[1], &endpoints[1], &endpoints[0]]
        .into_iter()
        .enumerate()
    {
        let warm = sysbench::Sysbench {
            workload: "oltp_read_only",
            port: e.port,
            threads: THREADS,
            seconds: 2,
            options: SPLIT_LOADS[0].1,
        };
        warm.run(&dir.join(format!("sysbench-warmup-{}-{n}.txt", e.label)))?;
    }

    let selects = || -> Vec<u64> {
        read_only
            .iter()
            .map(|r| r.global_status("Com_select"))
            .collect()
    };
    for &(title, options) in SPLIT_LOADS {
        let before = selects();
        let comparison = oltp::compare(
            &endpoints,
            db.pid(),
            "oltp_read_only",
            options,
            THREADS,
            opts.seconds,
            opts.rounds,
            dir,
            &mut |m| log.say(m),
        )?;
        let ro_selects: Vec<u64> = selects()
            .iter()
            .zip(&before)
            .map(|(after, before)| after.saturating_sub(*before))
            .collect();
        if let Some((r, cpu)) = versus(comparison.side(SPLIT), comparison.side(RW_ONLY)) {
            log.say(&format!(
                "lua: rw-splitting, {title}: {} of no script's throughput, {cpu:+.1} us proxy \
                 CPU per query, SELECTs on the read-only backends: {ro_selects:?}",
                ratio(r)
            ));
        }
        result.split.push(Split {
            title,
            comparison,
            ro_selects,
        });
    }
    match profile::perf_available() {
        Err(e) => log.say(&format!("lua: no perf profile of the split: {e}")),
        Ok(()) => {
            log.say(&format!(
                "lua: perf record -g on the script's proxy during {}",
                SPLIT_LOADS[0].0
            ));
            result.split_perf = Some(split_profile(&endpoints[1], db.pid(), opts, dir)?);
        }
    }
    Ok(())
}

/// `perf record -g` on `endpoint`'s proxy during a run of the split's first
/// load; its reports go to `dir`/lua-perf/.
fn split_profile(
    endpoint: &Endpoint,
    server_pid: u32,
    opts: &Options,
    dir: &Path,
) -> Result<(PerfProfile, f64), String> {
    let dir = dir.join("lua-perf");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let pid = endpoint.proxy_pid.ok_or("no proxy to profile")?;
    let data = profile::data_path(&dir);
    let perf = profile::perf_record(pid, &data, &dir.join("perf-record.log"))?;
    let run = oltp::run_once(
        endpoint,
        server_pid,
        "oltp_read_only",
        SPLIT_LOADS[0].1,
        THREADS,
        opts.seconds,
        &dir.join("sysbench.txt"),
    );
    let stopped = perf.stop(Duration::from_secs(60));
    let (run, ()) = (run?, stopped?);
    let analysed = profile::analyse_perf(&data, &dir);
    // The data file is large and its text reports are kept.
    let _ = fs::remove_file(&data);
    let cpu =
        run.proxy.map(|p| p.cpu.total_us()).unwrap_or(0) as f64 / run.report.queries.max(1) as f64;
    Ok((analysed?, cpu))
}

/// Rows of the targets table (issue "Lua scripting").
pub fn target_rows(t: &mut Table, r: Option<&LuaResult>) {
    let always = |_: f64| true;
    let cost = |label| r.and_then(|r| r.point_select_cost(label));
    let us = |v: f64| format!("{v:+.1} us");
    crate::target_row(
        t,
        "Lua read_query returns: throughput vs no script, point_select 8 thr",
        "",
        ">= 0.95x",
        cost(READ_QUERY_RETURNS.label).map(|c| c.0),
        ratio,
        |v| v >= 0.95,
    );
    crate::target_row(
        t,
        "Lua read_query returns: proxy CPU per point select added",
        "",
        "<= +1.5 us",
        cost(READ_QUERY_RETURNS.label).map(|c| c.1),
        us,
        |v| v <= 1.5,
    );
    crate::target_row(
        t,
        "Lua timing script: throughput vs no script, point_select 8 thr",
        "",
        ">= 0.85x",
        cost(TIMING.label).map(|c| c.0),
        ratio,
        |v| v >= 0.85,
    );
    crate::target_row(
        t,
        "Lua timing script: proxy CPU per point select added",
        "",
        "",
        cost(TIMING.label).map(|c| c.1),
        us,
        always,
    );
    let churn = r.and_then(LuaResult::churn_cost);
    crate::target_row(
        t,
        "Lua connect_server + read_auth: connect cycle rate vs no script",
        "",
        "",
        churn.map(|c| c.0),
        ratio,
        always,
    );
    crate::target_row(
        t,
        "Lua connect_server + read_auth: proxy CPU per cycle added",
        "",
        "",
        churn.map(|c| c.1),
        |v| format!("{v:+.0} us"),
        always,
    );
}

/// How a side reads in the tables.
fn side_name(label: &str) -> &str {
    match label {
        "no-script" => "no script",
        l if l == READ_QUERY_RETURNS.label => READ_QUERY_RETURNS.title,
        l if l == TIMING.label => TIMING.title,
        RW_ONLY => "no script, the read/write backend alone",
        SPLIT => "rw-splitting.lua, 1 read/write + 2 read-only backends",
        other => other,
    }
}

/// A comparison's sides against side `reference`: throughput and proxy CPU
/// per query, each with its difference; a row per side, in order.
fn sides_table(c: &Comparison, reference: &str) -> Table {
    let mut t = Table::new(&[
        "Script",
        "tps",
        "qps",
        "vs no script",
        "Proxy CPU/query us (user+sys)",
        "CPU/query vs no script",
        "Proxy ctx sw/query",
        "p99 us",
        "Errors",
    ]);
    let base = c.side(reference);
    for (label, side) in &c.sides {
        t.row(vec![
            side_name(label).to_string(),
            num(side.tps(), 0),
            num(side.qps(), 0),
            ratio(side.tps() / base.tps()),
            side.proxy_cpu_per_query()
                .map(|(u, s)| format!("{} ({}+{})", num(u + s, 1), num(u, 1), num(s, 1)))
                .unwrap_or_default(),
            versus(side, base)
                .filter(|_| label != reference)
                .map(|(_, cpu)| format!("{cpu:+.1} us"))
                .unwrap_or_default(),
            side.proxy_ctx_switches_per_query()
                .map(|x| num(x, 2))
                .unwrap_or_default(),
            num(side.percentile_us(99.0), 0),
            side.errors().to_string(),
        ]);
    }
    t
}

/// The section's tables, titled.
pub fn tables(r: &LuaResult) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    if let Some(c) = &r.point_select {
        out.push((
            format!(
                "Lua scripts: oltp_point_select, {} threads, the same proxy without and with a script",
                c.threads
            ),
            sides_table(c, "no-script"),
        ));
    }
    if let Some(c) = &r.churn {
        out.push((
            "Lua scripts: connect + handshake/auth + SELECT 1 + COM_QUIT, a new connection each time"
                .into(),
            crate::churn_table(c, "no script"),
        ));
    }
    for split in &r.split {
        let mut t = sides_table(&split.comparison, RW_ONLY);
        // Where the reads went: only the script's side reaches the
        // read-only backends.
        t.headers
            .push("SELECTs run by the read-only backends".into());
        let queries = split.comparison.side(SPLIT).queries().max(1) as f64;
        let total: u64 = split.ro_selects.iter().sum();
        let each: Vec<String> = split.ro_selects.iter().map(u64::to_string).collect();
        for (row, (label, _)) in t.rows.iter_mut().zip(&split.comparison.sides) {
            row.push(if label == SPLIT {
                format!(
                    "{} ({:.0} % of the queries)",
                    each.join(" + "),
                    total as f64 * 100.0 / queries
                )
            } else {
                String::new()
            });
        }
        out.push((
            format!(
                "Lua read/write splitting: {}, {} threads",
                split.title, split.comparison.threads
            ),
            t,
        ));
    }
    if let Some((perf, cpu)) = &r.split_perf {
        out.extend(crate::perf_tables(
            perf,
            "rw-splitting.lua, oltp_read_only --skip_trx=on 8 thr",
            *cpu,
            25,
        ));
    }
    if let Some(why) = &r.split_skipped {
        let mut t = Table::new(&["Read/write split not measured"]);
        t.row(vec![why.clone()]);
        out.push(("Lua read/write splitting".into(), t));
    }
    out
}
