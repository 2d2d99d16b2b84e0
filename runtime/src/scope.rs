//! Nonblocking requests and the scope that makes them sound.
//!
//! [`scope`] works like `std::thread::scope`: requests started inside it ([`Comm::isend`],
//! [`Comm::irecv`], [`Comm::issend`]) borrow their buffers for the scope's lifetime `'scope`, and
//! `scope` does not return (nor unwind) until every one of them has completed.
//!
//! # Why this is sound
//!
//! A pending operation holds a raw view of its buffer (`buf.rs`), which the progress engine reads
//! from or writes into whenever it makes progress, long after the call that started it returned.
//! The view must therefore stay valid, and for receives unaliased, until the operation completes.
//!
//! - A request's buffer is borrowed for `'scope` (`&'scope [T]` or `&'scope mut [T]`). `'scope` is
//!   chosen by [`scope`]'s caller side (higher-ranked), cannot be named outside the closure, and
//!   outlives the closure's body: the borrow checker keeps every such buffer alive, and a receive
//!   buffer untouched, until `scope` returns.
//! - Every operation started in the scope is recorded in it. Before `scope` returns, normally or
//!   by unwinding from a panic in the closure, it waits for each recorded operation that is still
//!   in the engine ([`Engine::settle`]). So when the borrows end, the engine holds no view of them.
//! - Dropping a [`Request`] or leaking it with `mem::forget` therefore changes nothing: the record
//!   is in the scope, not in the request. The request handle is only a way to ask for the result.
//! - If the engine cannot be reached at scope end (it is borrowed: only possible if a panic left
//!   an engine call half-done, which the engine never does while holding user views) or waiting
//!   fails, the engine drops every pending operation before reporting the failure. The one state
//!   we cannot repair, an engine we cannot borrow, aborts the process rather than return.
//!
//! The borrow checker enforces the first point; these do not compile:
//!
//! ```compile_fail,E0506
//! // A receive buffer cannot be touched while its request may still write into it.
//! let world = mpr::init().unwrap();
//! let mut buf = [0u8; 4];
//! mpr::scope(|s| {
//!     let r = world.irecv(s, &mut buf, 0, 0).unwrap();
//!     buf[0] = 1;
//!     r.wait().unwrap();
//! });
//! ```
//!
//! ```compile_fail
//! // A request cannot leave its scope.
//! let world = mpr::init().unwrap();
//! let buf = [0u8; 4];
//! let r = mpr::scope(|s| world.isend(s, &buf, 0, 0).unwrap());
//! ```
//!
//! ```compile_fail,E0597
//! // A buffer must outlive the scope, not just the closure.
//! let world = mpr::init().unwrap();
//! mpr::scope(|s| {
//!     let local = vec![0u8; 4];
//!     let _r = world.isend(s, &local, 0, 0).unwrap();
//! });
//! ```
//!
//! while the same shapes with the borrows in order do:
//!
//! ```no_run
//! let world = mpr::init().unwrap();
//! let mut buf = [0u8; 4];
//! let local = vec![0u8; 4];
//! mpr::scope(|s| {
//!     let r = world.irecv(s, &mut buf, 0, 0).unwrap();
//!     let _q = world.isend(s, &local, 0, 0).unwrap();
//!     r.wait().unwrap();
//! });
//! buf[0] = 1;
//! ```
//!
//! The unwaited requests' results are dropped: `scope` returns what the closure returned, and a
//! request that failed without being waited for fails silently, as a freed MPI request does.
//!
//! # Progress
//!
//! There is one progress engine per rank and it moves every pending operation, whichever request a
//! call waits on or tests: a rank that posts many receives and sends to many peers and waits for
//! any one of them cannot deadlock on the others. Progress happens inside mpr calls only (see the
//! engine's module docs for why there is no background thread).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::buf::{RawMut, RawSlice};
use crate::comm::Comm;
use crate::engine::schedule::Schedule;
use crate::engine::{OpId, RawStatus};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::Status;

/// The region in which nonblocking requests live; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    core: ScopeCore,
    /// Invariant in `'scope` and `'env`, as `std::thread::Scope` is.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// What a scope records, without its lifetimes, so that a [`Request`] can point to it.
pub(crate) struct ScopeCore {
    /// Every operation started in this scope (completed ones included; the engine's generation
    /// check makes settling those a no-op).
    ops: RefCell<Vec<OpId>>,
    /// Handles on the communicators the requests belong to (all on the process's one engine);
    /// requests refer to them by index, so a leaked request owns nothing.
    comms: RefCell<Vec<Comm>>,
    /// What requests dropped before their operation completed owned for it (value sends'
    /// bytes, laid-out sends' layouts): freed once the scope has settled every operation.
    parked: RefCell<Vec<Kept>>,
}

