//! MPI matching: the posted-receive queue and the unexpected-message queue.
//!
//! A message matches a receive when the communicator context is equal and the receive's source
//! and tag are equal to the message's or are wildcards. An arriving message takes the *oldest*
//! matching posted receive; a new receive takes the *oldest* matching unexpected message. Both
//! queues are kept in order, and messages from one peer arrive in the order sent (one connection
//! per pair), which together give MPI's non-overtaking rule.

use std::collections::VecDeque;

use crate::engine::ops::OpId;

pub(crate) struct Posted {
    pub op: OpId,
    pub ctx: u32,
    pub src: Option<usize>,
    pub tag: Option<u32>,
}

/// What an unexpected message holds until a receive takes it.
pub(crate) enum Body {
    /// The whole payload, buffered.
    Eager(Vec<u8>),
    /// Only the announcement of a rendezvous message; its payload waits at the sender (at
    /// address `pull`, if the receiver may copy it out itself).
    Rts {
        send_id: u64,
        pull: Option<super::pull::Offer>,
    },
}

pub(crate) struct Unexpected {
    pub ctx: u32,
    pub src: usize,
    pub tag: u32,
    pub len: usize,
    /// A synchronous eager message: acknowledge this send id when matched.
    pub ack: Option<u64>,
    pub body: Body,
}

fn matches(want_src: Option<usize>, want_tag: Option<u32>, src: usize, tag: u32) -> bool {
    want_src.is_none_or(|s| s == src) && want_tag.is_none_or(|t| t == tag)
}

#[derive(Default)]
pub(crate) struct Matching {
    posted: VecDeque<Posted>,
    /// With the number of their arrival, so that a message taken out by a matched probe and
    /// given back goes back to its place in the order.
    unexpected: VecDeque<(u64, Unexpected)>,
    arrivals: u64,
}

impl Matching {
    pub(crate) fn post(&mut self, p: Posted) {
        self.posted.push_back(p);
    }

    /// The oldest posted receive matching a message, removed from the queue.
    pub(crate) fn take_posted(&mut self, ctx: u32, src: usize, tag: u32) -> Option<OpId> {
        let i = self
            .posted
            .iter()
            .position(|p| p.ctx == ctx && matches(p.src, p.tag, src, tag))?;
        self.posted.remove(i).map(|p| p.op)
    }

    /// Whether a message would be taken by a posted receive.
    pub(crate) fn would_take(&self, ctx: u32, src: usize, tag: u32) -> bool {
        self.posted
            .iter()
            .any(|p| p.ctx == ctx && matches(p.src, p.tag, src, tag))
    }

    /// The posted receives, oldest first.
    pub(crate) fn posted(&self) -> impl Iterator<Item = &Posted> {
        self.posted.iter()
    }

    /// Removes a posted receive (it failed or was cancelled); whether it was still posted,
    /// waiting for a message.
    pub(crate) fn unpost(&mut self, op: OpId) -> bool {
        match self.posted.iter().position(|p| p.op == op) {
            Some(i) => {
                self.posted.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn push_unexpected(&mut self, u: Unexpected) {
        self.arrivals += 1;
        self.unexpected.push_back((self.arrivals, u));
    }

    /// The oldest unexpected message a receive would match, removed from the queue with its
    /// arrival number (a matched probe holds it; [`Matching::put_back`] returns it).
    pub(crate) fn take_held(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
    ) -> Option<(u64, Unexpected)> {
        let i = self.find(ctx, src, tag)?;
        self.unexpected.remove(i)
    }

    /// Returns a held message to its place among the unexpected ones (by arrival).
    pub(crate) fn put_back(&mut self, arrival: u64, u: Unexpected) {
        let at = self.unexpected.partition_point(|(a, _)| *a < arrival);
        self.unexpected.insert(at, (arrival, u));
    }

    /// The oldest unexpected message a receive would match, removed from the queue.
    pub(crate) fn take_unexpected(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
    ) -> Option<Unexpected> {
        let i = self.find(ctx, src, tag)?;
        self.unexpected.remove(i).map(|(_, u)| u)
    }

    /// The oldest unexpected message a receive would match, left in place (probe).
    pub(crate) fn peek_unexpected(
        &self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
    ) -> Option<&Unexpected> {
        self.find(ctx, src, tag)
            .and_then(|i| self.unexpected.get(i))
            .map(|(_, u)| u)
    }

    fn find(&self, ctx: u32, src: Option<usize>, tag: Option<u32>) -> Option<usize> {
        self.unexpected
            .iter()
            .position(|(_, u)| u.ctx == ctx && matches(src, tag, u.src, u.tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(src: usize, tag: u32) -> Unexpected {
        Unexpected {
            ctx: 0,
            src,
            tag,
            len: 0,
            ack: None,
            body: Body::Eager(vec![src as u8, tag as u8]),
        }
    }

    #[test]
    fn oldest_match_first_with_wildcards() {
        let mut m = Matching::default();
        m.push_unexpected(msg(1, 5));
        m.push_unexpected(msg(2, 5));
        m.push_unexpected(msg(1, 6));
        assert!(m.peek_unexpected(1, None, None).is_none(), "other context");
        assert_eq!(m.take_unexpected(0, Some(1), Some(6)).unwrap().tag, 6);
        assert_eq!(m.take_unexpected(0, None, Some(5)).unwrap().src, 1);
        assert_eq!(m.peek_unexpected(0, None, None).unwrap().src, 2);
        // A held message goes back to its place.
        m.push_unexpected(msg(3, 7));
        let (arrival, held) = m.take_held(0, Some(2), None).unwrap();
        assert_eq!(m.peek_unexpected(0, None, None).unwrap().src, 3);
        m.put_back(arrival, held);
        assert_eq!(
            m.take_unexpected(0, None, None).unwrap().src,
            2,
            "back before later ones"
        );
        assert_eq!(m.take_unexpected(0, None, None).unwrap().src, 3);
        m.post(Posted {
            op: 10,
            ctx: 0,
            src: None,
            tag: Some(9),
        });
        m.post(Posted {
            op: 11,
            ctx: 0,
            src: Some(3),
            tag: None,
        });
        m.post(Posted {
            op: 12,
            ctx: 0,
            src: None,
            tag: None,
        });
        assert_eq!(m.take_posted(0, 3, 9), Some(10));
        assert_eq!(m.take_posted(0, 3, 1), Some(11));
        assert_eq!(m.take_posted(0, 4, 1), Some(12));
        assert_eq!(m.take_posted(0, 4, 1), None);
        m.post(Posted {
            op: 13,
            ctx: 0,
            src: None,
            tag: None,
        });
        m.unpost(13);
        assert_eq!(m.take_posted(0, 0, 0), None);
    }
}
