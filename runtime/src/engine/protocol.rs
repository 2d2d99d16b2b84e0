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
//!   of a large message uses it unchanged. Between ranks of one host the payload streams
//!   through the pair's shared-memory ring up to `Tuning::pull_from` (32 KiB), and from there
//!   the two processes copy it between their memories (engine/pull.rs, [`pull_head`]); the copy
//!   starts slower (it pins pages) but runs faster, and needs only one of the two ranks on a
//!   core, so ranks that outnumber the cores use it for every rendezvous message. Below the
//!   eager limit too: a message of a host's rank of `pull_from` bytes or more (and at least
//!   [`PULL_MIN`]) goes by rendezvous and that copy, as Open MPI's shared memory does from 4 KiB
//!   with the same copy (CMA).

/// Of a rendezvous message between ranks of one host, the bytes the receiver copies out of the
/// sender's memory itself (engine/pull.rs); the sender writes the rest into the receiver's
/// memory at the same time, so both cores copy. Below [`PUSH_FROM`] the receiver copies it all
/// (one control frame fewer); the split is page-aligned.
pub(crate) fn pull_head(len: usize) -> usize {
    if len < PUSH_FROM {
        len
    } else {
        (len / 2) & !4095
    }
}

/// The least a message between ranks of one host must hold to go by one copy below the eager
/// limit (`Tuning::pull_from` set lower, say to 0 for every rendezvous message, still leaves
/// small messages eager: the copy pins pages, and costs a round trip first).
pub(crate) const PULL_MIN: usize = 4096;

/// Whether a message of `len` bytes between ranks of one host that both copy (see
/// `Engine::copies_once`) is large enough for one copy, by rendezvous, below the eager limit.
pub(crate) fn pulls_below_eager(len: usize, pull_from: usize) -> bool {
    len >= pull_from.max(PULL_MIN)
}

/// Messages of at least this many bytes are copied half by each side (see [`pull_head`]).
pub(crate) const PUSH_FROM: usize = 256 << 10;

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
        assert!(pulls_below_eager(32 << 10, 32 << 10));
        assert!(!pulls_below_eager((32 << 10) - 1, 32 << 10));
        assert!(!pulls_below_eager(4095, 0), "small messages stay eager");
        assert!(pulls_below_eager(4096, 0));
        assert!(
            !pulls_below_eager(1 << 20, usize::MAX),
            "MPR_PULL_FROM at its largest: never"
        );
    }

    #[test]
    fn pull_head_splits_large_messages_on_a_page() {
        assert_eq!(pull_head(PUSH_FROM - 1), PUSH_FROM - 1);
        for len in [PUSH_FROM, PUSH_FROM + 1, (16 << 20) + 3] {
            let h = pull_head(len);
            assert!(h > 0 && h < len && h % 4096 == 0, "{len} -> {h}");
            assert!(len - h >= h, "{len} -> {h}");
        }
    }
}