/// What a request owns because its operation's view points into it.
pub(crate) enum Kept {
    /// The bytes of a send that owns them (a value's encoding).
    Bytes(Vec<u8>),
    /// The layout whose block lists a laid-out view reads.
    Layout(#[allow(dead_code)] Layout),
}

/// Runs `f` with a [`Scope`] in which nonblocking requests can be started, and returns what `f`
/// returns once every request started in it has completed.
///
/// ```no_run
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
/// let out = [rank as f64; 4];
/// let mut ghost = [0.0f64; 4];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let recv = world.irecv(s, &mut ghost, left, 0)?;
///     let send = world.isend(s, &out, right, 0)?;
///     // ... compute while the messages move ...
///     mpr::wait_all(vec![recv, send])?;
///     Ok(())
/// })?;
/// assert_eq!(ghost[0], left as f64);
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let s = Scope {
        core: ScopeCore {
            ops: RefCell::new(Vec::new()),
            comms: RefCell::new(Vec::new()),
            parked: RefCell::new(Vec::new()),
        },
        _scope: PhantomData,
        _env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&s)));
    s.core.settle();
    match result {
        Ok(v) => v,
        Err(panic) => resume_unwind(panic),
    }
}

impl ScopeCore {
    /// Waits for every operation of this scope still pending. Must not return while one is.
    fn settle(&self) {
        let ops = std::mem::take(&mut *self.ops.borrow_mut());
        let comms = std::mem::take(&mut *self.comms.borrow_mut());
        let Some(comm) = comms.first() else {
            return;
        };
        let Ok(mut engine) = comm.engine.try_borrow_mut() else {
            // Cannot happen (no engine call is in progress here: we are on the scope's thread,
            // outside every mpr call); if it did, returning would free buffers the engine still
            // points into.
            eprintln!(
                "mpr: rank {}: a scope ended while the engine was in use; aborting",
                comm.rank()
            );
            std::process::abort();
        };
        // Errors here belong to requests nobody waited for; see the module docs.
        let _ = engine.settle(&ops);
        // No operation holds a view of these any more.
        self.parked.borrow_mut().clear();
    }

    /// The index of `comm` among this scope's communicators, adding it if new. Every
    /// communicator of a scope must run on the same engine (there is one per process, so this
    /// fails only for a communicator of a world that was finalized).
    fn comm_index(&self, comm: &Comm) -> Result<usize> {
        let mut comms = self.comms.borrow_mut();
        if let Some(first) = comms.first() {
            if !Rc::ptr_eq(&first.engine, &comm.engine) {
                return Err(Error::InvalidArgument {
                    what: "scope",
                    detail: "requests of one scope must belong to the same world".into(),
                });
            }
        }
        if let Some(i) = comms.iter().position(|c| c.ctx == comm.ctx) {
            return Ok(i);
        }
        comms.push(comm.handle());
        Ok(comms.len() - 1)
    }

    /// A handle on communicator `i` of this scope.
    fn comm(&self, i: usize) -> Comm {
        self.comms.borrow()[i].handle()
    }

