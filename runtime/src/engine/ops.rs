//! Pending operations, addressed by ids that also travel on the wire (as send id / recv id), so
//! a clear-to-send or a data frame finds its operation directly. An id carries a generation, so a
//! stale or forged id from a peer finds nothing rather than someone else's buffer.

use crate::buf::{Alloc, Grown, RawMut, RawSlice};
use crate::engine::place::List;
use crate::engine::protocol::Protocol;
use crate::error::Result;

/// An operation id: slot index (low 32 bits) and generation (high 32 bits).
pub(crate) type OpId = u64;

/// What a completed operation reports (ranks in the world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStatus {
    pub source: usize,
    pub tag: u32,
    pub bytes: usize,
}

pub(crate) struct SendOp {
    pub peer: usize,
    pub buf: RawSlice,
    pub protocol: Protocol,
    /// The payload has been handed over (eager frame or data frame written).
    pub written: bool,
    /// A synchronous send was matched by its receiver.
    pub acked: bool,
    /// The receiver is still copying out of this buffer (engine/pull.rs).
    pub lent: bool,
    pub tag: u32,
    /// The communicator context (for the `--timeout` report).
    pub ctx: u32,
    /// The block list of a laid-out buffer offered to a peer on this host (engine/place.rs),
    /// which the peer reads while the op is pending.
    pub list: Option<List>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// In the posted queue, not matched.
    Posted,
    /// Matched a request-to-send; clear-to-send sent; waiting for the data frame.
    AwaitData { peer: usize, tag: u32, len: usize },
    /// Its payload is being read into it.
    Receiving,
    /// Matched a request-to-send from a rank of this host: this rank copies the message (or its
    /// head) out of the sender's memory and the sender writes the tail (engine/pull.rs).
    /// Complete when both parts are in; `failed` if either copy failed.
    Copying {
        peer: usize,
        tag: u32,
        len: usize,
        pulled: bool,
        pushed: bool,
        failed: bool,
    },
}

pub(crate) struct RecvOp {
    pub src: Option<usize>,
    /// The user's buffer, until it is handed to a payload destination.
    pub buf: Option<RawMut>,
    pub cap: usize,
    pub state: RecvState,
    /// A receive of unknown size: how to allocate its buffer when a message matches.
    pub grow: Option<Alloc>,
    /// The buffer so allocated (`buf` views it), kept with the result when the op completes.
    pub grown: Option<Box<dyn Grown>>,
    /// The block list of a laid-out buffer a peer on this host writes into (engine/place.rs).
    pub list: Option<List>,
}

impl RecvOp {
    /// A receive that matches nothing yet, into `buf`.
    pub(crate) fn new(src: Option<usize>, buf: Option<RawMut>) -> RecvOp {
        RecvOp {
            src,
            cap: buf.as_ref().map_or(0, RawMut::len),
            buf,
            state: RecvState::Posted,
            grow: None,
            grown: None,
            list: None,
        }
    }

    /// A message of `len` bytes matched this receive: a receive of unknown size allocates its
    /// buffer now. If memory runs out it gets none (capacity 0): the message is consumed as
    /// truncated, and the request reports [`crate::Error::OutOfMemory`].
    pub(crate) fn fit(&mut self, len: usize) {
        let Some(alloc) = self.grow.take() else {
            return;
        };
        let mut grown = alloc(len);
        let view = match grown.as_mut() {
            // SAFETY (RawMut::new): the vector's heap buffer does not move when the box does;
            // the box stays in this op and then in its completed slot (`Ops::complete`), and is
            // handed out only once the op has completed, when no view of it is left.
            Some(g) => unsafe { RawMut::new(g.bytes_mut()) },
            None => {
                // SAFETY (RawMut::new): an empty view refers to no memory.
                unsafe { RawMut::new(&mut []) }
            }
        };
        self.cap = view.len();
        self.buf = Some(view);
        self.grown = grown;
    }
}

pub(crate) enum Op {
    Send(SendOp),
    Recv(RecvOp),
    /// A nonblocking collective: its schedule lives in the engine's schedule list and completes
    /// this op when its last round is done.
    Coll,
}

enum Slot {
    Free,
    Pending(Op),
    Done(Result<RawStatus>, Option<Box<dyn Grown>>),
}

pub(crate) struct Ops {
    slots: Vec<(u32, Slot)>,
    free: Vec<u32>,
    pending: usize,
    /// Peers whose failure has failed an operation of this rank, not yet told to the launcher
    /// (which then knows this rank as their victim, should it fail too).
    victim_of: Vec<usize>,
    /// How many of `victim_of` the launcher has been told.
    told: usize,
    /// Buffers of completed receives of unknown size whose results were taken, until
    /// [`Ops::take_grown`] takes them.
    grown: Vec<(OpId, Box<dyn Grown>)>,
}

