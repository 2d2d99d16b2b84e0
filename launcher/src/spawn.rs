//! Starting the ranks on this host.
//!
//! Each rank is a child of mprun in a process group of its own (so that mprun can end a rank and
//! anything it started, and a Ctrl-C at the terminal reaches only mprun, which decides). Ranks are
//! spawned from the main thread, which lives until mprun exits: the runtime asks the kernel to
//! kill a rank when its parent goes (`PR_SET_PDEATHSIG`), which Linux ties to the parent *thread*.
//! A watcher thread per rank waits for the rank to exit without reaping it (`waitid` with
//! `WNOWAIT`); the main thread reaps, so a pid mprun signals is always still its own child.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use mpr_launch::Bootstrap;

use crate::error::LaunchError;
use crate::plan::Plan;
use crate::report::Event;

/// A started rank.
pub struct Rank {
    pub rank: usize,
    pub host: String,
    pub place: Place,
    /// Set once reaped (here) or reported ended (by its host's helper).
    pub status: Option<ExitStatus>,
}

/// Where a rank runs: a child of this mprun, or of the helper on its host.
pub enum Place {
    Local(Child),
    Remote(std::sync::Arc<crate::remote::Helper>),
}

impl Rank {
    /// Sends `sig` to the rank's process group, unless it has ended.
    pub fn signal(&self, sig: Signal) {
        if self.status.is_some() {
            return;
        }
        match &self.place {
            Place::Local(child) => {
                let _ = killpg(Pid::from_raw(child.id() as i32), sig);
            }
            Place::Remote(h) => h.signal(self.rank as u32, sig),
        }
    }
}

/// A rank's number and its pipes.
pub type RankPipes = (usize, Pipes);

/// The pipes of a started rank, for the relays.
pub struct Pipes {
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Finds `program` the way a shell would (a name without '/' is looked up in PATH) and checks
/// that it can be executed.
pub fn resolve(program: &str) -> Result<PathBuf, LaunchError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        if !p.exists() {
            return Err(LaunchError::Program(format!(
                "cannot start {program}: no such file"
            )));
        }
        if !executable(&p) {
            return Err(LaunchError::Program(format!(
                "cannot start {program}: not an executable file"
            )));
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| LaunchError::Program(format!("cannot start {program}: not found in PATH")))
}

/// The command that starts rank `rank` of `program`: its arguments and environment, stdin a
/// pipe for rank 0 (nothing for the others), stdout and stderr pipes, in a process group of its
/// own. (Also used by the helper on other hosts.)
pub fn rank_command(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[String],
    env: &[(String, String)],
    rank: usize,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if rank == 0 {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// Starts the ranks of `plan` that `here` accepts (by plan host index). On failure, the ranks
/// already started are killed.
pub fn start(
    plan: &Plan,
    here: impl Fn(usize) -> bool,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    contract: impl Fn(usize) -> Bootstrap,
    events: &Sender<Event>,
) -> Result<(Vec<Rank>, Vec<RankPipes>), LaunchError> {
    let mut ranks: Vec<Rank> = Vec::with_capacity(plan.ranks.len());
    let mut pipes = Vec::with_capacity(plan.ranks.len());
    for p in plan.ranks.iter().filter(|p| here(p.host)) {
        let mut cmd = rank_command(program, args, env, p.rank);
        cmd.envs(contract(p.rank).to_env());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                for r in &ranks {
                    r.signal(Signal::SIGKILL);
                }
                for r in &mut ranks {
                    if let Place::Local(c) = &mut r.place {
                        let _ = c.wait();
                    }
                }
                return Err(LaunchError::Program(format!(
                    "cannot start {} (rank {}): {e}",
                    program.display(),
                    p.rank
                )));
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(LaunchError::System("child pipes missing".into()));
        };
        pipes.push((
            p.rank,
            Pipes {
                stdin: child.stdin.take(),
                stdout,
                stderr,
            },
        ));
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, rank) = (events.clone(), p.rank);
        std::thread::Builder::new()
            .name(format!("watch-{rank}"))
            .spawn(move || {
                // Wait for the exit without reaping; retry on EINTR.
                while let Err(nix::errno::Errno::EINTR) =
                    waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
                {
                }
                let _ = tx.send(Event::Exited(rank));
            })
            .map_err(|e| LaunchError::System(format!("watcher thread: {e}")))?;
        ranks.push(Rank {
            rank: p.rank,
            host: plan.hosts[p.host].clone(),
            place: Place::Local(child),
            status: None,
        });
    }
    Ok((ranks, pipes))
}
