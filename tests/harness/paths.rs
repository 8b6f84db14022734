//! Where the built `mysql-proxy` binary and plugin libraries are.

use std::env;
use std::path::{Path, PathBuf};

/// Name of the chassis executable.
pub const PROXY_BIN: &str = "mysql-proxy";

/// The cargo profile directory holding the binary and the plugins
/// (`target/<profile>`), which is also what `--plugin-dir` points at.
///
/// Order: `MYSQL_PROXY_BUILD_DIR` if set; the profile directory of the running
/// test executable (`target/<profile>/deps/<test>-<hash>`); `$CARGO_TARGET_DIR/<profile>`.
pub fn build_dir() -> PathBuf {
    if let Some(dir) = env::var_os("MYSQL_PROXY_BUILD_DIR") {
        return PathBuf::from(dir);
    }
    let from_exe = exe_profile_dir();
    if let Some(dir) = &from_exe {
        if dir.join(PROXY_BIN).is_file() {
            return dir.clone();
        }
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(target).join(profile_name(from_exe.as_deref()));
        if dir.join(PROXY_BIN).is_file() || from_exe.is_none() {
            return dir;
        }
    }
    from_exe.unwrap_or_else(|| PathBuf::from("target").join(profile_name(None)))
}

/// The `mysql-proxy` executable; panics with the build command to run if it is missing.
pub fn proxy_binary() -> PathBuf {
    let dir = build_dir();
    let bin = dir.join(PROXY_BIN);
    if !bin.is_file() {
        let release = if profile_name(Some(&dir)) == "release" {
            " --release"
        } else {
            ""
        };
        panic!(
            "{} not found: run `cargo build{release} --workspace` first \
             (the tests drive the built binary and its plugin .so files; \
             scripts/test does the whole build and test run)",
            bin.display()
        );
    }
    bin
}

/// `target/<profile>` of the running test executable, if it runs from `deps/`.
fn exe_profile_dir() -> Option<PathBuf> {
    let exe = env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.to_path_buf())
}

fn profile_name(dir: Option<&Path>) -> String {
    dir.and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            }
        })
}

/// A directory the harness may keep things in across test runs (the MariaDB
/// template datadir): `target/` if known, else the system temp directory.
pub(crate) fn cache_dir() -> PathBuf {
    exe_profile_dir()
        .and_then(|profile| profile.parent().map(Path::to_path_buf))
        .unwrap_or_else(env::temp_dir)
        .join("mysql-proxy-tests")
}
