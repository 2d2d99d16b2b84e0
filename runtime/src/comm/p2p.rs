//! Blocking point-to-point: `send`, `ssend`, `recv`, `recv_vec`, `probe`, `iprobe`, `sendrecv`.
//!
//! **No rank.** A destination or source may be "no rank" (`None`, [`PROC_NULL`], what
//! [`CartComm::shift`](crate::CartComm::shift) gives off an open edge), as MPI's
//! `MPI_PROC_NULL`: a send to it does nothing, a receive or probe from it completes at once with
//! a [`Status::is_null`] status and leaves the buffer as it was. So a halo exchange is written
//! once, for the ranks at the edges as for the others.
//!
//! Each call is one of the engine's blocking operations (`engine/blocking.rs`): it starts the
//! operation and waits for it, so the engine holds a view of the caller's slice only while the
//! call runs.

use bytemuck::Pod;

use super::{bytes, bytes_mut, Comm};
use crate::engine::{RawStatus, RecvSpec, SendSpec};
use crate::error::{Error, Result};

/// Whom a receive accepts a message from: a rank, [`ANY_SOURCE`], or no rank at all (from
/// `None`: see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Only this rank.
    Rank(usize),
    /// Any rank.
    Any,
    /// No rank ([`PROC_NULL`]): the receive completes at once, receiving nothing.
    Null,
}

/// Where a send goes: a rank (`usize`), or no rank (`None`, [`PROC_NULL`]), where it completes
/// at once and sends nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest(pub Option<usize>);

impl From<usize> for Dest {
    fn from(r: usize) -> Dest {
        Dest(Some(r))
    }
}

impl From<Option<usize>> for Dest {
    fn from(r: Option<usize>) -> Dest {
        Dest(r)
    }
}

/// No rank, MPI's `MPI_PROC_NULL`: a destination or source that makes a send or receive
/// complete at once, moving nothing (see the module docs). It is `None`, so the `Option`s that
/// [`CartComm::shift`](crate::CartComm::shift) returns can be passed as they are.
///
/// ```
/// let world = mpr::init()?;
/// world.send(&[1u8, 2, 3], mpr::PROC_NULL, 0)?; // goes nowhere, at once
/// let mut buf = [9u8; 3];
/// let st = world.recv(&mut buf, mpr::PROC_NULL, 0)?;
/// assert!(st.is_null() && st.bytes() == 0 && buf == [9, 9, 9]);
/// # Ok::<(), mpr::Error>(())
/// ```
pub const PROC_NULL: Option<usize> = None;

/// Which tags a receive accepts: one tag, or [`ANY_TAG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMatch {
    /// Only this tag.
    Tag(u32),
    /// Any tag.
    Any,
}

/// Receive from any rank.
pub const ANY_SOURCE: Source = Source::Any;
/// Receive any tag.
pub const ANY_TAG: TagMatch = TagMatch::Any;

impl From<usize> for Source {
    fn from(r: usize) -> Source {
        Source::Rank(r)
    }
}

impl From<Option<usize>> for Source {
    fn from(r: Option<usize>) -> Source {
        r.map_or(Source::Null, Source::Rank)
    }
}

impl TagMatch {
    /// The one tag to match, or `None` for any.
    pub(crate) fn as_option(self) -> Option<u32> {
        match self {
            TagMatch::Tag(t) => Some(t),
            TagMatch::Any => None,
        }
    }
}

impl From<u32> for TagMatch {
    fn from(t: u32) -> TagMatch {
        TagMatch::Tag(t)
    }
}

/// What a received (or probed) message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    source: usize,
    tag: u32,
    bytes: usize,
}

impl Status {
    /// Rank (in the communicator) that sent the message.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.send(&[0u16; 5], world.rank(), 4)?;
    /// let st = world.probe(mpr::ANY_SOURCE, mpr::ANY_TAG)?;
    /// assert_eq!(st.source(), world.rank()); // who sent it, as a rank of this communicator
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn source(&self) -> usize {
        self.source
    }

