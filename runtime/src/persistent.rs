//! Persistent requests: one send or receive, set up once and started again and again
//! (`MPI_Send_init`, `MPI_Recv_init`, `MPI_Start`, `MPI_Startall`).
//!
//! A [`Persistent`] keeps what every start of the same exchange shares: the communicator, the
//! peer (translated to a world rank once), the tag and the buffer. [`Persistent::start`]
//! begins one operation with them and [`Persistent::wait`] (or [`Persistent::test`]) completes
//! it, after which the request is inactive and may be started again, as many times as the scope
//! lasts. Between a completion and the next start the buffer is the caller's again:
//! [`Persistent::buf`] reads what a receive got, [`Persistent::buf_mut`] writes what the next
//! send carries (for requests made from a `&mut` buffer: [`Comm::recv_init`],
//! [`Comm::send_init_mut`]).
//!
//! **Soundness.** A persistent request lives in a [`Scope`](crate::Scope) and holds its buffer
//! for the scope's `'scope`, as a [`BufRequest`](crate::BufRequest) does; every operation it
//! starts is one of the scope's, which the scope settles before `'scope` ends, whatever happens
//! to the request (dropped or leaked). While an operation is under way the buffer is reachable
//! only by the engine: `start` refuses to begin a second one, and `buf`/`buf_mut` refuse while
//! one is active; once it has completed, `buf`/`buf_mut` borrow the request itself, so no start
//! can happen while the caller holds the slice.
//!
//! **Layouts.** [`Comm::send_init_layout`] and [`Comm::recv_init_layout`] move the elements a
//! [`Layout`] names. A halo exchange sends faces of the same array whose ghost cells it
//! receives into, which two requests could not borrow at once (one `&` and one `&mut`): an
//! [`Exchange`] ([`Comm::exchange_init`]) holds the array once for all its sends and receives,
//! started and completed together, after checking that no receive writes an element that
//! another message reads or writes. A layout of one block moves as a slice, one of several
//! through a laid-out view of the request's own copy of the layout (`buf.rs`), with no copy,
//! unless its blocks are small (`Layout::packs`): then it is packed at each start (sends) and
//! unpacked at completion (receives). A request dropped while a laid-out operation or a packed
//! receive is active completes it before it goes.
//!
//! **What it saves.** Each start skips the checks and translations of a call (rank range,
//! world rank, tag) and needs no scope of its own: 6 to 17 % of an exchange of four messages
//! (BENCHMARKS.md, "Issue 17: persistent requests and strided messages").

use std::marker::PhantomData;

use bytemuck::Pod;

use crate::buf::{RawMut, RawSlice};
use crate::comm::{Comm, Dest, Source, Status, TagMatch};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::scope::{wait_every, Request, Scope, ScopeCore};

/// What each start of one message does.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Send {
        peer: usize,
        tag: u32,
        synchronous: bool,
    },
    Recv {
        src: Option<usize>,
        tag: Option<u32>,
    },
    /// To or from no rank ([`crate::PROC_NULL`]): every start completes at once.
    Null,
}

/// Which elements of the buffer one message moves.
#[derive(Debug, Clone)]
enum Elems {
    /// `len` elements from `off`: moved with no copy.
    Run(usize, usize),
    /// Several blocks: moved where they lie, through a laid-out view (`buf.rs`) of this
    /// layout, which the part keeps while an operation holds the view.
    Laid(Layout),
    /// Several blocks too small to hand to the transport one by one ([`Layout::packs`]):
    /// packed at a send's start, unpacked at a receive's completion.
    Packed(Layout),
}

impl Elems {
    /// How `comm`'s messages of `plan` move `layout`'s elements of `unit` bytes.
    fn of(comm: &Comm, layout: &Layout, unit: usize, plan: &Plan) -> Elems {
        let peer = match *plan {
            Plan::Send { peer, .. } => Some(peer),
            Plan::Recv { src, .. } => src,
            Plan::Null => None,
        };
        match layout.run() {
            Some(run) => Elems::Run(run.start, run.len()),
            None if comm.packs(layout, unit, peer) => Elems::Packed(layout.clone()),
            None => Elems::Laid(layout.clone()),
        }
    }
}

