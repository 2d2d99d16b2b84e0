//! Point-to-point with layouts: `send_layout`, `recv_layout`, `sendrecv_layout`,
//! `isend_layout` (the layouts themselves: `layout.rs`).
//!
//! A layout of one block goes as the slice it names. A layout of several blocks averaging under
//! `layout::PACK_BELOW` bytes is packed into one message (and a receive unpacked from one), a
//! tight copy loop being cheaper than a slice per block. Any other goes where its blocks lie,
//! with no packing copy: the engine holds a laid-out view of the buffer (`buf.rs`),
//! whose blocks the transport gathers into one `writev` or ring record and scatters arriving
//! bytes into (`transport/net/peer.rs`). Between two ranks of one host such a message travels
//! through their ring rather than by the single copy of `engine/pull.rs`, which would have
//! to pin pages block by block (BENCHMARKS.md, "Issue 17"). The message is the elements in
//! travel order either way, so a strided send matches a contiguous receive and the other way
//! round.

use bytemuck::Pod;

use super::p2p::{Dest, Source, Status, TagMatch};
use super::Comm;
use super::{bytes, bytes_mut};
use crate::engine::{RecvSpec, SendSpec};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::scope::{Request, Scope};

impl Comm {
    /// Sends the elements of `buf` that `layout` names, in its order, to `dest`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// // Column 1 of a 3 x 4 matrix goes out (the column layout, on the matrix from element 1);
    /// // it arrives as a row of 3.
    /// let m: Vec<u32> = (0..12).collect();
    /// world.send_layout(&m[1..], &mpr::Layout::vector(3, 1, 4), me, 0)?;
    /// let mut col = [0u32; 3];
    /// world.recv(&mut col, me, 0)?;
    /// assert_eq!(col, [1, 5, 9]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn send_layout<T: Pod>(
        &self,
        buf: &[T],
        layout: &Layout,
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<()> {
        let _seen = self.seen("send_layout", std::mem::size_of_val(buf));
        layout.check("send_layout", buf.len(), false)?;
        if let Some(run) = layout.run() {
            return self.send(&buf[run], dest, tag);
        }
        let dest = dest.into();
        let Some(peer) = self.dest(dest)? else {
            return Ok(());
        };
        if self.packs(layout, std::mem::size_of::<T>(), Some(peer)) {
            let mut packed = self.take_scratch();
            layout.pack_bytes_into(buf, &mut packed);
            let r = self.send(&packed[..], dest, tag);
            self.give_scratch(packed);
            return r;
        }
        let laid = Some(layout.laid(std::mem::size_of::<T>()));
        self.engine
            .borrow_mut()
            .send_laid(self.ctx, peer, tag, bytes(buf), laid, false)
            .map(|_| ())
    }

