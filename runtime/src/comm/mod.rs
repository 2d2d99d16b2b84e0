//! Communicators: a group of ranks plus a private context for their traffic.
//!
//! A [`Comm`] is a handle on the rank's one progress engine, the context id its point-to-point
//! messages carry, and the mapping between its ranks and world ranks. Collective traffic uses the
//! next context id (`ctx + 1`), so it can never match a user's receive, whatever the tags.
//! A `Comm` is used from the thread that created the world (it is neither `Send` nor `Sync`);
//! use rayon or threads for computation inside a rank, and one thread for communication.

#![forbid(unsafe_code)]

mod group;
mod layout;
mod matched;
mod nonblocking;
mod p2p;
mod split;
#[cfg(feature = "serde")]
mod value;

use std::cell::RefCell;
use std::rc::Rc;

pub(crate) use group::fingerprint;
pub use group::{Comparison, Group};
pub use matched::Message;
pub use p2p::{Dest, Source, Status, TagMatch, ANY_SOURCE, ANY_TAG, PROC_NULL};
#[cfg(feature = "serde")]
pub use value::ValueRequest;

use crate::coll::NodeState;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The bytes of a slice of any `Pod` type, which is what goes on the wire. Always possible:
/// bytes have no alignment and divide every size.
pub(crate) fn bytes<T: bytemuck::Pod>(s: &[T]) -> &[u8] {
    bytemuck::cast_slice(s)
}

/// The bytes of a mutable slice of any `Pod` type (see [`bytes`]).
pub(crate) fn bytes_mut<T: bytemuck::Pod>(s: &mut [T]) -> &mut [u8] {
    bytemuck::cast_slice_mut(s)
}

/// A communicator: the ranks that talk to each other, with traffic of their own.
pub struct Comm {
    pub(crate) engine: Rc<RefCell<Engine>>,
    /// Context id of point-to-point traffic; collectives use `ctx + 1`.
    pub(crate) ctx: u32,
    rank: usize,
    size: usize,
    /// The members' world ranks, for a communicator other than the world (where the mapping is
    /// the identity); shared by every handle on it, and its drop frees the context ids.
    group: Option<Rc<Members>>,
    /// Collective calls made on this communicator so far (shared by its handles).
    pub(crate) coll_seq: Rc<std::cell::Cell<u32>>,
    /// The shared-memory segment of its collectives on one host (shared by its handles).
    pub(crate) node: Rc<RefCell<NodeState>>,
}

/// The members of a communicator made by `split` or `dup`, and the lease on its context ids.
pub(crate) struct Members {
    /// World rank of each communicator rank.
    world_of: Vec<usize>,
    /// Communicator rank of each world rank that is a member.
    comm_of: std::collections::HashMap<usize, usize>,
    engine: Rc<RefCell<Engine>>,
    pair: usize,
}

impl Drop for Members {
    fn drop(&mut self) {
        // The last handle is gone: the pair may be agreed on again. (If the engine is busy,
        // which cannot happen outside an mpr call, the pair simply stays taken.)
        if let Ok(mut e) = self.engine.try_borrow_mut() {
            e.contexts.release(self.pair);
            e.names.remove(&(2 * self.pair as u32));
        }
    }
}

impl Comm {
    /// Says which world rank and tag the call under way (if it is the outermost) goes to or
    /// comes from, for the trace's arrows from sends to receives.
    #[inline]
    pub(crate) fn about(&self, peer: usize, tag: u32) {
        if let Some(o) = self.engine.borrow().observer.as_ref() {
            o.borrow_mut().about(peer, tag);
        }
    }

    /// Opens the count of a call to `name` of `bytes` (`observe.rs`): one branch when not
    /// profiling.
    #[inline]
    pub(crate) fn seen(&self, name: &'static str, bytes: usize) -> crate::observe::Seen {
        crate::observe::Seen::open(
            self.engine.borrow().observer.as_ref(),
            name,
            bytes,
            self.ctx,
        )
    }

    /// Says which algorithm the collective under way took (if it is the outermost call), for
    /// the trace.
    #[inline]
    pub(crate) fn algorithm(&self, algo: &'static str) {
        if let Some(o) = self.engine.borrow().observer.as_ref() {
            o.borrow_mut().algorithm(algo);
        }
    }

