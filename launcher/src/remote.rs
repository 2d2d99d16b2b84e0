//! mprun's side of the hosts it reaches through a launch agent: one agent connection per host
//! (`AGENT HOST /path/to/mprun --helper`), carrying [`crate::link`] frames both ways.
//!
//! Start-up is in two steps so that an unreachable host stops the job before any rank starts:
//! every helper must say hello first; only then does each get the job and start its ranks.
//!
//! With many hosts the start-up is a tree ([`crate::link::split_tree`]): mprun starts at most
//! `MPR_LAUNCH_FANOUT` agents (default 16), and each helper starts those of the hosts below it,
//! relaying their frames up and mprun's down; so no machine runs more than that many agents at
//! once and the start-up takes log_fanout(hosts) agent round trips.
//! Afterwards a reader thread per host writes the ranks' lines to mprun's stdout and stderr
//! (whole lines, under the stream's lock, as for local ranks) and turns exit statuses into
//! supervisor events; the agent's own stderr is relayed as is.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::LaunchError;
use crate::link::{split_tree, Frame, JobSpec, Kind, Tree, ALL_RANKS, STDIN_WINDOW};
use crate::relay::Stream;
use crate::report::Event;
use crate::trace;

/// How long a host's helper may take to say hello (an ssh connection included).
const HELLO_WITHIN: Duration = Duration::from_secs(60);

/// The connection to one host's helper.
pub struct Helper {
    /// Index of the host in the plan.
    pub host: usize,
    pub name: String,
    /// Every host reached through this link: its own, and those its helper starts in turn.
    pub reach: Vec<usize>,
    to: Mutex<Option<ChildStdin>>,
    agent: Mutex<Child>,
    /// The agent's last lines on stderr, for the error if the helper never answers.
    stderr_tail: Arc<Mutex<Vec<String>>>,
    /// Stdin bytes mprun may still send through this link before rank 0 takes some
    /// ([`STDIN_WINDOW`]); `None` once the link has ended.
    stdin_window: Mutex<Option<usize>>,
    stdin_taken: Condvar,
}

impl Helper {
    /// Whether `host` is reached through this link.
    pub fn reaches(&self, host: usize) -> bool {
        self.reach.contains(&host)
    }

    /// Sends a frame; false if the link is gone.
    pub fn send(&self, f: &Frame) -> bool {
        let mut to = self.to.lock().unwrap_or_else(|p| p.into_inner());
        match to.as_mut() {
            Some(w) => f.write_to(w).is_ok(),
            None => false,
        }
    }

    /// Waits until rank 0 has room for stdin bytes, and reserves up to `want` of it; `None`
    /// once the link has ended.
    fn reserve_stdin(&self, want: usize) -> Option<usize> {
        let mut w = self.stdin_window.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *w {
                None => return None,
                Some(0) => w = self.stdin_taken.wait(w).unwrap_or_else(|p| p.into_inner()),
                Some(room) => {
                    let n = room.min(want);
                    *w = Some(room - n);
                    return Some(n);
                }
            }
        }
    }

    /// The helper says rank 0 took `n` stdin bytes (or the link ended: `None`).
    fn stdin_taken(&self, n: Option<usize>) {
        let mut w = self.stdin_window.lock().unwrap_or_else(|p| p.into_inner());
        *w = match (*w, n) {
            (Some(room), Some(n)) => Some((room + n).min(STDIN_WINDOW)),
            _ => None,
        };
        self.stdin_taken.notify_all();
    }

    /// Sends `sig` to `rank` (or [`ALL_RANKS`]) on this host.
    pub fn signal(&self, rank: u32, sig: Signal) {
        self.send(&Frame::with_int(Kind::Signal, rank, sig as i32));
    }

    /// Closes the link: the helper kills whatever still runs and exits.
    pub fn close(&self) {
        self.to.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Waits (a little) for the agent to exit, then kills it.
    pub fn reap(&self, within: Duration) {
        reap_all([self], within);
    }

    /// Whether the agent has exited (and is reaped).
    fn exited(&self) -> bool {
        let mut agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        matches!(agent.try_wait(), Ok(Some(_)))
    }

    fn kill(&self) {
        let mut agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        let _ = agent.kill();
        let _ = agent.wait();
    }

    /// Why the helper did not answer: the agent's exit and its last words.
    pub fn failure(&self) -> String {
        self.reap(Duration::from_secs(2));
        let code = self
            .agent
            .lock()
            .ok()
            .and_then(|mut a| a.try_wait().ok().flatten())
            .map(|st| match st.code() {
                Some(c) => format!("the launch agent exited with code {c}"),
                None => "the launch agent was killed".to_string(),
            })
            .unwrap_or_else(|| "the launch agent ended the connection".into());
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        match tail.last() {
            Some(last) => format!("{code}: {last}"),
            None => code,
        }
    }
}

