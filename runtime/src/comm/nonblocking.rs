//! Nonblocking point-to-point: start an operation, keep computing, then `wait` or `test` it.
//! The requests live in an [`mpr::scope`](crate::scope), which is what makes borrowing the
//! buffers sound (see `scope.rs`).

use bytemuck::Pod;

use super::p2p::{Dest, Source, Status, TagMatch};
use super::Comm;
use super::{bytes, bytes_mut};
use crate::error::Result;
use crate::scope::{BufRequest, Request, Scope, VecRequest};

impl Comm {
    /// Starts sending `buf` to `dest`. The buffer stays borrowed until the scope ends; the request
    /// completes when the buffer could be reused (as [`Comm::send`] returns).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let edge = vec![rank as f64; 256]; // declared outside the scope: it must outlive the requests
    /// let mut ghost = vec![0.0f64; 256];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let send = world.isend(s, &edge, (rank + 1) % size, 0)?;
    ///     let recv = world.irecv(s, &mut ghost, (rank + size - 1) % size, 0)?;
    ///     // ... compute on the interior while the edges move ...
    ///     mpr::wait_all(vec![send, recv])?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn isend<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("isend", std::mem::size_of_val(buf));
        match self.dest(dest.into())? {
            Some(peer) => {
                self.about(peer, tag);
                s.start_send(self, peer, tag, bytes(buf), false)
            }
            None => s.done(self, Status::null()),
        }
    }

    /// Starts a synchronous-mode send: the request completes once the receiver has matched it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let token = [rank as u32];
    /// let mut got = [0u32];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.irecv(s, &mut got, (rank + size - 1) % size, 0)?;
    ///     // Completes once the next rank's receive has matched it (not merely once it is buffered).
    ///     let z = world.issend(s, &token, (rank + 1) % size, 0)?;
    ///     z.wait()?;
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn issend<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("issend", std::mem::size_of_val(buf));
        match self.dest(dest.into())? {
            Some(peer) => s.start_send(self, peer, tag, bytes(buf), true),
            None => s.done(self, Status::null()),
        }
    }

    /// Posts a receive into `buf` from `src` (a rank or [`ANY_SOURCE`](crate::ANY_SOURCE)) with
    /// `tag` (or [`ANY_TAG`](crate::ANY_TAG)). Bytes are read from the socket straight into `buf`
    /// when the receive is posted before the message arrives.
    ///
    /// **The buffer stays borrowed until the scope ends**, not only until the request is waited
    /// for: the borrow checker cannot see when a request completes, and the scope is what makes
    /// a leaked request harmless. So the data is read after the scope returns, and the buffer
    /// must be declared outside it. Two patterns cover what this rules out:
    ///
    /// - *Many receives into one buffer*: split it with `chunks_mut` (or `split_at_mut`), one
    ///   part per request, as below.
    /// - *A loop that uses what arrived before the next receive*: one scope per iteration; the
    ///   buffer is yours again at the end of each.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Many receives into one buffer: `chunks_mut` gives each its own part.
    /// let mine = [rank as u32; 4];
    /// let mut rows = vec![0u32; 4 * size];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut reqs = Vec::new();
    ///     for (src, row) in rows.chunks_mut(4).enumerate() {
    ///         reqs.push(world.irecv(s, row, src, 0)?);
    ///     }
    ///     for dest in 0..size {
    ///         reqs.push(world.isend(s, &mine, dest, 0)?);
    ///     }
    ///     mpr::wait_all(reqs)?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(rows[4 * (size - 1)], (size - 1) as u32); // the scope has ended: rows is ours again
    ///
    /// // A scope per iteration: the buffer comes back at the end of each one.
    /// let mut ghost = [0.0f64; 16];
    /// let mut sum = 0.0;
    /// for step in 0..3u32 {
    ///     let edge = [step as f64; 16];
    ///     mpr::scope(|s| -> mpr::Result<()> {
    ///         let r = world.irecv(s, &mut ghost, (rank + size - 1) % size, step)?;
    ///         let q = world.isend(s, &edge, (rank + 1) % size, step)?;
    ///         mpr::wait_all(vec![r, q])?;
    ///         Ok(())
    ///     })?;
    ///     sum += ghost[0]; // read what arrived, then start the next step
    /// }
    /// assert_eq!(sum, 3.0);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn irecv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("irecv", std::mem::size_of_val(buf));
        let src = src.into();
        if src == Source::Null {
            return s.done(self, Status::null());
        }
        let src = self.src(src)?;
        let tag = tag.into().as_option();
        if let (Some(p), Some(t)) = (src, tag) {
            self.about(p, t);
        }
        s.start_recv(self, src, tag, bytes_mut(buf))
    }

    /// [`Comm::irecv`] that hands its buffer back: [`BufRequest::wait`] returns it with the
    /// message in it, inside the scope, to be read and posted again.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    /// let mut ghost = vec![0.0f64; 8];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut g: &mut [f64] = &mut ghost;
    ///     for step in 0..3 {
    ///         let edge = [step as f64; 8];
    ///         let r = world.irecv_buf(s, g, left, step)?;
    ///         world.send(&edge, right, step)?;
    ///         let (back, _) = r.wait()?;
    ///         assert_eq!(back[0], step as f64); // use what arrived before the next step
    ///         g = back;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn irecv_buf<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<BufRequest<'scope, T>> {
        let _seen = self.seen("irecv_buf", std::mem::size_of_val(buf));
        let src = self.src(src.into())?;
        let tag = tag.into().as_option();
        BufRequest::start(buf, |bytes| s.start_recv(self, src, tag, bytes))
    }

    /// [`Comm::isend`] of a buffer borrowed mutably, handed back by [`BufRequest::wait`] once
    /// it may be reused: fill it again and send it again inside the same scope.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let mut out = vec![0u32; 16];
    /// let mut inb = [0u32; 16];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut o: &mut [u32] = &mut out;
    ///     for step in 0..3 {
    ///         o.fill(step);
    ///         let q = world.isend_buf(s, o, me, 0)?;
    ///         world.recv(&mut inb, me, 0)?;
    ///         o = q.wait()?.0; // ours again: the next step refills it
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(inb[0], 2);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn isend_buf<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        dest: usize,
        tag: u32,
    ) -> Result<BufRequest<'scope, T>> {
        let _seen = self.seen("isend_buf", std::mem::size_of_val(buf));
        let peer = self.world_rank(dest)?;
        BufRequest::start(buf, |bytes| s.start_send(self, peer, tag, bytes, false))
    }

    /// Posts a receive whose size is not known in advance (the nonblocking [`Comm::recv_vec`]):
    /// its buffer is allocated when a message matches, for exactly that message, and
    /// [`VecRequest::wait`] returns it as a `Vec<T>`. It matches in the order posted, as every
    /// receive does. A message too large to allocate is consumed and reported as
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.irecv_vec::<u32>(s, mpr::ANY_SOURCE, 8)?;
    ///     world.send(&[4u32, 5, 6], me, 8)?;
    ///     let (v, st) = r.wait()?;
    ///     assert_eq!((v, st.source()), (vec![4, 5, 6], me));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn irecv_vec<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<VecRequest<'scope, T>> {
        let _seen = self.seen("irecv_vec", 0);
        if std::mem::size_of::<T>() == 0 {
            return Err(crate::Error::InvalidArgument {
                what: "irecv_vec",
                detail: "zero-sized element type".into(),
            });
        }
        let src = self.src(src.into())?;
        let tag = tag.into().as_option();
        let (req, op) = s.start_recv_grown(self, src, tag, crate::buf::alloc_vec::<T>)?;
        Ok(VecRequest::new(req, op))
    }
}
