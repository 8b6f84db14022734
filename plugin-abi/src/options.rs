//! Command-line / config-file options a plugin declares, and their values.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// The type of an option's value.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// No value on the command line; `true`/`false` in the config file.
    Flag,
    /// One string.
    String,
    /// A file name; a relative one is resolved against `--basedir`.
    Filename,
    /// Repeatable on the command line; comma-separated in the config file.
    StringList,
    /// An integer.
    Integer,
    /// A floating-point number (e.g. seconds).
    Double,
}

/// One option a plugin understands (`--<name>` on the command line,
/// `<name> = value` in the `[mysql-proxy]` section of the config file).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// Long name without the dashes, e.g. `proxy-address`.
    pub name: RString,
    /// Short form (an ASCII letter) or 0 for none.
    pub short: u8,
    pub kind: OptionKind,
    /// Placeholder shown in help, e.g. `<host:port>`; empty for flags.
    pub value_name: RString,
    /// One line of help; it should mention the default.
    pub help: RString,
}

impl OptionSpec {
    /// A spec with no short form.
    pub fn new(name: &str, kind: OptionKind, value_name: &str, help: &str) -> Self {
        Self {
            name: name.into(),
            short: 0,
            kind,
            value_name: value_name.into(),
            help: help.into(),
        }
    }

    /// The same spec with a short form.
    pub fn with_short(mut self, short: char) -> Self {
        self.short = if short.is_ascii() { short as u8 } else { 0 };
        self
    }
}

/// The value(s) given for one option. Options that were not given are not
/// passed at all.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OptionValue {
    pub name: RString,
    /// One entry per occurrence (list options may have several; flags have
    /// `true` or `false`).
    pub values: RVec<RString>,
}

/// Read access to the option values handed to a plugin's `init`.
#[derive(Debug, Clone, Default)]
pub struct PluginOptions {
    values: Vec<(String, Vec<String>)>,
}

impl PluginOptions {
    /// Wraps the values received over the ABI.
    pub fn from_values(values: &[OptionValue]) -> Self {
        Self {
            values: values
                .iter()
                .map(|v| {
                    (
                        v.name.to_string(),
                        v.values.iter().map(|s| s.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Builds values directly (for tests and for the host).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut options = Self::default();
        for (name, value) in pairs {
            match options.values.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value.to_string()),
                None => options
                    .values
                    .push((name.to_string(), vec![value.to_string()])),
            }
        }
        options
    }

    /// Converts back to the FFI form.
    pub fn to_values(&self) -> RVec<OptionValue> {
        self.values
            .iter()
            .map(|(name, values)| OptionValue {
                name: name.as_str().into(),
                values: values.iter().map(|v| RString::from(v.as_str())).collect(),
            })
            .collect()
    }

    /// The last value given for a single-valued option, as given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, values)| values.last())
            .map(String::as_str)
    }

    /// Every value given for a list option, split at commas and trimmed
    /// (so `--x=a,b --x=c` gives a, b, c); empty elements are skipped.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, values)| values.iter())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Whether a flag was given (as `true`).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    /// Whether the option was given at all.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| n == name)
    }

    /// A floating-point option; `Err` names the option if it does not parse.
    pub fn double(&self, name: &str) -> Result<Option<f64>, String> {
        self.get(name)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("--{name}: '{v}' is not a number"))
            })
            .transpose()
    }
}