    /// Starts a send of the bytes behind `view` to world rank `peer`, as a request of this scope.
    ///
    /// # Safety
    /// The bytes behind `view` must stay valid and unwritten until this scope settles (the end
    /// of the `'scope` of the [`Scope`] this core belongs to).
    pub(crate) unsafe fn start_send_view(
        &self,
        comm: &Comm,
        peer: usize,
        tag: u32,
        view: RawSlice,
        synchronous: bool,
    ) -> Result<Request<'_>> {
        let c = self.comm_index(comm)?;
        let op = comm
            .engine
            .borrow_mut()
            .isend(comm.ctx, peer, tag, view, synchronous)?;
        self.ops.borrow_mut().push(op);
        Ok(Request::new(self, c, op, None))
    }

    /// Posts a receive into the bytes behind `view`, as a request of this scope.
    ///
    /// # Safety
    /// The bytes behind `view` must stay valid, and reached by no other path, until this scope
    /// settles.
    pub(crate) unsafe fn start_recv_view(
        &self,
        comm: &Comm,
        src: Option<usize>,
        tag: Option<u32>,
        view: RawMut,
    ) -> Result<Request<'_>> {
        let c = self.comm_index(comm)?;
        let cap = view.len();
        let op = comm.engine.borrow_mut().irecv(comm.ctx, src, tag, view)?;
        self.ops.borrow_mut().push(op);
        Ok(Request::new(self, c, op, Some(cap)))
    }

    /// Starts a send of `bytes`, which the request owns: freed once the send has completed, or
    /// when the scope ends if the request is dropped first.
    pub(crate) fn start_send_owned(
        &self,
        comm: &Comm,
        peer: usize,
        tag: u32,
        bytes: Vec<u8>,
        synchronous: bool,
    ) -> Result<Request<'_>> {
        // SAFETY (RawSlice::new, start_send_view): a `Vec`'s heap buffer does not move when the
        // `Vec` does, and this one is neither freed nor written until the operation has
        // completed: the request holds it until then (`Request::finish`), a request dropped
        // earlier parks it in this scope (`Drop for Request`), which frees it only after
        // settling every operation, and a leaked request leaks it. Tested by
        // `dropped_value_sends_still_arrive`.
        let mut r =
            unsafe { self.start_send_view(comm, peer, tag, RawSlice::new(&bytes), synchronous)? };
        r.owned = Some(Kept::Bytes(bytes));
        Ok(r)
    }

    /// Posts a receive into `bytes`, which the request owns: handed back by
    /// [`Request::take_owned`] once it has completed; parked in the scope (as for
    /// [`ScopeCore::start_send_owned`]) if the request is dropped first.
    pub(crate) fn start_recv_owned(
        &self,
        comm: &Comm,
        src: Option<usize>,
        tag: Option<u32>,
        mut bytes: Vec<u8>,
    ) -> Result<Request<'_>> {
        // SAFETY (RawMut::new, start_recv_view): as in `start_send_owned`, and nothing but the
        // engine reaches the bytes until the operation has completed: the request holds the
        // `Vec` and hands it out only then (`take_owned`). Tested by the persistent layout
        // receives of `t_layout`.
        let mut r = unsafe { self.start_recv_view(comm, src, tag, RawMut::new(&mut bytes))? };
        r.owned = Some(Kept::Bytes(bytes));
        Ok(r)
    }

    /// A request of this scope complete from the start, with status `st`.
    pub(crate) fn done(&self, comm: &Comm, st: Status) -> Result<Request<'_>> {
        let c = self.comm_index(comm)?;
        Ok(Request {
            scope: self,
            comm: c,
            state: State::Done(st),
            cap: None,
            owned: None,
        })
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Starts a send of `bytes` (borrowed for the whole scope) to world rank `peer`.
    pub(crate) fn start_send(
        &'scope self,
        comm: &Comm,
        peer: usize,
        tag: u32,
        bytes: &'scope [u8],
        synchronous: bool,
    ) -> Result<Request<'scope>> {
        // SAFETY (RawSlice::new, start_send_view): `bytes` is borrowed for `'scope`, and the
        // operation is recorded in this scope before anything else can happen; `scope` settles
        // it before `'scope` ends.
        unsafe {
            self.core
                .start_send_view(comm, peer, tag, RawSlice::new(bytes), synchronous)
        }
    }

    /// Starts a send of the blocks `layout` names in `bytes` (borrowed for the whole scope;
    /// elements of `unit` bytes), where they lie: the request keeps the layout.
    pub(crate) fn start_send_laid(
        &'scope self,
        comm: &Comm,
        peer: usize,
        tag: u32,
        bytes: &'scope [u8],
        layout: Layout,
        unit: usize,
    ) -> Result<Request<'scope>> {
        // SAFETY (RawSlice::laid, start_send_view): `bytes` is borrowed for `'scope` (as in
        // `start_send`); the layout's block lists are on the heap, which does not move when the
        // layout moves into the request, and the request keeps them until the operation has
        // completed (parked in the scope if it is dropped first, as owned bytes are).
        let mut r = unsafe {
            let view = RawSlice::laid(bytes, layout.laid(unit)).ok_or(Error::InvalidArgument {
                what: "isend_layout",
                detail: "the layout does not fit the buffer".into(),
            })?;
            self.core.start_send_view(comm, peer, tag, view, false)?
        };
        r.owned = Some(Kept::Layout(layout));
        Ok(r)
    }

    /// This scope's records, for requests made elsewhere (`persistent.rs`).
    pub(crate) fn core(&'scope self) -> &'scope ScopeCore {
        &self.core
    }

    /// A request complete from the start, with status `st`: a send to or a receive from no
    /// rank ([`crate::PROC_NULL`]).
    pub(crate) fn done(&'scope self, comm: &Comm, st: Status) -> Result<Request<'scope>> {
        self.core.done(comm, st)
    }

    /// Starts a send of `bytes`, which the request owns (a value's encoding): they are freed
    /// once the send has completed, or when the scope ends if the request is dropped first.
    pub(crate) fn start_send_owned(
        &'scope self,
        comm: &Comm,
        peer: usize,
        tag: u32,
        bytes: Vec<u8>,
        synchronous: bool,
    ) -> Result<Request<'scope>> {
        self.core
            .start_send_owned(comm, peer, tag, bytes, synchronous)
    }

    /// Starts a receive into `bytes` (borrowed mutably for the whole scope).
    pub(crate) fn start_recv(
        &'scope self,
        comm: &Comm,
        src: Option<usize>,
        tag: Option<u32>,
        bytes: &'scope mut [u8],
    ) -> Result<Request<'scope>> {
        // SAFETY (RawMut::new, start_recv_view): `bytes` is borrowed mutably for `'scope`, so
        // nothing else reads or writes it until `scope` returns, and `scope` settles the
        // operation before that.
        unsafe {
            self.core
                .start_recv_view(comm, src, tag, RawMut::new(bytes))
        }
    }

    /// Starts a receive of unknown size: the engine allocates its buffer with `grow` when a
    /// message matches. Returns the request and its op (to take the buffer back).
    pub(crate) fn start_recv_grown(
        &'scope self,
        comm: &Comm,
        src: Option<usize>,
        tag: Option<u32>,
        grow: crate::buf::Alloc,
    ) -> Result<(Request<'scope>, OpId)> {
        let c = self.core.comm_index(comm)?;
        let op = comm
            .engine
            .borrow_mut()
            .irecv_grown(comm.ctx, src, tag, grow)?;
        self.core.ops.borrow_mut().push(op);
        Ok((Request::new(&self.core, c, op, None), op))
    }

    /// Starts a nonblocking collective over `input` and `output` (borrowed for the whole scope):
    /// `build` makes its schedule from views of them.
    pub(crate) fn start_coll(
        &'scope self,
        comm: &Comm,
        input: &'scope [u8],
        output: &'scope mut [u8],
        build: impl FnOnce(RawSlice, RawMut) -> Schedule<'static>,
    ) -> Result<Request<'scope>> {
        let c = self.core.comm_index(comm)?;
        // SAFETY (RawSlice::new, RawMut::new): both are borrowed for `'scope` (the output
        // mutably, so nothing else touches it), and the collective's op is recorded in this
        // scope, which settles it (its schedule included) before `'scope` ends.
        let (i, o) = unsafe { (RawSlice::new(input), RawMut::new(output)) };
        let op = comm.engine.borrow_mut().start_schedule(build(i, o))?;
        self.core.ops.borrow_mut().push(op);
        Ok(Request::new(&self.core, c, op, None))
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("requests", &self.core.ops.borrow().len())
            .finish()
    }
}

