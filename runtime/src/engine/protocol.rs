//! The one decision of how a message travels.
//!
//! - **Eager**: header and payload at once. The send completes when the bytes are handed to the
//!   kernel; a receiver that has not posted a matching receive buffers the payload.
//! - **Eager, synchronous**: the same frame marked `SYNC`; the receiver acknowledges when it
//!   matches, and the send completes then (`ssend` of a small message).
//! - **Rendezvous**: a request-to-send announces the message; when a receive matches it the
//!   receiver answers clear-to-send naming its buffer, and only then does the payload travel,
//!   from the sender's slice straight into the receiver's. A large unexpected message therefore
//!   costs the receiver a queue entry, never a buffer. It is synchronous by nature, so `ssend`
//!   of a large message uses it unchanged.

/// How one message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Eager,
    EagerSync,
    Rendezvous,
}

/// Chooses the protocol for a message of `len` bytes.
pub(crate) fn choose(len: usize, synchronous: bool, eager_limit: usize) -> Protocol {
    match (len <= eager_limit, synchronous) {
        (true, false) => Protocol::Eager,
        (true, true) => Protocol::EagerSync,
        (false, _) => Protocol::Rendezvous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_branch() {
        assert_eq!(choose(0, false, 0), Protocol::Eager);
        assert_eq!(choose(64, false, 64), Protocol::Eager);
        assert_eq!(choose(64, true, 64), Protocol::EagerSync);
        assert_eq!(choose(65, false, 64), Protocol::Rendezvous);
        assert_eq!(choose(65, true, 64), Protocol::Rendezvous);
    }
}