/// Lets [`relay::stdin`](crate::relay::stdin) feed rank 0 on another host.
pub struct RemoteStdin(pub Arc<Helper>);

impl Write for RemoteStdin {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let want = buf.len().min(crate::link::MAX_PAYLOAD);
        if want == 0 {
            return Ok(0);
        }
        // Backpressure end to end: no more than the window may wait on the way to rank 0.
        let Some(n) = self.0.reserve_stdin(want) else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        if self.0.send(&Frame::new(Kind::Stdin, 0, &buf[..n])) {
            Ok(n)
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RemoteStdin {
    fn drop(&mut self) {
        self.0.send(&Frame::new(Kind::Stdin, 0, Vec::new()));
    }
}

/// What a reader thread tells the start-up.
pub enum Startup {
    /// Host `.0`'s helper runs, on machine `.1`.
    Hello(usize, crate::link::Machine),
    /// Host `.0` started its ranks.
    Started(usize),
    /// Host `.0` could not be reached or could not start its ranks.
    Failed(usize, String),
    /// Direct link `.0` (an index into the links) ended.
    Gone(usize),
    /// The link to host `.0`, below some helper, ended.
    Lost(usize),
}

/// How mprun reaches a host.
pub enum Launcher {
    /// An ssh-like agent: `WORDS... HOST COMMAND`, the command run by the host's shell.
    Agent(Vec<String>),
    /// Slurm: `srun` one task on the host, inside the allocation (the command as an argv).
    Srun,
}

impl Launcher {
    /// An agent command line, split into words (whitespace; no quoting).
    pub fn agent(line: &str) -> Launcher {
        Launcher::Agent(line.split_whitespace().map(String::from).collect())
    }

    fn command(&self, host: &str, me: &std::path::Path) -> Result<Command, LaunchError> {
        match self {
            Launcher::Agent(words) => {
                let Some((cmd0, rest)) = words.split_first() else {
                    return Err(LaunchError::Usage("--launch-agent is empty".into()));
                };
                let mut cmd = Command::new(cmd0);
                cmd.args(rest)
                    .arg(host)
                    .arg(shell_quote(&me.to_string_lossy()))
                    .arg("--helper");
                Ok(cmd)
            }
            Launcher::Srun => {
                let mut cmd = Command::new("srun");
                cmd.args(["--nodes=1", "--ntasks=1", "--kill-on-bad-exit=1"])
                    .arg(format!("--nodelist={host}"))
                    .arg(me)
                    .arg("--helper");
                Ok(cmd)
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Launcher::Agent(words) => words.join(" "),
            Launcher::Srun => "srun".into(),
        }
    }

    /// The agent's words for a [`Tree`] frame (empty for srun).
    pub fn words(&self) -> Vec<String> {
        match self {
            Launcher::Agent(w) => w.clone(),
            Launcher::Srun => Vec::new(),
        }
    }

    /// The launcher a [`Tree`] frame names.
    pub fn from_words(words: Vec<String>) -> Launcher {
        if words.is_empty() {
            Launcher::Srun
        } else {
            Launcher::Agent(words)
        }
    }
}

/// Starts the agent to `name` (plan host `host`, reaching `reach`), running mprun's helper
/// there. Returns the link and the stream of the helper's frames; the agent's stderr goes to
/// this process's stderr.
pub fn open_link(
    launcher: &Launcher,
    host: usize,
    name: &str,
    reach: Vec<usize>,
) -> Result<(Arc<Helper>, ChildStdout), LaunchError> {
    let me = std::env::current_exe()
        .map_err(|e| LaunchError::System(format!("cannot find mprun's own path: {e}")))?;
    let mut cmd = launcher.command(name, &me)?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        LaunchError::Plan(format!(
            "host {name}: cannot run the launch agent {:?}: {e}",
            launcher.name()
        ))
    })?;
    let (Some(to), Some(from), Some(err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(LaunchError::System("agent pipes missing".into()));
    };
    let h = Arc::new(Helper {
        host,
        name: name.to_string(),
        reach,
        to: Mutex::new(Some(to)),
        agent: Mutex::new(child),
        stderr_tail: Arc::default(),
        stdin_window: Mutex::new(Some(STDIN_WINDOW)),
        stdin_taken: Condvar::new(),
    });
    relay_agent_stderr(err, h.stderr_tail.clone());
    Ok((h, from))
}

/// A word quoted for the remote shell that ssh-like agents run the command with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The name of plan host `h` among `hosts` (plan index, name), for messages.
fn host_name(hosts: &[(usize, String)], h: usize) -> String {
    hosts
        .iter()
        .find(|(i, _)| *i == h)
        .map_or_else(|| format!("#{h}"), |(_, n)| n.clone())
}

/// The links mprun holds, and the machine each remote host said it runs on.
pub type Connected = (Vec<Arc<Helper>>, Vec<(usize, crate::link::Machine)>);

/// Starts the helpers of every host in `hosts` (plan index, name), directly or through a tree
/// of helpers, and waits until each has said hello. Output and exits flow to `events` from then
/// on.
pub fn connect(
    hosts: &[(usize, String)],
    launcher: &Launcher,
    fanout: usize,
    tag_output: bool,
    events: &Sender<Event>,
    startup: (Sender<Startup>, &Receiver<Startup>),
) -> Result<Connected, LaunchError> {
    let (tx, rx) = startup;
    let name = |h: usize| host_name(hosts, h);
    let mut helpers: Vec<Arc<Helper>> = Vec::new();
    for (i, ((host, hname), below)) in split_tree(hosts, fanout).into_iter().enumerate() {
        let reach = std::iter::once(host)
            .chain(below.iter().map(|b| b.0))
            .collect();
        let (h, from) = match open_link(launcher, host, &hname, reach) {
            Ok(l) => l,
            Err(e) => {
                end_all(&helpers);
                return Err(e);
            }
        };
        let tree = Tree {
            host,
            agent: launcher.words(),
            fanout,
            below,
        };
        h.send(&Frame::new(Kind::Tree, 0, tree.encode()));
        read_frames(i, from, h.clone(), tag_output, events.clone(), tx.clone());
        trace::note(|| format!("{hname}: launch agent started"));
        helpers.push(h);
    }
    let deadline = Instant::now() + HELLO_WITHIN;
    let mut waiting: Vec<usize> = hosts.iter().map(|h| h.0).collect();
    let mut machines = Vec::new();
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let fail = |why: String, host: usize| {
            end_all(&helpers);
            Err(LaunchError::Plan(format!(
                "host {}: cannot start mprun there ({why})",
                name(host)
            )))
        };
        match rx.recv_timeout(left) {
            Ok(Startup::Hello(h, m)) => {
                trace::note(|| format!("{}: helper answered", name(h)));
                waiting.retain(|&w| w != h);
                machines.push((h, m));
            }
            Ok(Startup::Gone(i)) => return fail(helpers[i].failure(), helpers[i].host),
            Ok(Startup::Failed(h, why)) => return fail(why, h),
            Ok(Startup::Lost(h)) => return fail("the connection to it ended".into(), h),
            Ok(Startup::Started(_)) => {}
            Err(_) => {
                let h = waiting[0];
                end_all(&helpers);
                return Err(LaunchError::Plan(format!(
                    "host {}: no answer from mprun there within {} s",
                    name(h),
                    HELLO_WITHIN.as_secs()
                )));
            }
        }
    }
    Ok((helpers, machines))
}

/// Sends every host its job (through the link that reaches it) and waits until all have
/// started their ranks.
pub fn start(
    helpers: &[Arc<Helper>],
    specs: Vec<(usize, String, JobSpec)>,
    rx: &Receiver<Startup>,
) -> Result<(), LaunchError> {
    let mut waiting: Vec<usize> = specs.iter().map(|s| s.0).collect();
    let names: Vec<(usize, String)> = specs.iter().map(|s| (s.0, s.1.clone())).collect();
    let name = |h: usize| host_name(&names, h);
    for (host, _, spec) in specs {
        let job = spec.encode();
        if job.len() > crate::link::MAX_PAYLOAD {
            end_all(helpers);
            return Err(LaunchError::Program(format!(
                "the job is too large to send to host {}: {} bytes of program, arguments and environment (at most {})",
                name(host),
                job.len(),
                crate::link::MAX_PAYLOAD
            )));
        }
        if let Some(h) = helpers.iter().find(|h| h.reaches(host)) {
            h.send(&Frame::new(Kind::Job, host as u32, job));
        }
    }
    while !waiting.is_empty() {
        let fail = |e: LaunchError| {
            end_all(helpers);
            Err(e)
        };
        match rx.recv_timeout(HELLO_WITHIN) {
            Ok(Startup::Started(h)) => {
                trace::note(|| format!("{}: ranks started", name(h)));
                waiting.retain(|&w| w != h);
            }
            Ok(Startup::Failed(h, why)) => {
                return fail(LaunchError::Program(format!("host {}: {why}", name(h))))
            }
            // A link whose hosts all started and whose ranks all ended already is just done.
            Ok(Startup::Gone(i)) if !helpers[i].reach.iter().any(|h| waiting.contains(h)) => {}
            Ok(Startup::Gone(i)) => {
                let why = helpers[i].failure();
                return fail(LaunchError::Plan(format!(
                    "host {}: lost the connection while starting ranks ({why})",
                    helpers[i].name
                )));
            }
            Ok(Startup::Lost(h)) if !waiting.contains(&h) => {}
            Ok(Startup::Lost(h)) => {
                return fail(LaunchError::Plan(format!(
                    "host {}: lost the connection while starting ranks",
                    name(h)
                )))
            }
            Ok(Startup::Hello(..)) => {}
            Err(_) => {
                return fail(LaunchError::Plan(
                    "hosts did not start their ranks in time".into(),
                ))
            }
        }
    }
    Ok(())
}

/// Ends every helper's ranks and its link.
pub fn end_all(helpers: &[Arc<Helper>]) {
    for h in helpers {
        h.signal(ALL_RANKS, Signal::SIGKILL);
        h.close();
    }
    reap_all(helpers.iter().map(|h| &**h), Duration::from_secs(2));
}

/// Waits up to `within` for the agents to exit, all at once, then kills those still there.
///
/// The agent (ssh) exits a moment after its helper's last frame; polling starts at 0.2 ms and
/// backs off to 10 ms, so a job's end waits for the agents themselves, not for a fixed sleep per
/// agent (which cost 10 ms per host at the end of every job).
pub fn reap_all<'a>(helpers: impl IntoIterator<Item = &'a Helper>, within: Duration) {
    let mut left: Vec<&Helper> = helpers.into_iter().collect();
    let end = Instant::now() + within;
    let mut step = Duration::from_micros(200);
    loop {
        left.retain(|h| !h.exited());
        if left.is_empty() || Instant::now() >= end {
            break;
        }
        std::thread::sleep(step.min(end.saturating_duration_since(Instant::now())));
        step = (step * 2).min(Duration::from_millis(10));
    }
    for h in left {
        h.kill();
    }
}

