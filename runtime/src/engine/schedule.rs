//! Collective schedules: a nonblocking collective as rounds that the progress engine runs.
//!
//! A schedule is a list of [`Round`]s. A round starts all its sends and receives at once; when
//! all of them have completed, its local steps run (fold a received block into a partial result,
//! copy a block) and the next round starts. The engine advances every schedule on every
//! progress step, whichever request the program waits on, so a rank blocked in a receive still
//! answers its part of a collective it started earlier (MPI's progress rule for nonblocking
//! collectives).
//!
//! Buffers are byte ranges ([`Loc`]) of three regions: the caller's input and output (views
//! borrowed for the request's scope, as for `isend`/`irecv`) and scratch owned by the schedule.
//! A region's bytes are only touched by one operation or one local step at a time: a round's
//! operations use ranges the algorithm keeps disjoint, and local steps run only once the round's
//! operations are done. That is what makes the child views of `buf.rs` sound here.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::{Engine, OpId, RawStatus};
use crate::buf::{RawMut, RawSlice};
use crate::error::{Error, Result};

/// A byte range of one of a schedule's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// The caller's input.
    Input(usize, usize),
    /// The caller's output.
    Output(usize, usize),
    /// The schedule's scratch.
    Scratch(usize, usize),
}

impl Loc {
    fn len(self) -> usize {
        match self {
            Loc::Input(_, n) | Loc::Output(_, n) | Loc::Scratch(_, n) => n,
        }
    }
}

/// A step run between rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Local {
    /// `acc = acc op x` (`x_lower`: x holds lower ranks' data).
    Combine { acc: Loc, x: Loc, x_lower: bool },
    /// `to = from`.
    Copy { from: Loc, to: Loc },
}

/// One round: its operations (world ranks, tags on the collective context) and what follows.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub sends: Vec<(usize, u32, Loc)>,
    pub recvs: Vec<(usize, u32, Loc)>,
    pub then: Vec<Local>,
}

/// Folds `x` into `acc`, both as bytes of the element type (the typed combiner behind it casts).
/// `'a`: a blocking collective's combiner may borrow the caller's closure.
pub(crate) type ByteCombine<'a> = Box<dyn Fn(&mut [u8], &[u8], bool) -> Result<()> + 'a>;

pub(crate) struct Schedule<'a> {
    ctx: u32,
    input: RawSlice,
    output: RawMut,
    /// Scratch, as 16-byte words so any primitive element type is aligned in it.
    scratch: Vec<u128>,
    rounds: VecDeque<Round>,
    /// The round whose operations are in flight (its local steps run once they are done).
    current: Option<Round>,
    inflight: Vec<(OpId, usize)>,
    combine: Option<ByteCombine<'a>>,
    error: Option<Error>,
}

thread_local! {
    /// Scratch of finished schedules, kept for the next ones: zeroing a fresh buffer on every
    /// call was 9% of the time of a 1 MiB allreduce on 8 ranks (`perf`, `memset`). A rank's
    /// engine lives on one thread, so its schedules share this thread's pool.
    static SPARE: RefCell<Vec<Vec<u128>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers kept in the pool, and the largest kept.
const KEEP_SPARE: usize = 4;
const KEEP_BYTES: usize = 16 << 20;

/// Scratch of at least `bytes` (initialized: a kept buffer holds old values, a new one zeros).
fn take_scratch(bytes: usize) -> Vec<u128> {
    let words = bytes.div_ceil(16);
    if words == 0 {
        return Vec::new();
    }
    let kept = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|v| v.capacity() >= words)?;
        Some(s.swap_remove(i))
    });
    let mut v = kept.unwrap_or_default();
    v.resize(words, 0);
    v
}

impl Drop for Schedule<'_> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.scratch);
        if v.capacity() > 0 && v.capacity() * 16 <= KEEP_BYTES {
            SPARE.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < KEEP_SPARE {
                    s.push(v);
                }
            });
        }
    }
}

/// Disjoint ranges `to` (written) and `from` (read) of one buffer; an error if they overlap or
/// leave it (a plan's mistake, reported rather than a panic).
fn split_pair(
    buf: &mut [u8],
    (o, n): (usize, usize),
    (p, m): (usize, usize),
) -> Result<(&mut [u8], &[u8])> {
    let len = buf.len();
    let fits = |a: usize, b: usize| a.checked_add(b).is_some_and(|end| end <= len);
    let bad = || Error::InvalidArgument {
        what: "collective",
        detail: format!("local step over bytes {o}+{n} <- {p}+{m} of {len}"),
    };
    if !fits(o, n) || !fits(p, m) {
        return Err(bad());
    }
    if o + n <= p {
        let (a, b) = buf.split_at_mut(p);
        Ok((&mut a[o..o + n], &b[..m]))
    } else if p + m <= o {
        let (a, b) = buf.split_at_mut(o);
        Ok((&mut b[..n], &a[p..p + m]))
    } else {
        Err(bad())
    }
}

