//! The socket transport: one `mio::Poll` (edge-triggered epoll) over the listeners and every
//! connection.
//!
//! A rank listens on TCP at the address the launcher chose, and on a Unix-domain socket for the
//! ranks of its own host ([`stream`]), and registers both with the launcher's rendezvous service;
//! the first frame for a peer looks the peer up there, dials (locally when the peer's host is
//! this rank's host), and queues frames until the handshake (see [`connect`]) says which
//! connection the pair keeps. One connection per pair carries everything in both directions, so
//! frames between a pair arrive in the order they were sent.
//!
//! A connection asks epoll for writability only while it has bytes the socket would not take
//! ([`Net::want_write`]). Registered for it all the time, a rank sleeping in `epoll_wait` is
//! woken each time its peer *reads* (the kernel signals room to write: `unix_write_space`, 14%
//! of the cycles of an 8-rank barrier on 2 cores in `perf`) only to find nothing to do; when
//! ranks outnumber cores every such wake-up takes a turn on a core a peer needed.

mod connect;
mod peer;
mod rings;
mod socket;
mod stream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use mpr_launch::auth::{self, Secret, PROOF_LEN};

pub(crate) use self::rings::RingPeek;

use self::connect::LinkView;
use self::peer::{Conn, ReadOutcome, Role};
use self::stream::Listener;
use super::{OutFrame, SendQueue, Sink};
use crate::bootstrap::{Bootstrap, Client};
use crate::error::{Error, PeerCause, Result};
use crate::tuning::Tuning;
use crate::wire::{Header, Kind};

const LISTENER: Token = Token(usize::MAX);
const LOCAL_LISTENER: Token = Token(usize::MAX - 1);
/// The connection to the launcher's rendezvous service, watched for its requests.
const DIRECTORY: Token = Token(usize::MAX - 2);

/// This rank's view of one peer.
#[derive(Default)]
struct Link {
    /// The connection that carries the pair's frames.
    up: Option<usize>,
    /// Our own dial, not yet answered.
    dial: Option<usize>,
    /// Our dial was rejected: the peer's own dial is coming; do not dial again.
    awaiting_peer: bool,
    /// Frames not yet written (all of them while the link is not up).
    q: SendQueue,
    failed: bool,
    /// The peer sent Fin: an end of stream after it is not a failure.
    fin_in: bool,
    /// Failed attempts of the current effort to connect, and when the next one is due.
    tries: u32,
    redial_at: Option<Instant>,
    /// Since when every TCP connect to the peer has failed.
    unreachable_since: Option<Instant>,
}

pub(crate) struct Net {
    me: usize,
    job_id: u64,
    poll: Poll,
    events: Events,
    ready: Vec<(Token, bool, bool)>,
    listener: Listener,
    listen_addr: SocketAddr,
    /// The listener for this host's ranks, when local sockets are on.
    local: Option<Listener>,
    /// This rank's host name, when `local` is on: peers registered with the same name are
    /// dialled locally.
    node: Option<String>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    links: Vec<Link>,
    directory: Option<Client>,
    tuning: Tuning,
    /// The connection that delivered bytes last: while spinning, it is read directly.
    hot: Option<usize>,
    /// Spin polls since the last full `epoll_wait`.
    spins: u32,
    /// Links with deferred frames to write (see [`Net::send_deferred`]).
    deferred: Vec<usize>,
    /// Bytes read from established connections so far.
    bytes_read: u64,
    /// The job's secret, which every connection proves (see `auth.rs`).
    secret: Secret,
    /// The launcher asked for a report of what this rank waits for.
    report_asked: bool,
    /// An accept failed for want of descriptors: the listeners' backlogs are retried on every
    /// poll until one succeeds (edge-triggered epoll would not say again).
    accept_stalled: bool,
    /// When handshakes are next checked against their deadlines (see [`Net::sweep`]).
    next_sweep: Instant,
    /// Accepted connections, by index, that may not have proven themselves yet (pruned by
    /// [`Net::sweep`]).
    accepted: Vec<usize>,
    /// Peers this rank is connecting to: a dial out, or the next one due.
    dialling: Vec<usize>,
    /// Connections with rings in shared memory (`rings.rs`), read on every poll.
    ring_conns: Vec<usize>,
    /// Ranks on this host, which the size of each ring depends on.
    local_size: usize,
}

