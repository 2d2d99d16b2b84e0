//! What a rank's calls did, for `mprun --profile` (per operation, how many calls, the bytes of
//! the callers' buffers and the time spent in them) and `mprun --trace` (each call as it
//! happened: operation, start, duration, bytes, communicator, the peer and tag of a
//! point-to-point call, the algorithm of a collective, and each time the rank slept in the
//! kernel during it, as an `asleep` event inside the call: the rest of a call's time it was
//! awake, spinning or working).
//!
//! Every public call that communicates opens a [`Seen`] guard first thing (`Comm::seen`), which
//! costs one branch when profiling is off (`MPR_PROFILE`, which `mprun --profile` sets). Only
//! the outermost call of a nest counts: an `allreduce` made of sends and receives is one
//! `allreduce`, and `wait` on a request is its own operation (the time a nonblocking exchange
//! really waited). The counts live beside the engine, not in it, so that a guard can close
//! whatever the engine's borrow state; at finalize they go to mprun as `PROFILE` lines.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// One operation's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpCount {
    pub name: &'static str,
    pub calls: u64,
    pub bytes: u64,
    pub ns: u64,
}

/// One call as it happened, for `--trace`: nanoseconds from the rank's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub name: &'static str,
    pub start_ns: u64,
    pub dur_ns: u64,
    pub bytes: u64,
    /// The world rank and tag of a point-to-point call, where it has one peer.
    pub peer: Option<usize>,
    pub tag: Option<u32>,
    /// The communicator (its number), for calls; `None` for a sleep.
    pub comm: Option<u32>,
    /// The algorithm a collective took.
    pub algo: Option<&'static str>,
}

/// The shortest wait in the kernel that counts as a sleep: a wake-up costs some 5-20 µs here
/// (`engine/wait.rs`), a poll that found something at once well under a microsecond.
const MIN_SLEEP_NS: u64 = 1_000;

/// The name of the events that say the rank slept (in the poller, or on a futex of a node
/// collective).
pub(crate) const ASLEEP: &str = "asleep";

/// The outermost call under way.
#[derive(Debug, Clone, Copy)]
struct Open {
    name: &'static str,
    bytes: u64,
    at: Instant,
    peer: Option<usize>,
    tag: Option<u32>,
    comm: u32,
    algo: Option<&'static str>,
}

/// Round trips to mprun per measure of the clock: the shortest one's midpoint is taken.
const ALIGN_TRIPS: usize = 8;

/// The most events a rank keeps (about 40 MB of them); later calls are only counted, and the
/// trace says how many it lacks.
const MAX_EVENTS: usize = 1 << 20;

/// A rank's counts.
#[derive(Debug)]
pub(crate) struct Observer {
    /// When the rank joined the job, by the monotonic clock and by the host's clock.
    pub started: Instant,
    started_unix_ns: u64,
    /// Whether to count calls by operation (`--profile`).
    profile: bool,
    /// The calls as they happened (`--trace`), and how many did not fit.
    events: Option<Vec<Event>>,
    dropped: u64,
    /// Calls open now (nested ones included).
    depth: u32,
    /// The outermost open call.
    open: Option<Open>,
    /// This rank's clock against mprun's (offset, round trip), measured at start-up and at the
    /// end (`Observer::align`).
    aligned: Vec<(i64, u64)>,
    /// Names given to communicators (`Comm::set_name`), by number, for the trace.
    names: Vec<(u32, String)>,
    /// By first call (few operations: a list beats a map).
    pub ops: Vec<OpCount>,
}

