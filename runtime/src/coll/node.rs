//! Barrier, broadcasts and allreduces among the ranks of one host, through shared-memory
//! segments (`shm.rs`) instead of messages.
//!
//! **Why.** On one host a message-based collective pays, for every message, a system call to
//! send, one to receive, and (whenever the receiver sleeps) a wake-up through `epoll`. When
//! ranks outnumber cores those wake-ups are the whole cost: an 8-rank barrier on 2 cores took
//! 110 to 200 µs over Unix sockets (about 10 context switches per barrier), Open MPI's 190 to
//! 250 µs. A C prototype of the barrier below (a counter in shared memory, a futex to sleep
//! on) took 50 µs when every waiter slept at once and 8 to 15 µs when it first yielded the CPU
//! a few times: a rank that yields lets the late ranks run, and checking a word in memory costs
//! no system call. (This is what Open MPI's `coll/sm` and MPICH's shared-memory collectives do
//! too, but they spin, and collapse when oversubscribed.) Broadcasts and allreduces above
//! [`NODE_BYTES`] go through a second region, in rounds (`node/large.rs`). Across hosts and for
//! nonblocking collectives, collectives stay on messages.
//!
//! **When.** On communicators of more than one rank whose ranks all run on this host (every
//! rank of the job does: the same answer everywhere) unless `MPR_NODE_COLL=0`. The segment is
//! made at the communicator's first such collective: rank 0 creates it and broadcasts its pid
//! and descriptor (by message); every rank maps it; an allreduce (by message) checks that all
//! did, and if any could not, the communicator keeps to messages for good.
//!
//! **Barrier** (also the synchronisation of allreduce), in one of two ways, chosen by rank 0
//! when it makes the segment (so that all agree): *by flags* while every rank has a core of its
//! own, *by counter* when ranks outnumber cores. Every rank counts its barriers (its epoch), so
//! each knows which value it waits for.
//! - By flags: each rank stores the epoch into the first word of its own slot (below) and waits
//!   until every other slot's word holds it too. A rank writes only its own line and reads the
//!   others', all at once, so on 2 ranks a barrier (or an 8-byte allreduce, whose bytes ride in
//!   the same line) costs one line crossing each way, at once: an 8-byte allreduce on 2 ranks
//!   took 0.29 us by flags against 0.40 by counter here (medians of 5 alternating runs).
//! - By counter: each rank adds one to `arrived`; the last one resets it and bumps `gen`; the
//!   others wait for `gen` to move. The arrivals form one chain of read-modify-writes on one
//!   line, but a crowded rank waits for one word, and the last arrival wakes all sleepers with
//!   one system call (with flags, a sleeper would wake for each flag it waits for).
//!
//! **Allreduce** of at most [`NODE_BYTES`]: each rank copies its vector into its slot, passes
//! the barrier, then folds all slots in rank order into its output (so every rank computes the
//! same bits). Slots come in two sets, used by alternate barriers: a rank writes set `e % 2` in
//! barrier epoch `e` only after passing barrier `e - 1`, which every rank reached after it had
//! read set `(e - 2) % 2`, so nobody writes a slot while another reads it (by flags: a rank
//! stores epoch `e - 1` only after it is done with epoch `e - 2`).
//!
//! **Broadcast** of at most [`NODE_BYTES`]: the root copies its buffer into one of
//! [`BCAST_SLOTS`] slots and publishes the call's number; the others wait for it, copy out, and
//! count themselves done on the slot. A root reuses a slot only once all n - 1 readers of its
//! previous use are done, so a root may run up to [`BCAST_SLOTS`] broadcasts ahead.
//!
//! Every slot carries the number of the call that wrote it and the byte count: a rank that
//! finds another call's number (ranks calling collectives in different orders) or another length
//! returns an error instead of using the bytes.
//!
//! **Waiting**: spin on the word (yielding the CPU between looks when ranks outnumber cores),
//! then sleep on a futex. Sleepers announce themselves, so a rank that moves a word makes the
//! wake-up system call only when someone sleeps. A sleeper wakes up now and then to check that
//! every member still exists and has not finalized (its Fin, or mprun's notice that it ended,
//! is read then), and returns [`Error::PeerFailed`] if one is gone: a member that finalized
//! waits for this rank's Fin before it exits, so only this check ends such a wait.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use crate::comm::Comm;
use crate::engine::schedule::ByteCombine;
use crate::engine::waits::NodeWait;
use crate::error::{Error, PeerCause, Result};
use crate::shm::Segment;
use crate::sys;

