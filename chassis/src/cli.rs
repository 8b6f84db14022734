//! The command line: the pass-1 pre-scan that runs before plugins are loaded,
//! the final clap parse with the chassis' and every plugin's options (as
//! [`crate::options`] describes them), and the `--help*` / `--version` output.
//!
//! clap is used through its builder API because plugin options are only known
//! at run time (each loaded plugin declares them). All values are kept as
//! strings here; typing and validation happen in [`crate::config`], so that a
//! bad value is reported the same way whether it came from the command line or
//! from the config file.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::builder::ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use mysql_proxy_plugin_abi::OptionKind;

use crate::error::FatalError;
use crate::options::{help_groups, help_plugin_id, names, OptDesc, OptGroup, HELP, HELP_ALL};

/// The program name used in usage lines and error messages.
pub const PROGRAM: &str = "mysql-proxy";

// How an option and a group appear to clap and in the help; what they are is
// described in `crate::options`.

impl OptDesc {
    /// The clap argument for this option.
    fn to_arg(&self) -> Arg {
        let mut arg = Arg::new(self.name.clone())
            .long(self.name.clone())
            .help(self.help.clone());
        if let Some(short) = self.short {
            arg = arg.short(short);
        }
        let value_name = if self.value_name.is_empty() {
            "value".to_string()
        } else {
            self.value_name.clone()
        };
        match self.kind {
            OptionKind::Flag => arg.action(ArgAction::SetTrue),
            OptionKind::StringList => arg
                .action(ArgAction::Append)
                .num_args(1)
                .value_name(value_name)
                .value_parser(ValueParser::string()),
            OptionKind::Integer | OptionKind::Double => arg
                .action(ArgAction::Set)
                .num_args(1)
                .value_name(value_name)
                .allow_negative_numbers(true)
                .value_parser(ValueParser::string()),
            OptionKind::String | OptionKind::Filename => arg
                .action(ArgAction::Set)
                .num_args(1)
                .value_name(value_name)
                .value_parser(ValueParser::string()),
        }
    }
}

impl OptGroup {
    /// The help heading: "Application Options", or "<plugin>-module" as in
    /// MySQL Proxy.
    fn heading(&self) -> String {
        if self.plugin.is_empty() {
            "Application Options".to_string()
        } else {
            format!("{}-module", self.plugin)
        }
    }
}

/// What pass 1 finds on the command line: the options needed before plugins
/// are loaded (COMPAT 1.1 steps 2 and 5). Everything else is left for the
/// final parse, which sees the same command line again.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass1 {
    pub version: bool,
    /// Values of `--defaults-file`, `--plugins`, `--plugin-dir`, `--basedir`
    /// that were given, in command-line order.
    pub values: BTreeMap<String, Vec<String>>,
}

impl Pass1 {
    /// The last value given for a single-valued option.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
}

/// Pass 1: scans the command line for `--version`/`-V`, `--defaults-file`,
/// `--plugins`, `--plugin-dir` and `--basedir`, in both `--name=value` and
/// `--name value` forms, tolerating everything it does not know. (A
/// hand-written scan rather than clap's `ignore_errors`, which stops at the
/// first unknown option and so would miss options after it.)
pub fn prescan(args: &[OsString]) -> Pass1 {
    const WITH_VALUE: [&str; 4] = [
        names::DEFAULTS_FILE,
        names::PLUGINS,
        names::PLUGIN_DIR,
        names::BASEDIR,
    ];
    let mut pass1 = Pass1::default();
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(arg) = arg.to_str() else {
            continue;
        };
        if arg == "--" {
            break;
        }
        if arg == "-V" {
            pass1.version = true;
            continue;
        }
        let Some(long) = arg.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        };
        if name == names::VERSION && inline.is_none() {
            pass1.version = true;
        } else if WITH_VALUE.contains(&name) {
            let value = match inline {
                Some(value) => Some(value),
                None => iter.next().and_then(|v| v.to_str()).map(str::to_string),
            };
            // A missing value is reported by the final parse.
            if let Some(value) = value {
                pass1
                    .values
                    .entry(name.to_string())
                    .or_default()
                    .push(value);
            }
        }
    }
    pass1
}

/// Which help to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpScope {
    /// `--help`, `-h`, `-?`: the help options and the chassis group.
    Main,
    /// `--help-all`: every group.
    All,
    /// `--help-<plugin>`: that plugin's group.
    Plugin(String),
}

/// The outcome of the final parse.
#[derive(Debug)]
pub enum Parsed {
    /// Print help and exit 0.
    Help(HelpScope),
    /// Run with these command-line values (option name -> values in order;
    /// flags given have `["true"]`; options not given are absent).
    Run(BTreeMap<String, Vec<String>>),
}

