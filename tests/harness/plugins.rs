//! Test plugins kept outside the workspace (`tests/fixtures/<crate>`),
//! built on demand: plugins of an older or a wrong ABI, which the
//! workspace's own build could not produce.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::paths::build_dir;

/// One fixture build at a time per test process (cargo would serialise
/// them anyway, on its lock of the target directory).
static BUILDING: Mutex<()> = Mutex::new(());

/// Builds the fixture crate `tests/fixtures/<crate_dir>` (with `features`)
/// into `<target>/fixtures`, a target directory of its own so that the
/// nested cargo never waits for the outer one, and copies its library
/// `lib<lib>.so` into `dest`. Returns the copy's path.
pub fn build_fixture_plugin(crate_dir: &str, lib: &str, features: &[&str], dest: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(crate_dir)
        .join("Cargo.toml");
    let target = build_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("fixtures");
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
    let file = format!("lib{lib}.so");
    let copy = dest.join(&file);
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {}: {e}", manifest.display()));
    assert!(status.success(), "building {} failed", manifest.display());
    std::fs::copy(target.join("debug").join(&file), &copy)
        .unwrap_or_else(|e| panic!("copying {file}: {e}"));
    copy
}
