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
//! **What it saves.** Each start skips the checks and translations of a call (rank range, the
//! world rank, the scope's communicator lookup): measured in BENCHMARKS.md ("Persistent
//! requests").

use std::marker::PhantomData;

use bytemuck::Pod;

use crate::buf::{RawMut, RawSlice};
use crate::comm::{Comm, Dest, Source, Status, TagMatch};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope, ScopeCore};

/// What each start of a persistent request does.
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
pub struct Persistent<'scope, T> {
    core: &'scope ScopeCore,
    comm: Comm,
    plan: Plan,
    /// The buffer, moved in for `'scope` (its only access path outside the engine).
    ptr: *mut T,
    len: usize,
    /// Made from a `&mut` buffer: [`Persistent::buf_mut`] may hand it out.
    writable: bool,
    /// The operation of the current start, until it is waited for.
    active: Option<Request<'scope>>,
    /// Invariant in `'scope`, as the scope is; the buffer is borrowed for it.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _buf: PhantomData<&'scope mut [T]>,
}

fn bad(what: &'static str, detail: &str) -> Error {
    Error::InvalidArgument {
        what,
        detail: detail.into(),
    }
}

impl<'scope, T: Pod> Persistent<'scope, T> {
    fn new(
        s: &'scope Scope<'scope, '_>,
        comm: &Comm,
        plan: Plan,
        (ptr, len, writable): (*mut T, usize, bool),
    ) -> Persistent<'scope, T> {
        Persistent {
            core: s.core(),
            comm: comm.handle(),
            plan,
            ptr,
            len,
            writable,
            active: None,
            _scope: PhantomData,
            _buf: PhantomData,
        }
    }

    /// Starts one operation with the request's arguments. An error if the last start has not
    /// been completed by [`Persistent::wait`] or [`Persistent::test`].
    pub fn start(&mut self) -> Result<()> {
        if self.active.is_some() {
            return Err(bad(
                "start",
                "the request is still active: wait for or test its last start first",
            ));
        }
        let bytes = std::mem::size_of::<T>() * self.len;
        let req = match self.plan {
            Plan::Null => self.core.done(&self.comm, Status::null())?,
            // SAFETY (RawSlice::new, start_send_view): `ptr` covers `bytes` bytes of the buffer
            // moved into this request for `'scope` (`T: Pod`: no padding), valid until the scope
            // settles, which it does before `'scope` ends; no `&mut` to it exists while the
            // operation runs (`buf_mut` borrows `self`, and refuses while one is active).
            Plan::Send {
                peer,
                tag,
                synchronous,
            } => unsafe {
                let view = RawSlice::new(std::slice::from_raw_parts(self.ptr.cast(), bytes));
                self.core
                    .start_send_view(&self.comm, peer, tag, view, synchronous)?
            },
            // SAFETY (RawMut::new, start_recv_view): as above, and the buffer came from a `&mut`
            // moved into this request: while the receive runs nothing but the engine reaches it
            // (`buf` and `buf_mut` borrow `self` and refuse while one is active).
            Plan::Recv { src, tag } => unsafe {
                let view = RawMut::new(std::slice::from_raw_parts_mut(self.ptr.cast(), bytes));
                self.core.start_recv_view(&self.comm, src, tag, view)?
            },
        };
        self.active = Some(req);
        Ok(())
    }

    /// Waits for the current start to complete; the request is then inactive (startable
    /// again). On an inactive request it returns at once (with [`Status::is_null`], as MPI
    /// does), so a set of requests of which some were not started can be waited for alike.
    pub fn wait(&mut self) -> Result<Status> {
        match self.active.take() {
            None => Ok(Status::null()),
            Some(req) => req.wait(),
        }
    }

    /// Moves communication forward without blocking: `Some(status)` once the current start has
    /// completed (the request is then inactive), `Some` at once on an inactive request.
    pub fn test(&mut self) -> Result<Option<Status>> {
        let Some(req) = self.active.as_mut() else {
            return Ok(Some(Status::null()));
        };
        match req.test() {
            Ok(None) => Ok(None),
            done => {
                self.active = None;
                done
            }
        }
    }

    /// Whether a start is under way (started, and not yet completed by `wait` or `test`).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The buffer, while no start is under way: what the last receive got.
    pub fn buf(&self) -> Result<&[T]> {
        if self.active.is_some() {
            return Err(bad(
                "buf",
                "the request is active: its buffer is the engine's until it completes",
            ));
        }
        // SAFETY: `ptr`/`len` are those of the buffer moved into this request for `'scope`; no
        // operation is under way, so the engine holds no view of it, and the slice borrows
        // `self`, so no start can begin while it lives.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }

    /// The buffer to write, while no start is under way: what the next send carries. Only for
    /// requests made from a `&mut` buffer ([`Comm::recv_init`], [`Comm::send_init_mut`]).
    pub fn buf_mut(&mut self) -> Result<&mut [T]> {
        if self.active.is_some() {
            return Err(bad(
                "buf_mut",
                "the request is active: its buffer is the engine's until it completes",
            ));
        }
        if !self.writable {
            return Err(bad(
                "buf_mut",
                "the request was made from a shared borrow (send_init): use send_init_mut",
            ));
        }
        // SAFETY: as in `buf`, and the buffer came from a `&mut` moved into this request, so
        // this is its only access path; the slice borrows `self` mutably.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) })
    }
}

/// Starts every request of `reqs` (`MPI_Startall`); the first error stops it.
pub fn start_all<T: Pod>(reqs: &mut [Persistent<'_, T>]) -> Result<()> {
    reqs.iter_mut().try_for_each(Persistent::start)
}

/// Waits for every request of `reqs` (inactive ones return at once); their statuses in order.
/// Every request is waited for even when one fails; the first error is returned.
pub fn wait_all_persistent<T: Pod>(reqs: &mut [Persistent<'_, T>]) -> Result<Vec<Status>> {
    let mut first = None;
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs.iter_mut() {
        match r.wait() {
            Ok(st) => out.push(st),
            Err(e) => {
                out.push(Status::null());
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(out), Err)
}

impl<T> std::fmt::Debug for Persistent<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistent")
            .field("plan", &self.plan)
            .field("len", &self.len)
            .field("active", &self.active.is_some())
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
        let plan = self.send_plan(dest.into(), tag, false)?;
        let at = (buf.as_ptr().cast_mut(), buf.len(), false);
        Ok(Persistent::new(s, self, plan, at))
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
        let plan = self.send_plan(dest.into(), tag, true)?;
        let at = (buf.as_ptr().cast_mut(), buf.len(), false);
        Ok(Persistent::new(s, self, plan, at))
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
        let plan = self.send_plan(dest.into(), tag, false)?;
        let at = (buf.as_mut_ptr(), buf.len(), true);
        Ok(Persistent::new(s, self, plan, at))
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
        let src = src.into();
        let plan = if src == Source::Null {
            Plan::Null
        } else {
            Plan::Recv {
                src: self.src(src)?,
                tag: tag.into().as_option(),
            }
        };
        let at = (buf.as_mut_ptr(), buf.len(), true);
        Ok(Persistent::new(s, self, plan, at))
    }
}