    /// Tag of the message.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.send(&[0u16; 5], world.rank(), 4)?;
    /// let st = world.probe(world.rank(), mpr::ANY_TAG)?;
    /// assert_eq!(st.tag(), 4);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// Size of the message in bytes.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.send(&[0u16; 5], world.rank(), 4)?;
    /// let st = world.probe(world.rank(), 4)?;
    /// assert_eq!(st.bytes(), 10);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of whole `T` elements in the message (rounded down; 0 for zero-sized `T`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.send(&[0u16; 5], world.rank(), 4)?;
    /// let st = world.probe(world.rank(), 4)?;
    /// assert_eq!(st.count::<u16>(), 5);
    /// assert_eq!(st.count::<u32>(), 2); // whole elements only
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn count<T: Pod>(&self) -> usize {
        self.bytes
            .checked_div(std::mem::size_of::<T>())
            .unwrap_or(0)
    }

    /// Whether this is the status of a receive or probe from no rank ([`PROC_NULL`]): then
    /// [`Status::bytes`] is 0 and [`Status::source`] and [`Status::tag`] are `usize::MAX` and
    /// `u32::MAX`, which no message has.
    pub fn is_null(&self) -> bool {
        self.source == usize::MAX
    }

    /// The status of a receive from no rank.
    pub(crate) fn null() -> Status {
        Status {
            source: usize::MAX,
            tag: u32::MAX,
            bytes: 0,
        }
    }
}

impl Comm {
    /// The world rank a receive takes from (`None`: any). No rank is an error here: the calls
    /// that take it return before they get here.
    pub(crate) fn src(&self, s: Source) -> Result<Option<usize>> {
        match s {
            Source::Rank(r) => self.world_rank(r).map(Some),
            Source::Any => Ok(None),
            Source::Null => Err(Error::InvalidArgument {
                what: "source",
                detail: "no rank (PROC_NULL) is a source only of recv, probe, sendrecv, irecv \
                         and their like, not of this call"
                    .into(),
            }),
        }
    }

    /// The world rank a send goes to, `None` for no rank.
    pub(crate) fn dest(&self, d: Dest) -> Result<Option<usize>> {
        d.0.map(|r| self.world_rank(r)).transpose()
    }

    pub(crate) fn status(&self, raw: RawStatus) -> Status {
        Status {
            source: self.comm_rank(raw.source),
            tag: raw.tag,
            bytes: raw.bytes,
        }
    }

    /// A receive's status, or `Truncated` if the message did not fit `cap` bytes.
    pub(crate) fn received(&self, raw: RawStatus, cap: usize) -> Result<Status> {
        let st = self.status(raw);
        if st.bytes > cap {
            return Err(Error::Truncated {
                source: st.source,
                tag: st.tag,
                message_bytes: st.bytes,
                buffer_bytes: cap,
            });
        }
        Ok(st)
    }

    fn send_mode<T: Pod>(&self, buf: &[T], dest: Dest, tag: u32, synchronous: bool) -> Result<()> {
        let Some(peer) = self.dest(dest)? else {
            return Ok(());
        };
        self.about(peer, tag);
        let bytes = bytes(buf);
        self.engine
            .borrow_mut()
            .send(self.ctx, peer, tag, bytes, synchronous)
            .map(|_| ())
    }