    /// Receives a message into the elements of `buf` that `layout` names, in its order;
    /// elements beyond the message's length stay as they were. `Truncated` if the message has
    /// more elements than the layout.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&[7u32, 8, 9], me, 0)?;
    /// let mut m = [0u32; 12];
    /// world.recv_layout(&mut m, &mpr::Layout::vector(3, 1, 4), me, 0)?; // into column 0
    /// assert_eq!((m[0], m[4], m[8]), (7, 8, 9));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn recv_layout<T: Pod>(
        &self,
        buf: &mut [T],
        layout: &Layout,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let _seen = self.seen("recv_layout", std::mem::size_of_val(buf));
        layout.check("recv_layout", buf.len(), true)?;
        if let Some(run) = layout.run() {
            return self.recv(&mut buf[run], src, tag);
        }
        let size = std::mem::size_of::<T>();
        let src = src.into();
        if src == Source::Null {
            return Ok(Status::null());
        }
        let peer = self.src(src)?;
        if self.packs(layout, size, peer) {
            let mut packed = self.take_scratch();
            packed.resize(layout.count() * size, 0);
            let r = self
                .recv(&mut packed[..], src, tag)
                .and_then(|st| unpack_received(layout, &packed, buf, &st).map(|_| st));
            self.give_scratch(packed);
            return r;
        }
        let src = peer;
        let tag = tag.into().as_option();
        let laid = Some(layout.laid(size));
        let raw = self
            .engine
            .borrow_mut()
            .recv_laid(self.ctx, src, tag, bytes_mut(buf), laid)?;
        whole(
            "recv_layout",
            self.received(raw, layout.count() * size)?,
            size,
        )
    }

    /// [`Comm::sendrecv`] with a layout on each side.
    #[allow(clippy::too_many_arguments)]
    pub fn sendrecv_layout<S: Pod, R: Pod>(
        &self,
        out: &[S],
        out_layout: &Layout,
        dest: impl Into<Dest>,
        send_tag: u32,
        inb: &mut [R],
        in_layout: &Layout,
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let _seen = self.seen("sendrecv_layout", std::mem::size_of_val(out));
        let (dest, src) = (dest.into(), src.into());
        let to = self.dest(dest)?;
        let from = if src == Source::Null {
            None
        } else {
            self.src(src)?
        };
        if self.packs(out_layout, std::mem::size_of::<S>(), to)
            || self.packs(in_layout, std::mem::size_of::<R>(), from)
        {
            return self.sendrecv_packed(
                out, out_layout, dest, send_tag, inb, in_layout, src, recv_tag,
            );
        }
        out_layout.check("sendrecv_layout", out.len(), false)?;
        in_layout.check("sendrecv_layout", inb.len(), true)?;
        let Some(peer) = self.dest(dest)? else {
            return self.recv_layout(inb, in_layout, src, recv_tag);
        };
        if src == Source::Null {
            self.send_layout(out, out_layout, dest, send_tag)?;
            return Ok(Status::null());
        }
        let src = self.src(src)?;
        let tag = recv_tag.into().as_option();
        let size = std::mem::size_of::<R>();
        let mut recvs = [RecvSpec {
            src,
            tag,
            buf: bytes_mut(inb),
            laid: Some(in_layout.laid(size)),
        }];
        let sends = [SendSpec {
            peer,
            tag: send_tag,
            buf: bytes(out),
            laid: Some(out_layout.laid(std::mem::size_of::<S>())),
        }];
        let raws = self
            .engine
            .borrow_mut()
            .exchange(self.ctx, &sends, &mut recvs)?;
        let st = self.received(raws[0], in_layout.count() * size)?;
        whole("sendrecv_layout", st, size)
    }

    /// [`Comm::sendrecv_layout`] with either side packed ([`Layout::packs`]).
    #[allow(clippy::too_many_arguments)]
    fn sendrecv_packed<S: Pod, R: Pod>(
        &self,
        out: &[S],
        out_layout: &Layout,
        dest: impl Into<Dest>,
        send_tag: u32,
        inb: &mut [R],
        in_layout: &Layout,
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        out_layout.check("sendrecv_layout", out.len(), false)?;
        in_layout.check("sendrecv_layout", inb.len(), true)?;
        // Packed sides go through the engine's spare buffers (as bytes).
        let mut packed_out = Vec::new();
        let out: &[u8] = match out_layout.run() {
            Some(run) => bytemuck::cast_slice(&out[run]),
            None => {
                packed_out = self.take_scratch();
                out_layout.pack_bytes_into(out, &mut packed_out);
                &packed_out
            }
        };
        let r = match in_layout.run() {
            Some(run) => self.sendrecv(out, dest, send_tag, &mut inb[run], src, recv_tag),
            None => {
                let mut packed = self.take_scratch();
                packed.resize(in_layout.count() * std::mem::size_of::<R>(), 0);
                let r = self
                    .sendrecv(out, dest, send_tag, &mut packed[..], src, recv_tag)
                    .and_then(|st| unpack_received(in_layout, &packed, inb, &st).map(|_| st));
                self.give_scratch(packed);
                r
            }
        };
        if packed_out.capacity() > 0 {
            self.give_scratch(packed_out);
        }
        r
    }

    /// Starts sending the elements of `buf` that `layout` names, where they lie (the request
    /// keeps a copy of the layout until the send has completed), or packed into a buffer the
    /// request owns when its blocks are small ([`Layout::packs`]).
    pub fn isend_layout<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        layout: &Layout,
        dest: impl Into<Dest>,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("isend_layout", std::mem::size_of_val(buf));
        layout.check("isend_layout", buf.len(), false)?;
        match layout.run() {
            Some(run) => self.isend(s, &buf[run], dest, tag),
            None => match self.dest(dest.into())? {
                Some(peer) if self.packs(layout, std::mem::size_of::<T>(), Some(peer)) => {
                    s.start_send_owned(self, peer, tag, layout.pack_bytes(buf), false)
                }
                Some(peer) => s.start_send_laid(
                    self,
                    peer,
                    tag,
                    bytes(buf),
                    layout.clone(),
                    std::mem::size_of::<T>(),
                ),
                None => s.done(self, Status::null()),
            },
        }
    }
}

/// A laid-out receive's status, once it is known to hold whole elements of `size` bytes.
fn whole(what: &'static str, st: Status, size: usize) -> Result<Status> {
    if size > 0 && st.bytes() % size != 0 {
        return Err(Error::not_whole(what, st.bytes(), size));
    }
    Ok(st)
}

impl Comm {
    /// Whether a message of `layout` (elements of `unit` bytes) with world rank `peer` (any
    /// rank: `None`) is packed ([`Layout::packs`]), for the path it takes.
    pub(crate) fn packs(&self, layout: &Layout, unit: usize, peer: Option<usize>) -> bool {
        layout.packs(unit, self.engine.borrow().rings_to(peer))
    }

    /// A buffer for packed elements, from the engine's spares (empty if it has none).
    fn take_scratch(&self) -> Vec<u8> {
        self.engine.borrow_mut().scratch.pop().unwrap_or_default()
    }

    /// Back to the spares, for the next packed layout (a few kept at most).
    fn give_scratch(&self, v: Vec<u8>) {
        let mut e = self.engine.borrow_mut();
        if e.scratch.len() < 4 {
            e.scratch.push(v);
        }
    }
}

/// Unpacks what a receive of `st` put into `packed` (bytes; whole elements only).
fn unpack_received<T: Pod>(
    layout: &Layout,
    packed: &[u8],
    buf: &mut [T],
    st: &Status,
) -> Result<()> {
    let size = std::mem::size_of::<T>();
    if size > 0 && st.bytes() % size != 0 {
        return Err(Error::not_whole("recv_layout", st.bytes(), size));
    }
    layout.unpack_bytes(&packed[..st.bytes().min(packed.len())], buf);
    Ok(())
}
