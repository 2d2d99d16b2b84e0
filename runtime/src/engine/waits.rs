//! What a rank waits for, in words, for the launcher's `--timeout` report.
//!
//! When a job runs out of time, mprun asks every rank (over its rendezvous connection, which the
//! poller watches) what it is blocked on, prints who waits for whom, and names a cycle if there
//! is one. The answer comes from the engine's own books: posted receives (with source, tag and
//! communicator; a collective's are named by family and call number, from the tag), sends not
//! yet taken by their receiver, and a collective waiting in the node's shared segment.

use super::ops::{Op, RecvState};
use super::protocol::Protocol;
use super::Engine;

/// A communicator by its number (the context of its point-to-point traffic) and its name, if
/// it was given one ([`crate::Comm::set_name`]).
fn comm_words(ctx: u32, names: &Names) -> String {
    match names.get(&ctx) {
        Some(n) => format!("communicator {ctx} ({n:?})"),
        None => format!("communicator {ctx}"),
    }
}

/// Communicators' names by context.
pub(crate) type Names = std::collections::HashMap<u32, String>;

/// A communicator context and tag in words.
pub(crate) fn describe(ctx: u32, tag: Option<u32>, names: &Names) -> String {
    if ctx % 2 == 1 {
        let what = tag.map_or("collective".to_string(), |t| {
            let (family, call) = super::coll_tag::decode(t);
            format!("{family} #{call}")
        });
        return format!("{what} on {}", comm_words(ctx - 1, names));
    }
    let tag = tag.map_or("any tag".to_string(), |t| format!("tag {t}"));
    if ctx == 0 && !names.contains_key(&0) {
        tag
    } else {
        format!("{tag} on {}", comm_words(ctx, names))
    }
}

/// A collective waiting in the node's shared segment: kept as parts and put in words only for a
/// report (a `format!` on every call was a tenth of an 8-byte broadcast).
pub(crate) struct NodeWait {
    pub(crate) what: &'static str,
    pub(crate) seq: u32,
    pub(crate) ctx: u32,
}

impl NodeWait {
    fn describe(&self, names: &Names) -> String {
        format!(
            "{} #{} on {} (shared memory), waiting for the other ranks",
            self.what,
            self.seq,
            comm_words(self.ctx, names)
        )
    }
}

impl Engine {
    /// Everything this rank waits for: (the rank waited on, if one, and what for).
    pub(crate) fn blocked_on(&self) -> Vec<(Option<usize>, String)> {
        let mut out = Vec::new();
        if let Some(what) = &self.node_wait {
            out.push((None, what.describe(&self.names)));
        }
        for p in self.core.matching.posted() {
            let from = p
                .src
                .map_or("any rank".to_string(), |s| format!("rank {s}"));
            out.push((
                p.src,
                format!(
                    "receive from {from}, {}",
                    describe(p.ctx, p.tag, &self.names)
                ),
            ));
        }
        let net = self.transport.net_ref();
        for op in self.core.ops.pending() {
            match op {
                Op::Send(s) => {
                    let what = match s.protocol {
                        // Not yet handed to the kernel: the link is still being made, or the
                        // socket is full (the receiver does not read).
                        _ if !s.written && net.is_some_and(|n| n.connecting(s.peer)) => {
                            "send (connecting to it)"
                        }
                        Protocol::Eager | Protocol::EagerSync if !s.written => {
                            "send (not yet written: the connection is full)"
                        }
                        Protocol::EagerSync if !s.acked => "ssend",
                        Protocol::Rendezvous if !s.written => {
                            "send (the receiver has not taken it)"
                        }
                        Protocol::Rendezvous if s.lent => "send (the receiver is copying it)",
                        _ => continue,
                    };
                    out.push((
                        Some(s.peer),
                        format!(
                            "{what} to rank {}, {}",
                            s.peer,
                            describe(s.ctx, Some(s.tag), &self.names)
                        ),
                    ));
                }
                // Matched, its data still on the way (a large message, or a copy between ranks
                // of this host).
                Op::Recv(r) => match r.state {
                    RecvState::AwaitData { peer, tag, .. }
                    | RecvState::Copying { peer, tag, .. } => out.push((
                        Some(peer),
                        format!(
                            "receive from rank {peer}, tag {tag} (matched; its data on the way)"
                        ),
                    )),
                    RecvState::Receiving => {
                        out.push((r.src, "receive (its data arriving)".to_string()))
                    }
                    RecvState::Posted => {}
                },
                Op::Coll => {}
            }
        }
        if let (Some(peers), Some(n)) = (&self.finalizing, net) {
            for &p in peers.iter().filter(|&&p| !n.peer_done(p)) {
                out.push((
                    Some(p),
                    format!("finalize (waiting for rank {p} to finalize too)"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{describe, Names};

    #[test]
    fn contexts_and_tags_in_words() {
        let none = Names::new();
        assert_eq!(describe(0, Some(5), &none), "tag 5");
        assert_eq!(describe(0, None, &none), "any tag");
        assert_eq!(describe(4, Some(1), &none), "tag 1 on communicator 4");
        assert_eq!(
            describe(1, Some(3 << 20), &none),
            "barrier #3 on communicator 0"
        );
        assert_eq!(
            describe(5, Some((7 << 20) | (3 << 16)), &none),
            "allreduce #7 on communicator 4"
        );
        let names = Names::from([(4, "rows".to_string()), (0, "world".to_string())]);
        assert_eq!(
            describe(4, Some(1), &names),
            "tag 1 on communicator 4 (\"rows\")"
        );
        assert_eq!(
            describe(0, Some(2), &names),
            "tag 2 on communicator 0 (\"world\")"
        );
        assert_eq!(
            describe(5, Some(3 << 16), &names),
            "allreduce #0 on communicator 4 (\"rows\")"
        );
    }
}
