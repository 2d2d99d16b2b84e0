//! `mprun --helper`: mprun's stand-in on another host, started there through the launch agent
//! (`AGENT HOST mprun --helper`). It talks to mprun over the agent's stdin and stdout
//! ([`crate::link`]): it says hello, receives the job, starts this host's ranks (children in
//! process groups of their own, spawned from the main thread, which the ranks' parent-death
//! signal is tied to), relays their output line by line and their exit statuses, passes on
//! stdin and signals, and exits once every rank has ended.
//!
//! If mprun goes away (the agent's connection ends: end of stdin), the helper kills its ranks
//! at once and exits, so nothing of the job outlives the link on any host.
//!
//! In a start-up tree (`remote.rs`) a helper also starts the helpers of the hosts below it
//! (a [`Tree`] frame says which), passes their frames up (naming them by host where they speak
//! for themselves) and mprun's frames down to the link that reaches the host or rank they are
//! for; it exits once its own ranks and every link below have ended.

use std::io::{BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use mpr_launch::env::{
    ENV_BIND, ENV_LAUNCHER_PID, ENV_LOCAL_RANK, ENV_LOCAL_SIZE, ENV_RANK, ENV_RENDEZVOUS,
};

use crate::link::{split_tree, Frame, JobSpec, Kind, Tree, ALL_RANKS};
use crate::netif;
use crate::remote::{open_link, reap_all, Helper, Launcher};

/// Frames to mprun, one writer at a time.
type Out = Arc<Mutex<std::io::Stdout>>;

enum Ev {
    FromMprun(Frame),
    MprunGone,
    Exited(usize, i32),
    /// The link to a helper below ended.
    ChildGone,
    /// A rank's stdout or stderr reached its end.
    RelayDone,
}

struct Started {
    rank: usize,
    pid: Pid,
    reaped: Arc<AtomicBool>,
}

impl Started {
    fn signal(&self, sig: Signal) {
        if !self.reaped.load(Ordering::SeqCst) {
            let _ = killpg(self.pid, sig);
        }
    }
}

fn send(out: &Out, f: Frame) -> bool {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    f.write_to(&mut *o).is_ok()
}

/// Runs the helper; returns its exit status.
pub fn run() -> i32 {
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let hello = crate::link::Machine::here().encode(&host);
    if !send(&out, Frame::new(Kind::Hello, ALL_RANKS, hello)) {
        return 2;
    }
    let (tx, rx) = channel();
    {
        let tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("from-mprun".into())
            .spawn(move || {
                let mut input = std::io::stdin().lock();
                loop {
                    match Frame::read_from(&mut input) {
                        Ok(Some(f)) => {
                            if tx.send(Ev::FromMprun(f)).is_err() {
                                return;
                            }
                        }
                        Ok(None) | Err(_) => {
                            let _ = tx.send(Ev::MprunGone);
                            return;
                        }
                    }
                }
            });
    }
    // The helpers below this one, the ranks each reaches, and this host's own ranks.
    let mut children: Vec<Arc<Helper>> = Vec::new();
    let mut child_ranks: Vec<(usize, usize)> = Vec::new();
    let mut children_open = 0;
    let mut me: Option<usize> = None;
    let mut ranks: Vec<Started> = Vec::new();
    let mut stdin: Option<Sender<Vec<u8>>> = None;
    let mut job_done = false;
    let mut live = 0;
    let mut relays = 0;
    // After the last exit, the ranks' last lines may still be on their way (bounded: a rank's
    // own child may hold a pipe open).
    let mut drain_until: Option<Instant> = None;
    while !(job_done && live == 0 && relays == 0 && children_open == 0) {
        let ev = match drain_until {
            Some(t) if live == 0 && children_open == 0 => {
                match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                    Ok(ev) => ev,
                    Err(_) => break,
                }
            }
            _ => match rx.recv() {
                Ok(ev) => ev,
                Err(_) => break,
            },
        };
        match ev {
            Ev::FromMprun(f) => match f.kind {
                Kind::Tree => {
                    let Ok(tree) = Tree::decode(&f.payload) else {
                        continue;
                    };
                    me = Some(tree.host);
                    let launcher = Launcher::from_words(tree.agent.clone());
                    for ((host, name), below) in split_tree(&tree.below, tree.fanout) {
                        let reach: Vec<usize> = std::iter::once(host)
                            .chain(below.iter().map(|b| b.0))
                            .collect();
                        match open_link(&launcher, host, &name, reach) {
                            Ok((link, from)) => {
                                let sub = Tree {
                                    host,
                                    agent: tree.agent.clone(),
                                    fanout: tree.fanout,
                                    below,
                                };
                                link.send(&Frame::new(Kind::Tree, 0, sub.encode()));
                                pass_up(from, link.clone(), out.clone(), tx.clone());
                                children.push(link);
                                children_open += 1;
                            }
                            Err(e) => {
                                send(&out, Frame::new(Kind::Failed, host as u32, e.to_string()));
                            }
                        }
                    }
                }
                Kind::Job if f.word == ALL_RANKS || Some(f.word as usize) == me => {
                    let spec = match JobSpec::decode(&f.payload) {
                        Ok(s) => s,
                        Err(e) => {
                            send(
                                &out,
                                Frame::new(Kind::Failed, ALL_RANKS, format!("bad job: {e}")),
                            );
                            return 2;
                        }
                    };
                    match start(&spec, &out, &tx) {
                        Ok((r, s)) => {
                            live = r.len();
                            relays = 2 * r.len();
                            ranks = r;
                            stdin = s.map(|pipe| stdin_writer(pipe, out.clone()));
                            job_done = true;
                            send(&out, Frame::new(Kind::Started, ALL_RANKS, Vec::new()));
                        }
                        Err(why) => {
                            send(&out, Frame::new(Kind::Failed, ALL_RANKS, why));
                            return 2;
                        }
                    }
                }
                Kind::Job => {
                    // For a host below: to the link that reaches it; remember its ranks.
                    let host = f.word as usize;
                    if let Some((c, link)) =
                        children.iter().enumerate().find(|(_, l)| l.reaches(host))
                    {
                        if let Ok(spec) = JobSpec::decode(&f.payload) {
                            child_ranks.extend(spec.ranks.iter().map(|&(r, _)| (r, c)));
                        }
                        link.send(&f);
                    }
                }
                Kind::Stdin => {
                    if let Some(&(_, c)) = child_ranks.iter().find(|(r, _)| *r == f.word as usize) {
                        children[c].send(&f);
                        continue;
                    }
                    let close = f.payload.is_empty();
                    // Rank 0's pipe is written by a thread of its own, so a rank that does not
                    // read blocks neither this loop nor the link; what it has not taken is
                    // bounded by mprun's window (link::STDIN_WINDOW).
                    let unsent = match &stdin {
                        Some(w) => w.send(f.payload).err().map(|e| e.0),
                        None => Some(f.payload),
                    };
                    if let Some(dropped) = unsent {
                        took_stdin(&out, dropped.len());
                    }
                    if close {
                        stdin = None;
                    }
                }
                Kind::Signal => {
                    let sig = f.int().unwrap_or(0);
                    if let Ok(sig) = Signal::try_from(sig) {
                        for r in ranks
                            .iter()
                            .filter(|r| f.word == ALL_RANKS || r.rank as u32 == f.word)
                        {
                            r.signal(sig);
                        }
                    }
                    for c in &children {
                        c.send(&f);
                    }
                }
                _ => {}
            },
            Ev::RelayDone => relays -= 1,
            Ev::Exited(rank, raw) => {
                live -= 1;
                send(&out, Frame::with_int(Kind::Exit, rank as u32, raw));
                if live == 0 {
                    drain_until = Some(Instant::now() + Duration::from_secs(2));
                }
            }
            Ev::ChildGone => {
                children_open -= 1;
                if children_open == 0 && drain_until.is_none() && job_done {
                    drain_until = Some(Instant::now() + Duration::from_secs(2));
                }
            }
            Ev::MprunGone => {
                // mprun is gone: nobody is left to report to. Closing the links below makes
                // their helpers do the same.
                for r in &ranks {
                    r.signal(Signal::SIGKILL);
                }
                for c in &children {
                    c.close();
                }
                reap_all(children.iter().map(|c| &**c), Duration::from_secs(2));
                return 1;
            }
        }
    }
    reap_all(children.iter().map(|c| &**c), Duration::from_secs(2));
    0
}