mod large;
use large::Large;

/// Largest broadcast and allreduce (bytes per rank) that go through the segment.
pub(crate) const NODE_BYTES: usize = 8 << 10;

/// Broadcasts a root may run ahead of its slowest reader (8 KiB each, but only the pages
/// written are ever taken: 64 let the ranks of a crowded host run longer between switches).
const BCAST_SLOTS: usize = 64;

/// Cache line: words that different ranks write sit on lines of their own.
const LINE: usize = 64;

/// A slot: a line of header (call number, byte count) and the data. (A reduce slot's header
/// is only [`REDUCE_DATA`] bytes: see [`Layout::reduce_slot`].)
const SLOT: usize = LINE + NODE_BYTES;

/// Byte offsets in a reduce slot: the epoch that wrote it at 0 (with its sleeper count at 4),
/// the kind of call ([`KIND_BARRIER`] or [`KIND_ALLREDUCE`]), the byte count, then the data,
/// so that a small vector shares the epoch's line.
const REDUCE_KIND: usize = 8;
const REDUCE_LEN: usize = 12;
const REDUCE_DATA: usize = 16;
const KIND_BARRIER: u32 = 1;
const KIND_ALLREDUCE: u32 = 2;

/// Looks at a word, yielding in between, before sleeping, when ranks outnumber cores
/// (measured in the C prototype, 8 ranks on 2 cores: 0 yields 50 µs per barrier, 3 to 30
/// yields 8 to 9 µs, 100 or more 11 to 13 µs; in mpr, 4 ranks on 2 cores, medians of 5 runs:
/// 10 looks 0.81 µs per 8-byte broadcast and 4.0 µs per allreduce, 50 looks 0.61 and 3.7 µs, the
/// 8-rank barrier alike; a reader that sleeps costs its root a wake-up).
const CROWDED_LOOKS: u32 = 50;

/// How long a sleeper sleeps before it checks that the members still exist.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// How long it sleeps instead while the rank has other operations under way (a send whose
/// frames wait for room in a ring, a receive whose sender waits for an answer): they move only
/// when the wait ticks.
const BUSY_CHECK_EVERY: Duration = Duration::from_millis(1);

/// Looks between ticks while a wait spins.
const TICK_LOOKS: u32 = 256;

/// Where things are in the segment of an n-rank communicator.
struct Layout {
    pids: usize,
    reduce: usize,
    bcast: usize,
    total: usize,
    n: usize,
}

/// Word offsets of the fixed part (each on its own line; a word's sleeper count follows it).
const ARRIVED: usize = 0;
const GEN: usize = LINE;
const BCAST_SEQ: usize = 2 * LINE;
const fn bcast_done(slot: usize) -> usize {
    (3 + slot) * LINE
}
/// How barriers go (module docs): [`BY_FLAGS`], or 0 by counter. Written by rank 0 before any
/// other rank maps the segment.
const MODE: usize = bcast_done(BCAST_SLOTS);
const BY_FLAGS: u32 = 1;

impl Layout {
    fn new(n: usize) -> Layout {
        let pids = MODE + LINE;
        let reduce = pids + (4 * n).div_ceil(LINE) * LINE;
        let bcast = reduce + 2 * n * SLOT;
        Layout {
            pids,
            reduce,
            bcast,
            total: bcast + BCAST_SLOTS * SLOT,
            n,
        }
    }

    /// The reduce slot of `rank` in the set of epoch `set`: epoch, sleepers, kind, length (four
    /// 4-byte words), then the data, from [`REDUCE_DATA`].
    fn reduce_slot(&self, set: u32, rank: usize) -> usize {
        self.reduce + ((set as usize % 2) * self.n + rank) * SLOT
    }

    fn bcast_slot(&self, call: u32) -> usize {
        self.bcast + (call as usize % BCAST_SLOTS) * SLOT
    }
}