/// Where a request stands.
enum State {
    Pending(OpId),
    Done(Status),
    /// Completed with an error that was already reported.
    Failed,
}

/// A nonblocking operation in flight: [`Request::wait`] for it or [`Request::test`] it.
///
/// Dropping a request without waiting is allowed: its scope still waits for it (and drops its
/// result) before returning.
#[must_use = "a request completes only by the end of its scope; wait or test it to see its result"]
pub struct Request<'scope> {
    scope: &'scope ScopeCore,
    /// Index of the request's communicator in its scope.
    comm: usize,
    state: State,
    /// Receive buffer capacity in bytes (receives only), to report truncation.
    cap: Option<usize>,
    /// What the operation's view points into, if the request owns it (see [`Kept`]).
    owned: Option<Kept>,
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if let (Some(bytes), State::Pending(_)) = (self.owned.take(), &self.state) {
            self.scope.parked.borrow_mut().push(bytes);
        }
    }
}

impl<'scope> Request<'scope> {
    fn new(scope: &'scope ScopeCore, comm: usize, op: OpId, cap: Option<usize>) -> Request<'scope> {
        Request {
            scope,
            comm,
            state: State::Pending(op),
            cap,
            owned: None,
        }
    }

    /// The result of a completed operation, seen from the communicator.
    fn finish(&mut self, raw: Result<RawStatus>) -> Result<Status> {
        let comm = self.scope.comm(self.comm);
        let st = raw.and_then(|raw| match self.cap {
            Some(cap) => comm.received(raw, cap),
            None => Ok(comm.status(raw)),
        });
        self.state = match &st {
            Ok(s) => State::Done(*s),
            Err(_) => State::Failed,
        };
        // Once it succeeded, the engine holds no view of what the request owns; after an error
        // the operation may not have ended (a wait that failed), so the scope keeps it.
        if st.is_err() {
            if let Some(bytes) = self.owned.take() {
                self.scope.parked.borrow_mut().push(bytes);
            }
        }
        st
    }

    /// The bytes the request owns, once its operation has completed (a receive into a buffer
    /// of the request's own: `ScopeCore::start_recv_owned`); `None` while it is pending.
    pub(crate) fn take_owned(&mut self) -> Option<Vec<u8>> {
        match self.state {
            State::Pending(_) => None,
            _ => match self.owned.take() {
                Some(Kept::Bytes(b)) => Some(b),
                _ => None,
            },
        }
    }

    fn already(&self) -> Option<Result<Status>> {
        match self.state {
            State::Pending(_) => None,
            State::Done(s) => Some(Ok(s)),
            State::Failed => Some(Err(Error::InvalidArgument {
                what: "request",
                detail: "it completed with an error that was already returned".into(),
            })),
        }
    }

    /// Waits until the operation completes. For a receive, the status of the message (or
    /// [`Error::Truncated`]); for a send, a status naming the destination.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let out = [1u8, 2, 3];
    /// let mut inb = [0u8; 8];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.irecv(s, &mut inb, mpr::ANY_SOURCE, mpr::ANY_TAG)?;
    ///     world.isend(s, &out, me, 6)?.wait()?;
    ///     let st = r.wait()?; // the status of the message received
    ///     assert_eq!((st.source(), st.tag(), st.bytes()), (me, 6, 3));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn wait(mut self) -> Result<Status> {
        self.wait_mut()
    }

