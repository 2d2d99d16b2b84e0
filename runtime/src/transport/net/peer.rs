//! One connection (TCP or local): its reader and writer state machines.
//!
//! The reader is `header -> payload into its destination`: it reads up to `read_ahead` bytes at a
//! time while looking for a header, so a small message arrives with its header in one system call
//! (its payload is then copied once out of the read-ahead); once a payload's destination is known
//! and what remains of it is large, it reads straight into the destination (the user's posted
//! buffer) with no copy. The writer hands the kernel up to [`MAX_IOV`] slices per `writev`: each
//! frame's header and the user's payload, never a staging copy.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use super::stream::Stream;

use crate::error::PeerCause;
use crate::transport::shm::{Rx, Tx};
use crate::transport::{Dest, SendQueue, Sink};
use crate::wire::{Header, Kind, HEADER_LEN};
use mpr_launch::auth::PROOF_LEN;

const MAX_IOV: usize = 64;
/// Slices per `writev` or `readv` when a payload lies in the blocks of a layout (the kernel's
/// limit, `IOV_MAX`): a strided message gathered from, or scattered into, its blocks.
const MAX_SCATTER: usize = 1024;
/// Bytes of a laid-out payload gathered or scattered per call, at most: slices beyond what a
/// ring or socket takes at once would be built for nothing (and again at the next call).
const SCATTER_BATCH: usize = 64 << 10;

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Acceptor,
}

pub(crate) struct Conn {
    pub stream: Stream,
    /// The peer, once known (at once for a dialler, after its Hello for an acceptor).
    pub peer: Option<usize>,
    pub role: Role,
    /// Handshake done: frames flow to the sink.
    pub up: bool,
    /// Close as soon as `ctl` is written (a rejected connection).
    pub closing: bool,
    /// Handshake bytes still to write, ahead of any frame.
    pub ctl: Vec<u8>,
    pub reader: Reader,
    /// Registered for writability with epoll (see `Net::want_write`).
    pub write_interest: bool,
    /// The handshake's challenges: the acceptor's (sent by it, or received by the dialler) and
    /// the dialler's own (see `auth.rs`).
    pub challenge: Option<[u8; PROOF_LEN]>,
    pub dialler_challenge: u64,
    /// When the connection was made: an acceptor's handshake has a deadline from then.
    pub opened: std::time::Instant,
    /// The pair's rings, once a move of its frames to shared memory has begun (local links).
    pub rings: Option<Box<Rings>>,
}

/// A local link's rings in shared memory (`transport/shm`), one per direction, each moved to
/// on its own: this side's once the peer has mapped it and `ShmSwitch` is written, the peer's
/// once its `ShmSwitch` is read.
pub(crate) struct Rings {
    /// The ring this rank writes, once offered.
    pub tx: Option<Tx>,
    /// Frames at the front of the link's queue that still go on the socket, the last of them
    /// `ShmSwitch` (0 when no switch is under way).
    pub pre_switch: usize,
    /// This rank's frames go into `tx`; the socket carries only doorbells from it.
    pub tx_on: bool,
    /// The peer's ring, once mapped.
    pub rx: Option<Rx>,
    /// The peer's frames come from `rx`.
    pub rx_on: bool,
    pub rx_reader: Reader,
}

impl Rings {
    /// The peer's ring, once its frames come from it.
    pub(crate) fn reading(&mut self) -> Option<&mut Rx> {
        self.rx.as_mut().filter(|_| self.rx_on)
    }

    pub(crate) fn new(read_ahead: usize) -> Rings {
        Rings {
            tx: None,
            pre_switch: 0,
            tx_on: false,
            rx: None,
            rx_on: false,
            rx_reader: Reader::for_ring(read_ahead),
        }
    }
}

impl Conn {
    pub(crate) fn new(stream: Stream, peer: Option<usize>, role: Role, read_ahead: usize) -> Conn {
        Conn {
            stream,
            peer,
            role,
            up: false,
            closing: false,
            ctl: Vec::new(),
            reader: Reader::new(read_ahead),
            write_interest: false,
            challenge: None,
            dialler_challenge: 0,
            opened: std::time::Instant::now(),
            rings: None,
        }
    }

    /// Writes what waits for this connection's socket: handshake (or doorbell) bytes first, then
    /// the frames of `q`. Ok(true) when nothing is left.
    pub(crate) fn write_queue(
        &mut self,
        q: &mut SendQueue,
        sink: &mut impl Sink,
    ) -> io::Result<bool> {
        match self.write_ctl() {
            Ok(true) => write_frames(&mut self.stream, q, sink),
            other => other,
        }
    }