/// Called now and then while a wait spins or sleeps: moves the rank's other operations and
/// answers the launcher (a `--timeout` report). True while the rank has operations under way
/// (then the wait looks again sooner).
type Tick<'a> = &'a dyn Fn() -> Result<bool>;

/// A communicator's use of the node segment.
pub(crate) enum NodeState {
    /// Not decided yet (decided at the first collective that could use it).
    Untried,
    /// Collectives go by message.
    Off,
    On(Box<Node>),
}

/// The segment of one communicator and this rank's count of what went through it.
pub(crate) struct Node {
    seg: Segment,
    at: Layout,
    me: usize,
    /// Barriers (and allreduces) passed.
    epoch: u32,
    /// Broadcasts done.
    bcasts: u32,
    /// Ranks outnumber cores on this host: yield between looks.
    crowded: bool,
    /// Barriers go by flags, not by counter (the segment's [`MODE`]).
    by_flags: bool,
    /// Longest spin before sleeping when not crowded.
    spin: Duration,
    /// World rank of each member, to name one that is gone.
    world: Vec<usize>,
    /// The region of large allreduces and broadcasts (`large.rs`).
    large: Large,
    /// Kept between calls: where slots are copied out to be folded (an allocation per call
    /// was a tenth of a small allreduce).
    scratch: Vec<u128>,
    /// When tracing, where to tell each sleep on the segment's futex (`observe.rs`).
    sleeps: Option<std::rc::Rc<std::cell::RefCell<crate::observe::Observer>>>,
}

impl Comm {
    /// Whether this communicator's collectives of `bytes` bytes go through the node segment;
    /// sets it up on the first call that could (a collective step: every rank calls this at
    /// the same point).
    pub(crate) fn use_node(&self, bytes: usize) -> Result<bool> {
        if bytes > NODE_BYTES {
            return Ok(false);
        }
        match &*self.node.borrow() {
            NodeState::On(_) => return Ok(true),
            NodeState::Off => return Ok(false),
            NodeState::Untried => {}
        }
        let eligible = {
            let e = self.engine.borrow();
            e.tuning.node_coll && e.one_host() && self.size() > 1
        };
        let state = match eligible {
            true => self.node_setup()?.map_or(NodeState::Off, NodeState::On),
            false => NodeState::Off,
        };
        let on = matches!(state, NodeState::On(_));
        *self.node.borrow_mut() = state;
        Ok(on)
    }

    /// Makes and maps the segment (see the module docs); `None` if some rank could not.
    fn node_setup(&self) -> Result<Option<Box<Node>>> {
        let (n, me) = (self.size(), self.rank());
        let at = Layout::new(n);
        let local_crowded = self.engine.borrow().local_crowded();
        let seg = self.share_segment(c"mpr-node", at.total, |seg| {
            let mode = if local_crowded { 0 } else { BY_FLAGS };
            seg.word(MODE).store(mode, Relaxed);
            for slot in 0..BCAST_SLOTS {
                // Every broadcast slot starts out read by all: free for a root.
                seg.word(bcast_done(slot)).store(n as u32 - 1, Relaxed);
            }
        })?;
        let Some(seg) = seg else {
            return Ok(None);
        };
        seg.word(at.pids + 4 * me)
            .store(std::process::id(), Release);
        let world = (0..n).map(|r| self.world_rank(r)).collect::<Result<_>>()?;
        let (crowded, spin, sleeps) = {
            let e = self.engine.borrow();
            (
                e.local_crowded(),
                Duration::from_micros(e.tuning.max_spin_us.into()),
                e.observer.clone().filter(|_| e.tuning.trace),
            )
        };
        let mut node = Node::new(seg, at, me, crowded, spin, world);
        node.sleeps = sleeps;
        Ok(Some(Box::new(node)))
    }