/// The buffer of a persistent request, moved in for `'scope` (its only access path outside
/// the engine).
struct Buffer<T> {
    ptr: *mut T,
    len: usize,
    /// Made from a `&mut` buffer: it may be written (by receives, and by `buf_mut`).
    writable: bool,
}

impl<T: Pod> Buffer<T> {
    /// The bytes of the blocks `l` names (checked against the buffer when the request was
    /// made), each read through a slice of that block alone: other messages of the request may
    /// be under way in other parts of the buffer.
    fn pack(&self, l: &Layout, mut out: Vec<u8>) -> Vec<u8> {
        let size = std::mem::size_of::<T>();
        out.clear();
        out.reserve(l.count() * size);
        for &(off, n) in l.blocks() {
            // SAFETY: the block lies within the buffer moved into the request for `'scope`
            // (`Layout::check`), and no receive of the request writes it (`exchange_init`), so
            // nothing writes these elements while this slice lives.
            let block = unsafe { std::slice::from_raw_parts(self.ptr.add(off), n) };
            out.extend_from_slice(bytemuck::cast_slice(block));
        }
        out
    }

    /// Writes `packed` (whole elements, at most `l.count()`) into the blocks `l` names, each
    /// through a slice of that block alone.
    fn unpack(&self, l: &Layout, packed: &[u8]) {
        let size = std::mem::size_of::<T>();
        let mut at = 0;
        for &(off, n) in l.blocks() {
            let k = (n * size).min(packed.len() - at) / size.max(1);
            if k == 0 {
                break;
            }
            // SAFETY: the block lies within the buffer, which came from a `&mut` (receives are
            // made only from one) moved into the request; this receive has completed, and no
            // other message of the request names these elements (`exchange_init`), so this is
            // the only access to them while the slice lives.
            let block = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), k) };
            bytemuck::cast_slice_mut::<T, u8>(block).copy_from_slice(&packed[at..at + k * size]);
            at += k * size;
        }
    }
}

/// One message of a persistent request: its plan, its elements, and the operation of the
/// current start until it is completed.
struct Part<'scope> {
    plan: Plan,
    elems: Elems,
    active: Option<Request<'scope>>,
    /// The packed bytes of the last start, back from its request: reused by the next start
    /// (no allocation per start).
    spare: Vec<u8>,
}

fn bad(what: &'static str, detail: &str) -> Error {
    Error::InvalidArgument {
        what,
        detail: detail.into(),
    }
}