    /// [`Request::wait`] for a request that something else owns (a typed request around it).
    pub(crate) fn wait_mut(&mut self) -> Result<Status> {
        let comm = self.scope.comm(self.comm);
        let _seen = comm.seen("wait", 0);
        if let Some(r) = self.already() {
            return r;
        }
        let State::Pending(op) = self.state else {
            unreachable!("checked above")
        };
        let raw = comm.engine.borrow_mut().wait(op);
        self.finish(raw)
    }

    /// Moves communication forward without blocking; `Some(status)` once the operation has
    /// completed (and again on every later call).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let out = [5u64];
    /// let mut inb = [0u64];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut r = world.irecv(s, &mut inb, me, 0)?;
    ///     let _send = world.isend(s, &out, me, 0)?; // waited for by the scope if not before
    ///     let mut steps = 0;
    ///     while r.test()?.is_none() {
    ///         steps += 1; // ... a slice of computation between polls ...
    ///     }
    ///     println!("received after {steps} steps of work");
    ///     Ok(())
    /// })?;
    /// assert_eq!(inb, [5]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn test(&mut self) -> Result<Option<Status>> {
        let comm = self.scope.comm(self.comm);
        let _seen = comm.seen("test", 0);
        if let Some(r) = self.already() {
            return r.map(Some);
        }
        let State::Pending(op) = self.state else {
            unreachable!("checked above")
        };
        let polled = comm.engine.borrow_mut().test(op)?;
        match polled {
            None => Ok(None),
            Some(raw) => self.finish(raw).map(Some),
        }
    }

    /// Cancels a receive that no message has matched yet; `true` if it was cancelled (waiting
    /// on it then returns [`Error::Cancelled`], and the message it would have taken goes to
    /// the next matching receive). `false` if a message had already matched it: it completes
    /// as usual. Sends cannot be cancelled (an error), as in MPI 4, where cancelling a send is
    /// deprecated.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut reply = [0u8; 4];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut r = world.irecv(s, &mut reply, mpr::ANY_SOURCE, 99)?;
    ///     // ... nobody answered in time: take the receive back ...
    ///     if r.cancel()? {
    ///         assert!(matches!(r.wait(), Err(mpr::Error::Cancelled)));
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn cancel(&mut self) -> Result<bool> {
        if self.cap.is_none() {
            return Err(Error::InvalidArgument {
                what: "cancel",
                detail: "only receives can be cancelled".into(),
            });
        }
        let State::Pending(op) = self.state else {
            return Ok(false);
        };
        let comm = self.scope.comm(self.comm);
        let mut engine = comm.engine.borrow_mut();
        // Let messages that already arrived match first: cancelling never drops one.
        engine.poll_once()?;
        Ok(engine.cancel_waiting(op))
    }

    /// Whether the operation has completed (as last seen; does not make progress).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let mut inb = [0u8];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut r = world.irecv(s, &mut inb, me, 0)?;
    ///     assert!(!r.is_complete()); // nothing was sent yet
    ///     world.send(&[1u8], me, 0)?;
    ///     r.test()?; // or wait: is_complete itself moves nothing
    ///     # while r.test()?.is_none() {}
    ///     assert!(r.is_complete());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        !matches!(self.state, State::Pending(_))
    }

    fn op(&self) -> Option<OpId> {
        match self.state {
            State::Pending(op) => Some(op),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Pending(_) => "pending",
            State::Done(_) => "done",
            State::Failed => "failed",
        };
        f.debug_struct("Request")
            .field("state", &state)
            .field("receive", &self.cap.is_some())
            .finish()
    }
}

