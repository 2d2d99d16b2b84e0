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
    /// An operation of rank `rank` failed because rank `of` was gone.
    Gone { rank: usize, of: usize },
}

/// Grace between SIGTERM and SIGKILL when ending a job.
const GRACE: Duration = Duration::from_secs(1);

/// Between telling the ranks that one of them failed and ending them: long enough for a rank
/// blocked on the failed one to see `PeerFailed` and say so.
const NOTICE: Duration = Duration::from_millis(200);

/// How long mprun waits, once ranks failed as victims of a rank still running, for that rank
/// to end (and be named) before it ends the job.
const CAUSE_GRACE: Duration = Duration::from_millis(1500);

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

/// A rank that ended in failure before mprun began ending the job.
struct Failure {
    rank: usize,
    code: i32,
    line: String,
}

/// Runs the job to its end. Returns mprun's exit status.
/// `ranks` is indexed by rank; `host_of[r]` is rank r's plan host (to know whom a lost host
/// takes with it). `on_ended` tells the other ranks that ranks ended: in failure (how, in
/// words) or normally (`None`).
///
/// # Whom the line names
///
/// The root cause, whatever order the processes end in. A rank whose operations failed because
/// another rank was gone says so (`Event::Gone`): it is that rank's victim. Of the ranks that
/// failed before mprun began ending the job, the line names the first that is not the victim of
/// another failed rank (a victim of a rank that ended normally failed on its own account). A
/// victim may end before its cause does (the cause may still be printing a backtrace, or
/// waiting in finalize for the victim's goodbye), so while every failure so far is the victim of
/// a rank still running, mprun waits up to [`CAUSE_GRACE`] for that rank before ending the job.
pub fn supervise(
    ranks: &mut [Rank],
    host_of: &[usize],
    events: &Receiver<Event>,
    relays: usize,
    on_timeout: &dyn Fn() -> Vec<String>,
    on_ended: &dyn Fn(&[usize], Option<&str>),
) -> i32 {
    let mut live = ranks.len();
    // What ended the job when it was not a rank's failure (abort, a signal, the time limit, a
    // lost host), if that came first.
    let mut outcome: Option<(i32, String)> = None;
    let mut failures: Vec<Failure> = Vec::new();
    let mut first_failure: Option<Instant> = None;
    let mut victim_of: Vec<Vec<usize>> = vec![Vec::new(); ranks.len()];
    // mprun has begun ending the ranks: later failures are its own doing.
    let mut ending = false;
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
                        let waiting_for_cause = !failures.is_empty()
                            && failures.iter().all(|f| {
                                victim_of[f.rank]
                                    .iter()
                                    .any(|&c| ranks.get(c).is_some_and(|r| r.status.is_none()))
                            });
                        let grace_left = first_failure.is_some_and(|t| t.elapsed() < CAUSE_GRACE);
                        if waiting_for_cause && grace_left {
                            term_at = Some(Instant::now() + Duration::from_millis(20));
                            continue;
                        }
                        ending = true;
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
            if st.success() {
                on_ended(&[i], None);
                continue;
            }
            let (code, how) = describe(st);
            on_ended(&[i], Some(&how));
            if !ending && outcome.is_none() {
                failures.push(Failure {
                    rank: i,
                    code,
                    line: format!("rank {} on {} {how}", r.rank, r.host),
                });
                first_failure.get_or_insert_with(Instant::now);
                term_at.get_or_insert_with(|| Instant::now() + NOTICE);
            }
            continue;
        }
        let first = outcome.is_none() && failures.is_empty();
        match ev {
            Event::Exited(_) | Event::RemoteExited { .. } => {}
            Event::Gone { rank, of } => note_victim(&mut victim_of, rank, of),
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
                if let Some(&first_lost) = lost.first() {
                    on_ended(&lost, Some("lost with the connection to its host"));
                    if first {
                        let host = &ranks[first_lost].host;
                        outcome = Some((
                            EXIT_HOST_LOST,
                            format!(
                                "host {host}: the connection to it ended; its ranks ({}) are gone",
                                list(&lost)
                            ),
                        ));
                        term_at = Some(Instant::now() + NOTICE);
                    }
                }
            }
            Event::Abort { rank, code } => {
                if first {
                    let host = ranks.get(rank).map_or("?", |r| r.host.as_str());
                    outcome = Some((code, format!("rank {rank} on {host} called abort({code})")));
                    ending = true;
                    end_job(ranks, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + GRACE);
                }
            }
            Event::Signal => {
                if !ending {
                    if first {
                        outcome = Some((
                            EXIT_INTERRUPTED,
                            format!("interrupted; ended {live} running rank(s)"),
                        ));
                    }
                    ending = true;
                    term_at = None;
                    end_job(ranks, Signal::SIGINT);
                    kill_at = Some(Instant::now() + GRACE);
                } else {
                    end_job(ranks, Signal::SIGKILL);
                }
            }
            Event::Timeout => {
                if first {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!("mprun: timed out after {secs:.1} s");
                    for line in on_timeout() {
                        eprintln!("mprun: {line}");
                    }
                    outcome = Some((
                        EXIT_TIMEOUT,
                        format!("timed out after {secs:.1} s; ended {live} running rank(s)"),
                    ));
                    ending = true;
                    end_job(ranks, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + GRACE);
                }
            }
            Event::OutputClosed => relays_open = relays_open.saturating_sub(1),
        }
    }
    // Whose victims the last ranks were: told before they ended (`tell_ended` reads each ended
    // rank's connection to its end first), perhaps not yet taken from the queue.
    while let Ok(ev) = events.try_recv() {
        match ev {
            Event::Gone { rank, of } => note_victim(&mut victim_of, rank, of),
            Event::OutputClosed => relays_open = relays_open.saturating_sub(1),
            _ => {}
        }
    }
    if outcome.is_none() {
        outcome = root_cause(&failures, &victim_of).map(|f| (f.code, f.line.clone()));
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

/// Records that rank `rank` failed because rank `of` was gone (once each).
fn note_victim(victim_of: &mut [Vec<usize>], rank: usize, of: usize) {
    if let Some(v) = victim_of.get_mut(rank) {
        if !v.contains(&of) {
            v.push(of);
        }
    }
}

/// The failure to name: the first that is not the victim of another failed rank (else the
/// first).
fn root_cause<'a>(failures: &'a [Failure], victim_of: &[Vec<usize>]) -> Option<&'a Failure> {
    let failed = |r: usize| failures.iter().any(|f| f.rank == r);
    failures
        .iter()
        .find(|f| !victim_of[f.rank].iter().any(|&c| failed(c)))
        .or(failures.first())
}

#[cfg(test)]
mod tests {
    use super::{root_cause, Failure};

    fn failure(rank: usize) -> Failure {
        Failure {
            rank,
            code: rank as i32,
            line: format!("rank {rank}"),
        }
    }

    #[test]
    fn the_root_cause_is_named_not_its_victims() {
        let f = [failure(0), failure(2), failure(1)];
        // 0 and 2 failed because 1 was gone: 1 is named although it ended last.
        let victims = vec![vec![1], vec![], vec![1, 0]];
        assert_eq!(root_cause(&f, &victims).map(|f| f.rank), Some(1));
        // A victim of a rank that ended normally (not among the failures) failed on its own.
        let f = [failure(0)];
        assert_eq!(root_cause(&f, &victims).map(|f| f.rank), Some(0));
        // Victims of each other only: the first.
        let f = [failure(0), failure(1)];
        let victims = vec![vec![1], vec![0]];
        assert_eq!(root_cause(&f, &victims).map(|f| f.rank), Some(0));
        assert!(root_cause(&[], &victims).is_none());
    }
}