impl<'a> Schedule<'a> {
    /// A schedule over `input` and `output` (views whose memory stays valid and, for the output,
    /// untouched by anyone else until the schedule completes) with `scratch_bytes` of scratch.
    pub(crate) fn new(
        ctx: u32,
        input: RawSlice,
        output: RawMut,
        scratch_bytes: usize,
        rounds: Vec<Round>,
        combine: Option<ByteCombine<'a>>,
    ) -> Schedule<'a> {
        Schedule {
            ctx,
            input,
            output,
            scratch: take_scratch(scratch_bytes),
            rounds: rounds.into(),
            current: None,
            inflight: Vec::new(),
            combine,
            error: None,
        }
    }

    fn scratch_bytes(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.scratch)
    }

    /// `to` for writing and `from` for reading: in different regions, or disjoint ranges of the
    /// output or of the scratch (a prefix scan folds one scratch block into another).
    fn pair(&mut self, to: Loc, from: Loc) -> Result<(&mut [u8], &[u8])> {
        let scratch: &mut [u8] = bytemuck::cast_slice_mut(&mut self.scratch);
        match (to, from) {
            (Loc::Scratch(o, n), Loc::Scratch(p, m)) => split_pair(scratch, (o, n), (p, m)),
            (Loc::Output(o, n), Loc::Output(p, m)) => {
                split_pair(self.output.range_mut(0, usize::MAX), (o, n), (p, m))
            }
            (Loc::Output(o, n), Loc::Scratch(p, m)) => {
                Ok((self.output.range_mut(o, o + n), &scratch[p..p + m]))
            }
            (Loc::Output(o, n), Loc::Input(p, m)) => {
                Ok((self.output.range_mut(o, o + n), &self.input.tail(p)[..m]))
            }
            (Loc::Scratch(o, n), Loc::Input(p, m)) => {
                Ok((&mut scratch[o..o + n], &self.input.tail(p)[..m]))
            }
            (Loc::Scratch(o, n), Loc::Output(p, m)) => {
                Ok((&mut scratch[o..o + n], &*self.output.range_mut(p, p + m)))
            }
            _ => Err(Error::InvalidArgument {
                what: "collective",
                detail: format!("local step {to:?} <- {from:?}"),
            }),
        }
    }

    fn run_local(&mut self, step: Local) -> Result<()> {
        match step {
            Local::Copy { from, to } => {
                let (dst, src) = self.pair(to, from)?;
                dst.copy_from_slice(src);
            }
            Local::Combine { acc, x, x_lower } => {
                let Some(f) = self.combine.take() else {
                    return Err(Error::InvalidArgument {
                        what: "collective",
                        detail: "no reduction for this schedule".into(),
                    });
                };
                let r = self.pair(acc, x).and_then(|(a, b)| f(a, b, x_lower));
                self.combine = Some(f);
                r?;
            }
        }
        Ok(())
    }

    /// Starts the next round's operations.
    fn start_round(&mut self, e: &mut Engine, round: &Round) -> Result<()> {
        for &(peer, tag, loc) in &round.recvs {
            // SAFETY (RawMut::sub): the algorithm gives each receive of a round its own bytes,
            // and neither local steps nor other rounds touch them until this op completes.
            let view = match loc {
                Loc::Output(o, n) => unsafe { self.output.sub(o, o + n) },
                Loc::Scratch(o, n) => {
                    let bytes = &mut self.scratch_bytes()[o..o + n];
                    // SAFETY (RawMut::new): the scratch lives as long as this schedule, which
                    // the engine drops only after its operations have completed.
                    unsafe { RawMut::new(bytes) }
                }
                Loc::Input(..) => {
                    return Err(Error::InvalidArgument {
                        what: "collective",
                        detail: "receive into the input".into(),
                    })
                }
            };
            let op = e.irecv(self.ctx, Some(peer), Some(tag), view)?;
            self.inflight.push((op, loc.len()));
        }
        for &(peer, tag, loc) in &round.sends {
            let view = match loc {
                Loc::Input(o, n) => {
                    let bytes = &self.input.tail(o)[..n];
                    // SAFETY (RawSlice::new): the input outlives the schedule (module docs).
                    unsafe { RawSlice::new(bytes) }
                }
                Loc::Output(o, n) => {
                    let bytes = self.output.range_mut(o, o + n);
                    // SAFETY (RawSlice::new): the output outlives the schedule and these bytes
                    // are not written while the send is pending (module docs).
                    unsafe { RawSlice::new(bytes) }
                }
                Loc::Scratch(o, n) => {
                    let bytes = &self.scratch_bytes()[o..o + n];
                    // SAFETY (RawSlice::new): as for receives into the scratch.
                    unsafe { RawSlice::new(bytes) }
                }
            };
            let op = e.isend(self.ctx, peer, tag, view, false)?;
            self.inflight.push((op, usize::MAX));
        }
        Ok(())
    }

    /// The operations of the round in flight.
    pub(crate) fn inflight_ops(&self) -> Vec<OpId> {
        self.inflight.iter().map(|&(op, _)| op).collect()
    }

    /// Moves the schedule forward; `Some(result)` once it has finished (every operation it
    /// started has completed, whatever happened).
    pub(crate) fn advance(&mut self, e: &mut Engine) -> Option<Result<RawStatus>> {
        loop {
            if let Some(round) = self.current.take() {
                // A round without operations is done at once.
                if !self.inflight.iter().all(|&(op, _)| e.core.ops.is_done(op)) {
                    self.current = Some(round);
                    return None;
                }
                self.collect(e);
                if self.error.is_none() {
                    for &step in &round.then {
                        if let Err(err) = self.run_local(step) {
                            self.error = Some(err);
                            break;
                        }
                    }
                }
            }
            if let Some(err) = self.error.take() {
                return Some(Err(err));
            }
            let Some(round) = self.rounds.pop_front() else {
                return Some(Ok(RawStatus {
                    source: e.rank,
                    tag: 0,
                    bytes: 0,
                }));
            };
            // On a failure to start, what did start must still finish before the schedule may
            // go: the error waits in `self.error` until the round's operations are done.
            if let Err(err) = self.start_round(e, &round) {
                self.error = Some(err);
            }
            self.current = Some(round);
        }
    }

    /// Takes the results of the finished round's operations, keeping the first error (or a
    /// length mismatch) for the schedule.
    fn collect(&mut self, e: &mut Engine) {
        for (op, expect) in std::mem::take(&mut self.inflight) {
            match e.core.ops.take(op) {
                Some(Ok(st)) if expect != usize::MAX && st.bytes != expect => {
                    self.error.get_or_insert(Error::InvalidArgument {
                        what: "collective",
                        detail: format!(
                            "world rank {} sent {} bytes where {expect} were expected: the ranks passed mismatched lengths",
                            st.source, st.bytes
                        ),
                    });
                }
                Some(Err(err)) => {
                    self.error.get_or_insert(err);
                }
                _ => {}
            }
        }
    }
}