/// A request that hands its buffer back: [`BufRequest::wait`] returns the `&'scope mut [T]`
/// it was started with, once the operation has completed, so the buffer can be read, changed and
/// posted again inside the same scope. Started by [`Comm::irecv_buf`] and [`Comm::isend_buf`].
///
/// ```
/// let world = mpr::init()?;
/// let me = world.rank();
/// let mut storage = [0u64; 4];
/// let mut total = 0;
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut buf: &mut [u64] = &mut storage;
///     for step in 0..100u64 {
///         world.send(&[step; 4], me, 0)?;
///         let (back, _st) = world.irecv_buf(s, buf, me, 0)?.wait()?;
///         total += back[0]; // read it inside the scope...
///         buf = back; // ...and post it again
///     }
///     Ok(())
/// })?;
/// assert_eq!(total, 99 * 100 / 2);
/// # Ok::<(), mpr::Error>(())
/// ```
///
/// With a plain [`Request`] the same loop does not compile: the buffer stays borrowed by the
/// first request until the scope ends.
///
/// ```compile_fail,E0499
/// let world = mpr::init().unwrap();
/// let mut buf = [0u64; 4];
/// mpr::scope(|s| {
///     for _ in 0..2 {
///         world.irecv(s, &mut buf, 0, 0).unwrap().wait().unwrap();
///     }
/// });
/// ```
///
/// Dropping or leaking it is as for a [`Request`]: the scope still waits for the operation, and
/// the buffer is not handed back. After an error the buffer is not handed back either.
#[must_use = "a request completes only by the end of its scope; wait for it to get the buffer back"]
pub struct BufRequest<'scope, T> {
    req: Request<'scope>,
    /// The buffer the request was started with (its only access path until it is handed back).
    ptr: *mut T,
    len: usize,
    _buf: PhantomData<&'scope mut [T]>,
}

impl<'scope, T: bytemuck::Pod> BufRequest<'scope, T> {
    /// Starts `start` on a view of `buf`, keeping `buf` to hand back.
    pub(crate) fn start(
        buf: &'scope mut [T],
        start: impl FnOnce(&'scope mut [u8]) -> Result<Request<'scope>>,
    ) -> Result<BufRequest<'scope, T>> {
        let (size, len) = (std::mem::size_of_val(buf), buf.len());
        let ptr = buf.as_mut_ptr();
        // SAFETY: `ptr` covers `size` bytes of `buf`, which is moved into this request; `T: Pod`
        // has no padding, so its bytes may be seen as `u8`s. The byte view is derived from
        // `ptr` (not from `buf` again), so handing the buffer back through `ptr` later keeps
        // one line of borrows: buf -> ptr -> bytes -> the engine's view.
        let bytes: &'scope mut [u8] = unsafe { std::slice::from_raw_parts_mut(ptr.cast(), size) };
        let req = start(bytes)?;
        Ok(BufRequest {
            req,
            ptr,
            len,
            _buf: PhantomData,
        })
    }

    /// Waits until the operation completes; its status and the buffer, which is the caller's
    /// again (for a receive, holding the message).
    pub fn wait(self) -> Result<(&'scope mut [T], Status)> {
        let st = self.req.wait()?;
        // SAFETY: `ptr` and `len` are those of the `&'scope mut [T]` this request was started
        // with, which was moved into it: nothing else can reach that memory during `'scope`.
        // The only other view, the engine's, ended when the operation completed (`wait` returns
        // only once the operation has left the engine), so the buffer is handed back whole and
        // unaliased. Tested by `buffers_handed_back_and_reposted_10000_times`.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) };
        Ok((buf, st))
    }

    /// Moves communication forward without blocking; `Some(status)` once the operation has
    /// completed (then [`BufRequest::wait`] returns at once with the buffer).
    pub fn test(&mut self) -> Result<Option<Status>> {
        self.req.test()
    }

    /// Whether the operation has completed (as last seen; does not make progress).
    pub fn is_complete(&self) -> bool {
        self.req.is_complete()
    }

    /// The plain request, for [`wait_all`] and friends (the buffer is then not handed back).
    pub fn into_request(self) -> Request<'scope> {
        self.req
    }
}

impl<T> std::fmt::Debug for BufRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRequest")
            .field("request", &self.req)
            .field("len", &self.len)
            .finish()
    }
}

/// A receive of unknown size ([`Comm::irecv_vec`]): the buffer is allocated when a message
/// matches, and [`VecRequest::wait`] returns it as a `Vec<T>` of the message's length.
#[must_use = "a request completes only by the end of its scope; wait for it to get the vector"]
pub struct VecRequest<'scope, T> {
    req: Request<'scope>,
    op: OpId,
    taken: bool,
    _t: PhantomData<fn() -> T>,
}