impl<'scope> Part<'scope> {
    /// Starts one operation of this part on `buf`. The caller has checked that no part of the
    /// request is active.
    fn start<T: Pod>(
        &mut self,
        core: &'scope ScopeCore,
        comm: &Comm,
        buf: &Buffer<T>,
    ) -> Result<()> {
        let size = std::mem::size_of::<T>();
        let (ptr, len) = (buf.ptr.cast::<u8>(), buf.len * size);
        let unfit = || bad("layout", "the layout does not fit the buffer");
        let spare = std::mem::take(&mut self.spare);
        let req = match (&self.plan, &self.elems) {
            (Plan::Null, _) => core.done(comm, Status::null())?,
            (
                &Plan::Send {
                    peer,
                    tag,
                    synchronous,
                },
                Elems::Packed(l),
            ) => core.start_send_owned(comm, peer, tag, buf.pack(l, spare), synchronous)?,
            (&Plan::Recv { src, tag }, Elems::Packed(l)) => {
                // Any bytes do: the receive overwrites what it uses, and only that is unpacked.
                let mut bytes = spare;
                bytes.resize(l.count() * size, 0);
                core.start_recv_owned(comm, src, tag, bytes)?
            }
            // SAFETY (RawSlice::laid_raw, start_send_view): the layout's blocks lie within the
            // buffer moved into the request for `'scope` (checked when the request was made,
            // and again by `laid_raw`), which stays valid until the scope settles; no `&mut` to
            // these elements exists while the operation runs (as for a run, below); the layout
            // is this part's, which outlives the operation (`Drop for Parts` waits for it).
            (
                &Plan::Send {
                    peer,
                    tag,
                    synchronous,
                },
                Elems::Laid(l),
            ) => unsafe {
                let view = RawSlice::laid_raw(ptr, len, l.laid(size)).ok_or_else(unfit)?;
                core.start_send_view(comm, peer, tag, view, synchronous)?
            },
            // SAFETY (RawSlice::new, start_send_view): the run lies within the buffer moved into
            // the request for `'scope` (checked when the request was made; `T: Pod` has no
            // padding), valid until the scope settles, which it does before `'scope` ends; no
            // `&mut` to these elements exists while the operation runs (`buf_mut` borrows the
            // request and refuses while a part is active; no receive of the request writes
            // them).
            (
                &Plan::Send {
                    peer,
                    tag,
                    synchronous,
                },
                &Elems::Run(off, n),
            ) => unsafe {
                let bytes = std::slice::from_raw_parts(buf.ptr.add(off).cast::<u8>(), n * size);
                core.start_send_view(comm, peer, tag, RawSlice::new(bytes), synchronous)?
            },
            // SAFETY (RawMut::laid_raw, start_recv_view): as for a laid-out send, and as for a
            // run received (below): nothing but the engine reaches these elements meanwhile.
            (&Plan::Recv { src, tag }, Elems::Laid(l)) => unsafe {
                let view = RawMut::laid_raw(ptr, len, l.laid(size)).ok_or_else(unfit)?;
                core.start_recv_view(comm, src, tag, view)?
            },
            // SAFETY (RawMut::new, start_recv_view): as above, and the buffer came from a `&mut`
            // moved into the request: while the receive runs nothing but the engine reaches
            // these elements (`buf`/`buf_mut` refuse while a part is active, and no other
            // message of the request reads or writes them).
            (&Plan::Recv { src, tag }, &Elems::Run(off, n)) => unsafe {
                let bytes = std::slice::from_raw_parts_mut(buf.ptr.add(off).cast::<u8>(), n * size);
                core.start_recv_view(comm, src, tag, RawMut::new(bytes))?
            },
        };
        self.active = Some(req);
        Ok(())
    }

    /// After the operation completed with `st`: a laid-out receive must have had whole
    /// elements.
    fn finish<T: Pod>(
        &mut self,
        buf: &Buffer<T>,
        mut req: Request<'_>,
        st: Status,
    ) -> Result<Status> {
        let size = std::mem::size_of::<T>();
        if let (Plan::Send { .. }, Elems::Packed(_)) = (&self.plan, &self.elems) {
            self.spare = req.take_owned().unwrap_or_default();
        }
        if let (Plan::Recv { .. }, Elems::Laid(_) | Elems::Packed(_)) = (&self.plan, &self.elems) {
            if size > 0 && st.bytes() % size != 0 {
                return Err(Error::not_whole("recv_init_layout", st.bytes(), size));
            }
        }
        if let (Plan::Recv { .. }, Elems::Packed(l)) = (&self.plan, &self.elems) {
            let packed = req.take_owned().unwrap_or_default();
            buf.unpack(l, &packed[..packed.len().min(st.bytes())]);
            self.spare = packed;
        }
        Ok(st)
    }

    /// Waits for the current start (an inactive part returns at once, as in MPI).
    fn wait<T: Pod>(&mut self, buf: &Buffer<T>) -> Result<Status> {
        match self.active.take() {
            None => Ok(Status::null()),
            Some(mut req) => {
                let st = req.wait_mut()?;
                self.finish(buf, req, st)
            }
        }
    }