impl Observer {
    /// An observer that counts calls (`profile`) and keeps them (`trace`), started now.
    pub(crate) fn new(profile: bool, trace: bool) -> Observer {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, nanos);
        Observer::started_at(profile, trace, unix)
    }

    /// An observer whose rank started at `unix` nanoseconds by the host's clock (the tests
    /// give it one: Miri has no host clock).
    fn started_at(profile: bool, trace: bool, unix: u64) -> Observer {
        Observer {
            started: Instant::now(),
            started_unix_ns: unix,
            profile,
            events: trace.then(Vec::new),
            dropped: 0,
            depth: 0,
            open: None,
            aligned: Vec::new(),
            names: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// What to tell mprun at finalize: the counts (`PROFILE` lines, then `RAN`, when
    /// profiling) and the calls (as [`Observer::trace_lines`]).
    pub(crate) fn lines(&self) -> Vec<mpr_launch::rendezvous::Request> {
        use mpr_launch::rendezvous::Request;
        let mut out = Vec::new();
        if self.profile {
            out.extend(self.ops.iter().map(|c| Request::Profile {
                op: c.name.to_string(),
                calls: c.calls,
                bytes: c.bytes,
                ns: c.ns,
            }));
            out.push(Request::Ran {
                ns: nanos(self.started.elapsed()),
            });
        }
        out.extend(self.trace_lines());
        out
    }

    /// The calls so far, when tracing: `STARTED`, then an `EVENT` line each, the call under
    /// way included (up to now: asked by `--timeout`, a rank is in the call it waits in).
    pub(crate) fn trace_lines(&self) -> Vec<mpr_launch::rendezvous::Request> {
        use mpr_launch::rendezvous::Request;
        let Some(events) = &self.events else {
            return Vec::new();
        };
        let open = self.open.map(|o| Event {
            name: o.name,
            start_ns: nanos(o.at.saturating_duration_since(self.started)),
            dur_ns: nanos(o.at.elapsed()),
            bytes: o.bytes,
            peer: o.peer,
            tag: o.tag,
            comm: Some(o.comm),
            algo: o.algo,
        });
        std::iter::once(Request::Started {
            unix_ns: self.started_unix_ns,
        })
        .chain(
            self.aligned
                .iter()
                .map(|&(offset_ns, rtt_ns)| Request::Aligned { offset_ns, rtt_ns }),
        )
        .chain(self.names.iter().map(|(ctx, name)| Request::Named {
            ctx: *ctx,
            name: name.clone(),
        }))
        .chain(events.iter().chain(open.as_ref()).map(|e| Request::Event {
            op: e.name.to_string(),
            start_ns: e.start_ns,
            dur_ns: e.dur_ns,
            bytes: e.bytes,
            peer: e.peer,
            tag: e.tag,
            comm: e.comm,
            algo: e.algo.map(str::to_string),
        }))
        .collect()
    }

    /// Measures this rank's clock against mprun's, for `--trace` on many hosts: a few round
    /// trips of `ask` (which returns mprun's clock, `None` if it cannot), taking the shortest,
    /// whose midpoint is surest: mprun's clock less this rank's (nanoseconds since its start),
    /// to within half that trip. Done at start-up and again at the end, so the trace can say
    /// how well the first measure held (the second replaces any earlier second).
    pub(crate) fn align(&mut self, mut ask: impl FnMut() -> Option<u64>) {
        let mut best: Option<(i64, u64)> = None;
        for _ in 0..ALIGN_TRIPS {
            let sent = nanos(self.started.elapsed());
            let Some(theirs) = ask() else { break };
            let back = nanos(self.started.elapsed());
            let rtt = back.saturating_sub(sent);
            let mid = sent.saturating_add(rtt / 2);
            let offset = i128::from(theirs) - i128::from(mid);
            let offset =
                i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
            if best.is_none_or(|(_, r)| rtt < r) {
                best = Some((offset, rtt));
            }
        }
        if let Some(b) = best {
            self.aligned.truncate(1);
            self.aligned.push(b);
        }
    }

    /// Whether calls are kept (`--trace`).
    pub(crate) fn traces(&self) -> bool {
        self.events.is_some()
    }

    fn begin(&mut self, name: &'static str, bytes: u64, comm: u32) {
        self.depth += 1;
        if self.depth == 1 {
            self.open = Some(Open {
                name,
                bytes,
                at: Instant::now(),
                peer: None,
                tag: None,
                comm,
                algo: None,
            });
        }
    }

    /// The algorithm the call under way took, if it is the outermost one (a collective made
    /// of another says its own, not the inner one's).
    pub(crate) fn algorithm(&mut self, algo: &'static str) {
        if self.depth == 1 {
            if let Some(o) = self.open.as_mut() {
                o.algo = Some(algo);
            }
        }
    }

    /// Communicator `ctx` was named `name`.
    pub(crate) fn named(&mut self, ctx: u32, name: &str) {
        if self.events.is_none() {
            return;
        }
        match self.names.iter_mut().find(|(c, _)| *c == ctx) {
            Some(n) => n.1 = name.to_string(),
            None => self.names.push((ctx, name.to_string())),
        }
    }

    /// The rank slept from `since` until now, when tracing (kept as an [`ASLEEP`] event, which
    /// the trace shows inside the call it slept in). A wait shorter than [`MIN_SLEEP_NS`] found
    /// something at once and did not sleep.
    pub(crate) fn asleep(&mut self, since: Instant) {
        let dur_ns = nanos(since.elapsed());
        if dur_ns < MIN_SLEEP_NS {
            return;
        }
        let start_ns = nanos(since.saturating_duration_since(self.started));
        self.keep(Event {
            name: ASLEEP,
            start_ns,
            dur_ns,
            bytes: 0,
            peer: None,
            tag: None,
            comm: None,
            algo: None,
        });
    }

    /// Keeps `e`, when tracing, if there is room.
    fn keep(&mut self, e: Event) {
        if let Some(events) = self.events.as_mut() {
            if events.len() < MAX_EVENTS {
                events.push(e);
            } else {
                self.dropped += 1;
            }
        }
    }

    /// The peer (a world rank) and tag of the call under way, if it is the outermost one (a
    /// send inside a collective says nothing about the collective).
    pub(crate) fn about(&mut self, peer: usize, tag: u32) {
        if self.depth == 1 {
            if let Some(o) = self.open.as_mut() {
                (o.peer, o.tag) = (Some(peer), Some(tag));
            }
        }
    }

    fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth > 0 {
            return;
        }
        let Some(Open {
            name,
            bytes,
            at,
            peer,
            tag,
            comm,
            algo,
        }) = self.open.take()
        else {
            return;
        };
        let ns = nanos(at.elapsed());
        self.keep(Event {
            name,
            start_ns: nanos(at.saturating_duration_since(self.started)),
            dur_ns: ns,
            bytes,
            peer,
            tag,
            comm: Some(comm),
            algo,
        });
        match self.ops.iter_mut().find(|o| o.name == name) {
            Some(o) => {
                o.calls += 1;
                o.bytes = o.bytes.saturating_add(bytes);
                o.ns = o.ns.saturating_add(ns);
            }
            None => self.ops.push(OpCount {
                name,
                calls: 1,
                bytes,
                ns,
            }),
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A call being counted: counted when dropped (at the end of the call, whichever way it
/// returns). Inert when profiling is off.
#[must_use = "a call is counted until the guard is dropped"]
pub(crate) struct Seen(Option<Rc<RefCell<Observer>>>);

impl Seen {
    /// Opens call `name` of `bytes` on communicator `comm` on `observer` (if profiling).
    #[inline]
    pub(crate) fn open(
        observer: Option<&Rc<RefCell<Observer>>>,
        name: &'static str,
        bytes: usize,
        comm: u32,
    ) -> Seen {
        match observer {
            None => Seen(None),
            Some(o) => {
                o.borrow_mut().begin(name, bytes as u64, comm);
                Seen(Some(o.clone()))
            }
        }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        if let Some(o) = &self.0 {
            o.borrow_mut().end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outermost_call_counts() {
        let o = Rc::new(RefCell::new(Observer::started_at(true, true, 1)));
        for _ in 0..3 {
            let _outer = Seen::open(Some(&o), "allreduce", 80, 0);
            let _inner = Seen::open(Some(&o), "send", 40, 0);
        }
        {
            let _s = Seen::open(Some(&o), "send", 8, 0);
        }
        let _off = Seen::open(None, "send", 1, 0);
        {
            let seen = o.borrow();
            let ops = &seen.ops;
            assert_eq!(ops.len(), 2, "{ops:?}");
            assert_eq!(
                (ops[0].name, ops[0].calls, ops[0].bytes),
                ("allreduce", 3, 240)
            );
            assert_eq!((ops[1].name, ops[1].calls, ops[1].bytes), ("send", 1, 8));
            let events = seen.events.as_ref().unwrap();
            assert_eq!(events.len(), 4);
            assert!(events.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
            assert_eq!((events[3].name, events[3].bytes), ("send", 8));
            // Profile lines, RAN, then STARTED and the events.
            let lines = seen.lines();
            assert_eq!(lines.len(), 2 + 1 + 1 + 4);
            assert!(matches!(
                lines[2],
                mpr_launch::rendezvous::Request::Ran { .. }
            ));
            assert!(matches!(
                lines[3],
                mpr_launch::rendezvous::Request::Started { .. }
            ));
        }
        // The call under way is told up to now, with its peer; an inner call's peer is not
        // the outer call's.
        let _open = Seen::open(Some(&o), "recv", 4, 0);
        o.borrow_mut().about(3, 9);
        {
            let _inner = Seen::open(Some(&o), "probe", 0, 0);
            o.borrow_mut().about(5, 1);
        }
        let lines = o.borrow().trace_lines();
        assert_eq!(lines.len(), 1 + 4 + 1);
        assert!(matches!(
            &lines[5],
            mpr_launch::rendezvous::Request::Event { op, peer: Some(3), tag: Some(9), .. } if op == "recv"
        ));
    }

    #[test]
    fn the_shortest_round_trip_measures_the_clock() {
        let mut o = Observer::started_at(false, true, 1);
        // mprun's clock is ours plus 10 s; the first answer comes slowly.
        let started = o.started;
        let ours = || started.elapsed().as_nanos() as u64;
        let mut trips = 0;
        o.align(|| {
            trips += 1;
            if trips == 1 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Some(ours() + 10_000_000_000)
        });
        assert_eq!(trips, ALIGN_TRIPS);
        let (offset, rtt) = o.aligned[0];
        assert!(rtt < 20_000_000, "the slow trip was not taken: {rtt}");
        assert!(
            (offset - 10_000_000_000).unsigned_abs() <= rtt,
            "{offset} {rtt}"
        );
        // A service that cannot answer leaves what was measured; a second measure is kept
        // beside the first, a third replaces the second.
        o.align(|| None);
        assert_eq!(o.aligned.len(), 1);
        o.align(|| Some(ours() + 5));
        o.align(|| Some(0));
        assert_eq!(o.aligned.len(), 2);
        assert!(o.aligned[1].0 <= 0);
        let lines = o.trace_lines();
        assert!(matches!(
            lines[1],
            mpr_launch::rendezvous::Request::Aligned { .. }
        ));
        assert!(matches!(
            lines[2],
            mpr_launch::rendezvous::Request::Aligned { .. }
        ));
    }

    #[test]
    fn calls_say_their_communicator_algorithm_and_sleeps() {
        let o = Rc::new(RefCell::new(Observer::started_at(false, true, 1)));
        {
            let _outer = Seen::open(Some(&o), "allgather", 64, 3);
            o.borrow_mut().algorithm("ring");
            // Too short to be a sleep (a start not yet come lasted nothing), then a real one.
            let later = Instant::now() + std::time::Duration::from_secs(60);
            o.borrow_mut().asleep(later);
            let since = Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(1));
            o.borrow_mut().asleep(since);
            let _inner = Seen::open(Some(&o), "bcast", 8, 5);
            o.borrow_mut().algorithm("binomial");
        }
        o.borrow_mut().named(3, "rows of the grid");
        o.borrow_mut().named(3, "rows");
        let seen = o.borrow();
        let events = seen.events.as_ref().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].name, events[0].comm), (ASLEEP, None));
        assert_eq!(
            (events[1].name, events[1].comm, events[1].algo),
            ("allgather", Some(3), Some("ring"))
        );
        assert_eq!(seen.names, [(3, "rows".to_string())]);
        assert!(seen.trace_lines().iter().any(|l| matches!(
            l,
            mpr_launch::rendezvous::Request::Named { ctx: 3, name } if name == "rows"
        )));
    }
}