    /// A segment of `len` bytes mapped by every rank of the communicator (a collective step):
    /// rank 0 creates it and runs `init` on it, broadcasts its pid and descriptor by message,
    /// the others map it, and an allreduce checks that all did. `None` (everywhere) if any rank
    /// could not.
    pub(super) fn share_segment(
        &self,
        name: &std::ffi::CStr,
        len: usize,
        init: impl FnOnce(&Segment),
    ) -> Result<Option<Segment>> {
        let mut created = None;
        // [made it, pid, descriptor]
        let mut offer = [0u32; 3];
        if self.rank() == 0 {
            if let Ok(seg) = Segment::create(name, len) {
                init(&seg);
                offer = [1, std::process::id(), seg.fd().unwrap_or(-1) as u32];
                created = Some(seg);
            }
        }
        self.msg_broadcast(&mut offer, 0)?;
        let seg = match (created, offer) {
            (Some(s), _) => Some(s),
            (None, [1, pid, fd]) => Segment::open(pid, fd as i32, len).ok(),
            _ => None,
        };
        let mut everyone = [0u32];
        self.msg_allreduce_min(&[u32::from(seg.is_some())], &mut everyone)?;
        Ok(seg.filter(|_| everyone[0] == 1).map(|mut seg| {
            seg.close_fd();
            seg
        }))
    }

    /// Runs `f` on the node segment (set up by [`Comm::use_node`]).
    fn with_node<R>(&self, f: impl FnOnce(&mut Node) -> Result<R>) -> Result<R> {
        match &mut *self.node.borrow_mut() {
            NodeState::On(node) => f(node),
            _ => Err(Error::InvalidArgument {
                what: "collective",
                detail: "no shared segment on this communicator".into(),
            }),
        }
    }

    /// Runs collective call `f` on the node segment (counting it as a collective call, as every
    /// collective does) with the tick of this rank's engine, saying what it waits for (`what`)
    /// while it does.
    fn node_op<R>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Node, Tick<'_>) -> Result<R>,
    ) -> Result<R> {
        self.begin_coll();
        // Between sleeps: move the rank's other operations (a Fin or the launcher's notice that
        // a member ended arrives that way), then fail if a member is gone. A member that has
        // finalized or died never comes to this collective.
        let tick = || {
            let mut e = self.engine.borrow_mut();
            e.poll_once()?;
            for r in 0..self.size() {
                if let Some(err) = e.peer_failure(self.world_rank(r)?) {
                    return Err(err);
                }
            }
            Ok(e.busy())
        };
        self.engine.borrow_mut().node_wait = Some(NodeWait {
            what,
            seq: self.coll_seq.get() % super::SEQ_SPAN,
            ctx: self.ctx,
        });
        let r = self.with_node(|node| f(node, &tick));
        self.engine.borrow_mut().node_wait = None;
        r
    }

    pub(crate) fn node_barrier(&self) -> Result<()> {
        self.node_op("barrier", |node, tick| node.barrier(tick))
    }

    /// Allreduce of `send` into `recv` (same length, at most [`NODE_BYTES`]), folding with
    /// `combine` in rank order.
    pub(crate) fn node_allreduce(
        &self,
        send: &[u8],
        recv: &mut [u8],
        combine: &ByteCombine<'_>,
    ) -> Result<()> {
        self.node_op("allreduce", |node, tick| {
            node.allreduce(send, recv, combine, tick)
        })
    }

    /// Broadcast of `buf` (at most [`NODE_BYTES`]) from `root`.
    pub(crate) fn node_broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.node_op("broadcast", |node, tick| node.broadcast(buf, root, tick))
    }
}

impl Node {
    fn new(
        seg: Segment,
        at: Layout,
        me: usize,
        crowded: bool,
        spin: Duration,
        world: Vec<usize>,
    ) -> Node {
        Node {
            by_flags: seg.word(MODE).load(Relaxed) == BY_FLAGS,
            seg,
            at,
            me,
            epoch: 0,
            bcasts: 0,
            crowded,
            spin,
            world,
            large: Large::Untried,
            scratch: Vec::new(),
            sleeps: None,
        }
    }

    fn barrier(&mut self, tick: Tick<'_>) -> Result<()> {
        if self.by_flags {
            self.arrive(self.epoch.wrapping_add(1), KIND_BARRIER, 0);
        }
        self.pass(tick)
    }

    /// Writes this rank's reduce slot header for epoch `call`: the epoch last (by flags, it is
    /// the rank's arrival, and whoever sleeps on it is woken).
    fn arrive(&self, call: u32, kind: u32, len: usize) {
        let mine = self.at.reduce_slot(call, self.me);
        self.seg.word(mine + REDUCE_KIND).store(kind, Relaxed);
        self.seg.word(mine + REDUCE_LEN).store(len as u32, Relaxed);
        if self.by_flags {
            self.publish(mine, call);
        } else {
            self.seg.word(mine).store(call, Relaxed);
        }
    }