pub fn relay_agent_stderr(err: impl std::io::Read + Send + 'static, tail: Arc<Mutex<Vec<String>>>) {
    let _ = std::thread::Builder::new()
        .name("agent-stderr".into())
        .spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                let _ = writeln!(std::io::stderr().lock(), "{line}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() >= 8 {
                        t.remove(0);
                    }
                    t.push(line);
                }
            }
        });
}

/// Reads helper `i`'s frames: output lines to mprun's streams, exits to the supervisor, the
/// start-up steps to the start-up.
fn read_frames(
    i: usize,
    from: impl std::io::Read + Send + 'static,
    helper: Arc<Helper>,
    tag: bool,
    events: Sender<Event>,
    startup: Sender<Startup>,
) {
    let _ = std::thread::Builder::new()
        .name(format!("host-{}", helper.name))
        .spawn(move || {
            let mut r = BufReader::with_capacity(64 << 10, from);
            // (rank, stdout?) whose last piece did not end its line.
            let mut mid_line = std::collections::HashSet::new();
            while let Ok(Some(f)) = Frame::read_from(&mut r) {
                // The helper at the end of this link speaks for itself with ALL_RANKS; those
                // below it are named by their host.
                let host = if f.word == ALL_RANKS {
                    helper.host
                } else {
                    f.word as usize
                };
                match f.kind {
                    Kind::Hello => {
                        let machine = crate::link::Machine::decode(&f.payload);
                        let _ = startup.send(Startup::Hello(host, machine));
                    }
                    Kind::Started => {
                        let _ = startup.send(Startup::Started(host));
                    }
                    Kind::Failed => {
                        let why = String::from_utf8_lossy(&f.payload).into_owned();
                        let _ = startup.send(Startup::Failed(host, why));
                    }
                    Kind::Lost => {
                        let _ = startup.send(Startup::Lost(host));
                        let _ = events.send(Event::HostLost(host));
                    }
                    Kind::Stdout | Kind::Stderr => {
                        let to = if f.kind == Kind::Stdout {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        };
                        // A piece of a long line continues the one before: no tag again.
                        let key = (f.word, f.kind == Kind::Stdout);
                        let continues = mid_line.contains(&key);
                        if f.payload.last() == Some(&b'\n') {
                            mid_line.remove(&key);
                        } else {
                            mid_line.insert(key);
                        }
                        if tag && !continues {
                            let mut line = format!("[{}] ", f.word).into_bytes();
                            line.extend_from_slice(&f.payload);
                            crate::relay::write_line(to, &line);
                        } else {
                            crate::relay::write_line(to, &f.payload);
                        }
                    }
                    Kind::Exit => {
                        let raw = f.int().unwrap_or(9); // a cut frame: as if killed
                        let _ = events.send(Event::RemoteExited {
                            rank: f.word as usize,
                            raw,
                        });
                    }
                    Kind::StdinTaken => {
                        if let Some(n) = f.int().and_then(|n| usize::try_from(n).ok()) {
                            helper.stdin_taken(Some(n));
                        }
                    }
                    Kind::Job | Kind::Stdin | Kind::Signal | Kind::Tree => {}
                }
            }
            helper.stdin_taken(None);
            let _ = std::io::stdout().flush();
            trace::note(|| format!("{}: link closed", helper.name));
            let _ = startup.send(Startup::Gone(i));
            for &h in &helper.reach {
                let _ = events.send(Event::HostLost(h));
            }
            let _ = events.send(Event::OutputClosed);
        });
}
