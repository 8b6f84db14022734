//! Black-box tests of plugin loading: every failure is one line naming the
//! plugin, the path(s) and the reason, with exit code 1. (Plugins of other
//! ABI releases, which need fixture crates built: tests/plugin_abi.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

fn arg(name: &str, path: &Path) -> String {
    format!("--{name}={}", path.display())
}

#[test]
fn unknown_plugin_lists_the_paths_tried() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[&arg("plugin-dir", dir.path()), "--plugins=nosuchplugin"]);
    let d = dir.path().display();
    let b = build_dir().display().to_string();
    assert_eq!(
        single_fatal_line(&out),
        format!(
            "plugin nosuchplugin: not found (tried {d}/libnosuchplugin.so, {d}/nosuchplugin.so, \
             {b}/libnosuchplugin.so, {b}/nosuchplugin.so)"
        )
    );
    // Also with --version and --help: plugins are loaded first.
    let out = run(&[
        &arg("plugin-dir", dir.path()),
        "--plugins=nosuchplugin",
        "--help",
    ]);
    assert!(single_fatal_line(&out).starts_with("plugin nosuchplugin: not found"));
}

#[test]
fn text_file_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libbogus.so");
    std::fs::write(&lib, "this is a text file, not a shared object\n").unwrap();
    let out = run(&[&arg("plugin-dir", dir.path()), "--plugins=bogus"]);
    let line = single_fatal_line(&out);
    let prefix = format!(
        "plugin bogus: {} is not a mysql-proxy plugin: ",
        lib.display()
    );
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.len() > prefix.len(), "no reason given: {line}");
}

#[test]
fn second_name_form_is_found() {
    // `<NAME>.so` is accepted too (here a bogus one, to see it was tried).
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("bogus2.so");
    std::fs::write(&lib, "text\n").unwrap();
    let out = run(&[&arg("plugin-dir", dir.path()), "--plugins=bogus2"]);
    let line = single_fatal_line(&out);
    assert!(
        line.starts_with(&format!("plugin bogus2: {} is not", lib.display())),
        "{line}"
    );
}

#[test]
fn plugin_init_error_is_one_line() {
    require_plugins(&["admin"]);
    // The admin plugin refuses to start without credentials (COMPAT 3.1).
    let out = run(&["--plugins=admin", "--admin-address=127.0.0.1:0"]);
    let line = single_fatal_line(&out);
    assert!(line.starts_with("plugin admin: "), "{line}");
}