    /// Passes the barrier of the next epoch, this rank having written its slot: by flags, waits
    /// for every other rank's arrival; by counter, counts itself in.
    fn pass(&mut self, tick: Tick<'_>) -> Result<()> {
        let n = self.at.n as u32;
        let next = self.epoch.wrapping_add(1);
        if self.by_flags {
            for r in (0..self.at.n).filter(|&r| r != self.me) {
                let slot = self.at.reduce_slot(next, r);
                // Nobody can be a whole set ahead (it would wait for this rank's next arrival).
                self.wait_for(slot, |e| e == next, tick)?;
            }
            self.epoch = next;
            return Ok(());
        }
        // The last arrival sees every slot written before the others arrived (the arrivals form
        // one chain of read-modify-writes on the counter).
        if self.seg.word(ARRIVED).fetch_add(1, SeqCst) + 1 == n {
            // Nobody arrives for the next barrier before `gen` moves, which publishes this.
            self.seg.word(ARRIVED).store(0, Relaxed);
            self.publish(GEN, next);
        } else {
            self.wait_for(GEN, |g| g == next, tick)?;
        }
        self.epoch = next;
        Ok(())
    }

    fn allreduce(
        &mut self,
        send: &[u8],
        recv: &mut [u8],
        combine: &ByteCombine<'_>,
        tick: Tick<'_>,
    ) -> Result<()> {
        let call = self.epoch.wrapping_add(1);
        let mine = self.at.reduce_slot(call, self.me);
        self.seg.write(mine + REDUCE_DATA, send);
        self.arrive(call, KIND_ALLREDUCE, send.len());
        self.pass(tick)?;
        self.with_scratch(|node, scratch| {
            let x = scratch_bytes(scratch, send.len());
            for r in 0..node.at.n {
                let slot = node.at.reduce_slot(call, r);
                node.check_reduce_slot(slot, call, send.len(), r)?;
                if r == 0 {
                    node.seg.read(slot + REDUCE_DATA, recv);
                } else {
                    node.seg.read(slot + REDUCE_DATA, x);
                    combine(recv, x, false)?;
                }
            }
            Ok(())
        })
    }

    /// Checks that the reduce slot at `slot` holds allreduce `call` of `len` bytes, written by
    /// rank `by`.
    fn check_reduce_slot(&self, slot: usize, call: u32, len: usize, by: usize) -> Result<()> {
        let got_call = self.seg.word(slot).load(Acquire);
        let kind = self.seg.word(slot + REDUCE_KIND).load(Relaxed);
        let got_len = self.seg.word(slot + REDUCE_LEN).load(Relaxed);
        check_header(
            (got_call, got_len.into()),
            call,
            len,
            "allreduce",
            by,
            kind == KIND_ALLREDUCE,
        )
    }

