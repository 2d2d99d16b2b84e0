//! Single-copy rendezvous between ranks of one host.
//!
//! Through a socket, a large message is copied twice: from the sender's buffer into the kernel,
//! and from the kernel into the receiver's. Between two processes of one host the kernel can copy
//! straight from one process's memory into the other's (`process_vm_readv`/`writev`, in
//! `sys.rs`), once. One copier alone is no faster than the socket, though, whose two copies run
//! on both cores at once; so each side copies half:
//!
//! ```text
//! sender                                   receiver
//!   RTS + PULL (my buffer's address) ---->   matches a receive
//!                                    <----   CTS + PUSH (my buffer's address), [if large]
//!   writes the tail into the receiver        copies the head out of the sender
//!   Pushed ---------------------------->
//!                                    <----   CTS + PULLED (the sender's buffer is free)
//! ```
//!
//! The receive completes when both halves are in, the send when the receiver says it has
//! copied its part (and the sender has written its own). Below `protocol::PUSH_FROM` the receiver
//! copies everything and answers only CTS + PULLED. Measured (`mpr-bench bw`, BENCHMARKS.md):
//! C processes copying a 1 MiB message this way move 13 GB/s, one copier 9 GB/s, a Unix socket
//! 4.5 to 4.9.
//!
//! It is used only over a local link whose peer process this rank may read and write (checked
//! once per link when it comes up: `sys::can_reach`, against the process id the kernel gives for
//! the socket's peer, so a pid from another namespace can never be named by mistake). A sender
//! offers its buffer only when it may write its peer's memory too; with `MPR_PULL=0` neither is
//! offered and the payload goes through the socket. (Where a Yama ptrace policy would allow this
//! only towards ancestors, ranks allow it to their peers at start-up: `sys::allow_peers_to_copy`.)
//!
//! Laid-out messages (`buf.rs`): a side whose blocks are long (`buf::NAMED_BLOCKS_FROM`)
//! names a block list instead of its buffer (engine/place.rs), and the message goes as a
//! contiguous one, in the same halves, each copier handing the kernel its own blocks as local
//! iovecs and the other side's as remote ones. Remote iovecs cost more (the kernel pins each
//! one's pages on its own), so a side whose blocks are shorter copies only with its own blocks:
//! a laid-out *receive* copies all of the message itself, and a laid-out *send* offers to be
//! pushed ([`Offer::Push`]): the receiver asks it to write all of it and releases it with
//! CTS + PULLED at once. A pair that are both in such blocks goes through the link.
//!
//! A copy that fails (the peer died, or sent a bad address) fails the receive with `PeerFailed`;
//! it never completes with partial data. A receive whose sender is writing into it completes
//! only after the sender says it is done, or when the link to the sender breaks, which for a
//! peer that follows this protocol means it has exited (a rank closes its links only after its
//! operations are complete).

use std::collections::VecDeque;

use super::ops::{Op, OpId, RawStatus, RecvState};
use super::place::{publish, Place};
use super::protocol::{pull_head, Protocol};
use super::Core;
use crate::buf::RawSlice;
use crate::error::{Error, PeerCause};
use crate::wire::{Header, Kind, FLAG_DECLINE, FLAG_PULLED, FLAG_PUSH, MAX_MESSAGE_BYTES};

/// A copy this rank owes out of a sender's memory, made once the frames before it are out.
pub(crate) struct PendingPull {
    op: OpId,
    peer: usize,
    pid: u32,
    /// Where the sender's message lies.
    from: Place,
    /// Bytes to copy from its start.
    head: usize,
    /// The whole message.
    len: usize,
    send_id: u64,
}

/// What a request-to-send between ranks of one host offers (`FLAG_PULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Copy the message (its head, if large) out of the sender's memory, from there.
    Pull(Place),
    /// The message lies in blocks too short to be named (`buf.rs`): ask the sender to write
    /// all of it into the receive buffer, with its blocks as its own iovecs.
    Push,
}

