//! Finding and loading plugin libraries (`--plugins`, `--plugin-dir`), and
//! checking what they declare before anything else relies on it.
//!
//! Each library is opened with `abi_stable::library::lib_header_from_path`;
//! its plugin-ABI version and the layout of everything reachable from its
//! root module are checked ([`check_layout`]) before the root module is
//! taken. (`RootModule::load_from_file` is not used: it caches one module per
//! root-module type, so it could load only one plugin.) Libraries are never
//! unloaded; abi_stable leaks them on purpose.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::std_types::RBoxError;
use abi_stable::StableAbi;
use mysql_proxy_plugin_abi::{OptionSpec, PluginModuleRef};

use crate::logging::one_line;
use crate::options::{help_option_names, OptDesc, OptGroup, HELP_SHORTS};

/// The plugin-ABI version this binary was built against.
pub fn abi_version() -> String {
    PluginModuleRef::VERSION_STRINGS.version.to_string()
}

/// Why a plugin could not be loaded. Each renders as one line naming the
/// plugin, the path(s) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {name}: not found (tried {})", join_paths(.tried))]
    NotFound { name: String, tried: Vec<PathBuf> },
    #[error("plugin {name}: {} is not a mysql-proxy plugin: {reason}", .path.display())]
    NotAPlugin {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "plugin {name}: {} was built against an incompatible plugin ABI: {reason}",
        .path.display()
    )]
    Incompatible {
        name: String,
        path: PathBuf,
        reason: String,
    },
    /// The library's root-module constructor failed or panicked.
    #[error("plugin {name}: {} failed to initialise its module: {reason}", .path.display())]
    ModuleFailed {
        name: String,
        path: PathBuf,
        reason: String,
    },
    /// An option the plugin declares cannot be used.
    #[error("plugin {name}: option --{option}: {reason}")]
    BadOption {
        name: String,
        option: String,
        reason: String,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A loaded plugin library, not yet initialised.
pub struct Module {
    /// The name given in `--plugins` (which names its option group).
    pub name: String,
    pub path: PathBuf,
    pub module: PluginModuleRef,
    /// As the plugin reports it.
    pub version: String,
    pub options: Vec<OptionSpec>,
}

impl Module {
    /// The plugin's option group.
    pub fn group(&self) -> OptGroup {
        OptGroup {
            plugin: self.name.clone(),
            options: self.options.iter().map(OptDesc::from_spec).collect(),
        }
    }
}

/// The files tried for plugin `name`, in order: `lib<name>.so` then
/// `<name>.so` in each directory.
pub fn candidates(name: &str, dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|dir| {
            [
                dir.join(format!("lib{name}.so")),
                dir.join(format!("{name}.so")),
            ]
        })
        .collect()
}

/// Loads one plugin from the first candidate file that exists.
pub fn load(name: &str, dirs: &[PathBuf]) -> Result<Module, LoadError> {
    let tried = candidates(name, dirs);
    let path = tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| LoadError::NotFound {
            name: name.to_string(),
            tried: tried.clone(),
        })?;
    let classify = |error: LibraryError| classify(name, &path, error);
    let header = lib_header_from_path(&path).map_err(classify)?;
    check_layout(header).map_err(classify)?;
    // SAFETY: `check_layout` found the plugin's root module, and all it
    // reaches, to be what this host's is or a prefix of it.
    let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }
        .map_err(classify)?;
    let version = module.version()().to_string();
    let options = module.options()().into_vec();
    Ok(Module {
        name: name.to_string(),
        path,
        module,
        version,
        options,
    })
}

/// Checks the layout of a plugin's root module, and of everything it
/// reaches, against this host's.
///
/// abi_stable's own check (`LibHeader::init_root_module`) takes the loader
/// for the older side: a library may have appended methods to the objects
/// and variants to the enums, not lack them. A plugin host needs the
/// opposite: this host must serve every plugin built against its ABI
/// release or an earlier compatible one (which lacks what was appended
/// since), and refuse one built against a later release (which may call
/// what this host lacks). So the same check is made with the plugin's
/// layout as the interface and the host's as the implementation. What the
/// host calls that an older plugin lacks is safe: every object's methods
/// sit in prefix vtables, whose missing entries read as absent, and the
/// methods appended to the plugin's objects have defaults.
///
/// The ABI versions are compared first, by cargo's rule: the same major
/// version (for `0.y.z`, the same `y`).
fn check_layout(header: &abi_stable::library::LibHeader) -> Result<(), LibraryError> {
    let host = VersionNumber::new(PluginModuleRef::VERSION_STRINGS)?;
    let plugin = VersionNumber::new(header.version_strings())?;
    if host.major != plugin.major || (host.major == 0 && host.minor != plugin.minor) {
        return Err(LibraryError::IncompatibleVersionNumber {
            library_name: PluginModuleRef::NAME,
            expected_version: host,
            actual_version: plugin,
        });
    }
    let Some(plugin) = header.layout() else {
        // Built without layout information: nothing to compare with.
        return Err(LibraryError::AbiInstability(RBoxError::from_fmt(
            &"the plugin carries no layout information",
        )));
    };
    abi_stable::abi_stability::abi_checking::check_layout_compatibility(
        plugin,
        PluginModuleRef::LAYOUT,
    )
    .map_err(|errors| LibraryError::AbiInstability(RBoxError::from_fmt(&errors)))
}