    /// Tests the current start: `Some` once it has completed (or at once when inactive).
    fn test<T: Pod>(&mut self, buf: &Buffer<T>) -> Result<Option<Status>> {
        let Some(req) = self.active.as_mut() else {
            return Ok(Some(Status::null()));
        };
        match req.test() {
            Ok(None) => Ok(None),
            Ok(Some(st)) => {
                let req = self.active.take().expect("active");
                self.finish(buf, req, st).map(Some)
            }
            Err(e) => {
                self.active = None;
                Err(e)
            }
        }
    }
}

/// Parts, the buffer and the scope: what [`Persistent`] and [`Exchange`] share.
struct Parts<'scope, T: Pod> {
    core: &'scope ScopeCore,
    comm: Comm,
    buf: Buffer<T>,
    parts: Vec<Part<'scope>>,
    /// Invariant in `'scope`, as the scope is; the buffer is borrowed for it.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _buf: PhantomData<&'scope mut [T]>,
}

impl<'scope, T: Pod> Parts<'scope, T> {
    fn active(&self) -> bool {
        self.parts.iter().any(|p| p.active.is_some())
    }

    fn start(&mut self) -> Result<()> {
        if self.active() {
            return Err(bad(
                "start",
                "the request is still active: wait for or test its last start first",
            ));
        }
        for i in 0..self.parts.len() {
            self.parts[i].start(self.core, &self.comm, &self.buf)?;
        }
        Ok(())
    }

    /// Waits for every part, even when one fails (the first error is returned).
    fn wait(&mut self) -> Result<Vec<Status>> {
        let buf = &self.buf;
        wait_every(self.parts.iter_mut(), |p| p.wait(buf))
    }

    /// `Some` once every part has completed; parts done before stay done (their statuses are
    /// not kept: a test that finds all done reports the last ones it saw as null).
    fn test(&mut self) -> Result<Option<Vec<Status>>> {
        let mut out = Vec::with_capacity(self.parts.len());
        let mut all = true;
        for p in self.parts.iter_mut() {
            match p.test(&self.buf)? {
                Some(st) => out.push(st),
                None => {
                    all = false;
                    out.push(Status::null());
                }
            }
        }
        Ok(all.then_some(out))
    }

    fn buf(&self, what: &'static str) -> Result<&[T]> {
        if self.active() {
            return Err(bad(
                what,
                "the request is active: its buffer is the engine's until it completes",
            ));
        }
        // SAFETY: `ptr`/`len` are those of the buffer moved into the request for `'scope`; no
        // operation is under way, so the engine holds no view of it, and the slice borrows the
        // request, so no start can begin while it lives.
        Ok(unsafe { std::slice::from_raw_parts(self.buf.ptr, self.buf.len) })
    }

    fn buf_mut(&mut self, what: &'static str) -> Result<&mut [T]> {
        self.buf(what)?;
        if !self.buf.writable {
            return Err(bad(
                what,
                "the request was made from a shared borrow (send_init): use send_init_mut",
            ));
        }
        // SAFETY: as in `buf`, and the buffer came from a `&mut` moved into the request, so this
        // is its only access path; the slice borrows the request mutably.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.buf.ptr, self.buf.len) })
    }
}

impl<T: Pod> Drop for Parts<'_, T> {
    fn drop(&mut self) {
        // An operation still active on a laid-out view holds pointers to this part's layout,
        // which goes with the part, and a packed receive still active would never be
        // unpacked: complete them now (their errors belong to nobody, as a dropped request's
        // do). Other parts are left to the scope.
        for p in self.parts.iter_mut() {
            let packed_recv = matches!((&p.plan, &p.elems), (Plan::Recv { .. }, Elems::Packed(_)));
            if packed_recv || matches!(p.elems, Elems::Laid(_)) {
                let _ = p.wait(&self.buf);
            }
        }
    }
}

/// A send or receive set up once and started any number of times (see the module docs).
///
/// ```
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
/// let edge = [rank as f64; 64];
/// let mut ghost = [0.0f64; 64];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut send = world.send_init(s, &edge, right, 0)?;
///     let mut recv = world.recv_init(s, &mut ghost, left, 0)?;
///     let mut sum = 0.0;
///     for _ in 0..100 {
///         recv.start()?;
///         send.start()?;
///         send.wait()?;
///         recv.wait()?;
///         sum += recv.buf()?[0]; // the receive's buffer, between two starts
///     }
///     assert_eq!(sum, 100.0 * left as f64);
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub struct Persistent<'scope, T: Pod> {
    inner: Parts<'scope, T>,
}