impl Engine {
    /// Runs a schedule to its end on the calling thread: a blocking collective. When this
    /// returns, none of the schedule's operations is in the engine any more, whatever happened.
    pub(crate) fn run_schedule(&mut self, sched: &mut Schedule<'_>) -> Result<()> {
        match self.wait_until(|e| sched.advance(e)) {
            Ok(result) => result.map(|_| ()),
            Err(err) => {
                for op in sched.inflight_ops() {
                    self.cancel(op);
                }
                Err(err)
            }
        }
    }

    /// Starts a collective schedule; the returned op completes when the schedule has.
    pub(crate) fn start_schedule(&mut self, mut sched: Schedule<'static>) -> Result<OpId> {
        let op = self.core.ops.insert(super::Op::Coll);
        match sched.advance(self) {
            Some(result) => self.core.ops.complete(op, result),
            None => self.schedules.push((op, Box::new(sched))),
        }
        Ok(op)
    }

    /// Moves every running schedule forward (called on every progress step).
    pub(crate) fn advance_schedules(&mut self) {
        if self.schedules.is_empty() {
            return;
        }
        let mut running = std::mem::take(&mut self.schedules);
        running.retain_mut(|(op, sched)| match sched.advance(self) {
            Some(result) => {
                self.core.ops.complete(*op, result);
                false
            }
            None => true,
        });
        // Schedules started while these advanced (none today) were pushed to the new list.
        running.append(&mut self.schedules);
        self.schedules = running;
    }
}