/// Sorts abi_stable's errors into the three messages users see.
fn classify(name: &str, path: &Path, error: LibraryError) -> LoadError {
    let name = name.to_string();
    let path = path.to_path_buf();
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotAPlugin {
            reason: strip_path(&err.to_string(), &path),
            name,
            path,
        },
        LibraryError::GetSymbolError { symbol, .. } => LoadError::NotAPlugin {
            reason: format!(
                "it does not export an abi_stable root module ({})",
                String::from_utf8_lossy(&symbol).trim_end_matches('\0')
            ),
            name,
            path,
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::Incompatible {
            reason: format!(
                "the plugin has ABI version {actual_version}, this mysql-proxy \
                 needs one compatible with {expected_version}"
            ),
            name,
            path,
        },
        LibraryError::ParseVersionError(e) => LoadError::Incompatible {
            reason: first_line(&e.to_string()),
            name,
            path,
        },
        LibraryError::AbiInstability(e) => LoadError::Incompatible {
            reason: layout_reason(&e.to_string()),
            name,
            path,
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::Incompatible {
            reason: format!(
                "it was built with abi_stable ABI {}.{}, this mysql-proxy with {}.{}",
                header.abi_major,
                header.abi_minor,
                abi_stable::library::AbiHeader::VALUE.abi_major,
                abi_stable::library::AbiHeader::VALUE.abi_minor,
            ),
            name,
            path,
        },
        LibraryError::InvalidCAbi { .. } => LoadError::Incompatible {
            reason: "it was built with a different C ABI".to_string(),
            name,
            path,
        },
        LibraryError::RootModule { err, .. } => LoadError::ModuleFailed {
            reason: first_line(&err.to_string()),
            name,
            path,
        },
        LibraryError::Many(list) => match list.into_iter().next() {
            Some(first) => classify(&name, &path, first),
            None => LoadError::Incompatible {
                reason: "unknown error".to_string(),
                name,
                path,
            },
        },
    }
}

/// The first non-empty line of a (possibly multi-line) error message.
fn first_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or_else(|| one_line(message), str::to_string)
}

/// abi_stable's layout report is pages long: both layouts in full, then one
/// `Error:` paragraph per difference. The first difference says enough.
fn layout_reason(report: &str) -> String {
    const MAX: usize = 200;
    let mut lines = report
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("Error:"));
    let Some(first) = lines.next() else {
        return first_line(report);
    };
    let mut reason = vec![first.trim_start_matches("Error:").trim()];
    reason.extend(
        lines
            .take_while(|l| !l.is_empty() && !l.starts_with("Error:"))
            .filter(|l| !l.is_empty()),
    );
    let mut reason = format!("the root module's layout differs: {}", reason.join(" "));
    if reason.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

/// dlopen's message repeats the path (`<path>: invalid ELF header`); the
/// error line already names it.
fn strip_path(message: &str, path: &Path) -> String {
    let message = one_line(message);
    let prefix = format!("{}: ", path.display());
    message
        .strip_prefix(&prefix)
        .map_or(message.clone(), str::to_string)
}

/// Loads every plugin in order, then checks that their options can all live
/// on one command line next to the chassis' own.
pub fn load_all(
    names: &[String],
    dirs: &[PathBuf],
    chassis: &OptGroup,
) -> Result<Vec<Module>, LoadError> {
    let modules = names
        .iter()
        .map(|name| load(name, dirs))
        .collect::<Result<Vec<_>, _>>()?;
    let groups: Vec<OptGroup> = modules.iter().map(Module::group).collect();
    check_options(chassis, &groups)?;
    Ok(modules)
}