    /// Sends `buf` to rank `dest` with `tag`. Returns when `buf` may be reused: small messages
    /// once handed to the kernel, large ones once the receiver has taken them.
    ///
    /// ```no_run
    /// let world = mpr::init()?;
    /// if world.rank() == 0 {
    ///     world.send(&[1.0f64, 2.0, 3.0], 1, 7)?;
    /// } else if world.rank() == 1 {
    ///     let mut v = [0.0f64; 3];
    ///     let st = world.recv(&mut v, 0, 7)?;
    ///     assert_eq!(st.count::<f64>(), 3);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn send<T: Pod>(&self, buf: &[T], dest: impl Into<Dest>, tag: u32) -> Result<()> {
        let _seen = self.seen("send", std::mem::size_of_val(buf));
        self.send_mode(buf, dest.into(), tag, false)
    }

    /// Synchronous send: returns only once the receiver has matched the message with a receive.
    ///
    /// ```no_run
    /// let world = mpr::init()?;
    /// if world.rank() == 0 {
    ///     // Returns only once rank 1 has posted the matching receive: a handshake as well as data.
    ///     world.ssend(&[7u32], 1, 0)?;
    /// } else if world.rank() == 1 {
    ///     let mut x = [0u32];
    ///     world.recv(&mut x, 0, 0)?;
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ssend<T: Pod>(&self, buf: &[T], dest: impl Into<Dest>, tag: u32) -> Result<()> {
        let _seen = self.seen("ssend", std::mem::size_of_val(buf));
        self.send_mode(buf, dest.into(), tag, true)
    }

    /// Receives a message from `src` (a rank or [`ANY_SOURCE`]) with `tag` (or [`ANY_TAG`]) into
    /// `buf`. A message larger than `buf` is consumed and reported as [`Error::Truncated`].
    ///
    /// ```
    /// use mpr::{Error, ANY_SOURCE, ANY_TAG};
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// world.send(&[rank as u64; 4], (rank + 1) % size, 3)?; // to the next rank (itself when alone)
    /// let mut got = [0u64; 4];
    /// let st = world.recv(&mut got, ANY_SOURCE, ANY_TAG)?;
    /// assert_eq!(st.source(), (rank + size - 1) % size);
    /// assert_eq!((st.tag(), st.count::<u64>()), (3, 4));
    /// // A message larger than the buffer is an error, and it is consumed:
    /// world.send(&[0u8; 16], rank, 9)?;
    /// let mut small = [0u8; 8];
    /// assert!(matches!(world.recv(&mut small, rank, 9), Err(Error::Truncated { .. })));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn recv<T: Pod>(
        &self,
        buf: &mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let _seen = self.seen("recv", std::mem::size_of_val(buf));
        let src = src.into();
        if src == Source::Null {
            return Ok(Status::null());
        }
        let src = self.src(src)?;
        let tag = tag.into().as_option();
        let bytes = bytes_mut(buf);
        let cap = bytes.len();
        let raw = self.engine.borrow_mut().recv(self.ctx, src, tag, bytes)?;
        self.about(raw.source, raw.tag);
        self.received(raw, cap)
    }

    /// Receives a message whose size is not known in advance into a new vector.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&vec![1.5f64; 100], me, 0)?; // a length the receiver does not know
    /// let (v, st) = world.recv_vec::<f64>(mpr::ANY_SOURCE, 0)?;
    /// assert_eq!((v.len(), st.bytes()), (100, 800));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn recv_vec<T: Pod>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<(Vec<T>, Status)> {
        let _seen = self.seen("recv_vec", 0);
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return Err(Error::InvalidArgument {
                what: "recv_vec",
                detail: "zero-sized element type".into(),
            });
        }
        let probed = self.probe(src, tag)?;
        if probed.is_null() {
            return Ok((Vec::new(), probed));
        }
        // The length comes from the peer: a size this process cannot allocate is an error the
        // caller can act on (the message stays queued), never an abort.
        let n = probed.bytes.div_ceil(size);
        let mut v = Vec::new();
        if v.try_reserve_exact(n).is_err() {
            return Err(Error::OutOfMemory {
                what: "recv_vec",
                bytes: probed.bytes,
            });
        }
        v.resize(n, T::zeroed());
        // The oldest message from that source with that tag is the probed one (non-overtaking).
        let st = self.recv(&mut v, probed.source, probed.tag)?;
        if st.bytes % size != 0 {
            return Err(Error::not_whole("recv_vec", st.bytes, size));
        }
        v.truncate(st.bytes / size);
        Ok((v, st))
    }

    /// Blocks until a matching message has arrived; returns its status without receiving it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&[1u32, 2, 3], me, 5)?;
    /// let st = world.probe(mpr::ANY_SOURCE, mpr::ANY_TAG)?; // blocks until a message is there
    /// let mut buf = vec![0u32; st.count::<u32>()]; // size the buffer from the status
    /// world.recv(&mut buf, st.source(), st.tag())?; // receives the probed message
    /// assert_eq!(buf, [1, 2, 3]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn probe(&self, src: impl Into<Source>, tag: impl Into<TagMatch>) -> Result<Status> {
        let _seen = self.seen("probe", 0);
        let src = src.into();
        if src == Source::Null {
            return Ok(Status::null());
        }
        let src = self.src(src)?;
        let tag = tag.into().as_option();
        let raw = self.engine.borrow_mut().probe(self.ctx, src, tag)?;
        Ok(self.status(raw))
    }

    /// The status of a matching message that has arrived, if any; never blocks.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&[7u8], me, 99)?;
    /// // Poll for a request while doing other work: a task farm's server loop.
    /// let st = loop {
    ///     if let Some(st) = world.iprobe(mpr::ANY_SOURCE, 99)? {
    ///         break st;
    ///     }
    ///     // ... other work while nothing has arrived ...
    /// };
    /// let mut b = [0u8];
    /// world.recv(&mut b, st.source(), 99)?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iprobe(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Option<Status>> {
        let _seen = self.seen("iprobe", 0);
        let src = src.into();
        if src == Source::Null {
            return Ok(Some(Status::null()));
        }
        let src = self.src(src)?;
        let tag = tag.into().as_option();
        let raw = self.engine.borrow_mut().iprobe(self.ctx, src, tag)?;
        Ok(raw.map(|r| self.status(r)))
    }

    /// Sends `out` to `dest` and receives into `inb` from `src` at the same time (no deadlock
    /// when two ranks exchange with each other).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    /// // Shift a ring by one: every rank sends right and receives from the left, all at once.
    /// let mut from_left = [0.0f64; 8];
    /// world.sendrecv(&[rank as f64; 8], right, 0, &mut from_left, left, 0)?;
    /// assert_eq!(from_left[0], left as f64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn sendrecv<S: Pod, R: Pod>(
        &self,
        out: &[S],
        dest: impl Into<Dest>,
        send_tag: u32,
        inb: &mut [R],
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let _seen = self.seen("sendrecv", std::mem::size_of_val(out));
        let (dest, src) = (dest.into(), src.into());
        let Some(peer) = self.dest(dest)? else {
            return self.recv(inb, src, recv_tag);
        };
        if src == Source::Null {
            self.send_mode(out, dest, send_tag, false)?;
            return Ok(Status::null());
        }
        let out = bytes(out);
        let src = self.src(src)?;
        let tag = recv_tag.into().as_option();
        let inb = bytes_mut(inb);
        let cap = inb.len();
        let mut recvs = [RecvSpec {
            src,
            tag,
            buf: inb,
            laid: None,
        }];
        let raws = self.engine.borrow_mut().exchange(
            self.ctx,
            &[SendSpec {
                peer,
                tag: send_tag,
                buf: out,
                laid: None,
            }],
            &mut recvs,
        )?;
        self.received(raws[0], cap)
    }

    /// Sends `buf` to `dest` and receives into the same buffer from `src` (MPI's
    /// `Sendrecv_replace`): the message received must fit `buf`. The outgoing data is copied
    /// first, so this costs one local copy of `buf` more than [`Comm::sendrecv`].
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Rotate a block around the ring, in place.
    /// let mut block = [rank as u64; 8];
    /// let st = world.sendrecv_replace(&mut block, (rank + 1) % size, 0, (rank + size - 1) % size, 0)?;
    /// assert_eq!(block[0], st.source() as u64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn sendrecv_replace<T: Pod>(
        &self,
        buf: &mut [T],
        dest: impl Into<Dest>,
        send_tag: u32,
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let _seen = self.seen("sendrecv_replace", std::mem::size_of_val(buf));
        let out = buf.to_vec();
        self.sendrecv(&out, dest, send_tag, buf, src, recv_tag)
    }
}