/// Copies owed, in the order their messages matched.
pub(crate) type Pulls = VecDeque<PendingPull>;

impl Core {
    /// A receive (with room for `len` bytes) matched a request-to-send from `peer` that offered
    /// its message at `offer`. Takes the message on if the link allows: the receive becomes
    /// `Copying`, the sender is asked to push the tail if the message is large, and the head is
    /// queued for [`Core::run_pull`]. False: use the socket.
    pub(super) fn start_copy(
        &mut self,
        op: OpId,
        peer: usize,
        tag: u32,
        len: usize,
        send_id: u64,
        offer: Option<Offer>,
    ) -> bool {
        let (Some(offer), Some(pid)) = (offer, self.pull_from[peer]) else {
            return false;
        };
        let Some(Op::Recv(r)) = self.ops.get_mut(op) else {
            return false;
        };
        let Some(buf) = r.buf.as_ref().filter(|b| b.copies_once()) else {
            return false; // none yet, or short blocks: through the link
        };
        // Who copies what: the receiver the head, the sender the tail; a sender that only
        // pushes writes all of it, and a receiver that cannot be named copies all of it.
        let mut head = match offer {
            Offer::Pull(_) => pull_head(len),
            Offer::Push => 0,
        };
        // Where the sender is to write: this buffer, or the list of its blocks, kept with the
        // receive. The address travels in a length field, which decoding caps.
        let mine = match buf.addr() {
            _ if head == len => None,
            Some(addr) => Some(Place::Run(addr)),
            None if buf.named() => {
                r.list = publish(len, buf.runs(len));
                r.list.as_ref().map(Place::of)
            }
            None => None,
        }
        .filter(|p| p.addr() <= MAX_MESSAGE_BYTES);
        let from = match (offer, mine) {
            (Offer::Pull(from), _) => Some(from),
            (Offer::Push, Some(_)) => None,
            (Offer::Push, None) => return false, // both in short blocks: through the link
        };
        if mine.is_none() {
            head = len;
        }
        r.state = RecvState::Copying {
            peer,
            tag,
            len,
            pulled: head == 0,
            pushed: head == len,
            failed: false,
        };
        if let Some(place) = mine {
            let mut cts = self.cts(send_id, op, place.addr());
            cts.flags = FLAG_PUSH | place.flag();
            self.outbox.push((peer, cts, RawSlice::EMPTY, None));
        }
        match from {
            Some(from) => self.pulls.push_back(PendingPull {
                op,
                peer,
                pid,
                from,
                head,
                len,
                send_id,
            }),
            None => {
                // Nothing to copy here: the sender's buffer is free once it has written.
                let mut pulled = self.cts(send_id, op, len as u64);
                pulled.flags = FLAG_PULLED;
                self.outbox.push((peer, pulled, RawSlice::EMPTY, None));
            }
        }
        true
    }

    /// Copies the head of a message owed by [`Core::start_copy`] and tells the sender.
    pub(super) fn run_pull(&mut self, p: PendingPull) {
        let Some(Op::Recv(r)) = self.ops.get_mut(p.op) else {
            return; // failed meanwhile (its peer is gone)
        };
        let ok = match (&mut r.state, r.buf.as_mut()) {
            (RecvState::Copying { .. }, Some(buf)) => match (p.from, buf.addr()) {
                (Place::Run(addr), Some(_)) => {
                    crate::sys::pull(p.pid, addr, buf.range_mut(0, p.head)).is_ok()
                }
                (from, _) => from.runs(p.pid, p.len, 0, p.head).is_ok_and(|far| {
                    let mut blocks = buf.pieces_mut(0, p.head, usize::MAX);
                    crate::sys::pull_vectored(p.pid, &far, &mut blocks).is_ok()
                }),
            },
            _ => return,
        };
        if let RecvState::Copying { pulled, failed, .. } = &mut r.state {
            *pulled = true;
            *failed |= !ok;
        }
        let mut cts = self.cts(p.send_id, p.op, p.len as u64);
        cts.flags = FLAG_PULLED;
        self.outbox.push((p.peer, cts, RawSlice::EMPTY, None));
        self.finish_copy(p.op);
    }