/// How long an accepted connection may take to prove that it belongs to the job (its Hello);
/// then it is dropped. A rank of the job answers within a round trip; a dialler whose connection
/// is dropped (under heavy loss) dials again.
const HELLO_WITHIN: Duration = Duration::from_secs(5);
/// Accepted connections that have not yet proven themselves, at most; past it the oldest is
/// dropped. So idle strangers hold at most this many of a rank's descriptors, and a rank's own
/// peers, which prove themselves within a round trip, still get through.
const MAX_UNPROVEN: usize = 64;
/// How often deadlines are checked while connections wait for theirs.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long TCP connects to a peer may fail in a row (refused, unreachable, timed out) before
/// the peer counts as unreachable. A peer that died is reported by the launcher long before.
const CONNECT_WITHIN: Duration = Duration::from_secs(60);

/// How long a dial waits for the acceptor's challenge, by attempt: a lost packet of the TCP
/// handshake can leave a connection established at the dialler only (its last ACK lost, the
/// acceptor's retries lost too), where nothing would ever arrive. Later attempts wait longer,
/// for an acceptor that is busy outside mpr calls (it accepts only inside them).
fn challenge_within(tries: u32) -> Duration {
    Duration::from_secs(1 << tries.min(3))
}

/// The pause before dialling again after a failed attempt.
fn redial_after(tries: u32) -> Duration {
    Duration::from_millis(50 << tries.min(5))
}

/// Puts 16 bytes of proof (or challenge) into a handshake header's send and recv ids.
fn put_proof(h: &mut Header, p: [u8; PROOF_LEN]) {
    h.send_id = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
    h.recv_id = u64::from_le_bytes(p[8..].try_into().expect("8 bytes"));
}

/// The 16 bytes a handshake header carries in its send and recv ids.
fn proof_of(h: &Header) -> [u8; PROOF_LEN] {
    let mut p = [0u8; PROOF_LEN];
    p[..8].copy_from_slice(&h.send_id.to_le_bytes());
    p[8..].copy_from_slice(&h.recv_id.to_le_bytes());
    p
}

/// What the proof in an acceptor's answer (`HelloAck` or `HelloReject`) is made for: each answer
/// has its own, so a forged reject cannot be turned into an ack.
fn answer_purpose(kind: Kind) -> &'static str {
    if kind == Kind::HelloAck {
        "mpr ack"
    } else {
        "mpr reject"
    }
}

/// Whether an accept failed for want of descriptors (this process's or the system's) or memory.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// While spinning, one poll in this many asks epoll about every connection; the others read the
/// hot connection directly.
const EPOLL_EVERY: u32 = 16;
/// The same when rings in shared memory are read on every poll: a spin is then some 50 ns, not
/// a system call, so 128 of them still ask epoll every few microseconds.
const EPOLL_EVERY_WITH_RINGS: u32 = 128;

