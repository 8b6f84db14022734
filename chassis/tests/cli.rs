//! Black-box tests of the command line: `--version`, `--help*`, and the
//! one-line errors for bad options.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn version_without_plugins() {
    for flag in ["--version", "-V"] {
        let out = run(&["--plugins=", flag]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("mysql-proxy {VERSION}"));
        assert_eq!(lines[1], format!("  chassis: {VERSION}"));
        assert!(lines[2].starts_with("  plugin-abi: "), "{text}");
        assert_eq!(lines[3], "-- modules");
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn version_lists_loaded_plugins() {
    require_plugins(&["proxy", "admin"]);
    let out = run(&["--plugins=proxy", "--plugins", "admin", "--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let modules: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "-- modules")
        .skip(1)
        .collect();
    assert_eq!(modules.len(), 2, "{text}");
    assert!(modules[0].starts_with("  proxy: "), "{text}");
    assert!(modules[1].starts_with("  admin: "), "{text}");
}

#[test]
fn help_shows_the_main_group() {
    let out = run(&["--plugins=", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Usage:\n  mysql-proxy [OPTION...] - MySQL Proxy\n"),
        "{text}"
    );
    for needle in [
        "Help Options:",
        "-h, --help",
        "--help-all",
        "Application Options:",
        "-V, --version",
        "--defaults-file <file>",
        "--daemon",
        "--basedir <absolute path>",
        "--plugin-dir <path>",
        "--plugins <name>",
        "--log-level <level>",
        "--log-file <file>",
        "--event-threads <n>",
        "--max-open-files <n>",
        "--lua-path <path>",
        "--lua-cpath <path>",
        "--keepalive",
        "--user <user>",
        "--pid-file <file>",
        "--verbose-shutdown",
        "--log-use-syslog",
        "--log-backtrace-on-crash",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    for flag in ["-h", "-?"] {
        let short = run(&["--plugins=", flag]);
        assert_eq!(short.status.code(), Some(0));
        assert_eq!(stdout(&short), text);
    }
}

#[test]
fn help_all_lists_every_plugins_options() {
    require_plugins(&["proxy", "admin"]);
    let out = run(&["--plugins=proxy", "--plugins=admin", "--help-all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "--log-level",
        "proxy-module:",
        "--proxy-address",
        "--proxy-backend-addresses",
        "--proxy-read-only-backend-addresses",
        "--proxy-lua-script",
        "--no-proxy",
        "--proxy-connect-timeout",
        "admin-module:",
        "--admin-address",
        "--admin-username",
        "--admin-password",
        "--help-proxy",
        "--help-admin",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    let main = stdout(&run(&["--plugins=proxy,admin", "--help"]));
    assert!(main.contains("--help-proxy"), "{main}");
    assert!(!main.contains("--proxy-backend-addresses"), "{main}");

    let admin = run(&["--plugins=proxy,admin", "--help-admin"]);
    assert_eq!(admin.status.code(), Some(0));
    let admin = stdout(&admin);
    assert!(admin.contains("--admin-username"), "{admin}");
    assert!(!admin.contains("--log-level"), "{admin}");
    assert!(!admin.contains("--proxy-address"), "{admin}");
}

#[test]
fn unknown_option_is_one_line_exit_1() {
    let out = run(&["--plugins=", "--foo"]);
    assert_eq!(
        single_fatal_line(&out),
        "mysql-proxy: Unknown option --foo (use --help to show all options)"
    );
    let out = run(&["--plugins=", "--foo=bar", "--help"]);
    assert_eq!(
        single_fatal_line(&out),
        "mysql-proxy: Unknown option --foo (use --help to show all options)"
    );
    // A plugin's option is unknown when the plugin is not loaded.
    let out = run(&["--plugins=", "--proxy-address=:4040"]);
    assert_eq!(
        single_fatal_line(&out),
        "mysql-proxy: Unknown option --proxy-address (use --help to show all options)"
    );
}

#[test]
fn stray_argument_and_missing_value() {
    let out = run(&["--plugins=", "stray"]);
    assert_eq!(single_fatal_line(&out), "unknown option: stray");
    let out = run(&["--plugins=", "--log-level"]);
    assert_eq!(
        single_fatal_line(&out),
        "mysql-proxy: Missing argument for --log-level"
    );
}

#[test]
fn invalid_values_name_their_option() {
    let out = run(&["--plugins=", "--event-threads=0"]);
    let line = single_fatal_line(&out);
    assert!(line.starts_with("--event-threads: "), "{line}");
    let out = run(&["--plugins=", "--basedir=relative/dir"]);
    let line = single_fatal_line(&out);
    assert!(
        line.starts_with("--basedir: must be an absolute path"),
        "{line}"
    );
    let out = run(&["--plugins=", "--log-level=loud"]);
    let line = single_fatal_line(&out);
    assert!(
        line.starts_with("--log-level: unknown log level 'loud'"),
        "{line}"
    );
    let out = run(&["--plugins=", "--log-use-syslog", "--log-file=/tmp/x.log"]);
    let line = single_fatal_line(&out);
    assert!(line.contains("can't be used together"), "{line}");
}

#[test]
fn several_problems_are_all_reported() {
    let out = run(&[
        "--plugins=",
        "--event-threads=0",
        "--log-level=loud",
        "--max-open-files=many",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let messages: Vec<&str> = err
        .lines()
        .filter_map(parse_log_line)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(messages.len(), 3, "{err}");
    for option in ["--event-threads: ", "--log-level: ", "--max-open-files: "] {
        assert!(
            messages.iter().any(|m| m.starts_with(option)),
            "{option} in {err}"
        );
    }
}