impl<'scope, T: Pod> Persistent<'scope, T> {
    /// Starts one operation with the request's arguments. An error if the last start has not
    /// been completed by [`Persistent::wait`] or [`Persistent::test`].
    pub fn start(&mut self) -> Result<()> {
        let _seen = self.inner.comm.seen("start", 0);
        self.inner.start()
    }

    /// Waits for the current start to complete; the request is then inactive (startable
    /// again). On an inactive request it returns at once (with [`Status::is_null`], as MPI
    /// does), so a set of requests of which some were not started can be waited for alike.
    pub fn wait(&mut self) -> Result<Status> {
        let _seen = self.inner.comm.seen("wait", 0);
        let Parts { parts, buf, .. } = &mut self.inner;
        parts[0].wait(buf)
    }

    /// Moves communication forward without blocking: `Some(status)` once the current start has
    /// completed (the request is then inactive), `Some` at once on an inactive request.
    pub fn test(&mut self) -> Result<Option<Status>> {
        let _seen = self.inner.comm.seen("test", 0);
        let Parts { parts, buf, .. } = &mut self.inner;
        parts[0].test(buf)
    }

    /// Whether a start is under way (started, and not yet completed by `wait` or `test`).
    pub fn is_active(&self) -> bool {
        self.inner.active()
    }

    /// The buffer, while no start is under way: what the last receive got.
    pub fn buf(&self) -> Result<&[T]> {
        self.inner.buf("buf")
    }

    /// The buffer to write, while no start is under way: what the next send carries. Only for
    /// requests made from a `&mut` buffer ([`Comm::recv_init`], [`Comm::send_init_mut`]).
    pub fn buf_mut(&mut self) -> Result<&mut [T]> {
        self.inner.buf_mut("buf_mut")
    }
}