/// Builds the full command: help options, then each group under its heading.
/// `scope` decides which options appear in the rendered help (all of them are
/// always parsed).
fn build_command(groups: &[OptGroup], scope: &HelpScope) -> Command {
    let help_shown = !matches!(scope, HelpScope::Plugin(_));
    let group_shown = |group: &OptGroup| match scope {
        HelpScope::Main => group.plugin.is_empty(),
        HelpScope::All => true,
        HelpScope::Plugin(name) => &group.plugin == name,
    };
    let mut cmd = Command::new(PROGRAM)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        // GLib: a repeated option is not an error; the last value wins (list
        // options still collect every occurrence).
        .args_override_self(true)
        .override_usage(format!("{PROGRAM} [OPTION...] - MySQL Proxy"))
        .help_template("Usage:\n  {usage}\n\n{all-args}")
        .max_term_width(100)
        .next_help_heading("Help Options")
        .arg(
            Arg::new(HELP)
                .long(HELP)
                .short('h')
                .short_alias('?')
                .action(ArgAction::SetTrue)
                .help("Show help options")
                .hide(!help_shown),
        )
        .arg(
            Arg::new(HELP_ALL)
                .long(HELP_ALL)
                .action(ArgAction::SetTrue)
                .help("Show all help options")
                .hide(!help_shown),
        );
    for group in help_groups(groups) {
        let id = help_plugin_id(&group.plugin);
        cmd = cmd.arg(
            Arg::new(id.clone())
                .long(id)
                .action(ArgAction::SetTrue)
                .help(format!("Show options for the {}", group.heading()))
                .hide(!help_shown),
        );
    }
    for group in groups {
        let visible = group_shown(group);
        cmd = cmd.next_help_heading(group.heading());
        for option in &group.options {
            cmd = cmd.arg(option.to_arg().hide(!visible));
        }
    }
    cmd
}

/// The final parse: every group's options known, unknown options rejected.
pub fn parse(args: &[OsString], groups: &[OptGroup]) -> Result<Parsed, FatalError> {
    let cmd = build_command(groups, &HelpScope::All);
    let matches = cmd.try_get_matches_from(args).map_err(command_line_error)?;
    if matches.get_flag(HELP) {
        return Ok(Parsed::Help(HelpScope::Main));
    }
    if matches.get_flag(HELP_ALL) {
        return Ok(Parsed::Help(HelpScope::All));
    }
    for group in help_groups(groups) {
        if matches.get_flag(&help_plugin_id(&group.plugin)) {
            return Ok(Parsed::Help(HelpScope::Plugin(group.plugin.clone())));
        }
    }
    Ok(Parsed::Run(given_values(&matches, groups)))
}

/// The values given on the command line, per option name.
fn given_values(matches: &ArgMatches, groups: &[OptGroup]) -> BTreeMap<String, Vec<String>> {
    let mut values = BTreeMap::new();
    for option in groups.iter().flat_map(|g| g.options.iter()) {
        if matches.value_source(&option.name) != Some(ValueSource::CommandLine) {
            continue;
        }
        let given: Vec<String> = match option.kind {
            OptionKind::Flag => vec!["true".to_string()],
            _ => matches
                .get_many::<String>(&option.name)
                .map(|v| v.cloned().collect())
                .unwrap_or_default(),
        };
        values.insert(option.name.clone(), given);
    }
    values
}

/// Turns a clap error into MySQL Proxy's one-line messages.
fn command_line_error(error: clap::Error) -> FatalError {
    let invalid_arg = error.get(ContextKind::InvalidArg).and_then(|v| match v {
        ContextValue::String(s) => Some(s.clone()),
        _ => None,
    });
    let invalid_value = error.get(ContextKind::InvalidValue).and_then(|v| match v {
        ContextValue::String(s) => Some(s.clone()),
        _ => None,
    });
    match (error.kind(), invalid_arg) {
        (ErrorKind::UnknownArgument, Some(arg)) if arg.starts_with('-') => {
            // clap reports `--foo=bar` whole; GLib names the option only.
            let option = arg.split_once('=').map_or(arg.as_str(), |(o, _)| o);
            FatalError::UnknownOption(option.to_string())
        }
        (ErrorKind::UnknownArgument, Some(arg)) => FatalError::StrayArgument(arg),
        (ErrorKind::InvalidValue, Some(arg)) if invalid_value.as_deref() == Some("") => {
            // clap's "arg" is the option with its placeholder: `--x <value>`.
            let option = arg.split_whitespace().next().unwrap_or(&arg);
            FatalError::CommandLine(format!("Missing argument for {option}"))
        }
        _ => FatalError::CommandLine(clap_message(&error)),
    }
}

/// The first line of clap's own message, without its `error: ` prefix.
fn clap_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| error.kind().to_string())
}