/// Passes the frames of a helper below up to mprun; a helper that speaks for itself (ALL_RANKS) is
/// named by its host. When the link ends: `Failed` if the child never said hello, `Lost` for
/// every host it reached otherwise.
fn pass_up(from: impl Read + Send + 'static, link: Arc<Helper>, out: Out, events: Sender<Ev>) {
    let _ = std::thread::Builder::new()
        .name(format!("below-{}", link.name))
        .spawn(move || {
            let mut r = BufReader::with_capacity(64 << 10, from);
            let mut hello = false;
            while let Ok(Some(mut f)) = Frame::read_from(&mut r) {
                if matches!(f.kind, Kind::Hello | Kind::Started | Kind::Failed)
                    && f.word == ALL_RANKS
                {
                    f.word = link.host as u32;
                }
                if f.kind == Kind::Hello && f.word == link.host as u32 {
                    hello = true;
                }
                if !send(&out, f) {
                    break;
                }
            }
            if hello {
                for &h in &link.reach {
                    send(&out, Frame::new(Kind::Lost, h as u32, Vec::new()));
                }
            } else {
                let why = link.failure();
                send(&out, Frame::new(Kind::Failed, link.host as u32, why));
            }
            let _ = events.send(Ev::ChildGone);
        });
}

/// Tells mprun that `n` stdin bytes are off its window.
fn took_stdin(out: &Out, n: usize) {
    if n > 0 {
        send(out, Frame::with_int(Kind::StdinTaken, 0, n as i32));
    }
}

