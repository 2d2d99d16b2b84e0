//! Nonblocking point-to-point: start an operation, keep computing, then `wait` or `test` it.
//! The requests live in an [`mpr::scope`](crate::scope), which is what makes borrowing the
//! buffers sound (see `scope.rs`).

use bytemuck::Pod;

use super::p2p::{Source, TagMatch};
use super::Comm;
use super::{bytes, bytes_mut};
use crate::error::Result;
use crate::scope::{Request, Scope};

impl Comm {
    /// Starts sending `buf` to `dest`. The buffer stays borrowed until the scope ends; the request
    /// completes when the buffer could be reused (as [`Comm::send`] returns).
    pub fn isend<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: usize,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let peer = self.world_rank(dest)?;
        s.start_send(self, peer, tag, bytes(buf), false)
    }

    /// Starts a synchronous-mode send: the request completes once the receiver has matched it.
    pub fn issend<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope [T],
        dest: usize,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let peer = self.world_rank(dest)?;
        s.start_send(self, peer, tag, bytes(buf), true)
    }

    /// Posts a receive into `buf` from `src` (a rank or [`ANY_SOURCE`](crate::ANY_SOURCE)) with
    /// `tag` (or [`ANY_TAG`](crate::ANY_TAG)). Bytes are read from the socket straight into `buf`
    /// when the receive is posted before the message arrives.
    pub fn irecv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<'scope>> {
        let src = self.src(src.into())?;
        let tag = tag.into().as_option();
        s.start_recv(self, src, tag, bytes_mut(buf))
    }
}