/// Starts every request of `reqs` (`MPI_Startall`); the first error stops it.
pub fn start_all<T: Pod>(reqs: &mut [Persistent<'_, T>]) -> Result<()> {
    reqs.iter_mut().try_for_each(Persistent::start)
}

/// Waits for every request of `reqs` (inactive ones return at once); their statuses in order.
/// Every request is waited for even when one fails; the first error is returned.
pub fn wait_all_persistent<T: Pod>(reqs: &mut [Persistent<'_, T>]) -> Result<Vec<Status>> {
    wait_every(reqs.iter_mut(), Persistent::wait)
}

/// The sends and receives of one halo exchange over one buffer, started and completed together
/// any number of times ([`Comm::exchange_init`]; see the module docs).
///
/// ```
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let (up, down) = ((rank + size - 1) % size, (rank + 1) % size);
/// // A 6 x 4 block of a grid with a ghost row above and below (rows 0 and 5).
/// let mut grid = vec![0.0f64; 6 * 4];
/// let row = |r: usize| mpr::Layout::subarray(&[6, 4], &[1, 4], &[r, 0]).unwrap();
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut halo = world.exchange_init(
///         s,
///         &mut grid,
///         &[(row(1), up, 0), (row(4), down, 1)],   // first and last real rows out
///         &[(row(5), down, 0), (row(0), up, 1)],   // into the ghost rows
///     )?;
///     for step in 0..10 {
///         halo.buf_mut()?[4..20].fill((rank * 100 + step) as f64); // compute the real rows
///         halo.start()?;
///         halo.wait()?;
///         assert_eq!(halo.buf()?[0], (up * 100 + step) as f64);
///     }
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub struct Exchange<'scope, T: Pod> {
    inner: Parts<'scope, T>,
    /// The blocks the receives write, sorted (disjoint: checked when it was made), for `read`.
    written: Vec<(usize, usize)>,
}

impl<'scope, T: Pod> Exchange<'scope, T> {
    /// Starts every send and receive. An error if the last start has not completed.
    pub fn start(&mut self) -> Result<()> {
        let _seen = self.inner.comm.seen("start", 0);
        self.inner.start()
    }

    /// Waits for every send and receive of the current start: their statuses, sends first,
    /// in the order given. Every one is waited for even when one fails; the first error is
    /// returned.
    pub fn wait(&mut self) -> Result<Vec<Status>> {
        let _seen = self.inner.comm.seen("wait", 0);
        self.inner.wait()
    }

    /// `Some(statuses)` once every send and receive of the current start has completed.
    pub fn test(&mut self) -> Result<Option<Vec<Status>>> {
        let _seen = self.inner.comm.seen("test", 0);
        self.inner.test()
    }

    /// Whether a start is under way.
    pub fn is_active(&self) -> bool {
        self.inner.active()
    }

    /// The buffer, while no start is under way.
    pub fn buf(&self) -> Result<&[T]> {
        self.inner.buf("Exchange::buf")
    }

    /// The buffer to write (the computation between exchanges), while no start is under way.
    pub fn buf_mut(&mut self) -> Result<&mut [T]> {
        self.inner.buf_mut("Exchange::buf_mut")
    }

    /// The blocks of `layout` as slices, also while a start is under way, if no receive of the
    /// exchange writes any of their elements: what the computation of the interior reads while
    /// the halos travel. (Sends read the buffer too; reading it alongside them is fine.) An
    /// error if a block is outside the buffer or touches a receive's elements.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let mut v = vec![1.0f64; 10];
    /// let ghost = mpr::Layout::indexed(&[1], &[0])?;
    /// let edge = mpr::Layout::indexed(&[1], &[1])?;
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut x = world.exchange_init(s, &mut v, &[(edge, me, 0)], &[(ghost, me, 0)])?;
    ///     x.start()?;
    ///     let inner = mpr::Layout::indexed(&[8], &[2])?;
    ///     let sum: f64 = x.read(&inner)?.iter().map(|b| b.iter().sum::<f64>()).sum(); // meanwhile
    ///     assert!(x.read(&mpr::Layout::contiguous(10)).is_err()); // would read the ghost
    ///     x.wait()?;
    ///     assert_eq!(sum, 8.0);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn read(&self, layout: &Layout) -> Result<Vec<&[T]>> {
        const WHAT: &str = "Exchange::read";
        layout.check(WHAT, self.inner.buf.len, false)?;
        let written = &self.written;
        let mut out = Vec::with_capacity(layout.blocks().len());
        // The written blocks are sorted and disjoint: the first that ends after `o` is the only
        // one that can start before `o + n` without an earlier one doing so. Found by walking
        // on from the last block's while the layout's blocks ascend (a subarray's do: one pass
        // over both lists), by a binary search when one steps back.
        let (mut i, mut prev) = (0, 0);
        for &(o, n) in layout.blocks() {
            if o < prev {
                i = written.partition_point(|&(wo, wn)| wo + wn <= o);
            }
            while written.get(i).is_some_and(|&(wo, wn)| wo + wn <= o) {
                i += 1;
            }
            prev = o;
            if written.get(i).is_some_and(|&(wo, _)| wo < o + n) {
                return Err(bad(
                    WHAT,
                    "the layout touches elements a receive of the exchange writes",
                ));
            }
            // SAFETY: the block lies within the buffer moved into the exchange (checked above);
            // no receive of the exchange writes it (checked above), and nothing else can while
            // the slice borrows the exchange (`buf_mut` and `start` need `&mut`); sends only
            // read.
            out.push(unsafe { std::slice::from_raw_parts(self.inner.buf.ptr.add(o), n) });
        }
        Ok(out)
    }
}

impl<T: Pod> std::fmt::Debug for Persistent<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.inner.parts[0];
        f.debug_struct("Persistent")
            .field("plan", &p.plan)
            .field("elems", &p.elems)
            .field("active", &p.active.is_some())
            .finish()
    }
}