impl Net {
    /// Listens on TCP at `bind`, and locally when `node` (this rank's host) is known and
    /// local sockets are on.
    pub(crate) fn new(b: &Bootstrap, tuning: Tuning) -> Result<Net> {
        let (me, size, local_size, job_id) = (b.rank, b.size, b.local_size, b.job_id);
        let (bind, node, secret) = (b.bind, b.host.clone(), b.secret.clone());
        let poll = Poll::new().map_err(|e| Error::os("create epoll instance", e))?;
        let (mut listener, listen_addr) =
            socket::listen(bind).map_err(|e| Error::os("listen", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::os("register listener", e))?;
        let (local, node) = match node.filter(|_| tuning.local_unix) {
            Some(n) => {
                let mut l = socket::listen_local(job_id, me)
                    .map_err(|e| Error::os("listen on a local socket", e))?;
                poll.registry()
                    .register(&mut l, LOCAL_LISTENER, Interest::READABLE)
                    .map_err(|e| Error::os("register local listener", e))?;
                (Some(l), Some(n))
            }
            None => (None, None),
        };
        let mut links = Vec::with_capacity(size);
        links.resize_with(size, Link::default);
        Ok(Net {
            me,
            job_id,
            poll,
            events: Events::with_capacity(256),
            ready: Vec::new(),
            listener,
            listen_addr,
            local,
            node,
            conns: Vec::new(),
            free: Vec::new(),
            links,
            directory: None,
            tuning,
            hot: None,
            spins: 0,
            deferred: Vec::new(),
            bytes_read: 0,
            secret,
            report_asked: false,
            accept_stalled: false,
            next_sweep: Instant::now(),
            accepted: Vec::new(),
            dialling: Vec::new(),
            ring_conns: Vec::new(),
            local_size,
        })
    }

    /// What to register with the rendezvous service: the TCP address, and this rank's host
    /// when it listens locally too.
    pub(crate) fn registration(&self) -> (SocketAddr, Option<String>) {
        (self.listen_addr, self.node.clone())
    }

    /// Bytes read from rank-to-rank connections so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub(crate) fn set_directory(&mut self, c: Client) {
        use std::os::fd::AsRawFd;
        let fd = c.socket().as_raw_fd();
        // Without the watch a `--timeout` report is not answered; the job still runs.
        let _ = self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            DIRECTORY,
            Interest::READABLE,
        );
        self.directory = Some(c);
    }

    /// Handles what the launcher asks or says over the rendezvous connection: a report of what
    /// this rank waits for (`--timeout`), or that a rank ended (its operations fail now).
    fn directory_requests(&mut self, sink: &mut impl Sink) {
        while let Some(r) = self.directory.as_mut().and_then(Client::take_request) {
            match r {
                crate::bootstrap::Reply::Report => self.report_asked = true,
                crate::bootstrap::Reply::Failed { rank, how }
                    if rank < self.links.len() && rank != self.me =>
                {
                    self.fail_peer(rank, PeerCause::Ended(how), sink);
                }
                // A rank that ended normally had said Fin on every connection it had: if ours
                // is up, its Fin (and anything before it) is still to be read from it.
                crate::bootstrap::Reply::Finished { rank }
                    if rank < self.links.len() && rank != self.me =>
                {
                    let l = &self.links[rank];
                    if l.up.is_none() && !l.fin_in {
                        self.fail_peer(rank, PeerCause::Finished, sink);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the launcher asked what this rank waits for (since the last call).
    pub(crate) fn take_report_request(&mut self) -> bool {
        std::mem::take(&mut self.report_asked)
    }

    pub(crate) fn directory(&mut self) -> Option<&mut Client> {
        self.directory.as_mut()
    }

    pub(crate) fn send(&mut self, peer: usize, frame: OutFrame, sink: &mut impl Sink) {
        if self.enqueue(peer, frame, sink) {
            self.flush(peer, sink);
        }
    }

    /// Queues a frame without writing it yet; [`Net::flush_deferred`] writes every link queued
    /// to this way at once, so a burst of control frames (say, clear-to-send answers to many
    /// requests read in one go) costs one `writev` per peer instead of one per frame.
    pub(crate) fn send_deferred(&mut self, peer: usize, frame: OutFrame, sink: &mut impl Sink) {
        if self.enqueue(peer, frame, sink) {
            self.deferred.push(peer);
        }
    }

    /// Writes the links that [`Net::send_deferred`] queued to.
    pub(crate) fn flush_deferred(&mut self, sink: &mut impl Sink) {
        let mut peers = std::mem::take(&mut self.deferred);
        for &p in &peers {
            self.flush(p, sink);
        }
        peers.clear();
        if self.deferred.is_empty() {
            self.deferred = peers; // keep the allocation
        }
    }

    /// Appends to the peer's queue, dialling if there is no connection yet. True when the
    /// queue was empty on an established link, so a write should follow.
    fn enqueue(&mut self, peer: usize, frame: OutFrame, sink: &mut impl Sink) -> bool {
        let link = &mut self.links[peer];
        if link.failed {
            return false;
        }
        link.q.push_back(frame);
        if link.up.is_some() {
            return link.q.len() == 1;
        }
        if link.dial.is_none() && !link.awaiting_peer && link.redial_at.is_none() {
            self.dial(peer, sink);
        }
        false
    }

    /// True when no frame waits to be written.
    pub(crate) fn flushed(&self) -> bool {
        self.links.iter().all(|l| l.failed || l.q.is_empty())
    }

    /// Peers this rank has a connection (or a dial, or queued frames) with.
    pub(crate) fn connected_peers(&self) -> Vec<usize> {
        (0..self.links.len())
            .filter(|&p| {
                let l = &self.links[p];
                !l.failed
                    && (l.up.is_some() || l.dial.is_some() || l.awaiting_peer || !l.q.is_empty())
            })
            .collect()
    }

    /// Whether a connection to the peer is still being made (for the `--timeout` report).
    pub(crate) fn connecting(&self, p: usize) -> bool {
        let l = &self.links[p];
        !l.failed && l.up.is_none()
    }

    /// The peer has said Fin, or its link is gone.
    pub(crate) fn peer_done(&self, p: usize) -> bool {
        let l = &self.links[p];
        l.failed || l.fin_in
    }

    pub(crate) fn abandon(&mut self) {
        for i in 0..self.conns.len() {
            self.close(i);
        }
        for l in &mut self.links {
            *l = Link {
                failed: true,
                ..Link::default()
            };
        }
    }

    /// Waits up to `timeout` for socket events and handles them; true if there were any.
    ///
    /// A spinning wait (`timeout` zero) mostly reads the hot connection (the last one that
    /// delivered bytes) directly instead of asking epoll first: when the awaited message comes
    /// from the peer that spoke last, as in any exchange between two ranks, that takes one
    /// system call off its path (a read instead of `epoll_wait` and then a read). Every
    /// [`EPOLL_EVERY`]th spin, and every wait that may sleep, goes through epoll, so no other
    /// connection waits long. Reading without an event is always allowed; events for bytes read
    /// this way just find nothing later.
    pub(crate) fn poll(&mut self, sink: &mut impl Sink, timeout: Option<Duration>) -> Result<bool> {
        // Rings first: they need no event, and looking at an idle one costs a load.
        let mut rings_moved = self.poll_rings(sink);
        let mut timeout = timeout;
        if rings_moved {
            timeout = Some(Duration::ZERO);
        }
        if timeout == Some(Duration::ZERO) {
            self.spins += 1;
            // With rings, polls are cheap and come fast: ask epoll less often, by count.
            let every = if self.ring_conns.is_empty() {
                EPOLL_EVERY
            } else {
                EPOLL_EVERY_WITH_RINGS
            };
            if self.spins < every {
                if let Some(idx) = self.hot {
                    return Ok(self.spin_hot(idx, sink) || rings_moved);
                }
                if !self.ring_conns.is_empty() {
                    return Ok(rings_moved);
                }
            }
        }
        self.spins = 0;
        // About to sleep: every ring must know, so that its writer rings the doorbell.
        let sleeping = timeout != Some(Duration::ZERO) && !self.ring_conns.is_empty();
        if sleeping && !self.rings_may_sleep(sink) {
            timeout = Some(Duration::ZERO);
        }
        if self.accept_stalled {
            self.accept_stalled = false;
            self.accept_all(LISTENER);
            if self.local.is_some() {
                self.accept_all(LOCAL_LISTENER);
            }
        }
        // Notices already read off the launcher's socket raise no event: do not sleep on them.
        if self.directory.as_ref().is_some_and(Client::has_stash) {
            timeout = Some(Duration::ZERO);
        }
        let timeout = self.bound_by_deadlines(timeout);
        let polled = self.poll.poll(&mut self.events, timeout);
        if sleeping {
            self.rings_awake();
        }
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(rings_moved),
            Err(e) => return Err(Error::os("epoll_wait", e)),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            (
                e.token(),
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable(),
            )
        }));
        for &(token, readable, writable) in &ready {
            if token == DIRECTORY {
                self.directory_requests(sink);
                continue;
            }
            if token == LISTENER || token == LOCAL_LISTENER {
                self.accept_all(token);
                continue;
            }
            if readable {
                self.on_readable(token.0, sink);
            }
            if writable {
                self.on_writable(token.0, sink);
            }
        }
        // Requests that came while a lookup waited for its answer raise no event of their own.
        if self.directory.as_ref().is_some_and(Client::has_stash) {
            self.directory_requests(sink);
        }
        self.sweep(sink);
        if !ready.is_empty() || sleeping {
            rings_moved |= self.poll_rings(sink);
        }
        let active = !ready.is_empty() || rings_moved;
        self.ready = ready;
        Ok(active)
    }

    fn insert(&mut self, mut conn: Conn) -> Option<usize> {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        // Writable too until the handshake bytes are out (and a dial learns it connected);
        // `want_write` drops it after the first write that leaves nothing behind.
        let interest = Interest::READABLE | Interest::WRITABLE;
        conn.write_interest = true;
        if self
            .poll
            .registry()
            .register(&mut conn.stream, Token(idx), interest)
            .is_err()
        {
            self.free.push(idx);
            return None;
        }
        self.conns[idx] = Some(conn);
        Some(idx)
    }

    fn close(&mut self, idx: usize) {
        if self.hot == Some(idx) {
            self.hot = None;
        }
        self.ring_conns.retain(|&c| c != idx);
        if let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(idx);
        }
    }

    fn fail_peer(&mut self, peer: usize, cause: PeerCause, sink: &mut impl Sink) {
        let link = &mut self.links[peer];
        if link.failed {
            return;
        }
        link.failed = true;
        link.q.clear();
        let (up, dial) = (link.up.take(), link.dial.take());
        for c in [up, dial].into_iter().flatten() {
            self.close(c);
        }
        sink.on_peer_failed(peer, cause);
    }

    fn dial(&mut self, peer: usize, sink: &mut impl Sink) {
        let (addr, node) = match self.directory.as_mut().map(|d| d.lookup(peer)) {
            Some(Ok(a)) => a,
            Some(Err(e)) => return self.fail_peer(peer, PeerCause::Unreachable(e), sink),
            None => {
                return self.fail_peer(
                    peer,
                    PeerCause::Unreachable("no rendezvous service".into()),
                    sink,
                )
            }
        };
        // Notices that came while the lookup waited (the peer may have ended meanwhile).
        if self.directory.as_ref().is_some_and(Client::has_stash) {
            self.directory_requests(sink);
            if self.links[peer].failed {
                return;
            }
        }
        // Same host: a local socket; should that fail (say, a host name shared by two network
        // namespaces), TCP still reaches the peer.
        let local = (node.is_some() && node == self.node)
            .then(|| socket::connect_local(self.job_id, peer, &self.tuning).ok())
            .flatten();
        let stream = match local.map_or_else(|| socket::connect(addr, &self.tuning), Ok) {
            Ok(s) => s,
            Err(e) => return self.dial_failed(peer, PeerCause::io("connect", &e), true, sink),
        };
        self.links[peer].unreachable_since = None;
        // The acceptor speaks first (a challenge); the Hello answers it (see `handshake`).
        let conn = Conn::new(stream, Some(peer), Role::Dialer, self.tuning.read_ahead);
        match self.insert(conn) {
            Some(idx) => {
                self.links[peer].dial = Some(idx);
                if !self.dialling.contains(&peer) {
                    self.dialling.push(peer);
                }
            }
            None => self.fail_peer(
                peer,
                PeerCause::Unreachable(format!("cannot register connection to {addr}")),
                sink,
            ),
        }
    }

    /// An attempt to connect to `peer` failed before the handshake was done (`unreachable`:
    /// at the TCP connect). Under packet loss, or with an acceptor that dropped a connection
    /// that was slow to prove itself, another attempt succeeds: one is due after a pause. Only
    /// connects that keep failing for [`CONNECT_WITHIN`] make the peer unreachable.
    fn dial_failed(
        &mut self,
        peer: usize,
        cause: PeerCause,
        unreachable: bool,
        sink: &mut impl Sink,
    ) {
        let now = Instant::now();
        let link = &mut self.links[peer];
        link.dial = None;
        if link.failed || link.up.is_some() {
            return;
        }
        if unreachable {
            let since = *link.unreachable_since.get_or_insert(now);
            if now.duration_since(since) >= CONNECT_WITHIN {
                let secs = CONNECT_WITHIN.as_secs();
                let why = format!("every connect for {secs} s failed; the last: {cause}");
                return self.fail_peer(peer, PeerCause::Unreachable(why), sink);
            }
        }
        link.tries += 1;
        link.redial_at = Some(now + redial_after(link.tries));
        if !self.dialling.contains(&peer) {
            self.dialling.push(peer);
        }
    }

    /// Accepted connections still short of a Hello (strangers, or peers mid-handshake), oldest
    /// first.
    fn unproven(&mut self) -> Vec<usize> {
        let conns = &self.conns;
        let waiting = |i: &usize| {
            conns
                .get(*i)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.role == Role::Acceptor && !c.up)
        };
        self.accepted.retain(waiting);
        self.accepted.sort_unstable();
        self.accepted.dedup();
        let mut v: Vec<(Instant, usize)> = self
            .accepted
            .iter()
            .filter_map(|&i| Some((conns[i].as_ref()?.opened, i)))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, i)| i).collect()
    }

    /// Handshake deadlines, checked every [`SWEEP_EVERY`] while any handshake is under way:
    /// accepted connections that have not proven themselves in [`HELLO_WITHIN`] are dropped;
    /// dials whose challenge has not come in time are dropped and dialled again
    /// ([`challenge_within`]), and dials due after a failed attempt are made.
    fn sweep(&mut self, sink: &mut impl Sink) {
        let now = Instant::now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        for idx in self.unproven() {
            if self.conns[idx]
                .as_ref()
                .is_some_and(|c| now.duration_since(c.opened) >= HELLO_WITHIN)
            {
                self.close(idx);
            }
        }
        let mut i = 0;
        while let Some(&p) = self.dialling.get(i) {
            let link = &mut self.links[p];
            if link.failed || link.up.is_some() {
                (link.tries, link.redial_at, link.unreachable_since) = (0, None, None);
                self.dialling.swap_remove(i);
                continue;
            }
            i += 1;
            match (link.redial_at, link.dial) {
                (Some(at), _) if now >= at => {
                    link.redial_at = None;
                    if !link.awaiting_peer {
                        self.dial(p, sink);
                    }
                }
                (None, Some(idx)) => {
                    let tries = link.tries;
                    let silent = self.conns[idx].as_ref().and_then(|c| {
                        let late = c.challenge.is_none()
                            && now.duration_since(c.opened) >= challenge_within(tries);
                        late.then(|| c.stream.is_connected())
                    });
                    if let Some(connected) = silent {
                        self.close(idx);
                        let why = if connected {
                            "no challenge came"
                        } else {
                            "the connect did not complete"
                        };
                        self.dial_failed(p, PeerCause::Unreachable(why.into()), !connected, sink);
                    }
                }
                _ => {}
            }
        }
    }

    /// A sleep in `epoll_wait` ends in time for the next deadline check while handshakes are
    /// under way, and soon when accepting is stalled.
    fn bound_by_deadlines(&self, timeout: Option<Duration>) -> Option<Duration> {
        let bound = if self.accept_stalled {
            Duration::from_millis(50)
        } else if !self.accepted.is_empty() || !self.dialling.is_empty() {
            self.next_sweep.saturating_duration_since(Instant::now())
        } else {
            return timeout;
        };
        Some(timeout.map_or(bound, |t| t.min(bound)))
    }

    fn accept_all(&mut self, token: Token) {
        loop {
            let listener = match (token, &self.local) {
                (LOCAL_LISTENER, Some(l)) => l,
                _ => &self.listener,
            };
            match listener.accept() {
                Ok(Some(stream)) => {
                    if socket::configure(&stream, &self.tuning).is_err() {
                        continue;
                    }
                    let unproven = self.unproven();
                    if unproven.len() >= MAX_UNPROVEN {
                        self.close(unproven[0]);
                    }
                    // Whoever this is must first answer a fresh challenge.
                    let Ok(challenge) = auth::challenge() else {
                        continue;
                    };
                    let mut conn = Conn::new(stream, None, Role::Acceptor, self.tuning.read_ahead);
                    let mut h = Header::new(Kind::Challenge);
                    put_proof(&mut h, challenge);
                    conn.challenge = Some(challenge);
                    conn.ctl.extend_from_slice(&h.encode());
                    let _ = conn.write_ctl(); // the WRITABLE event retries whatever is left
                    if let Some(idx) = self.insert(conn) {
                        self.accepted.push(idx);
                    }
                }
                Ok(None) => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => {
                    // Make room by dropping the oldest connection that has not proven itself;
                    // with none, retry on every poll until a descriptor is free.
                    match self.unproven().first() {
                        Some(&oldest) => self.close(oldest),
                        None => {
                            self.accept_stalled = true;
                            return;
                        }
                    }
                }
                // A connection reset before it was accepted: the next one raises its own event.
                Err(_) => return,
            }
        }
    }

    fn flush(&mut self, peer: usize, sink: &mut impl Sink) {
        let link = &mut self.links[peer];
        let Some(idx) = link.up else { return };
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        let res = if conn.rings.is_some() {
            self.flush_rings(idx, peer, sink)
        } else {
            conn.write_queue(&mut link.q, sink)
                .map(|_| ())
                .map_err(|e| PeerCause::io("write", &e))
        };
        match res {
            Err(cause) => self.fail_peer(peer, cause, sink),
            Ok(()) => self.want_write(idx),
        }
    }

    /// Writes what waits for `peer` on connection `idx`, if that connection carries its link:
    /// true if a byte of it moved.
    fn flush_waiting(&mut self, idx: usize, peer: usize, sink: &mut impl Sink) -> bool {
        let mark = |l: &Link| {
            (l.up == Some(idx) && !l.q.is_empty())
                .then(|| (l.q.len(), l.q.front().map(|f| f.written)))
        };
        let Some(before) = mark(&self.links[peer]) else {
            return false;
        };
        self.flush(peer, sink);
        mark(&self.links[peer]) != Some(before)
    }

    /// Asks epoll for writability on connection `idx` exactly while it has output waiting
    /// (handshake bytes, or frames of the link it carries), so that a peer's reads do not wake
    /// this rank for nothing (see the module docs). Changes cost an `epoll_ctl`, and happen only
    /// when a socket fills up; re-arming reports a socket that is writable already at once.
    fn want_write(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        // Frames that wait for room in a ring wait for its doorbell, not for the socket.
        let on_ring = conn.rings.as_ref().is_some_and(|r| r.tx_on);
        let queued = !on_ring
            && conn
                .peer
                .is_some_and(|p| self.links[p].up == Some(idx) && !self.links[p].q.is_empty());
        let want = !conn.ctl.is_empty() || queued;
        if want == conn.write_interest {
            return;
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        // Should re-arming fail, keep the old interest: a spurious wake-up is harmless.
        if self
            .poll
            .registry()
            .reregister(&mut conn.stream, Token(idx), interest)
            .is_ok()
        {
            conn.write_interest = want;
        }
    }

    fn on_writable(&mut self, idx: usize, sink: &mut impl Sink) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if conn.up {
            if let Some(p) = conn.peer.filter(|&p| self.links[p].up == Some(idx)) {
                return self.flush(p, sink);
            }
        }
        match conn.write_ctl() {
            Ok(true) if conn.closing => self.close(idx),
            Ok(_) => self.want_write(idx),
            Err(e) => self.conn_failed(idx, PeerCause::io("write", &e), sink),
        }
    }

    /// One spin on the hot connection: read what has arrived, and write what its queue holds
    /// (a transfer waiting for room in the socket must not wait for the next `epoll_wait`).
    /// True if any byte moved.
    fn spin_hot(&mut self, idx: usize, sink: &mut impl Sink) -> bool {
        let mut active = self.on_readable(idx, sink);
        let peer = self
            .conns
            .get(idx)
            .and_then(Option::as_ref)
            .and_then(|c| c.peer);
        if let Some(p) = peer {
            active |= self.flush_waiting(idx, p, sink);
        }
        active
    }

    fn bytes_in(&self, idx: usize) -> Option<u64> {
        self.conns.get(idx)?.as_ref().map(|c| c.reader.bytes_in)
    }

    /// Reads what the connection has; true if any byte came.
    fn on_readable(&mut self, idx: usize, sink: &mut impl Sink) -> bool {
        let before = self.bytes_in(idx);
        self.read_conn(idx, sink);
        let after = self.bytes_in(idx);
        if let (Some(b), Some(a)) = (before, after) {
            self.bytes_read += a - b;
        }
        let moved = after != before;
        // Only an established connection may become hot (a handshake in progress or a closed
        // one is never read outside an event).
        let up = self
            .conns
            .get(idx)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.up);
        if up && moved && !self.reads_ring(idx) {
            self.hot = Some(idx);
        } else if !up && self.hot == Some(idx) {
            self.hot = None;
        }
        moved
    }

    fn read_conn(&mut self, idx: usize, sink: &mut impl Sink) {
        loop {
            let Some(conn) = self.conns[idx].as_mut() else {
                return;
            };
            let peer = if conn.up { conn.peer } else { None };
            let mut fin = false;
            let outcome = conn.reader.read(&mut conn.stream, peer, sink, &mut fin);
            if fin {
                if let Some(p) = peer {
                    self.links[p].fin_in = true;
                }
            }
            match outcome {
                ReadOutcome::Drained => return,
                ReadOutcome::Handshake(h) => self.handshake(idx, h, sink),
                ReadOutcome::Control(h) => self.on_control(idx, h, false, sink),
                ReadOutcome::Closed => {
                    // What the peer wrote into its ring before it ended (its Fin, say) counts.
                    self.read_ring(idx, sink);
                    return self.conn_failed(idx, PeerCause::ConnectionClosed, sink);
                }
                ReadOutcome::Failed(cause) => return self.conn_failed(idx, cause, sink),
            }
        }
    }

    /// A connection ended or broke. It is a peer failure only if it carried (or was about to
    /// carry) the pair's traffic and the peer had not said Fin.
    fn conn_failed(&mut self, idx: usize, cause: PeerCause, sink: &mut impl Sink) {
        let Some(conn) = self.conns[idx].as_ref() else {
            return;
        };
        let (peer, role, up) = (conn.peer, conn.role, conn.up);
        let connected = conn.stream.is_connected();
        self.close(idx);
        let Some(p) = peer else { return }; // a stranger, or an acceptor before its Hello
        let link = &mut self.links[p];
        if link.up == Some(idx) {
            link.up = None;
            if !link.fin_in {
                self.fail_peer(p, cause, sink);
            }
        } else if link.dial == Some(idx) {
            link.dial = None;
            if link.up.is_none() {
                match cause {
                    // An answer without the job's secret is not a network accident.
                    PeerCause::Protocol(_) => self.fail_peer(p, cause, sink),
                    _ => self.dial_failed(p, cause, !connected, sink),
                }
            }
        } else if up && role == Role::Acceptor && !link.fin_in && !link.failed {
            self.fail_peer(p, cause, sink);
        }
    }

    /// The proof of the job's secret for a handshake step between `acceptor` and `dialler`.
    fn proof(
        &self,
        purpose: &str,
        acceptor: usize,
        dialler: usize,
        challenge: &[u8; PROOF_LEN],
        dialler_challenge: u64,
    ) -> [u8; PROOF_LEN] {
        self.secret.mac(
            purpose,
            &[
                &self.job_id.to_le_bytes(),
                &(acceptor as u64).to_le_bytes(),
                &(dialler as u64).to_le_bytes(),
                challenge,
                &dialler_challenge.to_le_bytes(),
            ],
        )
    }

    /// Whether the acceptor's answer to our Hello proves the job's secret.
    fn answer_is_genuine(&self, idx: usize, h: &Header) -> bool {
        let Some(conn) = self.conns.get(idx).and_then(Option::as_ref) else {
            return false;
        };
        let (Some(p), Some(c)) = (conn.peer, conn.challenge) else {
            return false;
        };
        let want = self.proof(
            answer_purpose(h.kind),
            p,
            self.me,
            &c,
            conn.dialler_challenge,
        );
        auth::same(&want, &proof_of(h))
    }

    /// The process a link's peer may copy large messages out of (see `Sink::on_link_up`).
    fn pull_from(&self, idx: usize) -> Option<u32> {
        let conn = self.conns.get(idx)?.as_ref()?;
        let pid = conn.stream.local_peer_pid().filter(|_| self.tuning.pull)?;
        crate::sys::can_reach(pid).then_some(pid)
    }

    fn handshake(&mut self, idx: usize, h: Header, sink: &mut impl Sink) {
        let forged_answer = matches!(h.kind, Kind::HelloAck | Kind::HelloReject)
            && !self.answer_is_genuine(idx, &h);
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        match (conn.role, h.kind) {
            (Role::Dialer, Kind::Challenge) if conn.challenge.is_none() => {
                let Some(p) = conn.peer else { return };
                let Ok(mine) = auth::challenge() else {
                    let cause = PeerCause::Protocol("no randomness for a challenge".into());
                    return self.conn_failed(idx, cause, sink);
                };
                let theirs = proof_of(&h);
                let mine = u64::from_le_bytes(mine[..8].try_into().expect("8 of 16 bytes"));
                let mut hello = Header::new(Kind::Hello);
                hello.src = self.me as u32;
                hello.len = self.job_id;
                hello.tag = mine as u32;
                hello.seq = (mine >> 32) as u32;
                put_proof(
                    &mut hello,
                    self.proof("mpr hello", p, self.me, &theirs, mine),
                );
                let Some(conn) = self.conns[idx].as_mut() else {
                    return;
                };
                conn.challenge = Some(theirs);
                conn.dialler_challenge = mine;
                conn.ctl.extend_from_slice(&hello.encode());
                let _ = conn.write_ctl();
                self.want_write(idx);
            }
            (Role::Acceptor, Kind::Hello) => {
                let p = h.src as usize;
                let dc = u64::from(h.tag) | u64::from(h.seq) << 32;
                let Some(c) = conn.challenge else {
                    return self.close(idx);
                };
                let genuine =
                    auth::same(&self.proof("mpr hello", self.me, p, &c, dc), &proof_of(&h));
                if !genuine || h.len != self.job_id || p >= self.links.len() || p == self.me {
                    // Not a rank of this job (no proof of the job's secret): drop it without
                    // answering or reading anything more.
                    return self.close(idx);
                }
                let link = &self.links[p];
                let view = if link.up.is_some() || link.failed {
                    LinkView::Up
                } else if link.dial.is_some() {
                    LinkView::Dialling
                } else {
                    LinkView::None
                };
                let keep = connect::accept(self.me, p, view);
                let kind = if keep {
                    Kind::HelloAck
                } else {
                    Kind::HelloReject
                };
                let mut answer = Header::new(kind);
                put_proof(
                    &mut answer,
                    self.proof(answer_purpose(kind), self.me, p, &c, dc),
                );
                let Some(conn) = self.conns[idx].as_mut() else {
                    return;
                };
                conn.ctl.extend_from_slice(&answer.encode());
                let link = &mut self.links[p];
                conn.peer = Some(p);
                if keep {
                    conn.up = true;
                    link.up = Some(idx);
                    link.awaiting_peer = false;
                    sink.on_link_up(p, self.pull_from(idx));
                    self.offer_ring(idx, p);
                    self.flush(p, sink);
                } else {
                    conn.closing = true;
                    conn.peer = None;
                    if let Ok(true) = conn.write_ctl() {
                        self.close(idx);
                    }
                }
            }
            (Role::Dialer, Kind::HelloAck | Kind::HelloReject) if forged_answer => {
                let cause =
                    PeerCause::Protocol("the peer could not prove it belongs to this job".into());
                self.conn_failed(idx, cause, sink);
            }
            (Role::Dialer, Kind::HelloAck) => {
                let Some(p) = conn.peer else { return };
                conn.up = true;
                let link = &mut self.links[p];
                if link.dial == Some(idx) {
                    link.dial = None;
                }
                if link.up.is_none() {
                    link.up = Some(idx);
                    sink.on_link_up(p, self.pull_from(idx));
                    self.offer_ring(idx, p);
                    self.flush(p, sink);
                }
            }
            (Role::Dialer, Kind::HelloReject) => {
                let Some(p) = conn.peer else { return };
                self.close(idx);
                let link = &mut self.links[p];
                if link.dial == Some(idx) {
                    link.dial = None;
                }
                if link.up.is_none() {
                    link.awaiting_peer = true;
                }
            }
            (_, kind) => {
                let cause = PeerCause::Protocol(format!("{kind:?} during the handshake"));
                self.conn_failed(idx, cause, sink);
            }
        }
    }
}
