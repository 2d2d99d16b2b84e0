//! Flow control for eager messages: what a rank may be made to hold for messages it did not
//! expect is bounded.
//!
//! An eager message travels with its payload, so a receiver that has not posted a matching
//! receive must buffer it: without a bound, a sender that posts many eager messages the receiver
//! is not yet asking for grows the receiver without limit (20,000 isends of 60 KiB took a
//! receiver to 1.2 GB) and, under a memory limit, kills it. So each sender keeps, per receiver, a
//! *window* of eager bytes it may have in flight: a message spends `len + PER_MESSAGE` of it when
//! sent eagerly, and the receiver gives it back (a [`Kind::Credit`](crate::wire::Kind) frame) once
//! the message has been taken by a receive, in batches of a quarter window so that the extra
//! frames cost nothing measurable. A message that does not fit in what is left of the window goes
//! by rendezvous instead: only its announcement (a queue entry) waits at the receiver, and its
//! payload stays in the sender's buffer until a receive matches it.
//!
//! Why this keeps every promise:
//! - **No message lost, order kept**: switching protocol changes how a payload travels, not when
//!   its header arrives. Matching happens on header arrival, in the order sent on the one
//!   connection between the pair, whatever the protocol.
//! - **No new deadlock**: a sender never *waits* for credit; it only changes protocol. A standard
//!   send may then wait for its receive, which MPI allows and a correct program does not rely on.
//!   Nonblocking sends never wait at all.
//! - **Bounded**: what a receiver holds for unexpected eager messages is at most one window per
//!   peer, and the windows add up to `MPR_UNEXPECTED_LIMIT` (the window of each peer is that limit
//!   divided among the other ranks).
//!
//! Messages matched on arrival spend window too (the sender cannot know which ones will be), and
//! their credit comes back just as fast, so a program that receives what it is sent never notices.

/// What one buffered unexpected message costs beyond its payload (its queue entry and the
/// allocation's bookkeeping), so that a flood of empty messages is bounded too.
pub(crate) const PER_MESSAGE: u64 = 128;

/// The credit state of one rank: as sender, toward each receiver; as receiver, owed to each sender.
pub(crate) struct Credit {
    /// Bytes each peer may have in flight toward this rank as eager messages.
    window: u64,
    /// Per peer: eager bytes this rank sent that the peer has not yet given back.
    in_flight: Vec<u64>,
    /// Per peer: eager bytes received from it and taken by receives, not yet given back.
    owed: Vec<u64>,
}

impl Credit {
    /// Credit for a job of `size` ranks where a rank may hold `limit` bytes of unexpected eager
    /// messages in all.
    pub(crate) fn new(size: usize, limit: u64) -> Credit {
        let peers = size.saturating_sub(1).max(1) as u64;
        Credit {
            window: limit / peers,
            in_flight: vec![0; size],
            owed: vec![0; size],
        }
    }

    /// What a message of `len` payload bytes spends of a window.
    fn cost(len: usize) -> u64 {
        len as u64 + PER_MESSAGE
    }

    /// Whether a message of `len` bytes to `peer` may go eagerly; if so, it spends its cost.
    pub(crate) fn take(&mut self, peer: usize, len: usize) -> bool {
        let after = self.in_flight[peer] + Self::cost(len);
        if after > self.window {
            return false;
        }
        self.in_flight[peer] = after;
        true
    }

    /// `peer` gave back `bytes` of its window.
    pub(crate) fn returned(&mut self, peer: usize, bytes: u64) {
        self.in_flight[peer] = self.in_flight[peer].saturating_sub(bytes);
    }

    /// An eager message of `len` bytes from `peer` was taken by a receive. Returns the credit to
    /// give back now, if enough has gathered.
    pub(crate) fn consumed(&mut self, peer: usize, len: usize) -> Option<u64> {
        let owed = self.owed[peer] + Self::cost(len);
        if owed >= (self.window / 4).max(1) {
            self.owed[peer] = 0;
            Some(owed)
        } else {
            self.owed[peer] = owed;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_past_its_window_is_refused_until_credit_returns() {
        let mut c = Credit::new(2, 4 * (1000 + PER_MESSAGE));
        for _ in 0..4 {
            assert!(c.take(1, 1000));
        }
        assert!(!c.take(1, 1000), "the window is spent");
        assert!(!c.take(1, 0), "even an empty message costs its queue entry");
        c.returned(1, 1000 + PER_MESSAGE);
        assert!(c.take(1, 1000));
        assert!(
            !c.take(0, 1 << 20),
            "a message larger than the window never goes eagerly"
        );
    }

    #[test]
    fn the_limit_is_shared_among_the_peers() {
        let c = Credit::new(5, 4 << 20);
        assert_eq!(c.window, 1 << 20);
        assert_eq!(
            Credit::new(1, 64).window,
            64,
            "a singleton sends only to itself"
        );
    }

    #[test]
    fn credit_goes_back_in_batches_of_a_quarter_window() {
        let mut c = Credit::new(2, 4 * 4 * (100 + PER_MESSAGE));
        let mut back = 0;
        let mut frames = 0;
        for _ in 0..16 {
            if let Some(b) = c.consumed(1, 100) {
                back += b;
                frames += 1;
            }
        }
        assert_eq!(frames, 4);
        assert_eq!(back, 16 * (100 + PER_MESSAGE));
        let mut zero = Credit::new(2, 0);
        assert_eq!(
            zero.consumed(1, 0),
            Some(PER_MESSAGE),
            "a zero window never owes"
        );
    }
}