impl<T: Pod> std::fmt::Debug for Exchange<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("messages", &self.inner.parts.len())
            .field("active", &self.inner.active())
            .finish()
    }
}

impl Comm {
    fn send_plan(&self, dest: Dest, tag: u32, synchronous: bool) -> Result<Plan> {
        Ok(match self.dest(dest)? {
            Some(peer) => Plan::Send {
                peer,
                tag,
                synchronous,
            },
            None => Plan::Null,
        })
    }

    fn recv_plan(&self, src: Source, tag: TagMatch) -> Result<Plan> {
        Ok(if src == Source::Null {
            Plan::Null
        } else {
            Plan::Recv {
                src: self.src(src)?,
                tag: tag.as_option(),
            }
        })
    }

    /// A request of one part over `buf`.
    fn persistent<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        (ptr, len, writable): (*mut T, usize, bool),
        plan: Plan,
        elems: Elems,
    ) -> Persistent<'scope, T> {
        Persistent {
            inner: Parts {
                core: s.core(),
                comm: self.handle(),
                buf: Buffer { ptr, len, writable },
                parts: vec![Part {
                    plan,
                    elems,
                    active: None,
                    spare: Vec::new(),
                }],
                _scope: PhantomData,
                _buf: PhantomData,
            },
        }
    }

    /// A persistent send of `buf` to `dest` (`MPI_Send_init`): each
    /// [`start`](Persistent::start) sends what `buf` holds then. The buffer is borrowed for the
    /// scope; to change what is sent between starts, use [`Comm::send_init_mut`].
    pub fn send_init<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("send_init", std::mem::size_of_val(buf));
        let plan = self.send_plan(dest.into(), tag, false)?;
        let at = (buf.as_ptr().cast_mut(), buf.len(), false);
        Ok(self.persistent(s, at, plan, Elems::Run(0, buf.len())))
    }

    /// A persistent synchronous send (`MPI_Ssend_init`): each start completes once the
    /// receiver has matched it.
    pub fn ssend_init<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("ssend_init", std::mem::size_of_val(buf));
        let plan = self.send_plan(dest.into(), tag, true)?;
        let at = (buf.as_ptr().cast_mut(), buf.len(), false);
        Ok(self.persistent(s, at, plan, Elems::Run(0, buf.len())))
    }

    /// A persistent send that owns `buf` mutably for the scope: between starts,
    /// [`Persistent::buf_mut`] writes what the next one carries.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let mut out = [0u32; 4];
    /// let mut got = [0u32; 4];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut send = world.send_init_mut(s, &mut out, me, 1)?;
    ///     let mut recv = world.recv_init(s, &mut got, me, 1)?;
    ///     for step in 0..10u32 {
    ///         send.buf_mut()?.fill(step); // the data of this step
    ///         recv.start()?;
    ///         send.start()?;
    ///         send.wait()?;
    ///         recv.wait()?;
    ///         assert_eq!(recv.buf()?, [step; 4]);
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn send_init_mut<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("send_init_mut", std::mem::size_of_val(buf));
        let plan = self.send_plan(dest.into(), tag, false)?;
        let at = (buf.as_mut_ptr(), buf.len(), true);
        Ok(self.persistent(s, at, plan, Elems::Run(0, at.1)))
    }

    /// A persistent receive into `buf` from `src` (`MPI_Recv_init`): each start posts one
    /// receive; between starts [`Persistent::buf`] reads what arrived.
    pub fn recv_init<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("recv_init", std::mem::size_of_val(buf));
        let plan = self.recv_plan(src.into(), tag.into())?;
        let at = (buf.as_mut_ptr(), buf.len(), true);
        Ok(self.persistent(s, at, plan, Elems::Run(0, at.1)))
    }

    /// [`Comm::send_init`] of the elements of `buf` that `layout` names.
    pub fn send_init_layout<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        layout: &Layout,
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("send_init_layout", std::mem::size_of_val(buf));
        layout.check("send_init_layout", buf.len(), false)?;
        let plan = self.send_plan(dest.into(), tag, false)?;
        let at = (buf.as_ptr().cast_mut(), buf.len(), false);
        let elems = Elems::of(self, layout, std::mem::size_of::<T>(), &plan);
        Ok(self.persistent(s, at, plan, elems))
    }

    /// [`Comm::recv_init`] into the elements of `buf` that `layout` names.
    pub fn recv_init_layout<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        layout: &Layout,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Persistent<'scope, T>> {
        let _seen = self.seen("recv_init_layout", std::mem::size_of_val(buf));
        layout.check("recv_init_layout", buf.len(), true)?;
        let plan = self.recv_plan(src.into(), tag.into())?;
        let at = (buf.as_mut_ptr(), buf.len(), true);
        let elems = Elems::of(self, layout, std::mem::size_of::<T>(), &plan);
        Ok(self.persistent(s, at, plan, elems))
    }

    /// The sends (`(layout, dest, tag)`) and receives (`(layout, src, tag)`) of a halo exchange
    /// over one buffer, as one persistent request ([`Exchange`]): the faces go out of `buf` and
    /// the ghost cells come into it. Every layout is checked against `buf`; a receive that
    /// names an element another message also names (sent or received) is refused. Sources
    /// and destinations may be `None` (no rank: that message is skipped).
    pub fn exchange_init<'scope, T: Pod, D: Into<Dest> + Copy, S: Into<Source> + Copy>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        sends: &[(Layout, D, u32)],
        recvs: &[(Layout, S, u32)],
    ) -> Result<Exchange<'scope, T>> {
        let _seen = self.seen("exchange_init", std::mem::size_of_val(buf));
        const WHAT: &str = "exchange_init";
        let mut parts = Vec::with_capacity(sends.len() + recvs.len());
        for (l, d, tag) in sends {
            l.check(WHAT, buf.len(), false)?;
            let plan = self.send_plan((*d).into(), *tag, false)?;
            parts.push(Part {
                elems: Elems::of(self, l, std::mem::size_of::<T>(), &plan),
                plan,
                active: None,
                spare: Vec::new(),
            });
        }
        for (l, src, tag) in recvs {
            l.check(WHAT, buf.len(), true)?;
            let plan = self.recv_plan((*src).into(), TagMatch::Tag(*tag))?;
            parts.push(Part {
                elems: Elems::of(self, l, std::mem::size_of::<T>(), &plan),
                plan,
                active: None,
                spare: Vec::new(),
            });
        }
        // No element written by a receive may be named by any other message.
        let mut blocks: Vec<(usize, usize, bool)> = Vec::new();
        for (l, written) in sends
            .iter()
            .map(|x| (&x.0, false))
            .chain(recvs.iter().map(|x| (&x.0, true)))
        {
            blocks.extend(l.blocks().iter().map(|&(o, n)| (o, n, written)));
        }
        blocks.sort_unstable();
        let mut reach: Option<(usize, bool)> = None; // furthest end so far, and whether written
        for &(o, n, w) in &blocks {
            if let Some((end, ew)) = reach {
                if o < end && (w || ew) {
                    return Err(bad(
                        WHAT,
                        "a receive writes elements that another message of the exchange also names",
                    ));
                }
            }
            reach = match reach {
                Some((end, ew)) if end >= o + n => Some((end, ew)),
                Some((end, ew)) if end > o => Some((o + n, ew || w)),
                _ => Some((o + n, w)),
            };
        }
        let written: Vec<(usize, usize)> = blocks
            .iter()
            .filter(|b| b.2)
            .map(|&(o, n, _)| (o, n))
            .collect();
        Ok(Exchange {
            written,
            inner: Parts {
                core: s.core(),
                comm: self.handle(),
                buf: Buffer {
                    ptr: buf.as_mut_ptr(),
                    len: buf.len(),
                    writable: true,
                },
                parts,
                _scope: PhantomData,
                _buf: PhantomData,
            },
        })
    }
}