/// The help text for `scope`.
pub fn help_text(groups: &[OptGroup], scope: &HelpScope) -> String {
    build_command(groups, scope).render_help().to_string()
}

/// The first lines of `--version` (printed before plugins are loaded).
pub fn version_header() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "{PROGRAM} {version}\n  chassis: {version}\n  plugin-abi: {}\n",
        crate::loader::abi_version()
    )
}

/// The `-- modules` block of `--version`: one line per loaded plugin.
pub fn version_modules<'a>(plugins: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("-- modules\n");
    for (name, version) in plugins {
        out.push_str(&format!("  {name}: {version}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use mysql_proxy_plugin_abi::OptionSpec;

    use super::*;
    use crate::options::chassis_options;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once(PROGRAM)
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn plugin_group() -> OptGroup {
        OptGroup {
            plugin: "proxy".into(),
            options: vec![
                OptDesc::from_spec(
                    &OptionSpec::new(
                        "proxy-backend-addresses",
                        OptionKind::StringList,
                        "<host:port>",
                        "backends",
                    )
                    .with_short('b'),
                ),
                OptDesc::from_spec(&OptionSpec::new(
                    "proxy-read-timeout",
                    OptionKind::Double,
                    "<seconds>",
                    "read timeout",
                )),
                OptDesc::from_spec(&OptionSpec::new(
                    "no-proxy",
                    OptionKind::Flag,
                    "",
                    "no proxy",
                )),
            ],
        }
    }

    #[test]
    fn prescan_finds_pass1_options_in_both_forms() {
        let p = prescan(&args(&[
            "--unknown",
            "x",
            "--plugins=proxy",
            "--plugins",
            "admin,debug",
            "--defaults-file",
            "/etc/x.cnf",
            "--basedir=/opt",
            "-V",
            "--",
            "--plugin-dir=/nope",
        ]));
        assert!(p.version);
        assert_eq!(p.values["plugins"], vec!["proxy", "admin,debug"]);
        assert_eq!(p.last("defaults-file"), Some("/etc/x.cnf"));
        assert_eq!(p.last("basedir"), Some("/opt"));
        assert_eq!(p.last("plugin-dir"), None);
    }

    #[test]
    fn final_parse_collects_values() {
        let groups = vec![chassis_options(), plugin_group()];
        let parsed = parse(
            &args(&[
                "--daemon",
                "--daemon",
                "--log-level",
                "debug",
                "--log-level=info",
                "-b",
                "a:1",
                "--proxy-backend-addresses=b:2",
                "--proxy-read-timeout",
                "-1.5",
                "--plugins=",
            ]),
            &groups,
        )
        .unwrap();
        let Parsed::Run(values) = parsed else {
            panic!("expected values, got {parsed:?}");
        };
        assert_eq!(values["daemon"], vec!["true"]);
        assert_eq!(values["log-level"], vec!["info"]);
        assert_eq!(values["proxy-backend-addresses"], vec!["a:1", "b:2"]);
        assert_eq!(values["proxy-read-timeout"], vec!["-1.5"]);
        assert_eq!(values["plugins"], vec![""]);
        assert!(!values.contains_key("no-proxy"));
    }

    #[test]
    fn unknown_option_and_stray_argument() {
        let groups = vec![chassis_options()];
        let err = parse(&args(&["--foo=bar"]), &groups).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mysql-proxy: Unknown option --foo (use --help to show all options)"
        );
        let err = parse(&args(&["stray"]), &groups).unwrap_err();
        assert_eq!(err.to_string(), "unknown option: stray");
        let err = parse(&args(&["--log-level"]), &groups).unwrap_err();
        assert!(err.to_string().contains("--log-level"), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }

    #[test]
    fn help_flags() {
        let groups = vec![chassis_options(), plugin_group()];
        for flag in ["-h", "-?", "--help"] {
            assert!(matches!(
                parse(&args(&[flag]), &groups).unwrap(),
                Parsed::Help(HelpScope::Main)
            ));
        }
        assert!(matches!(
            parse(&args(&["--help-proxy"]), &groups).unwrap(),
            Parsed::Help(HelpScope::Plugin(p)) if p == "proxy"
        ));
        let main = help_text(&groups, &HelpScope::Main);
        assert!(main.contains("--log-level"));
        assert!(main.contains("--help-proxy"));
        assert!(!main.contains("--proxy-backend-addresses"));
        let all = help_text(&groups, &HelpScope::All);
        assert!(all.contains("proxy-module"));
        assert!(all.contains("-b, --proxy-backend-addresses <host:port>"));
        let proxy = help_text(&groups, &HelpScope::Plugin("proxy".into()));
        assert!(proxy.contains("--proxy-read-timeout"));
        assert!(!proxy.contains("--log-level"));
    }
}
