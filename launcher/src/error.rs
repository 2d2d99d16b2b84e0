//! Why mprun refuses to start a job: each variant prints as one line naming the cause.

use std::fmt;

/// An error before any rank starts (exit status 2).
#[derive(Debug)]
pub enum LaunchError {
    /// The command line is wrong.
    Usage(String),
    /// A hostfile line is wrong.
    Hostfile {
        /// The file.
        path: String,
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The ranks cannot be placed on the hosts.
    Plan(String),
    /// The program cannot be started.
    Program(String),
    /// A local resource (socket, pipe, process) could not be set up.
    System(String),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Usage(m) => write!(f, "{m} (see mprun --help)"),
            LaunchError::Hostfile {
                path,
                line: 0,
                what,
            } => write!(f, "hostfile {path}: {what}"),
            LaunchError::Hostfile { path, line, what } => {
                write!(f, "hostfile {path}, line {line}: {what}")
            }
            LaunchError::Plan(m) | LaunchError::Program(m) | LaunchError::System(m) => {
                write!(f, "{m}")
            }
        }
    }
}
