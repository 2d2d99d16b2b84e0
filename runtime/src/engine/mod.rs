//! The progress engine: one per rank. It owns the transport, every pending operation, and the
//! matching queues; operations are small state machines it advances.
//!
//! # When progress happens
//!
//! Inside mpr calls only, on the calling thread (MPI's "weak progress"): every call that starts,
//! tests or waits for an operation polls the sockets and moves *every* pending operation forward,
//! whichever one it is about. A blocking call is the nonblocking operation plus [`Engine::wait`].
//! So a rank that posts many sends and receives to many peers and waits for any one of them
//! cannot deadlock on the others, and `Request::test` in a compute loop is how a program gets
//! overlap.
//!
//! There is no background progress thread, because of what we measured on the 2-core machines:
//! a rank that sleeps in `epoll_wait` and is woken by the kernel pays 11 to 14 µs more per
//! message than one that polls (`mpr-bench latency -m 8:8`: 10.7-12.0 µs one-way with the
//! default spin, 22.9-25.5 µs with `MPR_SPIN_US=0`, three alternating runs), and a progress thread
//! would be exactly such a sleeper handing each message to the application thread (one more
//! wake-up on the message's path) unless it spins, and a spinning thread takes a core from the
//! computation and from the other ranks: with 8 ranks on 2 cores, 4 ping-pong pairs at once
//! cost mpr 25 to 30 µs per message and Open MPI over TCP 43 to 55 µs, and every extra runnable
//! thread per rank would stretch both. The kernel's socket buffers provide the overlap a thread
//! would buy for eager messages (they are written at `isend` time and wait in the kernel);
//! rendezvous messages and nonblocking collectives advance whenever the program calls into mpr
//! (`Request::test` in a compute loop is the way to overlap them).
//!
//! # Where bytes are copied
//!
//! - Sends: never in user space. Header and payload go to the kernel in one `writev` from the
//!   caller's slice; a partial write keeps a view of the slice and continues later.
//! - Receives posted before the message arrives: payload bytes that arrive with their header in
//!   one read (small messages, up to the 16 KiB read-ahead) are copied once from the read-ahead
//!   buffer; the rest of a payload is read straight into the caller's buffer.
//! - Unexpected eager messages (at most `MPR_EAGER_LIMIT` bytes): read into a buffer of their own
//!   and copied once when a receive matches. What a rank buffers so is bounded by flow control
//!   (credit.rs): a sender past its share of `MPR_UNEXPECTED_LIMIT` sends by rendezvous.
//!   Unexpected large messages are only announced (request-to-send) and read straight into the
//!   buffer of the receive that matches them.
//! - Large messages between ranks of one host: copied once, straight from the sender's buffer
//!   into the receiver's, by the two processes together (pull.rs); no socket, no kernel buffer.
//! - A rank sending to itself: the loopback transport copies the payload once.
//!
//! # Waiting
//!
//! [`Engine::wait_until`] spins (non-blocking polls) from the last time anything happened, for an
//! adaptive budget, then sleeps in `epoll_wait`; see `wait.rs`.
//!
//! The [`Core`] is the part the transport calls back into (the [`Sink`]): it decides where each
//! arriving payload goes and queues the control frames (clear-to-send, acknowledgements, data) the
//! protocol answers with in an outbox, which the engine hands to the transport after each poll.

mod blocking;
pub(crate) mod coll_tag;
pub(crate) mod contexts;
mod credit;
mod direct;
pub(crate) mod matching;
pub(crate) mod ops;
mod place;
pub(crate) mod protocol;
mod pull;
pub(crate) mod schedule;
pub(crate) mod wait;
pub(crate) mod waits;

use std::time::{Duration, Instant};

use crate::buf::{RawMut, RawSlice};
use crate::error::{Error, PeerCause, Result};
use crate::transport::{Dest, DestBuf, Polled, Sink, Transport};
use crate::tuning::Tuning;
use crate::wire::{
    Header, Kind, FLAG_DECLINE, FLAG_PULL, FLAG_PULLED, FLAG_PUSH, FLAG_SYNC, MAX_EAGER_BYTES,
};
pub(crate) use blocking::{RecvSpec, SendSpec};
use matching::{Body, Matching, Posted, Unexpected};
use ops::{Op, Ops, RecvOp, RecvState, SendOp};
pub(crate) use ops::{OpId, RawStatus};
use protocol::Protocol;
use wait::Waiter;

/// A frame the protocol wants sent: (peer, header, payload, token).
type Outgoing = (usize, Header, RawSlice, Option<u64>);

/// Operations, matching and per-peer protocol state: everything the transport reports to.
pub(crate) struct Core {
    me: usize,
    ops: Ops,
    matching: Matching,
    outbox: Vec<Outgoing>,
    seq_out: Vec<u32>,
    /// Why a peer can no longer be reached, once it cannot.
    gone: Vec<Option<PeerCause>>,
    /// Peers on this host whose memory large messages may be copied from: their process ids.
    pull_from: Vec<Option<u32>>,
    /// Copies out of senders' memory this rank owes (pull.rs).
    pulls: pull::Pulls,
    /// Eager windows, as sender and as receiver (credit.rs).
    credit: credit::Credit,
}

fn protocol_error(what: impl Into<String>) -> std::result::Result<(), String> {
    Err(what.into())
}

impl Core {
    /// The error of an operation that needs `peer`, if it is gone (which makes this rank its
    /// victim: see [`Ops::note_victim`]).
    fn peer_error(&mut self, peer: usize) -> Option<Error> {
        let cause = self.gone[peer].clone()?;
        self.ops.note_victim(peer);
        Some(Error::PeerFailed { rank: peer, cause })
    }

