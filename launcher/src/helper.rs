//! `mprun --helper`: mprun's stand-in on another host, started there through the launch agent
//! (`AGENT HOST mprun --helper`). It talks to mprun over the agent's stdin and stdout
//! ([`crate::link`]): it says hello, receives the job, starts this host's ranks (children in
//! process groups of their own, spawned from the main thread, which the ranks' parent-death
//! signal is tied to), relays their output line by line and their exit statuses, passes on
//! stdin and signals, and exits once every rank has ended.
//!
//! If mprun goes away (the agent's connection ends: end of stdin), the helper kills its ranks
//! at once and exits, so nothing of the job outlives the link on any host.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use mpr::bootstrap::{
    ENV_BIND, ENV_LAUNCHER_PID, ENV_LOCAL_RANK, ENV_LOCAL_SIZE, ENV_RANK, ENV_RENDEZVOUS,
};

use crate::link::{Frame, JobSpec, Kind, ALL_RANKS, MAX_PAYLOAD};
use crate::netif;

/// Frames to mprun, one writer at a time.
type Out = Arc<Mutex<std::io::Stdout>>;

enum Ev {
    FromMprun(Frame),
    MprunGone,
    Exited(usize, i32),
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
    if !send(&out, Frame::new(Kind::Hello, 0, host)) {
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
    // The job comes first.
    let spec = loop {
        match rx.recv() {
            Ok(Ev::FromMprun(f)) if f.kind == Kind::Job => match JobSpec::decode(&f.payload) {
                Ok(s) => break s,
                Err(e) => {
                    send(&out, Frame::new(Kind::Failed, 0, format!("bad job: {e}")));
                    return 2;
                }
            },
            Ok(Ev::FromMprun(_)) => continue,
            _ => return 2,
        }
    };
    let (ranks, mut stdin) = match start(&spec, &out, &tx) {
        Ok(s) => s,
        Err(why) => {
            send(&out, Frame::new(Kind::Failed, 0, why));
            return 2;
        }
    };
    send(&out, Frame::new(Kind::Started, 0, Vec::new()));
    let mut live = ranks.len();
    let mut relays = 2 * ranks.len();
    // After the last exit, the ranks' last lines may still be on their way (bounded: a rank's
    // own child may hold a pipe open).
    let mut drain_until = None;
    while live > 0 || relays > 0 {
        let ev = match drain_until {
            None => rx.recv().map_err(|_| ()),
            Some(t) => rx
                .recv_timeout(t - std::time::Instant::now().min(t))
                .map_err(|_| ()),
        };
        match ev {
            Ok(Ev::RelayDone) => relays -= 1,
            Ok(Ev::Exited(rank, raw)) => {
                live -= 1;
                send(&out, Frame::new(Kind::Exit, rank as u32, raw.to_le_bytes()));
                if live == 0 {
                    drain_until =
                        Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
                }
            }
            Ok(Ev::FromMprun(f)) => match f.kind {
                Kind::Stdin => {
                    let closed = f.payload.is_empty()
                        || stdin.as_mut().is_some_and(|s| {
                            s.write_all(&f.payload).and_then(|_| s.flush()).is_err()
                        });
                    if closed {
                        stdin = None;
                    }
                }
                Kind::Signal => {
                    let sig = i32::from_le_bytes(
                        f.payload
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or([0; 4]),
                    );
                    if let Ok(sig) = Signal::try_from(sig) {
                        for r in ranks
                            .iter()
                            .filter(|r| f.word == ALL_RANKS || r.rank as u32 == f.word)
                        {
                            r.signal(sig);
                        }
                    }
                }
                _ => {}
            },
            Err(()) if live == 0 => break,
            Ok(Ev::MprunGone) | Err(_) => {
                // mprun is gone: nobody is left to report to.
                for r in &ranks {
                    r.signal(Signal::SIGKILL);
                }
                return 1;
            }
        }
    }
    0
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
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(ENV_RANK, rank.to_string())
            .env(ENV_LOCAL_RANK, local_rank.to_string())
            .env(ENV_LOCAL_SIZE, &local_size)
            .env(ENV_BIND, bind.to_string())
            .env(ENV_LAUNCHER_PID, std::process::id().to_string())
            .stdin(if rank == 0 {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
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

/// Sends what `from` carries as frames of whole lines (cut at [`MAX_PAYLOAD`]).
fn relay(rank: usize, from: impl Read + Send + 'static, kind: Kind, out: Out, done: Sender<Ev>) {
    let _ = std::thread::Builder::new()
        .name(format!("relay-{rank}"))
        .spawn(move || {
            let mut r = BufReader::with_capacity(64 << 10, from);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut r)
                    .take(MAX_PAYLOAD as u64)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !send(&out, Frame::new(kind, rank as u32, line.clone())) {
                            break;
                        }
                    }
                }
            }
            let _ = done.send(Ev::RelayDone);
        });
}