    pub(crate) fn world(engine: Rc<RefCell<Engine>>) -> Comm {
        let (rank, size) = {
            let e = engine.borrow();
            (e.rank, e.size)
        };
        Comm {
            engine,
            ctx: 0,
            rank,
            size,
            group: None,
            coll_seq: Rc::default(),
            node: Rc::new(RefCell::new(NodeState::Untried)),
        }
    }

    /// Another handle on the same communicator (same engine, context and group), for requests
    /// and scopes that must reach it later.
    pub(crate) fn handle(&self) -> Comm {
        Comm {
            engine: self.engine.clone(),
            ctx: self.ctx,
            rank: self.rank,
            size: self.size,
            group: self.group.clone(),
            coll_seq: self.coll_seq.clone(),
            node: self.node.clone(),
        }
    }

    /// This process's rank in the communicator, `0..size()`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// assert!(rank < size);
    /// if rank == 0 {
    ///     println!("{size} ranks");
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Bytes this process has read from its links so far: headers and payloads of every
    /// message that came through a socket or a ring in shared memory, from any communicator. Large messages from ranks of
    /// the same host are copied straight between the two processes and do not count. For
    /// diagnostics (which path did my data take?) and tests; hidden from the docs, as it is
    /// no part of the API a rank program is meant to use.
    #[doc(hidden)]
    pub fn socket_bytes_received(&self) -> u64 {
        self.engine.borrow_mut().socket_bytes_read()
    }

    /// Number of ranks in the communicator.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// // Split 1000 items as evenly as the ranks allow: the first `1000 % size` ranks take one more.
    /// let (n, size, rank) = (1000, world.size(), world.rank());
    /// let mine = n / size + usize::from(rank < n % size);
    /// # assert!(mine > 0);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Context id of this communicator's collective traffic.
    pub(crate) fn coll_ctx(&self) -> u32 {
        self.ctx + 1
    }

    /// The world rank of communicator rank `r`.
    pub(crate) fn world_rank(&self, r: usize) -> Result<usize> {
        if r >= self.size {
            return Err(Error::InvalidRank {
                rank: r,
                size: self.size,
            });
        }
        Ok(self.group.as_ref().map_or(r, |g| g.world_of[r]))
    }

    /// The communicator rank of world rank `w` (a member: only members send on this context).
    pub(crate) fn comm_rank(&self, w: usize) -> usize {
        self.group
            .as_ref()
            .map_or(w, |g| g.comm_of.get(&w).copied().unwrap_or(usize::MAX))
    }

    /// Names this communicator (`MPI_Comm_set_name`), on this rank: the name appears in the
    /// `--timeout` report of what the rank waits for, and in [`Comm::name`]. Every handle on
    /// the communicator shares it; it goes when the communicator does.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let rows = world.dup()?;
    /// rows.set_name("rows");
    /// assert_eq!(rows.name(), "rows");
    /// assert_eq!(world.name(), "world");
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn set_name(&self, name: &str) {
        let mut e = self.engine.borrow_mut();
        if let Some(o) = e.observer.as_ref() {
            o.borrow_mut().named(self.ctx, name);
        }
        e.names.insert(self.ctx, name.to_string());
    }

    /// This communicator's name: the one given with [`Comm::set_name`], else `world` for the
    /// world and `communicator N` for another (N: its number in the `--timeout` report).
    pub fn name(&self) -> String {
        match self.engine.borrow().names.get(&self.ctx) {
            Some(n) => n.clone(),
            None if self.ctx == 0 => "world".into(),
            None => format!("communicator {}", self.ctx),
        }
    }

    /// Ends the whole job: every rank is stopped and `mprun` exits with `code`.
    ///
    /// ```no_run
    /// let world = mpr::init()?;
    /// if world.rank() == 0 && std::fs::metadata("input.dat").is_err() {
    ///     eprintln!("input.dat is missing");
    ///     world.abort(2); // every rank of the job is stopped; mprun exits with status 2
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn abort(&self, code: i32) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        if let Ok(mut e) = self.engine.try_borrow_mut() {
            e.request_abort(code);
        }
        std::process::exit(code)
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("ctx", &self.ctx)
            .finish()
    }
}