    /// Writes pending handshake bytes. Ok(true) when none remain.
    pub(crate) fn write_ctl(&mut self) -> io::Result<bool> {
        while !self.ctl.is_empty() {
            match self.stream.write(&self.ctl) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.ctl.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Writes frames from `q` until it is empty (Ok(true)) or the socket is full (Ok(false)),
/// reporting each completed frame's token.
pub(crate) fn write_frames(
    stream: &mut (impl Write + Pieces),
    q: &mut SendQueue,
    sink: &mut impl Sink,
) -> io::Result<bool> {
    loop {
        if q.is_empty() {
            return Ok(true);
        }
        // A frame or two (the usual case for small messages) need no 64-slot array: filling
        // one costs more than a small message's copy into a ring.
        let scattered = q.front().is_some_and(|f| f.payload.addr().is_none());
        let result = if scattered {
            write_scattered(stream, q)
        } else if q.len() <= FEW_FRAMES {
            write_gathered::<{ 2 * FEW_FRAMES }>(stream, q)
        } else {
            write_gathered::<MAX_IOV>(stream, q)
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let Some(f) = q.front_mut() else { break };
                    let left = f.total() - f.written;
                    if n >= left {
                        n -= left;
                        if let Some(t) = q.pop_front().and_then(|f| f.token) {
                            sink.on_sent(t);
                        }
                    } else {
                        f.written += n;
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Frames that [`write_frames`] gathers in a small array.
const FEW_FRAMES: usize = 2;

/// One `write_vectored` of the front frames of `q`, at most `N` slices (N >= 2).
fn write_gathered<const N: usize>(stream: &mut impl Write, q: &SendQueue) -> io::Result<usize> {
    let mut iov = [IoSlice::new(&[]); N];
    let mut n = 0;
    'frames: for f in q.iter() {
        if n + 2 > N {
            break;
        }
        let from = if f.written < HEADER_LEN {
            iov[n] = IoSlice::new(&f.header[f.written..]);
            n += 1;
            0
        } else {
            f.written - HEADER_LEN
        };
        // One slice for a contiguous payload; a laid-out one's blocks, as many as fit.
        for piece in f.payload.pieces(from) {
            if n == N {
                break 'frames;
            }
            iov[n] = IoSlice::new(piece);
            n += 1;
        }
    }
    stream.write_vectored(&iov[..n])
}

/// One `write_vectored` of the front frame of `q`, whose payload lies in the blocks of a
/// layout: up to [`SCATTER_BATCH`] bytes of them, in at most [`MAX_SCATTER`] slices.
fn write_scattered(stream: &mut (impl Write + Pieces), q: &SendQueue) -> io::Result<usize> {
    let Some(f) = q.front() else { return Ok(0) };
    let (head, from): (&[u8], usize) = if f.written < HEADER_LEN {
        (&f.header[f.written..], 0)
    } else {
        (&[], f.written - HEADER_LEN)
    };
    let want = head.len() + f.payload.len() - from;
    let pieces = || std::iter::once(head).chain(f.payload.pieces(from));
    if let Some(r) = stream.write_pieces(pieces(), want) {
        return r;
    }
    let mut iov = Vec::with_capacity(MAX_SCATTER.min(want / 8 + 2));
    let mut bytes = 0;
    for piece in pieces() {
        if iov.len() == MAX_SCATTER || bytes >= SCATTER_BATCH {
            break;
        }
        bytes += piece.len();
        iov.push(IoSlice::new(piece));
    }
    stream.write_vectored(&iov)
}

/// Streams that copy the blocks of a laid-out payload themselves, as they come: a ring,
/// straight into or out of its memory. A socket answers `None` and gets slice arrays for
/// `writev`/`readv` instead ([`MAX_SCATTER`] slices, [`SCATTER_BATCH`] bytes at most).
pub(crate) trait Pieces {
    /// Writes the slices `pieces` yields (`want` bytes in all) as `write_vectored` would.
    fn write_pieces<'a>(
        &mut self,
        _pieces: impl Iterator<Item = &'a [u8]>,
        _want: usize,
    ) -> Option<io::Result<usize>> {
        None
    }
    /// Reads payload bytes `start..end` into `dest` as `read_vectored` would.
    fn read_pieces(
        &mut self,
        _dest: &mut Dest,
        _start: usize,
        _end: usize,
    ) -> Option<io::Result<usize>> {
        None
    }
}

impl Pieces for Stream {}

impl Pieces for Tx {
    fn write_pieces<'a>(
        &mut self,
        pieces: impl Iterator<Item = &'a [u8]>,
        want: usize,
    ) -> Option<io::Result<usize>> {
        Some(Tx::write_pieces(self, pieces, want))
    }
}

impl Pieces for Rx {
    fn read_pieces(
        &mut self,
        dest: &mut Dest,
        start: usize,
        end: usize,
    ) -> Option<io::Result<usize>> {
        Some(Rx::read_pieces(self, dest, start, end))
    }
}

/// Why [`Reader::read`] stopped.
pub(crate) enum ReadOutcome {
    /// The socket has no more bytes for now.
    Drained,
    /// End of stream.
    Closed,
    /// A header arrived on a connection not yet up: the handshake decides.
    Handshake(Header),
    /// A frame of the transport's own (the move to shared memory, a doorbell): the
    /// connection's owner handles it.
    Control(Header),
    Failed(PeerCause),
}

enum ReadState {
    Header,
    Payload { h: Header, dest: Dest, got: usize },
}

pub(crate) struct Reader {
    stage: Box<[u8]>,
    start: usize,
    end: usize,
    state: ReadState,
    /// The last read returned fewer bytes than it asked for: the socket had nothing more at that
    /// moment, so the next read would only say "would block". Skipping it saves a system call
    /// on every message's critical path. This is safe with edge-triggered epoll on Linux because
    /// every arrival of new data on a TCP socket raises a new readiness event, even when earlier
    /// data was not read to exhaustion.
    short: bool,
    /// The stream is a ring in shared memory, where a read costs no system call: reads after a
    /// short one are not skipped (see `short`; bytes may come at any moment), and every
    /// payload goes straight into its destination (gathering small pieces in the stage would
    /// save no system call and cost a second copy; a socket stages what is left of a payload
    /// when it is small).
    ring: bool,
    /// Bytes read from the socket so far (to tell whether a read attempt found anything).
    pub bytes_in: u64,
}

impl Reader {
    /// A reader of a socket.
    pub(crate) fn new(read_ahead: usize) -> Reader {
        Reader {
            stage: vec![0; read_ahead.max(HEADER_LEN * 4)].into_boxed_slice(),
            start: 0,
            end: 0,
            state: ReadState::Header,
            short: false,
            ring: false,
            bytes_in: 0,
        }
    }

    /// Nothing read and not yet dispatched: the next byte of the stream starts a frame.
    pub(crate) fn idle(&self) -> bool {
        matches!(self.state, ReadState::Header) && self.start == self.end
    }

    /// A reader of a ring in shared memory.
    pub(crate) fn for_ring(read_ahead: usize) -> Reader {
        Reader {
            ring: true,
            ..Reader::new(read_ahead)
        }
    }

    /// Reads and dispatches the frames of a peer's ring, as [`Reader::read`] does, but a frame
    /// that lies whole in one record (every frame up to a record's size, which is every small
    /// message) goes straight from the ring: its header onto the stack, its payload into its
    /// destination, with no stop in the staging buffer and no look at the next record before it
    /// is delivered. Anything else (a frame in pieces, bytes already staged) takes the path of
    /// [`Reader::read`], which reads the ring as a byte stream.
    pub(crate) fn read_ring(
        &mut self,
        rx: &mut Rx,
        peer: usize,
        sink: &mut impl Sink,
        fin: &mut bool,
    ) -> ReadOutcome {
        let io = |e: io::Error| ReadOutcome::Failed(PeerCause::io("read", &e));
        loop {
            if !matches!(self.state, ReadState::Header) || self.start != self.end {
                return self.read(rx, Some(peer), sink, fin);
            }
            let left = match rx.record_left() {
                Ok(0) => return ReadOutcome::Drained,
                Ok(n) => n,
                Err(e) => return io(e),
            };
            if left < HEADER_LEN {
                return self.read(rx, Some(peer), sink, fin);
            }
            let mut raw = [0u8; HEADER_LEN];
            if let Err(e) = rx.read_exact(&mut raw) {
                return io(e);
            }
            self.bytes_in += HEADER_LEN as u64;
            let h = match Header::decode(&raw) {
                Ok(h) => h,
                Err(e) => return ReadOutcome::Failed(PeerCause::Protocol(e.to_string())),
            };
            if h.payload_len() != (left - HEADER_LEN) as u64 {
                // Not whole in this record: the stream's path, from this header on.
                self.stage[..HEADER_LEN].copy_from_slice(&raw);
                (self.start, self.end) = (0, HEADER_LEN);
                return self.read(rx, Some(peer), sink, fin);
            }
            let mut dest = match take_header(h, Some(peer), sink, fin) {
                Next::Done => continue,
                Next::Payload(dest) => dest,
                Next::Stop(outcome) => return outcome,
            };
            let len = left - HEADER_LEN;
            let k = len.min(dest.keep);
            let read = if dest.scattered() {
                // Whole in the record: one read takes all it asks for.
                match rx.read_pieces(&mut dest, 0, len) {
                    Ok(n) if n == k => Ok(()),
                    Ok(_) => Err(io::ErrorKind::UnexpectedEof.into()),
                    Err(e) => Err(e),
                }
            } else {
                rx.read_exact(dest.slot(0, len))
            };
            if let Err(e) = read {
                return io(e);
            }
            // A truncated message: the rest of its payload is read and dropped.
            let mut rest = len - k;
            while rest > 0 {
                let n = rest.min(self.stage.len());
                if let Err(e) = rx.read_exact(&mut self.stage[..n]) {
                    return io(e);
                }
                rest -= n;
            }
            self.bytes_in += len as u64;
            if let Err(e) = sink.on_frame(peer, h, Some(dest)) {
                return ReadOutcome::Failed(PeerCause::Protocol(e));
            }
        }
    }

    /// Reads and dispatches frames until the socket is drained. `peer` is `None` until the
    /// handshake is done; then frames go to `sink`. Sets `*fin` when a Fin frame passes.
    pub(crate) fn read(
        &mut self,
        stream: &mut (impl Read + Pieces),
        peer: Option<usize>,
        sink: &mut impl Sink,
        fin: &mut bool,
    ) -> ReadOutcome {
        loop {
            let state = std::mem::replace(&mut self.state, ReadState::Header);
            match state {
                ReadState::Header => {
                    if self.end - self.start >= HEADER_LEN {
                        let h = match Header::decode(
                            &self.stage[self.start..self.start + HEADER_LEN],
                        ) {
                            Ok(h) => h,
                            Err(e) => {
                                return ReadOutcome::Failed(PeerCause::Protocol(e.to_string()))
                            }
                        };
                        self.start += HEADER_LEN;
                        match take_header(h, peer, sink, fin) {
                            Next::Done => {}
                            Next::Payload(dest) => {
                                self.state = ReadState::Payload { h, dest, got: 0 }
                            }
                            Next::Stop(outcome) => return outcome,
                        }
                        continue;
                    }
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    } else if self.stage.len() - self.start < HEADER_LEN {
                        self.stage.copy_within(self.start..self.end, 0);
                        self.end -= self.start;
                        self.start = 0;
                    }
                    match read_tracked(
                        !self.ring,
                        &mut self.short,
                        &mut self.bytes_in,
                        stream,
                        &mut [IoSliceMut::new(&mut self.stage[self.end..])],
                    ) {
                        Ok(Some(n)) => self.end += n,
                        Ok(None) => return ReadOutcome::Drained,
                        Err(outcome) => return outcome,
                    }
                }
                ReadState::Payload {
                    h,
                    mut dest,
                    mut got,
                } => {
                    // h.len fits in usize: decode capped it and the sink found room for it.
                    let len = h.len as usize;
                    if got < len {
                        if self.start < self.end {
                            let n = (len - got).min(self.end - self.start);
                            dest.copy_in(got, &self.stage[self.start..self.start + n]);
                            self.start += n;
                            got += n;
                        } else {
                            self.start = 0;
                            self.end = 0;
                            let remaining = len - got;
                            // A ring, or much left: straight into the destination (into the
                            // blocks of a laid-out receive, as many as one `readv` takes).
                            let direct =
                                (self.ring || remaining >= self.stage.len() / 2) && got < dest.keep;
                            let laid = direct && dest.scattered();
                            let r = match laid
                                .then(|| stream.read_pieces(&mut dest, got, len))
                                .flatten()
                            {
                                // A ring copies into the blocks as it goes.
                                Some(Ok(n)) => {
                                    self.bytes_in += n as u64;
                                    Ok(Some((n, true)))
                                }
                                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                                Some(Err(e)) => Err(ReadOutcome::Failed(PeerCause::io("read", &e))),
                                None => {
                                    let mut many: Vec<IoSliceMut<'_>>;
                                    let mut one: [IoSliceMut<'_>; 1];
                                    let bufs: &mut [IoSliceMut<'_>] = if !direct {
                                        one = [IoSliceMut::new(&mut self.stage[..])];
                                        &mut one
                                    } else if laid {
                                        let end = len.min(got + SCATTER_BATCH);
                                        many = dest.pieces(got, end, MAX_SCATTER);
                                        &mut many
                                    } else {
                                        one = [IoSliceMut::new(dest.slot(got, len))];
                                        &mut one
                                    };
                                    read_tracked(
                                        !self.ring,
                                        &mut self.short,
                                        &mut self.bytes_in,
                                        stream,
                                        bufs,
                                    )
                                    .map(|o| o.map(|n| (n, direct)))
                                }
                            };
                            match r {
                                Ok(Some((n, true))) => got += n,
                                Ok(Some((n, false))) => self.end = n,
                                Ok(None) => {
                                    self.state = ReadState::Payload { h, dest, got };
                                    return ReadOutcome::Drained;
                                }
                                Err(outcome) => return outcome,
                            }
                        }
                    }
                    if got == len {
                        if let Err(e) = sink.on_frame(peer.unwrap_or(usize::MAX), h, Some(dest)) {
                            return ReadOutcome::Failed(PeerCause::Protocol(e));
                        }
                    } else {
                        self.state = ReadState::Payload { h, dest, got };
                    }
                }
            }
        }
    }
}

/// What a frame's header asks of its reader, once the checks every frame passes are done.
enum Next {
    /// A frame without payload, delivered.
    Done,
    /// Read the payload into this destination.
    Payload(Dest),
    /// Stop reading: hand this to the connection's owner.
    Stop(ReadOutcome),
}

/// The checks and dispatch of an arrived header, for both of [`Reader`]'s paths.
fn take_header(h: Header, peer: Option<usize>, sink: &mut impl Sink, fin: &mut bool) -> Next {
    let Some(peer) = peer else {
        return Next::Stop(ReadOutcome::Handshake(h));
    };
    if matches!(
        h.kind,
        Kind::Hello | Kind::HelloAck | Kind::HelloReject | Kind::Challenge
    ) {
        return Next::Stop(ReadOutcome::Failed(PeerCause::Protocol(format!(
            "{:?} after the handshake",
            h.kind
        ))));
    }
    if h.kind.is_transport() {
        return Next::Stop(ReadOutcome::Control(h));
    }
    if h.kind == Kind::Fin {
        *fin = true;
    }
    if h.payload_len() == 0 {
        return match sink.on_frame(peer, h, None) {
            Ok(()) => Next::Done,
            Err(e) => Next::Stop(ReadOutcome::Failed(PeerCause::Protocol(e))),
        };
    }
    match sink.on_header(peer, &h) {
        Ok(dest) => Next::Payload(dest),
        Err(e) => Next::Stop(ReadOutcome::Failed(PeerCause::Protocol(e))),
    }
}

/// [`read_some`], skipping the read when the previous one came back short (see
/// `Reader::short`) and recording whether this one does.
fn read_tracked(
    skip_after_short: bool,
    short: &mut bool,
    bytes_in: &mut u64,
    stream: &mut impl Read,
    bufs: &mut [IoSliceMut<'_>],
) -> Result<Option<usize>, ReadOutcome> {
    if std::mem::take(short) && skip_after_short {
        return Ok(None);
    }
    let r = read_some(stream, bufs)?;
    if let Some(n) = r {
        *short = n < bufs.iter().map(|b| b.len()).sum();
        *bytes_in += n as u64;
    }
    Ok(r)
}

/// One read: Ok(Some(n)) bytes, Ok(None) would block, Err(outcome) end of stream or failure.
fn read_some(
    stream: &mut impl Read,
    bufs: &mut [IoSliceMut<'_>],
) -> Result<Option<usize>, ReadOutcome> {
    loop {
        match stream.read_vectored(bufs) {
            Ok(0) if bufs.iter().any(|b| !b.is_empty()) => return Err(ReadOutcome::Closed),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadOutcome::Failed(PeerCause::io("read", &e))),
        }
    }
}