impl Ops {
    pub(crate) fn new() -> Ops {
        Ops {
            slots: Vec::new(),
            free: Vec::new(),
            pending: 0,
            victim_of: Vec::new(),
            told: 0,
            grown: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, op: Op) -> OpId {
        self.pending += 1;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, Slot::Free));
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Slot::Pending(op);
        ((slot.0 as u64) << 32) | idx as u64
    }

    /// An operation that finished as it started (a send that went whole at once).
    pub(crate) fn insert_done(&mut self, result: Result<RawStatus>) -> OpId {
        let id = self.insert(Op::Coll);
        self.complete(id, result);
        id
    }

    fn slot(&self, id: OpId) -> Option<&Slot> {
        let (idx, gen) = ((id & 0xffff_ffff) as usize, (id >> 32) as u32);
        self.slots.get(idx).filter(|s| s.0 == gen).map(|s| &s.1)
    }

    fn slot_mut(&mut self, id: OpId) -> Option<&mut Slot> {
        let (idx, gen) = ((id & 0xffff_ffff) as usize, (id >> 32) as u32);
        self.slots
            .get_mut(idx)
            .filter(|s| s.0 == gen)
            .map(|s| &mut s.1)
    }

    /// Every pending operation.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Op> {
        self.slots.iter().filter_map(|s| match &s.1 {
            Slot::Pending(op) => Some(op),
            _ => None,
        })
    }

    /// The pending operation `id`, if there is one.
    pub(crate) fn get_mut(&mut self, id: OpId) -> Option<&mut Op> {
        match self.slot_mut(id) {
            Some(Slot::Pending(op)) => Some(op),
            _ => None,
        }
    }

    /// Ends a pending operation: its buffer view is dropped here, its result kept until taken.
    pub(crate) fn complete(&mut self, id: OpId, result: Result<RawStatus>) {
        let failed_by = match &result {
            Err(crate::Error::PeerFailed { rank, .. }) => Some(*rank),
            _ => None,
        };
        if let Some(slot) = self.slot_mut(id) {
            if matches!(slot, Slot::Pending(_)) {
                let grown = match std::mem::replace(slot, Slot::Free) {
                    // The op's view of the buffer ends here (the op is gone), before the
                    // buffer can be handed out.
                    Slot::Pending(Op::Recv(r)) => r.grown,
                    _ => None,
                };
                *slot = Slot::Done(result, grown);
                self.pending -= 1;
                if let Some(rank) = failed_by {
                    self.note_victim(rank);
                }
            }
        }
    }

    /// Records that peer `rank`'s failure failed an operation of this rank.
    pub(crate) fn note_victim(&mut self, rank: usize) {
        if !self.victim_of.contains(&rank) {
            self.victim_of.push(rank);
        }
    }

    /// The peers recorded by [`Ops::note_victim`] and not returned before (each peer once).
    pub(crate) fn untold_victim_of(&mut self) -> &[usize] {
        let from = std::mem::replace(&mut self.told, self.victim_of.len());
        &self.victim_of[from..]
    }

    pub(crate) fn is_done(&self, id: OpId) -> bool {
        !matches!(self.slot(id), Some(Slot::Pending(_)))
    }

    /// Takes a completed operation's result and frees its slot. `None` while it is pending or if
    /// `id` is unknown.
    pub(crate) fn take(&mut self, id: OpId) -> Option<Result<RawStatus>> {
        let idx = (id & 0xffff_ffff) as u32;
        let slot = self.slot_mut(id)?;
        if !matches!(slot, Slot::Done(..)) {
            return None;
        }
        let Slot::Done(r, grown) = std::mem::replace(slot, Slot::Free) else {
            return None;
        };
        self.free.push(idx);
        if let Some(g) = grown {
            self.grown.push((id, g));
        }
        Some(r)
    }

    /// The buffer a receive of unknown size allocated, once its result was taken.
    pub(crate) fn take_grown(&mut self, id: OpId) -> Option<Box<dyn Grown>> {
        let i = self.grown.iter().position(|(o, _)| *o == id)?;
        Some(self.grown.swap_remove(i).1)
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending
    }

    /// Ids of every pending operation.
    pub(crate) fn pending_ids(&self) -> Vec<OpId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.1, Slot::Pending(_)))
            .map(|(i, s)| ((s.0 as u64) << 32) | i as u64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv() -> Op {
        Op::Recv(RecvOp::new(None, None))
    }

    #[test]
    fn ids_are_generation_checked() {
        let mut ops = Ops::new();
        let a = ops.insert(recv());
        assert!(ops.get_mut(a).is_some());
        assert!(!ops.is_done(a));
        assert!(ops.take(a).is_none(), "pending results cannot be taken");
        ops.complete(
            a,
            Ok(RawStatus {
                source: 1,
                tag: 2,
                bytes: 3,
            }),
        );
        assert_eq!(ops.pending_count(), 0);
        assert_eq!(ops.take(a).unwrap().unwrap().bytes, 3);
        let b = ops.insert(recv());
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "slot reused");
        assert!(ops.get_mut(a).is_none(), "stale id finds nothing");
        assert!(
            ops.get_mut(b ^ (1 << 40)).is_none(),
            "forged id finds nothing"
        );
        assert_eq!(ops.pending_ids(), vec![b]);
    }
}