    /// A receive took an eager message of `len` bytes from `peer`: its window space goes back to
    /// the sender, in batches (credit.rs).
    fn give_back(&mut self, peer: usize, len: usize) {
        if let Some(bytes) = self.credit.consumed(peer, len) {
            if self.gone[peer].is_none() {
                let mut h = Header::new(Kind::Credit);
                h.src = self.me as u32;
                h.len = bytes;
                self.outbox.push((peer, h, RawSlice::EMPTY, None));
            }
        }
    }

    /// A receive matched an unexpected message: deliver it.
    fn deliver_unexpected(&mut self, op: OpId, u: Unexpected) {
        let status = RawStatus {
            source: u.src,
            tag: u.tag,
            bytes: u.len,
        };
        if let Some(send_id) = u.ack {
            self.queue_ack(u.src, send_id);
        }
        match u.body {
            Body::Eager(data) => {
                self.give_back(u.src, u.len);
                if let Some(Op::Recv(r)) = self.ops.get_mut(op) {
                    r.fit(u.len);
                    if let Some(mut buf) = r.buf.take() {
                        let n = data.len().min(buf.len());
                        buf.copy_in(0, &data[..n]);
                    }
                }
                self.ops.complete(op, Ok(status));
            }
            Body::Rts { send_id, pull } => self.accept_rts(op, u.src, u.tag, u.len, send_id, pull),
        }
    }

    /// A receive matched a request-to-send: answer clear-to-send (or decline it if the message
    /// does not fit, which consumes it: the receive completes as truncated). A sender of this
    /// host that offered its buffer (`pull`) gets no clear-to-send for data: the two processes
    /// copy the message between them (pull.rs).
    fn accept_rts(
        &mut self,
        op: OpId,
        peer: usize,
        tag: u32,
        len: usize,
        send_id: u64,
        pull: Option<pull::Offer>,
    ) {
        let Some(Op::Recv(r)) = self.ops.get_mut(op) else {
            return;
        };
        r.fit(len);
        let fits = len <= r.cap;
        if fits && self.start_copy(op, peer, tag, len, send_id, pull) {
            return;
        }
        let mut cts = self.cts(send_id, op, len as u64);
        if fits {
            if let Some(Op::Recv(r)) = self.ops.get_mut(op) {
                r.state = RecvState::AwaitData { peer, tag, len };
            }
            self.outbox.push((peer, cts, RawSlice::EMPTY, None));
        } else {
            cts.flags = FLAG_DECLINE;
            self.outbox.push((peer, cts, RawSlice::EMPTY, None));
            self.ops.complete(
                op,
                Ok(RawStatus {
                    source: peer,
                    tag,
                    bytes: len,
                }),
            );
        }
    }

    fn queue_ack(&mut self, peer: usize, send_id: u64) {
        let mut ack = Header::new(Kind::Ack);
        ack.src = self.me as u32;
        ack.send_id = send_id;
        self.outbox.push((peer, ack, RawSlice::EMPTY, None));
    }

    /// A send op made progress: complete it when nothing more is owed.
    fn maybe_complete_send(&mut self, op: OpId) {
        if let Some(Op::Send(s)) = self.ops.get_mut(op) {
            let done = match s.protocol {
                Protocol::Eager => s.written,
                Protocol::Rendezvous => s.written && !s.lent,
                Protocol::EagerSync => s.written && s.acked,
            };
            if done {
                let st = RawStatus {
                    source: s.peer,
                    tag: s.tag,
                    bytes: s.buf.len(),
                };
                self.ops.complete(op, Ok(st));
            }
        }
    }

    /// An eager message is complete and was not matched when its header arrived.
    fn arrived_unmatched(&mut self, peer: usize, h: &Header, data: Vec<u8>) {
        let u = Unexpected {
            ctx: h.context,
            src: peer,
            tag: h.tag,
            len: h.len as usize,
            ack: (h.flags & FLAG_SYNC != 0).then_some(h.send_id),
            body: Body::Eager(data),
        };
        // A receive may have been posted while the payload was arriving.
        match self.matching.take_posted(h.context, peer, h.tag) {
            Some(op) => self.deliver_unexpected(op, u),
            None => self.matching.push_unexpected(u),
        }
    }

    fn fail_everything(&mut self, why: &str) {
        for id in self.ops.pending_ids() {
            self.matching.unpost(id);
            self.ops.complete(
                id,
                Err(Error::Bootstrap {
                    what: why.to_string(),
                }),
            );
        }
        self.outbox.clear();
    }
}

impl Sink for Core {
    fn on_header(&mut self, peer: usize, h: &Header) -> std::result::Result<Dest, String> {
        let len = h.len as usize;
        match h.kind {
            Kind::Eager => {
                if let Some(op) = self.matching.take_posted(h.context, peer, h.tag) {
                    if h.flags & FLAG_SYNC != 0 {
                        self.queue_ack(peer, h.send_id);
                    }
                    if let Some(Op::Recv(r)) = self.ops.get_mut(op) {
                        r.fit(len);
                        if let Some(buf) = r.buf.take() {
                            r.state = RecvState::Receiving;
                            let keep = len.min(buf.len());
                            return Ok(Dest {
                                buf: DestBuf::User(buf),
                                keep,
                                op: Some(op),
                            });
                        }
                    }
                    return Err("posted receive without a buffer".into());
                }
                if h.len > MAX_EAGER_BYTES {
                    return Err(format!("eager message of {len} bytes"));
                }
                Ok(Dest {
                    buf: DestBuf::Owned(vec![0; len]),
                    keep: len,
                    op: None,
                })
            }
            Kind::Data => match self.ops.get_mut(h.recv_id) {
                Some(Op::Recv(r))
                    if r.state
                        == (RecvState::AwaitData {
                            peer,
                            tag: h.tag,
                            len,
                        }) =>
                {
                    let buf = r.buf.take().ok_or("receive without a buffer")?;
                    r.state = RecvState::Receiving;
                    Ok(Dest {
                        keep: len.min(buf.len()),
                        buf: DestBuf::User(buf),
                        op: Some(h.recv_id),
                    })
                }
                _ => Err(format!("data frame for unknown receive {:#x}", h.recv_id)),
            },
            k => Err(format!("{k:?} frame with a payload")),
        }
    }