    /// Sender: the receiver asks for the tail of the message at `h.len` (its buffer, or with
    /// `FLAG_BLOCKS` its block list).
    pub(super) fn push_tail(&mut self, peer: usize, h: &Header) -> Result<(), String> {
        let pid = self.pull_from[peer];
        let Some(Op::Send(s)) = self.ops.get_mut(h.send_id) else {
            return Err(format!("push request for unknown send {:#x}", h.send_id));
        };
        // A send that offered only to push (`Offer::Push`) writes all of it.
        let len = s.buf.len();
        let head = match (s.buf.addr(), &s.list) {
            (None, None) => 0,
            _ => pull_head(len),
        };
        let (Some(pid), true, true) = (
            pid,
            s.peer == peer && s.protocol == Protocol::Rendezvous,
            head < len,
        ) else {
            return Err("push request does not match its send".into());
        };
        let to = Place::named_by(h.flags, h.len);
        let ok = match (to, s.buf.addr()) {
            (Place::Run(addr), Some(_)) => {
                crate::sys::push(pid, s.buf.tail(head), addr.wrapping_add(head as u64)).is_ok()
            }
            (to, _) => to
                .runs(pid, len, head, len)
                .is_ok_and(|far| crate::sys::push_vectored(pid, s.buf.pieces(head), &far).is_ok()),
        };
        s.written = true;
        s.lent = true; // until the receiver has its head
        let mut pushed = Header::new(Kind::Pushed);
        pushed.src = self.me as u32;
        pushed.send_id = h.send_id;
        pushed.recv_id = h.recv_id;
        pushed.len = len as u64;
        if !ok {
            pushed.flags = FLAG_DECLINE;
        }
        self.outbox.push((peer, pushed, RawSlice::EMPTY, None));
        Ok(())
    }

    /// Receiver: the sender wrote the tail (or could not: `FLAG_DECLINE`).
    pub(super) fn on_pushed(&mut self, peer: usize, h: &Header) -> Result<(), String> {
        match self.ops.get_mut(h.recv_id) {
            Some(Op::Recv(r)) => match &mut r.state {
                RecvState::Copying {
                    peer: p,
                    len,
                    pushed,
                    failed,
                    ..
                } if *p == peer && *len as u64 == h.len && !*pushed => {
                    *pushed = true;
                    *failed |= h.flags & FLAG_DECLINE != 0;
                }
                _ => return Err("pushed frame does not match its receive".into()),
            },
            _ => return Err(format!("pushed frame for unknown receive {:#x}", h.recv_id)),
        }
        self.finish_copy(h.recv_id);
        Ok(())
    }

    /// Completes a `Copying` receive once both parts are in.
    fn finish_copy(&mut self, op: OpId) {
        let Some(Op::Recv(r)) = self.ops.get_mut(op) else {
            return;
        };
        let RecvState::Copying {
            peer,
            tag,
            len,
            pulled: true,
            pushed: true,
            failed,
        } = r.state
        else {
            return;
        };
        let result = if failed {
            Err(Error::PeerFailed {
                rank: peer,
                cause: PeerCause::Protocol(format!(
                    "could not copy a message of {len} bytes between the two processes"
                )),
            })
        } else {
            Ok(RawStatus {
                source: peer,
                tag,
                bytes: len,
            })
        };
        self.ops.complete(op, result);
    }

    /// A clear-to-send from this rank for `send_id`, naming receive `op`.
    pub(super) fn cts(&self, send_id: u64, op: OpId, len: u64) -> Header {
        let mut cts = Header::new(Kind::Cts);
        cts.src = self.me as u32;
        cts.send_id = send_id;
        cts.recv_id = op;
        cts.len = len;
        cts
    }
}
