//! Black-box tests of `--defaults-file`: the INI form loads, the command line
//! overrides it, unsafe or invalid files are refused with the key named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use nix::sys::signal::Signal;

use common::*;

fn defaults(path: &std::path::Path) -> String {
    format!("--defaults-file={}", path.display())
}

#[test]
fn ini_file_loads_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mp.log");
    let cnf = write_config(
        dir.path(),
        &format!(
            "# MySQL Proxy 0.8 style\n[client]\nuser = nobody\n\n[mysql-proxy]\n\
             plugins =\nlog-level = message\nlog-file = {}\nevent-threads = 2\n\
             verbose-shutdown = false\nproxy-address = :4040\n",
            log.display()
        ),
        0o600,
    );
    let pid_file = dir.path().join("mp.pid");
    let mut proxy = Running::start(
        &[
            &defaults(&cnf),
            &format!("--pid-file={}", pid_file.display()),
        ],
        dir.path(),
    );
    assert_eq!(proxy.wait_for_pid_file(&pid_file), proxy.pid());
    // At message level the shutdown line is visible: the level came from the file.
    proxy.signal(Signal::SIGTERM);
    let status = proxy.wait();
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .filter_map(parse_log_line)
            .any(|l| l == ("message", "shutting down normally, exit code is: 0")),
        "{text}"
    );
    assert_eq!(proxy.stderr(), "");
}

#[test]
fn command_line_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("from-file.log");
    // Every one of these would be fatal or visible if the file won.
    let cnf = write_config(
        dir.path(),
        &format!(
            "[mysql-proxy]\nplugins = nosuchplugin\nevent-threads = 0\nlog-level = debug\n\
             log-file = {}\n",
            log.display()
        ),
        0o660,
    );
    let cli_log = dir.path().join("from-cli.log");
    let pid_file = dir.path().join("mp.pid");
    let mut proxy = Running::start(
        &[
            &defaults(&cnf),
            "--plugins=",
            "--event-threads=1",
            "--log-level=critical",
            &format!("--log-file={}", cli_log.display()),
            &format!("--pid-file={}", pid_file.display()),
        ],
        dir.path(),
    );
    proxy.wait_for_pid_file(&pid_file);
    proxy.signal(Signal::SIGTERM);
    assert_eq!(proxy.wait().code(), Some(0), "{}", proxy.stderr());
    assert!(!log.exists());
    // critical level: the message-level shutdown line is not shown.
    assert_eq!(std::fs::read_to_string(&cli_log).unwrap(), "");
}

#[test]
fn world_readable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cnf = write_config(dir.path(), "[mysql-proxy]\nplugins =\n", 0o644);
    let out = run(&[&defaults(&cnf)]);
    assert_eq!(
        single_fatal_line(&out),
        format!(
            "permissions of {} aren't secure (0660 or stricter required)",
            cnf.display()
        )
    );
}

#[test]
fn invalid_log_level_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cnf = write_config(
        dir.path(),
        "[mysql-proxy]\nplugins =\n\nlog-level = loud\n",
        0o600,
    );
    let out = run(&[&defaults(&cnf)]);
    assert_eq!(
        single_fatal_line(&out),
        format!(
            "{}:4: log-level: unknown log level 'loud' (expected error, critical, warning, \
             message, info or debug)",
            cnf.display()
        )
    );
}

#[test]
fn syntax_error_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cnf = write_config(dir.path(), "[mysql-proxy]\ndaemon\n", 0o600);
    let out = run(&[&defaults(&cnf)]);
    let line = single_fatal_line(&out);
    assert!(
        line.starts_with(&format!("{}:2: ", cnf.display())),
        "{line}"
    );
}

#[test]
fn missing_file_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[&defaults(&dir.path().join("nope.cnf")), "--plugins="]);
    let line = single_fatal_line(&out);
    assert!(line.starts_with("can't read the config file "), "{line}");
}

#[test]
fn file_options_of_plugins_are_used() {
    require_plugins(&["proxy"]);
    let dir = tempfile::tempdir().unwrap();
    // An unknown key and options of a plugin that is not loaded are ignored.
    let cnf = write_config(
        dir.path(),
        "[mysql-proxy]\nplugins = proxy\nproxy-address = 127.0.0.1:0\n\
         admin-username = nobody\nno-such-option = 1\nlog-level = message\n",
        0o600,
    );
    let mut proxy = Running::start(&[&defaults(&cnf)], dir.path());
    let stderr_path = proxy.stderr_path.clone();
    proxy.wait_for(&stderr_path, "plugin proxy ");
    let text = proxy.stderr();
    assert!(text.contains("listening on port 127.0.0.1:"), "{text}");
    proxy.signal(Signal::SIGINT);
    assert_eq!(proxy.wait().code(), Some(0), "{}", proxy.stderr());
}