    fn on_frame(
        &mut self,
        peer: usize,
        h: Header,
        dest: Option<Dest>,
    ) -> std::result::Result<(), String> {
        match h.kind {
            Kind::Eager => match dest {
                Some(Dest { op: Some(op), .. }) => {
                    self.give_back(peer, h.len as usize);
                    let st = RawStatus {
                        source: peer,
                        tag: h.tag,
                        bytes: h.len as usize,
                    };
                    self.ops.complete(op, Ok(st));
                }
                Some(Dest {
                    buf: DestBuf::Owned(data),
                    ..
                }) => self.arrived_unmatched(peer, &h, data),
                Some(_) => return protocol_error("eager payload without destination"),
                None => self.arrived_unmatched(peer, &h, Vec::new()),
            },
            Kind::Data => {
                let Some(Dest { op: Some(op), .. }) = dest else {
                    return protocol_error("data without receive");
                };
                let st = RawStatus {
                    source: peer,
                    tag: h.tag,
                    bytes: h.len as usize,
                };
                self.ops.complete(op, Ok(st));
            }
            Kind::Rts => {
                let len =
                    usize::try_from(h.len).map_err(|_| "message too large for this machine")?;
                let pull = match (h.flags & FLAG_PULL, h.flags & FLAG_PUSH) {
                    (0, _) => None,
                    (_, 0) => Some(pull::Offer::Pull(place::Place::named_by(
                        h.flags, h.recv_id,
                    ))),
                    _ => Some(pull::Offer::Push),
                };
                match self.matching.take_posted(h.context, peer, h.tag) {
                    Some(op) => self.accept_rts(op, peer, h.tag, len, h.send_id, pull),
                    None => self.matching.push_unexpected(Unexpected {
                        ctx: h.context,
                        src: peer,
                        tag: h.tag,
                        len,
                        ack: None,
                        body: Body::Rts {
                            send_id: h.send_id,
                            pull,
                        },
                    }),
                }
            }
            Kind::Cts => {
                let Some(Op::Send(s)) = self.ops.get_mut(h.send_id) else {
                    return protocol_error(format!(
                        "clear-to-send for unknown send {:#x}",
                        h.send_id
                    ));
                };
                if h.flags & FLAG_PUSH != 0 {
                    return self.push_tail(peer, &h);
                }
                if s.peer != peer
                    || s.protocol != Protocol::Rendezvous
                    || h.len != s.buf.len() as u64
                {
                    return protocol_error("clear-to-send does not match its send");
                }
                if h.flags & FLAG_PULLED != 0 && s.lent {
                    s.lent = false; // the receiver has its head; the tail was pushed
                } else if h.flags & (FLAG_DECLINE | FLAG_PULLED) != 0 {
                    s.written = true;
                } else {
                    let mut data = Header::new(Kind::Data);
                    data.src = self.me as u32;
                    data.tag = s.tag;
                    data.len = h.len;
                    data.recv_id = h.recv_id;
                    let payload = s.buf;
                    self.outbox.push((peer, data, payload, Some(h.send_id)));
                    return Ok(());
                }
                self.maybe_complete_send(h.send_id);
            }
            Kind::Ack => {
                match self.ops.get_mut(h.send_id) {
                    Some(Op::Send(s)) if s.peer == peer && s.protocol == Protocol::EagerSync => {
                        s.acked = true
                    }
                    _ => {
                        return protocol_error(format!(
                            "acknowledgement for unknown send {:#x}",
                            h.send_id
                        ))
                    }
                }
                self.maybe_complete_send(h.send_id);
            }
            Kind::Pushed => return self.on_pushed(peer, &h),
            Kind::Credit => self.credit.returned(peer, h.len),
            Kind::Fin => self.on_peer_failed(peer, PeerCause::Finalized),
            Kind::Hello | Kind::HelloAck | Kind::HelloReject | Kind::Challenge => {
                return protocol_error("handshake frame")
            }
            // The transport's own: they never reach the engine.
            Kind::ShmOffer
            | Kind::ShmAccept
            | Kind::ShmRefuse
            | Kind::ShmSwitch
            | Kind::Doorbell => return protocol_error("transport frame"),
        }
        Ok(())
    }

    fn on_sent(&mut self, token: u64) {
        if let Some(Op::Send(s)) = self.ops.get_mut(token) {
            s.written = true;
        }
        self.maybe_complete_send(token);
    }

    fn on_link_up(&mut self, peer: usize, pull_from: Option<u32>) {
        self.pull_from[peer] = pull_from;
    }

    fn on_peer_failed(&mut self, peer: usize, cause: PeerCause) {
        self.pull_from[peer] = None;
        if self.gone[peer].is_some() {
            return;
        }
        self.gone[peer] = Some(cause.clone());
        for id in self.ops.pending_ids() {
            let involved = match self.ops.get_mut(id) {
                Some(Op::Send(s)) => s.peer == peer,
                Some(Op::Recv(r)) => match r.state {
                    RecvState::Posted => r.src == Some(peer),
                    RecvState::AwaitData { peer: p, .. } | RecvState::Copying { peer: p, .. } => {
                        p == peer
                    }
                    RecvState::Receiving => false,
                },
                Some(Op::Coll) | None => false,
            };
            if involved {
                self.matching.unpost(id);
                self.ops.complete(
                    id,
                    Err(Error::PeerFailed {
                        rank: peer,
                        cause: cause.clone(),
                    }),
                );
            }
        }
    }
}

