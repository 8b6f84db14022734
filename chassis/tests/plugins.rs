//! Black-box tests of plugin loading: every failure is one line naming the
//! plugin, the path(s) and the reason, with exit code 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Builds the fixture crate `tests/fixtures/incompatible-plugin` (outside the
/// workspace) into `<target>/fixtures` and copies the library into a fresh
/// directory as `libincompatible.so`.
fn build_fixture(features: &[&str], dest: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/incompatible-plugin/Cargo.toml");
    // target/<profile>/mysql-proxy -> target/fixtures (a target directory of
    // its own, so the nested cargo never waits for the outer one's lock).
    let target = build_dir().parent().unwrap().join("fixtures");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target);
    for feature in features {
        cmd.args(["--features", feature]);
    }
    let status = cmd.status().expect("running cargo for the fixture");
    assert!(
        status.success(),
        "building the incompatible-plugin fixture failed"
    );
    let built = target.join("debug/libincompatible.so");
    let copy = dest.join("libincompatible.so");
    std::fs::copy(&built, &copy).unwrap();
    copy
}

#[test]
fn incompatible_abi_is_refused() {
    let version_dir = tempfile::tempdir().unwrap();
    let layout_dir = tempfile::tempdir().unwrap();
    // One test builds both variants, one after the other (same target dir).
    let by_version = build_fixture(&[], version_dir.path());
    let by_layout = build_fixture(&["layout"], layout_dir.path());

    let out = run(&[
        &arg("plugin-dir", version_dir.path()),
        "--plugins=incompatible",
    ]);
    let line = single_fatal_line(&out);
    assert_eq!(
        line,
        format!(
            "plugin incompatible: {} was built against an incompatible plugin ABI: \
             the plugin has ABI version 99.0.0, this mysql-proxy needs one compatible with {}",
            by_version.display(),
            abi_version()
        )
    );

    let out = run(&[
        &arg("plugin-dir", layout_dir.path()),
        "--plugins=incompatible",
    ]);
    let line = single_fatal_line(&out);
    let prefix = format!(
        "plugin incompatible: {} was built against an incompatible plugin ABI: ",
        by_layout.display()
    );
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.len() < prefix.len() + 250, "reason too long: {line}");
}

/// The plugin-ABI version the binary reports in `--version`.
fn abi_version() -> String {
    let out = run(&["--plugins=", "--version"]);
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("  plugin-abi: "))
        .unwrap()
        .to_string()
}

#[test]
fn plugin_init_error_is_one_line() {
    require_plugins(&["admin"]);
    // The admin plugin refuses to start without credentials (COMPAT 3.1).
    let out = run(&["--plugins=admin", "--admin-address=127.0.0.1:0"]);
    let line = single_fatal_line(&out);
    assert!(line.starts_with("plugin admin: "), "{line}");
}