/// A thread that writes what it is handed to rank 0's stdin (an empty piece closes it), saying
/// for each piece that it was taken; once the rank has closed its end, pieces are dropped.
fn stdin_writer(pipe: ChildStdin, out: Out) -> Sender<Vec<u8>> {
    let (tx, rx) = channel::<Vec<u8>>();
    let _ = std::thread::Builder::new()
        .name("stdin-0".into())
        .spawn(move || {
            let mut pipe = Some(pipe);
            for piece in rx {
                if piece.is_empty() {
                    pipe = None;
                    continue;
                }
                if let Some(p) = pipe.as_mut() {
                    if p.write_all(&piece).and_then(|_| p.flush()).is_err() {
                        pipe = None;
                    }
                }
                took_stdin(&out, piece.len());
            }
        });
    tx
}

/// Starts the host's ranks with their output relays and exit watchers; rank 0's stdin, if here.
fn start(
    spec: &JobSpec,
    out: &Out,
    events: &Sender<Ev>,
) -> Result<(Vec<Started>, Option<ChildStdin>), String> {
    let bind = if spec.iface.is_empty() {
        let rendezvous = spec
            .env
            .iter()
            .find(|(k, _)| k == ENV_RENDEZVOUS)
            .and_then(|(_, v)| v.parse::<std::net::SocketAddr>().ok())
            .ok_or("the job names no rendezvous address")?;
        netif::route_to(rendezvous.ip())?
    } else {
        netif::from_spec(&spec.iface)?
    };
    if !spec.cwd.is_empty() && std::path::Path::new(&spec.cwd).is_dir() {
        let _ = std::env::set_current_dir(&spec.cwd);
    }
    let mut started: Vec<Started> = Vec::new();
    let mut rank0_stdin = None;
    let local_size = spec.ranks.len().to_string();
    for &(rank, local_rank) in &spec.ranks {
        let mut cmd = crate::spawn::rank_command(&spec.program, &spec.args, &spec.env, rank);
        cmd.env(ENV_RANK, rank.to_string())
            .env(ENV_LOCAL_RANK, local_rank.to_string())
            .env(ENV_LOCAL_SIZE, &local_size)
            .env(ENV_BIND, bind.to_string())
            .env(ENV_LAUNCHER_PID, std::process::id().to_string());
        let mut child: Child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                for r in &started {
                    r.signal(Signal::SIGKILL);
                }
                return Err(format!("cannot start {} (rank {rank}): {e}", spec.program));
            }
        };
        if rank == 0 {
            rank0_stdin = child.stdin.take();
        }
        if let Some(o) = child.stdout.take() {
            relay(rank, o, Kind::Stdout, out.clone(), events.clone());
        }
        if let Some(e) = child.stderr.take() {
            relay(rank, e, Kind::Stderr, out.clone(), events.clone());
        }
        let reaped = Arc::new(AtomicBool::new(false));
        started.push(Started {
            rank,
            pid: Pid::from_raw(child.id() as i32),
            reaped: reaped.clone(),
        });
        let tx = events.clone();
        let _ = std::thread::Builder::new()
            .name(format!("watch-{rank}"))
            .spawn(move || {
                let raw = child.wait().map_or(9, |st| st.into_raw());
                reaped.store(true, Ordering::SeqCst);
                let _ = tx.send(Ev::Exited(rank, raw));
            });
    }
    Ok((started, rank0_stdin))
}

/// Sends what `from` carries as frames, a line each (a longer one in pieces of
/// [`MAX_PIECE`](crate::relay::MAX_PIECE), which fit a frame).
fn relay(rank: usize, from: impl Read + Send + 'static, kind: Kind, out: Out, done: Sender<Ev>) {
    let _ = std::thread::Builder::new()
        .name(format!("relay-{rank}"))
        .spawn(move || {
            crate::relay::for_each_line(from, &[], crate::relay::MAX_PIECE as u64, |line| {
                send(&out, Frame::new(kind, rank as u32, std::mem::take(line)))
            });
            let _ = done.send(Ev::RelayDone);
        });
}