/// One rank's engine.
pub(crate) struct Engine {
    pub rank: usize,
    pub size: usize,
    pub tuning: Tuning,
    transport: Transport,
    core: Core,
    waiter: Waiter,
    /// Set after a fatal local error; every later call fails with it.
    broken: Option<String>,
    /// Context ids in use by this process's communicators.
    pub(crate) contexts: contexts::ContextIds,
    /// Running nonblocking collectives, with the op each completes.
    schedules: Vec<(OpId, Box<schedule::Schedule<'static>>)>,
    /// Messages taken out of matching by a matched probe, by arrival number, until received.
    held: Vec<(u64, Unexpected)>,
    /// From how many elements reductions run on rayon (None: not on this host).
    pub(crate) par_reduce: Option<usize>,
    /// See [`Engine::crowded`].
    crowded: bool,
    /// Every rank of the job runs on this host.
    one_host: bool,
    /// This host runs more ranks than it has cores.
    local_crowded: bool,
    /// A collective waiting in the node's shared segment, in words (see `waits.rs`).
    pub(crate) node_wait: Option<waits::NodeWait>,
    /// In finalize, waiting for these peers' Fin (see `waits.rs`).
    finalizing: Option<Vec<usize>>,
    /// The name of this rank's host as mprun knows it (empty for a job on one host without a
    /// hostfile, and for a singleton): ranks with the same name share a host.
    pub(crate) host: String,
    /// Communicators' names by context (`Comm::set_name`), for the `--timeout` report.
    pub(crate) names: waits::Names,
    /// This rank's call counts, when profiling (`observe.rs`).
    pub(crate) observer: Option<std::rc::Rc<std::cell::RefCell<crate::observe::Observer>>>,
    /// Buffers that packed layouts went through, kept for the next (`comm/layout.rs`): a
    /// fresh megabyte per call was a page fault per 4 KiB.
    pub(crate) scratch: Vec<Vec<u8>>,
}

/// How many spins count as a short gap (well within any spin budget) without asking the
/// clock: a spin is a non-blocking poll, well under a microsecond (see `wait_until`).
const QUICK_POLLS: u32 = 16;

/// What [`Engine::start_send`] did.
pub(crate) enum Started {
    /// The send is an operation under way.
    Queued(OpId),
    /// The message went whole into its peer's ring: sent.
    Written(RawStatus),
}

impl Engine {
    pub(crate) fn new(
        rank: usize,
        size: usize,
        transport: Transport,
        tuning: Tuning,
        (local_size, machine_ranks): (usize, usize),
        crowded: bool,
    ) -> Engine {
        // Ranks that share this machine's cores: this host's, and those of other hosts on the
        // same kernel (namespaces, containers).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sharing = machine_ranks.max(local_size);
        let waiter = Waiter::new(tuning.max_spin_us, sharing, cores);
        let par_reduce = (sharing < cores && tuning.par_reduce > 0).then_some(tuning.par_reduce);
        let observer = (tuning.profile || tuning.trace).then(|| {
            std::rc::Rc::new(std::cell::RefCell::new(crate::observe::Observer::new(
                tuning.profile,
                tuning.trace,
            )))
        });
        let core = Core {
            me: rank,
            ops: Ops::new(),
            matching: Matching::default(),
            outbox: Vec::new(),
            seq_out: vec![0; size],
            gone: vec![None; size],
            pull_from: vec![None; size],
            pulls: pull::Pulls::new(),
            credit: credit::Credit::new(size, tuning.unexpected_limit),
        };
        Engine {
            rank,
            size,
            tuning,
            transport,
            core,
            waiter,
            broken: None,
            contexts: contexts::ContextIds::new(),
            schedules: Vec::new(),
            held: Vec::new(),
            par_reduce,
            crowded,
            one_host: local_size == size,
            local_crowded: sharing > cores,
            node_wait: None,
            finalizing: None,
            host: String::new(),
            names: waits::Names::new(),
            scratch: Vec::new(),
            observer,
        }
    }