/// Rejects plugin options clap could not take (it would panic on them) and
/// options or short forms declared twice.
fn check_options(chassis: &OptGroup, plugins: &[OptGroup]) -> Result<(), LoadError> {
    let mut all_groups = vec![chassis.clone()];
    all_groups.extend(plugins.iter().cloned());
    let mut owner: HashMap<String, String> = chassis
        .options
        .iter()
        .map(|o| o.name.clone())
        .chain(help_option_names(&all_groups))
        .map(|name| (name, "the chassis".to_string()))
        .collect();
    let mut shorts: HashSet<char> = chassis.options.iter().filter_map(|o| o.short).collect();
    shorts.extend(HELP_SHORTS);
    for group in plugins {
        for option in &group.options {
            let bad = |reason: String| LoadError::BadOption {
                name: group.plugin.clone(),
                option: option.name.clone(),
                reason,
            };
            let mut chars = option.name.chars();
            let valid_name = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(bad("not a valid option name".to_string()));
            }
            if let Some(other) = owner.get(&option.name) {
                return Err(bad(format!("already defined by {other}")));
            }
            owner.insert(option.name.clone(), format!("plugin {}", group.plugin));
            match option.short {
                None => {}
                Some(c) if !c.is_ascii_alphanumeric() => {
                    return Err(bad(format!("invalid short form '{}'", c.escape_default())))
                }
                Some(c) if !shorts.insert(c) => {
                    return Err(bad(format!("short form -{c} is already taken")))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reason_is_the_first_difference() {
        let report = "Compared <this>:\n   --- Type Layout ---\n  type:X\n\n\
                      Error:incompatible type size\n  Expected:\n    32\n  Found:\n    16\n\
                      Error:too many fields\n  Expected:\n    4\n";
        assert_eq!(
            layout_reason(report),
            "the root module's layout differs: incompatible type size Expected: 32 Found: 16"
        );
        assert_eq!(layout_reason("\nsomething else\nmore"), "something else");
    }

    fn group(plugin: &str, options: &[(&str, char)]) -> OptGroup {
        OptGroup {
            plugin: plugin.to_string(),
            options: options
                .iter()
                .map(|(name, short)| {
                    let spec =
                        OptionSpec::new(name, mysql_proxy_plugin_abi::OptionKind::String, "", "");
                    OptDesc::from_spec(&if *short == '\0' {
                        spec
                    } else {
                        spec.with_short(*short)
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn conflicting_options_are_refused() {
        let chassis = crate::options::chassis_options();
        let ok = [
            group("proxy", &[("proxy-address", 'P')]),
            group("admin", &[("admin-address", '\0')]),
        ];
        assert!(check_options(&chassis, &ok).is_ok());
        let cases = [
            (
                vec![group("x", &[("log-level", '\0')])],
                "plugin x: option --log-level: already defined by the chassis",
            ),
            (
                vec![group("x", &[("help-all", '\0')])],
                "plugin x: option --help-all: already defined by the chassis",
            ),
            (
                vec![
                    group("x", &[("x-a", '\0')]),
                    group("y", &[("help-x", '\0')]),
                ],
                "plugin y: option --help-x: already defined by the chassis",
            ),
            (
                vec![group("x", &[("x-a", '\0')]), group("y", &[("x-a", '\0')])],
                "plugin y: option --x-a: already defined by plugin x",
            ),
            (
                vec![group("x", &[("x-a", 'V')])],
                "plugin x: option --x-a: short form -V is already taken",
            ),
            (
                vec![group("x", &[("x-a", 'h')])],
                "plugin x: option --x-a: short form -h is already taken",
            ),
            (
                vec![group("x", &[("x-a", '-')])],
                "plugin x: option --x-a: invalid short form '-'",
            ),
            (
                vec![group("x", &[("-x", '\0')])],
                "plugin x: option ---x: not a valid option name",
            ),
            (
                vec![group("x", &[("", '\0')])],
                "plugin x: option --: not a valid option name",
            ),
            (
                vec![group("x", &[("a b", '\0')])],
                "plugin x: option --a b: not a valid option name",
            ),
        ];
        for (plugins, expected) in cases {
            let err = check_options(&chassis, &plugins).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn candidate_order() {
        let dirs = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        assert_eq!(
            candidates("proxy", &dirs),
            vec![
                PathBuf::from("/a/libproxy.so"),
                PathBuf::from("/a/proxy.so"),
                PathBuf::from("/b/libproxy.so"),
                PathBuf::from("/b/proxy.so"),
            ]
        );
    }

    #[test]
    fn not_found_lists_every_path() {
        let dirs = vec![PathBuf::from("/nonexistent/a")];
        let err = load("nope", &dirs).err().unwrap();
        assert_eq!(
            err.to_string(),
            "plugin nope: not found (tried /nonexistent/a/libnope.so, /nonexistent/a/nope.so)"
        );
    }

    #[test]
    fn text_file_is_not_a_plugin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libbogus.so"), "not a library\n").unwrap();
        let err = load("bogus", &[dir.path().to_path_buf()]).err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, LoadError::NotAPlugin { .. }), "{text}");
        assert!(text.starts_with(&format!(
            "plugin bogus: {}/libbogus.so is not a mysql-proxy plugin: ",
            dir.path().display()
        )));
        assert_eq!(text.lines().count(), 1);
    }
}