impl<'scope, T: bytemuck::Pod> VecRequest<'scope, T> {
    pub(crate) fn new(req: Request<'scope>, op: OpId) -> VecRequest<'scope, T> {
        VecRequest {
            req,
            op,
            taken: false,
            _t: PhantomData,
        }
    }

    /// Waits for the message; the vector holding it and its status.
    pub fn wait(mut self) -> Result<(Vec<T>, Status)> {
        let status = self.req.wait_mut()?;
        self.vector(status)
    }

    /// Moves communication forward without blocking; the vector and status once the message
    /// has been received (once: later calls are an error).
    pub fn test(&mut self) -> Result<Option<(Vec<T>, Status)>> {
        match self.req.test()? {
            None => Ok(None),
            Some(st) => self.vector(st).map(Some),
        }
    }

    /// Whether the receive has completed (as last seen; does not make progress).
    pub fn is_complete(&self) -> bool {
        self.req.is_complete()
    }

    fn vector(&mut self, st: Status) -> Result<(Vec<T>, Status)> {
        const WHAT: &str = "irecv_vec";
        if std::mem::replace(&mut self.taken, true) {
            return Err(Error::InvalidArgument {
                what: WHAT,
                detail: "the vector was already returned".into(),
            });
        }
        let grown = self
            .req
            .scope
            .comm(self.req.comm)
            .engine
            .borrow_mut()
            .take_grown(self.op);
        let size = std::mem::size_of::<T>().max(1);
        let mut v = match grown.map(|g| g.into_any().downcast::<Vec<T>>()) {
            Some(Ok(v)) if v.len() * size >= st.bytes() => *v,
            _ => {
                return Err(Error::OutOfMemory {
                    what: WHAT,
                    bytes: st.bytes(),
                })
            }
        };
        if st.bytes() % size != 0 {
            return Err(Error::not_whole(WHAT, st.bytes(), size));
        }
        v.truncate(st.bytes() / size);
        Ok((v, st))
    }
}

impl<T> std::fmt::Debug for VecRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecRequest")
            .field("request", &self.req)
            .finish()
    }
}

/// Waits for every request; returns their statuses in order. All are waited for even when one
/// fails; then the first error is returned.
///
/// ```
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let out = vec![rank as i32; 32];
/// let mut inb = vec![0i32; 32 * size];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = Vec::new();
///     for (src, part) in inb.chunks_mut(32).enumerate() {
///         reqs.push(world.irecv(s, part, src, 0)?);
///     }
///     for dest in 0..size {
///         reqs.push(world.isend(s, &out, dest, 0)?);
///     }
///     let statuses = mpr::wait_all(reqs)?; // in the order of `reqs`
///     assert_eq!(statuses[0].source(), 0);
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn wait_all(reqs: Vec<Request<'_>>) -> Result<Vec<Status>> {
    wait_every(reqs, Request::wait)
}

