//! Supervising the running job and reporting how it ended.
//!
//! Exit status: 0 when every rank exits 0; otherwise the first failure decides: a rank's exit
//! code, 128+N for a rank killed by signal N, the code a rank passed to `abort`, 130 when mprun
//! was interrupted, 124 when `--timeout` expired. The failure is told in one line on stderr, and
//! every other rank is ended: SIGTERM to its process group, SIGKILL a second later.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::spawn::{Place, Rank};

/// What the supervisor hears about.
#[derive(Debug)]
pub enum Event {
    /// Rank `.0` exited (not yet reaped).
    Exited(usize),
    /// A rank called `abort(code)`.
    Abort { rank: usize, code: i32 },
    /// mprun got SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// `--timeout` expired.
    Timeout,
    /// An output relay reached end of stream.
    OutputClosed,
    /// Rank `rank` on another host ended with wait status `raw` (its helper says).
    RemoteExited { rank: usize, raw: i32 },
    /// The link to the helper of plan host `.0` ended.
    HostLost(usize),
}

/// Grace between SIGTERM and SIGKILL when ending a job.
const GRACE: Duration = Duration::from_secs(1);

/// Between telling the ranks that one of them failed and ending them: long enough for a rank
/// blocked on the failed one to see `PeerFailed` and say so.
const NOTICE: Duration = Duration::from_millis(200);

/// Exit code for an expired `--timeout`.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code when mprun itself was interrupted.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code when the connection to a host ended while its ranks ran (as ssh's).
pub const EXIT_HOST_LOST: i32 = 255;

fn list(ranks: &[usize]) -> String {
    ranks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a process ended, as an exit code and words.
pub fn describe(st: ExitStatus) -> (i32, String) {
    if let Some(c) = st.code() {
        return (c, format!("exited with code {c}"));
    }
    let sig = st.signal().unwrap_or(0);
    let name = Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("unknown signal");
    (128 + sig, format!("was killed by signal {sig} ({name})"))
}

/// Runs the job to its end. Returns mprun's exit status.
/// `ranks` is indexed by rank; `host_of[r]` is rank r's plan host (to know whom a lost host
/// takes with it).
pub fn supervise(
    ranks: &mut [Rank],
    host_of: &[usize],
    events: &Receiver<Event>,
    relays: usize,
    on_timeout: &dyn Fn() -> Vec<String>,
    on_failure: &dyn Fn(&[usize], &str),
) -> i32 {
    let mut live = ranks.len();
    let mut outcome: Option<(i32, String)> = None;
    let mut kill_at: Option<Instant> = None;
    // When a rank fails, the others are told first (their operations on it return
    // `PeerFailed`) and ended a moment later.
    let mut term_at: Option<Instant> = None;
    let mut relays_open = relays;
    let started = Instant::now();
    let end_job = |ranks: &[Rank], sig: Signal| {
        for r in ranks {
            r.signal(sig);
        }
    };
    while live > 0 {
        let next = [term_at, kill_at].into_iter().flatten().min();
        let ev = match next {
            Some(t) => match events.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => {
                    if term_at.take().is_some() {
                        end_job(ranks, Signal::SIGTERM);
                    } else {
                        end_job(ranks, Signal::SIGKILL);
                    }
                    kill_at = Some(Instant::now() + GRACE);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match events.recv() {
                Ok(ev) => ev,
                Err(_) => break,
            },
        };
        let ended = match ev {
            Event::Exited(i) => ranks.get_mut(i).and_then(|r| match &mut r.place {
                Place::Local(c) if r.status.is_none() => {
                    c.try_wait().ok().flatten().map(|st| (i, st))
                }
                _ => None,
            }),
            Event::RemoteExited { rank, raw } => ranks
                .get(rank)
                .filter(|r| r.status.is_none())
                .map(|_| (rank, ExitStatus::from_raw(raw))),
            _ => None,
        };
        if let Some((i, st)) = ended {
            let r = &mut ranks[i];
            r.status = Some(st);
            live -= 1;
            crate::trace::note(|| format!("rank {} on {} ended", r.rank, r.host));
            if outcome.is_none() && !st.success() {
                let (code, how) = describe(st);
                outcome = Some((code, format!("rank {} on {} {how}", r.rank, r.host)));
                on_failure(&[i], &how);
                term_at = Some(Instant::now() + NOTICE);
            }
            continue;
        }
        match ev {
            Event::Exited(_) | Event::RemoteExited { .. } => {}
            Event::HostLost(h) => {
                // Its ranks are gone with it (the helper kills them when the link drops).
                let mut lost = Vec::new();
                for (r, rank) in ranks.iter_mut().enumerate() {
                    if host_of.get(r) == Some(&h) && rank.status.is_none() {
                        rank.status = Some(ExitStatus::from_raw(Signal::SIGKILL as i32));
                        live -= 1;
                        lost.push(r);
                    }
                }
                if let (Some(&first), None) = (lost.first(), &outcome) {
                    let host = &ranks[first].host;
                    outcome = Some((
                        EXIT_HOST_LOST,
                        format!(
                            "host {host}: the connection to it ended; its ranks ({}) are gone",
                            list(&lost)
                        ),
                    ));
                    on_failure(&lost, "lost with the connection to its host");
                    term_at = Some(Instant::now() + NOTICE);
                }
            }
            Event::Abort { rank, code } => {
                if outcome.is_none() {
                    let host = ranks.get(rank).map_or("?", |r| r.host.as_str());
                    outcome = Some((code, format!("rank {rank} on {host} called abort({code})")));
                    end_job(ranks, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + GRACE);
                }
            }
            Event::Signal => {
                if outcome.is_none() {
                    outcome = Some((
                        EXIT_INTERRUPTED,
                        format!("interrupted; ended {live} running rank(s)"),
                    ));
                    end_job(ranks, Signal::SIGINT);
                    kill_at = Some(Instant::now() + GRACE);
                } else {
                    end_job(ranks, Signal::SIGKILL);
                }
            }
            Event::Timeout => {
                if outcome.is_none() {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!("mprun: timed out after {secs:.1} s");
                    for line in on_timeout() {
                        eprintln!("mprun: {line}");
                    }
                    outcome = Some((
                        EXIT_TIMEOUT,
                        format!("timed out after {secs:.1} s; ended {live} running rank(s)"),
                    ));
                    end_job(ranks, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + GRACE);
                }
            }
            Event::OutputClosed => relays_open = relays_open.saturating_sub(1),
        }
    }
    // Let the relays write what the ranks printed last (bounded: a rank's leftover child may
    // hold a pipe open).
    let deadline = Instant::now() + Duration::from_secs(2);
    while relays_open > 0 {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::OutputClosed) => relays_open -= 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    match outcome {
        Some((code, line)) => {
            eprintln!("mprun: {line}");
            code
        }
        None => 0,
    }
}