    /// Runs `f` with the node's scratch, kept for the next call whatever `f` returns.
    fn with_scratch<R>(
        &mut self,
        f: impl FnOnce(&mut Node, &mut Vec<u128>) -> Result<R>,
    ) -> Result<R> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = f(self, &mut scratch);
        self.scratch = scratch;
        r
    }

    fn broadcast(&mut self, buf: &mut [u8], root: usize, tick: Tick<'_>) -> Result<()> {
        let n = self.at.n as u32;
        let call = self.bcasts.wrapping_add(1);
        self.bcasts = call;
        let slot = self.at.bcast_slot(call);
        let done = bcast_done(call as usize % BCAST_SLOTS);
        if self.me == root {
            // The slot's previous broadcast has been read by all n - 1 of its readers.
            self.wait_for(done, |d| d == n - 1, tick)?;
            self.seg.word(done).store(0, Relaxed);
            self.seg.write(slot, &slot_header(call, buf.len()));
            self.seg.write(slot + LINE, buf);
            self.publish(BCAST_SEQ, call);
            return Ok(());
        }
        // Calls are numbered alike everywhere; a later number than ours means ours is out too.
        self.wait_for(BCAST_SEQ, |s| s.wrapping_sub(call) as i32 >= 0, tick)?;
        let checked = check_slot(&self.seg, slot, call, buf.len(), "broadcast", root);
        if checked.is_ok() {
            self.seg.read(slot + LINE, buf);
        }
        // Done with the slot, even on an error, or its next root would wait for ever.
        if self.seg.word(done).fetch_add(1, SeqCst) + 1 == n - 1 {
            self.wake(done);
        }
        checked
    }

    /// Stores `value` into the word at `at` and wakes whoever sleeps on it.
    fn publish(&self, at: usize, value: u32) {
        self.publish_in(&self.seg, at, value);
    }

    /// [`Node::publish`] in another segment of the communicator's (`large.rs`).
    fn publish_in(&self, seg: &Segment, at: usize, value: u32) {
        seg.word(at).store(value, SeqCst);
        self.wake_in(seg, at);
    }

    /// Wakes whoever sleeps on the word at `at` (a system call only if someone announced it).
    fn wake(&self, at: usize) {
        self.wake_in(&self.seg, at);
    }

    /// [`Node::wake`] in another segment.
    fn wake_in(&self, seg: &Segment, at: usize) {
        if seg.word(at + 4).load(SeqCst) > 0 {
            sys::futex_wake_all(seg.word(at));
        }
    }

    /// Waits until the word at `at` satisfies `done`: spins (or yields), then sleeps. The
    /// rank's other operations move on meanwhile: ticks every [`TICK_LOOKS`] looks and after
    /// every yield while spinning, and after every sleep, which is short while they are under
    /// way. This is the rank's one wait while it is in a node collective.
    fn wait_for(&self, at: usize, done: impl Fn(u32) -> bool, tick: Tick<'_>) -> Result<()> {
        self.wait_for_in(&self.seg, at, done, tick)
    }

    /// [`Node::wait_for`] on a word of another segment of the communicator's (`large.rs`).
    fn wait_for_in(
        &self,
        seg: &Segment,
        at: usize,
        done: impl Fn(u32) -> bool,
        tick: Tick<'_>,
    ) -> Result<()> {
        let word = seg.word(at);
        // A member that finalized (or failed) after it passed this wait's point makes the tick
        // fail; that is no error when the word has already moved.
        let tick = || match tick() {
            Err(_) if done(word.load(Acquire)) => Ok(None),
            r => r.map(Some),
        };
        let mut busy = true;
        if self.crowded {
            for look in 0..CROWDED_LOOKS {
                if done(word.load(Acquire)) {
                    return Ok(());
                }
                std::thread::yield_now();
                if look % 8 == 7 {
                    match tick()? {
                        Some(b) => busy = b,
                        None => return Ok(()),
                    }
                }
            }
        } else if !self.spin.is_zero() {
            // The clock is read only once the first looks have not done (most waits end there).
            let mut start = None;
            let mut looks = 0u32;
            loop {
                if done(word.load(Acquire)) {
                    return Ok(());
                }
                std::hint::spin_loop();
                looks += 1;
                if looks % TICK_LOOKS == 0 {
                    match tick()? {
                        Some(b) => busy = b,
                        None => return Ok(()),
                    }
                    if start.get_or_insert_with(Instant::now).elapsed() > self.spin {
                        break;
                    }
                }
            }
        }
        let sleepers = seg.word(at + 4);
        loop {
            // Announce, then look again: either the publisher sees the announcement and wakes
            // us, or we see its value (both orders are SeqCst).
            sleepers.fetch_add(1, SeqCst);
            let v = word.load(SeqCst);
            if !done(v) {
                let nap = if busy { BUSY_CHECK_EVERY } else { CHECK_EVERY };
                let since = self.sleeps.as_ref().map(|_| Instant::now());
                sys::futex_wait(word, v, nap);
                if let (Some(o), Some(since)) = (&self.sleeps, since) {
                    o.borrow_mut().asleep(since);
                }
            }
            sleepers.fetch_sub(1, SeqCst);
            if done(word.load(Acquire)) {
                return Ok(());
            }
            if let Err(gone) = self.check_members() {
                return if done(word.load(Acquire)) {
                    Ok(())
                } else {
                    Err(gone)
                };
            }
            match tick()? {
                Some(b) => busy = b,
                None => return Ok(()),
            }
        }
    }

    /// An error naming a member whose process no longer exists.
    fn check_members(&self) -> Result<()> {
        for r in 0..self.at.n {
            let pid = self.seg.word(self.at.pids + 4 * r).load(Acquire);
            if pid != 0 && !sys::process_exists(pid) {
                return Err(Error::PeerFailed {
                    rank: self.world[r],
                    cause: PeerCause::Vanished,
                });
            }
        }
        Ok(())
    }
}

