//! Every way start-up (or the run) can fail, and the one place that turns such
//! a failure into log lines and an exit code.

use crate::config::{FileError, Problem};
use crate::loader::LoadError;
use crate::logging::{one_line, LogError};
use crate::process::ProcessError;

/// A failure that ends the process. Every variant is exit code 1 (COMPAT
/// 1.10); each renders as one line, except [`FatalError::Invalid`], which is
/// one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// An option nobody declared (GLib's wording, prefixed with the program
    /// name where MySQL Proxy put the source location).
    #[error("mysql-proxy: Unknown option {0} (use --help to show all options)")]
    UnknownOption(String),
    /// A positional argument: the chassis takes none.
    #[error("unknown option: {0}")]
    StrayArgument(String),
    /// Any other command-line syntax error (e.g. a missing value).
    #[error("mysql-proxy: {0}")]
    CommandLine(String),
    #[error(transparent)]
    DefaultsFile(#[from] FileError),
    /// Option values that failed validation, all of them.
    #[error("{}", join_problems(.0))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin's `init` refused its options.
    #[error("plugin {name}: {message}")]
    PluginInit { name: String, message: String },
    #[error(transparent)]
    Logging(#[from] LogError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The engine could not start (e.g. a listener could not be bound).
    #[error("{0}")]
    Engine(String),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The location of the running binary is needed for the default basedir
    /// and plugin directory.
    #[error("cannot determine the location of the mysql-proxy binary: {0}")]
    NoExecutable(std::io::Error),
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl FatalError {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// The lines to log, each a complete message.
    pub fn lines(&self) -> Vec<String> {
        match self {
            FatalError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
            other => vec![one_line(&other.to_string())],
        }
    }
}