/// Waits for every item with `wait`, in turn, even when one fails: their statuses, or the first
/// error once all were waited for. Waiting for each in turn moves all of them: the engine
/// progresses every operation.
pub(crate) fn wait_every<I>(
    items: impl IntoIterator<Item = I>,
    mut wait: impl FnMut(I) -> Result<Status>,
) -> Result<Vec<Status>> {
    let mut first_err = None;
    let mut out = Vec::new();
    for item in items {
        match wait(item) {
            Ok(st) => out.push(st),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// Waits until one of `reqs` completes, removes it from the vector and returns its former index
/// and status. A request that completed with an error is removed too, and its error returned
/// as [`Error::InRequest`], which names its index ([`Error::inner`] gives the error itself). An
/// empty vector is an error.
///
/// ```
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let out = [rank as u64];
/// let mut inb = vec![0u64; size];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = Vec::new();
///     for (src, slot) in inb.chunks_mut(1).enumerate() {
///         reqs.push(world.irecv(s, slot, src, 0)?);
///     }
///     for dest in 0..size {
///         world.isend(s, &out, dest, 0)?.wait()?;
///     }
///     // Handle the answers in the order they come, not the order asked.
///     while !reqs.is_empty() {
///         let (_index, st) = mpr::wait_any(&mut reqs)?; // removed from `reqs`
///         println!("rank {} answered", st.source());
///     }
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn wait_any(reqs: &mut Vec<Request<'_>>) -> Result<(usize, Status)> {
    if reqs.is_empty() {
        return Err(Error::InvalidArgument {
            what: "wait_any",
            detail: "no requests to wait for".into(),
        });
    }
    let i = match reqs.iter().position(Request::is_complete) {
        Some(i) => i,
        None => wait_for_one(reqs)?,
    };
    let r = reqs.remove(i);
    r.wait().map(|st| (i, st)).map_err(|e| in_request(i, e))
}

/// Waits until one of `reqs` (all pending, at least one) has completed; its index.
fn wait_for_one(reqs: &[Request<'_>]) -> Result<usize> {
    let ops: Vec<OpId> = reqs.iter().filter_map(Request::op).collect();
    let comm = reqs[0].scope.comm(reqs[0].comm);
    let i = comm.engine.borrow_mut().wait_any(&ops);
    i
}

/// A request's own error, with its index.
fn in_request(index: usize, error: Error) -> Error {
    Error::InRequest {
        index,
        error: Box::new(error),
    }
}

/// Tests every request once (one progress step); `Some` with all statuses, in order, once all have
/// completed. An error of any request is returned at once (the others stay valid).
///
/// ```
/// let world = mpr::init()?;
/// let me = world.rank();
/// let out = [1.0f32; 4];
/// let mut inb = [0.0f32; 4];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = vec![world.irecv(s, &mut inb, me, 0)?, world.isend(s, &out, me, 0)?];
///     let statuses = loop {
///         if let Some(all) = mpr::test_all(&mut reqs)? {
///             break all;
///         }
///         // ... more work until both have completed ...
///     };
///     assert_eq!(statuses.len(), 2);
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn test_all(reqs: &mut [Request<'_>]) -> Result<Option<Vec<Status>>> {
    let mut all = Vec::with_capacity(reqs.len());
    for r in reqs.iter_mut() {
        if let Some(st) = r.test()? {
            all.push(st);
        }
    }
    Ok((all.len() == reqs.len()).then_some(all))
}

/// Tests the requests (one progress step); if one has completed, removes it and returns its index
/// and status, as [`wait_any`] does (an error of that request as [`Error::InRequest`]).
///
/// ```
/// let world = mpr::init()?;
/// let me = world.rank();
/// let out = [9u16];
/// let mut inb = [0u16];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = vec![world.irecv(s, &mut inb, me, 0)?];
///     world.send(&out, me, 0)?;
///     loop {
///         if let Some((i, st)) = mpr::test_any(&mut reqs)? {
///             assert_eq!((i, st.bytes()), (0, 2));
///             break;
///         }
///         // ... work while none has completed ...
///     }
///     assert!(reqs.is_empty()); // the completed request was removed
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn test_any(reqs: &mut Vec<Request<'_>>) -> Result<Option<(usize, Status)>> {
    for i in 0..reqs.len() {
        match reqs[i].test() {
            Ok(None) => {}
            Ok(Some(st)) => {
                drop(reqs.remove(i));
                return Ok(Some((i, st)));
            }
            Err(e) => {
                drop(reqs.remove(i));
                return Err(in_request(i, e));
            }
        }
    }
    Ok(None)
}

/// Waits until at least one of `reqs` has completed, then removes every request that has and
/// returns each one's former index with its own result: the index of a request that failed is
/// reported beside its error, and the others' results are not lost. An empty vector is an
/// error.
///
/// ```
/// let world = mpr::init()?;
/// let (rank, size) = (world.rank(), world.size());
/// let out = [rank as u32];
/// let mut inb = vec![0u32; size];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = Vec::new();
///     for (src, slot) in inb.chunks_mut(1).enumerate() {
///         reqs.push(world.irecv(s, slot, src, 3)?);
///     }
///     for dest in 0..size {
///         world.send(&out, dest, 3)?;
///     }
///     let mut seen = 0;
///     while !reqs.is_empty() {
///         for (index, result) in mpr::wait_some(&mut reqs)? {
///             let st = result?; // `index` names the request if it failed
///             println!("request {index}: {} bytes from rank {}", st.bytes(), st.source());
///             seen += 1;
///         }
///     }
///     assert_eq!(seen, size);
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
///
/// The indices are those of `reqs` as it was when called, in increasing order.
pub fn wait_some(reqs: &mut Vec<Request<'_>>) -> Result<Vec<(usize, Result<Status>)>> {
    if reqs.is_empty() {
        return Err(Error::InvalidArgument {
            what: "wait_some",
            detail: "no requests to wait for".into(),
        });
    }
    if !reqs.iter().any(Request::is_complete) {
        wait_for_one(reqs)?;
    }
    Ok(take_completed(reqs))
}

/// Tests the requests (one progress step) and removes every one that has completed, returning
/// their former indices and results as [`wait_some`] does; empty if none has.
///
/// ```
/// let world = mpr::init()?;
/// let me = world.rank();
/// let mut inb = [0u8; 2];
/// mpr::scope(|s| -> mpr::Result<()> {
///     let mut reqs = vec![world.irecv(s, &mut inb, me, 0)?];
///     assert!(mpr::test_some(&mut reqs)?.is_empty()); // nothing sent yet
///     world.send(&[1u8, 2], me, 0)?;
///     let mut done = Vec::new();
///     while done.is_empty() {
///         done = mpr::test_some(&mut reqs)?;
///     }
///     assert_eq!(done[0].0, 0);
///     Ok(())
/// })?;
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn test_some(reqs: &mut Vec<Request<'_>>) -> Result<Vec<(usize, Result<Status>)>> {
    if let Some(r) = reqs.iter().find(|r| !r.is_complete()) {
        r.scope.comm(r.comm).engine.borrow_mut().poll_once()?;
    }
    Ok(take_completed(reqs))
}

/// Removes the requests whose operations have completed (as the engine last saw), with their
/// former indices and results.
fn take_completed(reqs: &mut Vec<Request<'_>>) -> Vec<(usize, Result<Status>)> {
    let mut done = Vec::new();
    let mut kept = Vec::with_capacity(reqs.len());
    for (i, r) in std::mem::take(reqs).into_iter().enumerate() {
        let finished = match r.op() {
            None => true,
            Some(op) => r.scope.comm(r.comm).engine.borrow().op_done(op),
        };
        if finished {
            // Completed: waiting takes its result without blocking.
            done.push((i, r.wait()));
        } else {
            kept.push(r);
        }
    }
    *reqs = kept;
    done
}