/// Checks that the slot at `slot` of `seg` holds call `call` with `len` bytes, written by rank
/// `by`.
fn check_slot(
    seg: &Segment,
    slot: usize,
    call: u32,
    len: usize,
    what: &str,
    by: usize,
) -> Result<()> {
    let mut h = [0u8; HEADER];
    seg.read(slot, &mut h);
    check_header(parse_header(h), call, len, what, by, true)
}

/// Checks a slot's header (`got`: call number, byte count) against the call `call` of `len`
/// bytes; `same_kind`: the slot was written by the same kind of collective.
fn check_header(
    (got_call, got_len): (u32, u64),
    call: u32,
    len: usize,
    what: &str,
    by: usize,
    same_kind: bool,
) -> Result<()> {
    if got_call != call || !same_kind {
        return Err(Error::InvalidArgument {
            what: "collective",
            detail: format!(
                "rank {by} is not in the same {what}: the ranks called collectives in different orders"
            ),
        });
    }
    if got_len != len as u64 {
        return Err(Error::InvalidArgument {
            what: "collective",
            detail: format!(
                "rank {by} passed {got_len} bytes to {what} where this rank passed {len}: the ranks passed mismatched lengths"
            ),
        });
    }
    Ok(())
}

/// The first `len` bytes of `scratch`, grown as needed: 16-byte words, so any element type is
/// aligned in it.
fn scratch_bytes(scratch: &mut Vec<u128>, len: usize) -> &mut [u8] {
    let words = len.div_ceil(16);
    if scratch.len() < words {
        scratch.resize(words, 0);
    }
    &mut bytemuck::cast_slice_mut::<u128, u8>(scratch)[..len]
}

/// Bytes of a slot's header: the call's number, then its length.
const HEADER: usize = 12;

fn slot_header(call: u32, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&call.to_le_bytes());
    h[4..].copy_from_slice(&(len as u64).to_le_bytes());
    h
}