    fn check(&self, peer: usize) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::Bootstrap { what: why.clone() });
        }
        if peer >= self.size {
            return Err(Error::InvalidRank {
                rank: peer,
                size: self.size,
            });
        }
        Ok(())
    }

    /// Whether some host of the job runs more ranks than it has cores (the same on every rank,
    /// so collectives may choose algorithms by it).
    pub(crate) fn crowded(&self) -> bool {
        self.crowded
    }

    /// Whether every rank of the job runs on this host (the same answer on every rank).
    pub(crate) fn one_host(&self) -> bool {
        self.one_host
    }

    /// Whether messages with world rank `peer` (with any rank: `None`) go through rings in
    /// shared memory, which copy the blocks of a laid-out message in and out as they lie, down
    /// to shorter blocks than a socket's iovecs pay for ([`crate::Layout`]'s `packs`).
    pub(crate) fn rings_to(&self, peer: Option<usize>) -> bool {
        self.tuning.local_shm
            && (self.one_host
                || peer.is_some_and(|p| self.core.pull_from.get(p).is_some_and(Option::is_some)))
    }

    /// Whether this host runs more ranks than it has cores.
    pub(crate) fn local_crowded(&self) -> bool {
        self.local_crowded
    }

    /// Starts sending `buf` to world rank `peer`.
    pub(crate) fn isend(
        &mut self,
        ctx: u32,
        peer: usize,
        tag: u32,
        buf: RawSlice,
        synchronous: bool,
    ) -> Result<OpId> {
        Ok(match self.start_send(ctx, peer, tag, buf, synchronous)? {
            Started::Queued(op) => op,
            Started::Written(st) => self.core.ops.insert_done(Ok(st)),
        })
    }

    /// Whether a message too large for the ring to beat one copy between the processes
    /// streams through it anyway: ranks of one host on shared memory that do not outnumber
    /// the cores (crowded ranks copy once from the eager limit up, see `streams` in
    /// [`Engine::start_send`]).
    fn streams_locally(&self) -> bool {
        self.tuning.local_shm && !self.local_crowded
    }

    /// Whether `buf`, to `peer`, goes by one copy between the processes however small the
    /// eager limit makes it: a peer of this host, a payload in one piece, of at least
    /// `pull_from` bytes (and [`protocol::PULL_MIN`]), where that copy measured faster than
    /// streaming through the ring (32 KiB one way: 2.22 us against 2.68; BENCHMARKS.md).
    fn copies_once(&self, peer: usize, buf: &RawSlice) -> bool {
        self.streams_locally()
            && buf.copies_once()
            && protocol::pulls_below_eager(buf.len(), self.tuning.pull_from)
            && self.core.pull_from[peer].is_some()
    }

    /// Starts a send. A small eager message goes straight into its peer's ring when nothing is
    /// queued before it and it fits: it is then sent, with no operation to make and complete
    /// (for a blocking send, none at all). Sequence number and credit are the same either way.
    pub(crate) fn start_send(
        &mut self,
        ctx: u32,
        peer: usize,
        tag: u32,
        buf: RawSlice,
        synchronous: bool,
    ) -> Result<Started> {
        self.check(peer)?;
        if let Some(e) = self.peer_failure(peer) {
            return Err(e);
        }
        let mut protocol = protocol::choose(buf.len(), synchronous, self.tuning.eager_limit);
        if protocol != Protocol::Rendezvous && self.copies_once(peer, &buf) {
            // Within a host, a message that one copy between the processes moves faster than
            // the ring streams goes by rendezvous whatever the eager limit: the limit is about
            // buffering, which such a message then needs none of.
            protocol = Protocol::Rendezvous;
        }
        if protocol != Protocol::Rendezvous && !self.core.credit.take(peer, buf.len()) {
            protocol = Protocol::Rendezvous; // the receiver's window is spent (credit.rs)
        }
        let seq = &mut self.core.seq_out[peer];
        *seq = seq.wrapping_add(1);
        let mut h = Header::new(if protocol == Protocol::Rendezvous {
            Kind::Rts
        } else {
            Kind::Eager
        });
        h.context = ctx;
        h.src = self.rank as u32;
        h.tag = tag;
        h.seq = *seq;
        h.len = buf.len() as u64;
        if protocol == Protocol::Eager
            && buf.addr().is_some()
            && self
                .transport
                .write_now(peer, &h, buf.tail(0), &mut self.core)
        {
            return Ok(Started::Written(RawStatus {
                source: peer,
                tag,
                bytes: buf.len(),
            }));
        }
        // Below `pull_from` the ring streams a message faster than one copy, while both ranks
        // run; so does a laid-out one of short blocks (an iovec each would cost more).
        let streams =
            !buf.copies_once() || self.streams_locally() && buf.len() < self.tuning.pull_from;
        let mut list = None;
        if let (Protocol::Rendezvous, Some(_), false) =
            (protocol, self.core.pull_from[peer], streams)
        {
            // Offered to be copied out of this process: the buffer, or the list of its long
            // blocks (engine/place.rs), kept with the op while the receiver may read it; short
            // blocks are offered to be pushed, as this side's iovecs only.
            list = buf
                .named()
                .then(|| place::publish(buf.len(), buf.runs()))
                .flatten();
            let at = match (buf.addr(), &list) {
                (Some(addr), _) => Some(place::Place::Run(addr)),
                (None, Some(l)) => Some(place::Place::of(l)),
                (None, None) => None,
            };
            h.flags = FLAG_PULL;
            match at {
                Some(at) => {
                    h.flags |= at.flag();
                    h.recv_id = at.addr();
                }
                None => h.flags |= FLAG_PUSH,
            }
        }
        let op = self.core.ops.insert(Op::Send(SendOp {
            peer,
            buf,
            protocol,
            written: false,
            acked: false,
            lent: false,
            tag,
            ctx,
            list,
        }));
        h.send_id = op;
        if protocol == Protocol::EagerSync {
            h.flags = FLAG_SYNC;
        }
        match protocol {
            Protocol::Rendezvous => {
                self.transport
                    .send(peer, &h, RawSlice::EMPTY, None, &mut self.core)
            }
            _ => self.transport.send(peer, &h, buf, Some(op), &mut self.core),
        }
        self.flush_outbox();
        Ok(Started::Queued(op))
    }

    /// Starts receiving into `buf` from world rank `src` (or any).
    pub(crate) fn irecv(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        buf: RawMut,
    ) -> Result<OpId> {
        self.check(src.unwrap_or(0))?;
        self.irecv_op(ctx, src, tag, RecvOp::new(src, Some(buf)))
    }

    /// Starts a receive of unknown size: its buffer is allocated by `grow` when a message
    /// matches, and handed back with the result ([`Ops::take_grown`]).
    pub(crate) fn irecv_grown(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        grow: crate::buf::Alloc,
    ) -> Result<OpId> {
        self.check(src.unwrap_or(0))?;
        let mut r = RecvOp::new(src, None);
        r.grow = Some(grow);
        self.irecv_op(ctx, src, tag, r)
    }

    fn irecv_op(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        r: RecvOp,
    ) -> Result<OpId> {
        let op = self.core.ops.insert(Op::Recv(r));
        if let Some(u) = self.core.matching.take_unexpected(ctx, src, tag) {
            self.core.deliver_unexpected(op, u);
            self.flush_outbox();
        } else if let Some(e) = src.and_then(|p| self.core.peer_error(p)) {
            self.core.ops.complete(op, Err(e));
        } else {
            self.core.matching.post(Posted { op, ctx, src, tag });
        }
        Ok(op)
    }

    /// A matching message that has arrived, without receiving it.
    pub(crate) fn iprobe(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
    ) -> Result<Option<RawStatus>> {
        self.check(src.unwrap_or(0))?;
        self.progress(Some(Duration::ZERO))?;
        Ok(self.peek(ctx, src, tag))
    }

    fn peek(&self, ctx: u32, src: Option<usize>, tag: Option<u32>) -> Option<RawStatus> {
        self.core
            .matching
            .peek_unexpected(ctx, src, tag)
            .map(|u| RawStatus {
                source: u.src,
                tag: u.tag,
                bytes: u.len,
            })
    }

    /// Waits until a matching message has arrived.
    pub(crate) fn probe(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
    ) -> Result<RawStatus> {
        self.check(src.unwrap_or(0))?;
        self.wait_until(|e| match e.peek(ctx, src, tag) {
            Some(st) => Some(Ok(st)),
            None => src.and_then(|p| e.core.peer_error(p)).map(Err),
        })?
    }

    /// A matched probe: the oldest matching message that has arrived, taken out of matching so
    /// that only [`Engine::recv_held`] receives it; its arrival number names it. `block`: wait
    /// for one, else one progress step and `None` if there is none.
    pub(crate) fn mprobe(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        block: bool,
    ) -> Result<Option<(u64, RawStatus)>> {
        let st = if block {
            Some(self.probe(ctx, src, tag)?)
        } else {
            self.iprobe(ctx, src, tag)?
        };
        if st.is_none() {
            return Ok(None);
        }
        let Some((arrival, u)) = self.core.matching.take_held(ctx, src, tag) else {
            return Ok(None);
        };
        let st = RawStatus {
            source: u.src,
            tag: u.tag,
            bytes: u.len,
        };
        self.held.push((arrival, u));
        Ok(Some((arrival, st)))
    }

    /// Receives the held message `arrival` into `buf` (blocking).
    pub(crate) fn recv_held(&mut self, arrival: u64, buf: &mut [u8]) -> Result<RawStatus> {
        let Some(i) = self.held.iter().position(|(a, _)| *a == arrival) else {
            return Err(Error::InvalidArgument {
                what: "matched receive",
                detail: "the message was already received".into(),
            });
        };
        let (_, u) = self.held.swap_remove(i);
        // SAFETY (RawMut::new): `buf` is borrowed mutably for this whole call and `wait` returns
        // only once the operation has left the engine.
        let view = unsafe { RawMut::new(buf) };
        let op = self
            .core
            .ops
            .insert(Op::Recv(RecvOp::new(Some(u.src), Some(view))));
        self.core.deliver_unexpected(op, u);
        self.flush_outbox();
        self.wait(op)
    }

    /// Gives a held message back to matching (its probe's handle was dropped unreceived): to
    /// the oldest posted receive that matches it, else to its place among the unexpected.
    pub(crate) fn release_held(&mut self, arrival: u64) {
        let Some(i) = self.held.iter().position(|(a, _)| *a == arrival) else {
            return;
        };
        let (_, u) = self.held.swap_remove(i);
        match self.core.matching.take_posted(u.ctx, u.src, u.tag) {
            Some(op) => {
                self.core.deliver_unexpected(op, u);
                self.flush_outbox();
            }
            None => self.core.matching.put_back(arrival, u),
        }
    }

    /// The result of `op` if it has completed (freeing it), after one progress step that does
    /// not sleep. `Ok(None)`: still pending.
    pub(crate) fn test(&mut self, op: OpId) -> Result<Option<Result<RawStatus>>> {
        if !self.core.ops.is_done(op) {
            self.progress(Some(Duration::ZERO))?;
        }
        Ok(self.core.ops.take(op))
    }

    /// Waits until one of `ops` has completed and returns its index (the op is not freed; take
    /// it with [`Engine::test`]). Ops that are unknown (already freed) count as completed.
    pub(crate) fn wait_any(&mut self, ops: &[OpId]) -> Result<usize> {
        self.wait_until(|e| ops.iter().position(|&op| e.core.ops.is_done(op)))
    }

    /// Waits until every op of `ops` still in the engine has completed, and frees them, dropping
    /// their results (the requests of a scope that nobody waited for). When this returns, none of
    /// `ops` references a buffer any more, whatever happened: on a local failure the engine
    /// drops every operation (see `progress`).
    pub(crate) fn settle(&mut self, ops: &[OpId]) -> Result<()> {
        let waited =
            self.wait_until(|e| ops.iter().all(|&op| e.core.ops.is_done(op)).then_some(()));
        for &op in ops {
            if waited.is_err() {
                self.cancel(op);
            }
            let _ = self.core.ops.take(op);
            drop(self.core.ops.take_grown(op));
        }
        waited
    }

    /// The buffer of a completed receive of unknown size ([`Engine::irecv_grown`]), once its
    /// result has been taken.
    pub(crate) fn take_grown(&mut self, op: OpId) -> Option<Box<dyn crate::buf::Grown>> {
        self.core.ops.take_grown(op)
    }

    /// Waits for `op` and frees it. Even on error, `op` is gone from the engine when this
    /// returns, so its buffer is no longer referenced.
    pub(crate) fn wait(&mut self, op: OpId) -> Result<RawStatus> {
        match self.wait_until(|e| e.core.ops.take(op)) {
            Ok(r) => r,
            Err(e) => {
                self.cancel(op);
                Err(e)
            }
        }
    }

    /// Removes a pending operation (its wait failed locally, or its call gave up before waiting).
    /// Only for operations that no transport queue references: receives, and sends whose wait failed.
    pub(crate) fn cancel(&mut self, op: OpId) {
        if let Some(i) = self.schedules.iter().position(|(id, _)| *id == op) {
            let (_, sched) = self.schedules.swap_remove(i);
            for sub in sched.inflight_ops() {
                self.cancel(sub);
            }
        }
        self.core.matching.unpost(op);
        self.core.ops.complete(
            op,
            Err(Error::InvalidArgument {
                what: "wait",
                detail: "cancelled".into(),
            }),
        );
        let _ = self.core.ops.take(op);
        drop(self.core.ops.take_grown(op));
    }

    /// Whether `op` has completed (or is unknown: already freed).
    pub(crate) fn op_done(&self, op: OpId) -> bool {
        self.core.ops.is_done(op)
    }

    /// Cancels a receive that no message has matched yet: it completes with
    /// [`Error::Cancelled`]. Whether it was cancelled (false: a message matched it, or it had
    /// completed; it then completes as it would have).
    pub(crate) fn cancel_waiting(&mut self, op: OpId) -> bool {
        // Completion takes a receive out of the posted queue: one still there is unmatched.
        if !self.core.matching.unpost(op) {
            return false;
        }
        self.core.ops.complete(op, Err(Error::Cancelled));
        true
    }

    /// Waits for every op, freeing them; the first error wins, but all are waited for.
    pub(crate) fn wait_all(&mut self, ops: &[OpId]) -> Result<Vec<RawStatus>> {
        if let Err(e) =
            self.wait_until(|e| ops.iter().all(|&op| e.core.ops.is_done(op)).then_some(()))
        {
            for &op in ops {
                self.cancel(op);
            }
            return Err(e);
        }
        let mut out = Vec::with_capacity(ops.len());
        let mut first_err = None;
        for &op in ops {
            match self.core.ops.take(op) {
                Some(Ok(st)) => out.push(st),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Moves every pending operation forward, sleeping at most `timeout`. `live` is false when
    /// nothing can ever arrive (a singleton with nothing queued).
    fn progress(&mut self, timeout: Option<Duration>) -> Result<Polled> {
        if let Some(why) = &self.broken {
            return Err(Error::Bootstrap { what: why.clone() });
        }
        let polled = match self.transport.poll(&mut self.core, timeout) {
            Ok(p) => p,
            Err(e) => {
                // A local failure of the poller: nothing can progress any more. Drop every
                // operation so no pointer into a caller's buffer outlives its call.
                let why = e.to_string();
                self.transport.abandon();
                self.core.fail_everything(&why);
                self.schedules.clear();
                self.broken = Some(why);
                return Err(e);
            }
        };
        let queued = !self.core.outbox.is_empty();
        self.flush_outbox();
        self.advance_schedules();
        self.tell_victims();
        if self
            .transport
            .net()
            .is_some_and(|n| n.take_report_request())
        {
            // The job is likely to be ended now (`--timeout`): what this rank did so far goes
            // into the trace (the call it waits in up to now), before the report, whose end
            // mprun may answer by ending the job.
            let calls = self
                .observer
                .as_ref()
                .filter(|o| o.borrow().traces())
                .map(|o| o.borrow().trace_lines());
            if let Some(calls) = calls {
                self.tell(&calls);
            }
            let waits = self.blocked_on();
            if let Some(d) = self.transport.net().and_then(|n| n.directory()) {
                d.report(&waits);
            }
        }
        Ok(Polled {
            live: polled.live || queued,
            active: polled.active,
        })
    }

    /// Hands the protocol's answers to the transport, one `writev` per peer for a burst.
    /// Copies owed out of senders' memory (pull.rs) run after the frames before them are out,
    /// so that a sender asked to push its half starts while this rank copies the other.
    fn flush_outbox(&mut self) {
        loop {
            while !self.core.outbox.is_empty() {
                let out = std::mem::take(&mut self.core.outbox);
                for (peer, h, payload, token) in out {
                    self.transport
                        .send_deferred(peer, &h, payload, token, &mut self.core);
                }
                self.transport.flush_deferred(&mut self.core);
            }
            match self.core.pulls.pop_front() {
                Some(p) => self.core.run_pull(p),
                None => return,
            }
        }
    }

    /// Spins, then sleeps, until `done` returns a value.
    ///
    /// The spin budget counts from the last time anything happened, not from the start of the
    /// wait: a long transfer that keeps the sockets busy keeps polling (each wake-up from
    /// `epoll_wait` would cost ~20 µs of idle pipeline here), while a wait on a silent peer
    /// sleeps once the budget has passed with nothing to do. Each silent gap that ended is fed
    /// back to the [`Waiter`], which adapts the budget.
    pub(crate) fn wait_until<T>(
        &mut self,
        mut done: impl FnMut(&mut Engine) -> Option<T>,
    ) -> Result<T> {
        if let Some(v) = done(self) {
            return Ok(v);
        }
        let mut quiet_since = Instant::now();
        let mut budget = self.waiter.budget();
        let mut spinning = !budget.is_zero();
        // Polls since the last activity: a few spins are a short gap, known without the clock
        // (a read of it, some 25 ns here, would sit on the path of every message).
        let mut quiet_polls = 0u32;
        loop {
            let was_spinning = spinning;
            // A poll that may sleep is timed when tracing (`observe.rs`: sleeping or not).
            let asleep = (!spinning && self.tuning.trace).then(Instant::now);
            let polled = self.progress(if spinning { Some(Duration::ZERO) } else { None })?;
            if let (Some(since), Some(o)) = (asleep, self.observer.as_ref()) {
                o.borrow_mut().asleep(since);
            }
            quiet_polls = quiet_polls.wrapping_add(1);
            if polled.active {
                // A silent gap ended: tell the waiter how long it was, and spin afresh.
                let gap = if was_spinning && quiet_polls <= QUICK_POLLS {
                    Duration::ZERO
                } else {
                    quiet_since.elapsed()
                };
                self.waiter.record(gap);
                if let Some(v) = done(self) {
                    return Ok(v);
                }
                quiet_since = Instant::now();
                quiet_polls = 0;
                budget = self.waiter.budget();
                spinning = !budget.is_zero();
            } else if let Some(v) = done(self) {
                return Ok(v);
            }
            if !polled.live && self.core.ops.pending_count() > 0 && self.transport.flushed() {
                return Err(Error::InvalidArgument {
                    what: "wait",
                    detail: "this operation can never complete: no other process exists and nothing is queued (a receive with no matching send?)".into(),
                });
            }
            if spinning {
                if self.waiter.yield_between {
                    std::thread::yield_now();
                }
                // The clock costs as much as a poll of a ring: look at it every 16th spin.
                if quiet_polls % 16 == 0 {
                    spinning = quiet_since.elapsed() < budget;
                }
            }
        }
    }

    /// Tells the launcher which peers' failures failed operations of this rank (once each), so
    /// that it blames the root cause, not this rank, should this rank fail because of them.
    fn tell_victims(&mut self) {
        let Some(net) = self.transport.net() else {
            return;
        };
        let of = self.core.ops.untold_victim_of();
        if let (false, Some(d)) = (of.is_empty(), net.directory()) {
            for &rank in of {
                let _ = d.send(&crate::bootstrap::Request::Gone { rank });
            }
        }
    }

    /// The error of an operation that needs world rank `peer`, if that peer is gone.
    pub(crate) fn peer_failure(&mut self, peer: usize) -> Option<Error> {
        let e = self.core.peer_error(peer);
        if e.is_some() {
            self.tell_victims();
        }
        e
    }

    /// Completes every send, tells every connected peer Fin and waits for theirs, so that nothing
    /// sent by either side is lost when the processes exit.
    pub(crate) fn finalize(&mut self) -> Result<()> {
        self.tell_victims();
        // First, so that a rank whose peers failed (or that is unwinding from a panic) still
        // tells what it did.
        self.tell_observed();
        if self.broken.is_some() {
            return Ok(());
        }
        self.wait_until(|e| {
            (e.core.ops.pending_count() == 0 && e.transport.flushed()).then_some(())
        })?;
        let peers = self
            .transport
            .net()
            .map(|t| t.connected_peers())
            .unwrap_or_default();
        if peers.is_empty() {
            return Ok(());
        }
        let mut fin = Header::new(Kind::Fin);
        fin.src = self.rank as u32;
        for &p in &peers {
            self.transport
                .send(p, &fin, RawSlice::EMPTY, None, &mut self.core);
        }
        self.finalizing = Some(peers.clone());
        self.wait_until(|e| {
            let net = e.transport.net()?;
            (peers.iter().all(|&p| net.peer_done(p)) && net.flushed()).then_some(())
        })?;
        self.finalizing = None;
        if let Some(d) = self.transport.net().and_then(|t| t.directory()) {
            let _ = d.send(&crate::bootstrap::Request::Bye);
        }
        Ok(())
    }

    /// Tells mprun this rank's call counts (`--profile`) and its calls as they happened
    /// (`--trace`), if it keeps them (`observe.rs`): once, at finalize.
    fn tell_observed(&mut self) {
        let Some(o) = self.observer.take() else {
            return;
        };
        self.align_clock(&o);
        let lines = o.borrow().lines();
        self.tell(&lines);
    }

    /// Measures this rank's clock against mprun's (`Observer::align`), when tracing.
    pub(crate) fn align_clock(
        &mut self,
        o: &std::rc::Rc<std::cell::RefCell<crate::observe::Observer>>,
    ) {
        let mut o = o.borrow_mut();
        if !o.traces() {
            return;
        }
        if let Some(d) = self.transport.net().and_then(|t| t.directory()) {
            o.align(|| d.clock().ok());
        }
    }

    /// Sends `lines` to the rendezvous service, then waits until it has read them.
    fn tell(&mut self, lines: &[crate::bootstrap::Request]) {
        let Some(d) = self.transport.net().and_then(|t| t.directory()) else {
            return;
        };
        for line in lines {
            if d.send(line).is_err() {
                return;
            }
        }
        // A round trip (this rank's own address) before going on: once it is answered, the
        // service has read every line before it. Without it, the last lines could be lost
        // when this process exits with the service's notices unread in its socket, which
        // makes the kernel reset the connection rather than close it (1 run in 12 lost the
        // last five events of a rank so).
        let _ = d.lookup(self.rank);
    }

    /// Moves pending operations without waiting (and answers the launcher), for waits that
    /// sleep elsewhere (the node segment's futex).
    pub(crate) fn poll_once(&mut self) -> Result<()> {
        self.progress(Some(Duration::ZERO)).map(|_| ())
    }

    /// Whether operations of this rank are under way: pending operations, or frames still to
    /// write (a wait elsewhere, in the node segment, then looks back here often).
    pub(crate) fn busy(&self) -> bool {
        self.core.ops.pending_count() > 0 || !self.transport.flushed()
    }

    /// Bytes this rank has read from its sockets.
    pub(crate) fn socket_bytes_read(&mut self) -> u64 {
        self.transport.net().map_or(0, |n| n.bytes_read())
    }

    /// Tells the launcher to end the job with `code` (best effort).
    pub(crate) fn request_abort(&mut self, code: i32) {
        if let Some(d) = self.transport.net().and_then(|t| t.directory()) {
            d.abort(code);
        }
    }
}