fn parse_header(h: [u8; HEADER]) -> (u32, u64) {
    let call = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let len = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
    (call, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Member `me` of an n-member segment made by [`make`], mapped anew (as another process would).
    pub(super) fn member(fd: i32, n: usize, me: usize, crowded: bool) -> Node {
        let at = Layout::new(n);
        let seg = Segment::open(std::process::id(), fd, at.total).unwrap();
        seg.word(at.pids + 4 * me)
            .store(std::process::id(), Release);
        let world = (0..n).map(|r| r + 100).collect();
        Node::new(seg, at, me, crowded, Duration::from_micros(50), world)
    }

    /// A segment for n members whose barriers go by flags or by counter.
    pub(super) fn make(n: usize, by_flags: bool) -> Segment {
        let seg = Segment::create(c"mpr-node", Layout::new(n).total).unwrap();
        seg.word(MODE)
            .store(if by_flags { BY_FLAGS } else { 0 }, Relaxed);
        for slot in 0..BCAST_SLOTS {
            seg.word(bcast_done(slot)).store(n as u32 - 1, Relaxed);
        }
        seg
    }

    pub(super) fn sum_u64() -> ByteCombine<'static> {
        Box::new(|acc: &mut [u8], x: &[u8], _| {
            for (a, b) in acc.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
                let v = u64::from_le_bytes(a.try_into().unwrap())
                    + u64::from_le_bytes(b.try_into().unwrap());
                a.copy_from_slice(&v.to_le_bytes());
            }
            Ok(())
        })
    }

    /// Threads stand in for ranks, each with a mapping of its own: barriers, broadcasts from
    /// rotating roots (which run ahead of their readers) and allreduces, all checked.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create, mmap or futex")]
    fn members_agree_through_the_segment() {
        for (n, crowded, by_flags) in [
            (2, false, true),
            (2, false, false),
            (3, true, false),
            (3, true, true),
            (5, false, true),
        ] {
            let seg = make(n, by_flags);
            let fd = seg.fd().unwrap();
            let threads: Vec<_> = (0..n)
                .map(|me| {
                    std::thread::spawn(move || -> Result<()> {
                        let mut node = member(fd, n, me, crowded);
                        let combine = sum_u64();
                        for i in 0..300u64 {
                            let root = (i as usize) % n;
                            let mut b = [if me == root { i * 3 } else { 0 }; 5];
                            node.broadcast(bytemuck::cast_slice_mut(&mut b), root, &|| Ok(false))?;
                            assert_eq!(b, [i * 3; 5], "broadcast {i}");
                            let mine = [me as u64 + i; 3];
                            let mut out = [0u64; 3];
                            node.allreduce(
                                bytemuck::cast_slice(&mine),
                                bytemuck::cast_slice_mut(&mut out),
                                &combine,
                                &|| Ok(false),
                            )?;
                            let want = (0..n as u64).map(|r| r + i).sum::<u64>();
                            assert_eq!(out, [want; 3], "allreduce {i}");
                            if i % 7 == 0 {
                                node.barrier(&|| Ok(false))?;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            drop(seg);
        }
    }

    /// A member whose process is gone is named, instead of a wait for ever.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create, mmap or futex")]
    fn a_vanished_member_is_an_error_not_a_hang() {
        for by_flags in [true, false] {
            let seg = make(2, by_flags);
            let mut node = member(seg.fd().unwrap(), 2, 0, false);
            let gone = std::process::Command::new("true").spawn().unwrap();
            let pid = gone.id();
            let mut gone = gone;
            gone.wait().unwrap();
            node.seg.word(node.at.pids + 4).store(pid, Release);
            let t = Instant::now();
            match node.barrier(&|| Ok(false)) {
                Err(Error::PeerFailed {
                    rank: 101,
                    cause: PeerCause::Vanished,
                }) => {}
                other => panic!("{other:?}"),
            }
            assert!(t.elapsed() < Duration::from_secs(2));
        }
    }

    /// By flags, a barrier and an allreduce of the same epoch (ranks calling collectives in
    /// different orders) are told apart: the allreduce fails instead of folding nothing.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create, mmap or futex")]
    fn a_barrier_is_not_taken_for_an_allreduce() {
        let seg = make(2, true);
        let fd = seg.fd().unwrap();
        let other = std::thread::spawn(move || member(fd, 2, 1, false).barrier(&|| Ok(false)));
        let mut node = member(fd, 2, 0, false);
        let mut out = [0u64];
        let got = node.allreduce(
            bytemuck::cast_slice(&[1u64]),
            bytemuck::cast_slice_mut(&mut out),
            &sum_u64(),
            &|| Ok(false),
        );
        assert!(
            matches!(&got, Err(Error::InvalidArgument { detail, .. }) if detail.contains("different orders")),
            "{got:?}"
        );
        other.join().unwrap().unwrap();
    }

    #[test]
    fn layout_keeps_words_on_lines_and_slots_apart() {
        for n in [2, 3, 8, 17, 64] {
            let at = Layout::new(n);
            assert!(at.pids >= bcast_done(BCAST_SLOTS - 1) + LINE);
            assert!(at.reduce >= at.pids + 4 * n && at.reduce % LINE == 0);
            let last_reduce = at.reduce_slot(1, n - 1);
            assert_eq!(at.reduce_slot(3, n - 1), last_reduce, "sets alternate");
            assert_ne!(at.reduce_slot(2, n - 1), last_reduce);
            assert!(last_reduce + SLOT <= at.bcast);
            assert_eq!(at.bcast_slot(BCAST_SLOTS as u32), at.bcast_slot(0));
            assert!(at.bcast_slot(BCAST_SLOTS as u32 - 1) + SLOT <= at.total);
        }
        assert_eq!(
            parse_header(slot_header(7, NODE_BYTES)),
            (7, NODE_BYTES as u64)
        );
    }
}
