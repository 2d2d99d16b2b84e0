//! Local links whose frames move to shared memory: the set-up of `transport/shm` (offer, accept,
//! switch), reading and writing the rings, and the doorbells that wake a sleeping peer.
//!
//! A link's socket carries its frames until the switch, and after it only doorbells (a
//! header-only `Doorbell` frame, written when a ring says its other side sleeps) and, by its end,
//! the news that the peer is gone. Reads of a ring need no event: every poll reads every ring
//! (a load of a word the peer last wrote when it is empty), and a poll that may sleep first
//! tells each ring so ([`Rx::may_sleep`]), so that a writer rings the doorbell.

use std::io::IoSlice;

use super::peer::{write_frames, Conn, ReadOutcome, Rings};
use super::Net;
use crate::buf::RawSlice;
use crate::error::PeerCause;
use crate::transport::shm::{ring_capacity, Rx, Tx};
use crate::transport::{OutFrame, SendQueue, Sink};
use crate::wire::{Header, Kind, HEADER_LEN};

/// What the next frame from a peer's ring is (see [`Net::peek_ring`]).
pub(crate) enum RingPeek {
    /// Nothing has come.
    Empty,
    /// A frame that lies whole in the ring's current record, not yet taken: its header.
    Whole(Header),
    /// What only the ordinary path reads: no ring, bytes of the peer already staged, a frame
    /// in pieces, a header that does not decode.
    Other,
}

impl Net {
    /// A local link to `peer` on connection `idx` is up: offer the peer a ring for this
    /// rank's frames (when rings are on and the peer is a process of this host we can name).
    pub(super) fn offer_ring(&mut self, idx: usize, peer: usize) {
        if !self.tuning.local_shm {
            return;
        }
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if conn.stream.local_peer_pid().is_none() || conn.rings.is_some() {
            return;
        }
        let cap = ring_capacity(self.local_size);
        let Ok((tx, fd)) = Tx::create(cap) else {
            return; // no memfd: the link stays on its socket
        };
        if let Some(r) = self.rings_of(idx) {
            r.tx = Some(tx);
        }
        let mut h = Header::new(Kind::ShmOffer);
        h.len = cap as u64;
        h.tag = fd as u32;
        self.links[peer]
            .q
            .push_back(OutFrame::new(&h, RawSlice::EMPTY, None));
    }

    /// A frame of the transport's own arrived on connection `idx` (`from_ring`: through the
    /// peer's ring, else on the socket).
    pub(super) fn on_control(
        &mut self,
        idx: usize,
        h: Header,
        from_ring: bool,
        sink: &mut impl Sink,
    ) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        let Some(peer) = conn.peer else { return };
        let bad = |what: &str| PeerCause::Protocol(format!("{what} out of turn"));
        match h.kind {
            Kind::Doorbell => {} // the poll after this one reads the rings
            Kind::ShmOffer => {
                if from_ring || conn.rings.as_ref().is_some_and(|r| r.rx.is_some()) {
                    return self.conn_failed(idx, bad("a second ring offer"), sink);
                }
                // The process at the other end of the socket, whatever the frame says.
                let opened =
                    conn.stream.local_peer_pid().ok_or(()).and_then(|pid| {
                        Rx::open(pid, h.tag as i32, h.len as usize).map_err(|_| ())
                    });
                let answer = match opened {
                    Ok(rx) => {
                        if let Some(r) = self.rings_of(idx) {
                            r.rx = Some(rx);
                        }
                        Kind::ShmAccept
                    }
                    Err(()) => Kind::ShmRefuse,
                };
                self.send_control(peer, answer, sink);
            }
            Kind::ShmAccept | Kind::ShmRefuse => {
                let Some(r) = conn
                    .rings
                    .as_mut()
                    .filter(|r| r.tx.is_some() && !r.tx_on && r.pre_switch == 0)
                else {
                    return self.conn_failed(idx, bad("an answer to a ring offer"), sink);
                };
                if h.kind == Kind::ShmRefuse {
                    r.tx = None;
                    return;
                }
                if let Some(tx) = r.tx.as_mut() {
                    tx.mapped();
                }
                // Every frame queued so far goes on the socket, then ShmSwitch, then the ring.
                let q = &mut self.links[peer].q;
                q.push_back(control(Kind::ShmSwitch));
                r.pre_switch = q.len();
                self.flush(peer, sink);
            }
            Kind::ShmSwitch => {
                match conn.rings.as_mut() {
                    Some(r) if !from_ring && r.rx.is_some() && !r.rx_on => r.rx_on = true,
                    _ => return self.conn_failed(idx, bad("a switch to a ring"), sink),
                }
                // Its socket carries nothing but doorbells from now on: never read it while
                // spinning.
                if self.hot == Some(idx) {
                    self.hot = None;
                }
                self.read_ring(idx, sink);
            }
            other => {
                let cause = PeerCause::Protocol(format!("{other:?} is no transport frame"));
                self.conn_failed(idx, cause, sink);
            }
        }
    }

    /// Queues a header-only frame of the transport's own for `peer`, on whichever path its
    /// frames take now, and writes it.
    fn send_control(&mut self, peer: usize, kind: Kind, sink: &mut impl Sink) {
        self.links[peer].q.push_back(control(kind));
        self.flush(peer, sink);
    }

    /// Connection `idx`'s rings, made (and read on every poll from now on) if it has none yet.
    fn rings_of(&mut self, idx: usize) -> Option<&mut Rings> {
        let conn = self.conns[idx].as_mut()?;
        if conn.rings.is_none() {
            conn.rings = Some(Box::new(Rings::new(self.tuning.read_ahead)));
            self.ring_conns.push(idx);
        }
        conn.rings.as_deref_mut()
    }

    /// Wakes `peer` on connection `idx`: a doorbell on the socket, which carries nothing else
    /// from this rank once its frames go by ring (before that, a frame on the socket wakes it
    /// anyway: the doorbell is queued as one).
    fn doorbell(&mut self, idx: usize, peer: usize, sink: &mut impl Sink) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if conn.rings.as_ref().is_some_and(|r| r.tx_on) {
            if conn.ctl.is_empty() {
                conn.ctl
                    .extend_from_slice(&Header::new(Kind::Doorbell).encode());
            }
            match conn.write_ctl() {
                Ok(_) => self.want_write(idx),
                Err(e) => self.conn_failed(idx, PeerCause::io("write", &e), sink),
            }
        } else {
            self.send_control(peer, Kind::Doorbell, sink);
        }
    }

    /// Writes `peer`'s queue on connection `idx`, which has rings: the frames before the switch
    /// on the socket, the rest into the ring. Returns an error to fail the peer with.
    pub(super) fn flush_rings(
        &mut self,
        idx: usize,
        peer: usize,
        sink: &mut impl Sink,
    ) -> Result<(), PeerCause> {
        let Some(conn) = self.conns[idx].as_mut() else {
            return Ok(());
        };
        let Some(mut r) = conn.rings.take() else {
            return Ok(());
        };
        let q = &mut self.links[peer].q;
        let res = write_both(conn, &mut r, q, sink);
        let ring =
            r.tx.as_mut()
                .is_some_and(|t| std::mem::take(&mut t.ring_doorbell));
        conn.rings = Some(r);
        res?;
        if ring {
            self.doorbell(idx, peer, sink);
        }
        Ok(())
    }

    /// Writes a frame straight into `peer`'s ring, bypassing the link's queue, when the queue
    /// is empty (so the pair's order holds) and the ring has room for the whole frame now: true
    /// if it went. The path of a small blocking send: no queue entry, no completion to report.
    pub(crate) fn write_now(
        &mut self,
        peer: usize,
        header: &Header,
        payload: &[u8],
        sink: &mut impl Sink,
    ) -> bool {
        let Some(link) = self.links.get(peer).filter(|l| !l.failed && l.q.is_empty()) else {
            return false;
        };
        let Some(idx) = link.up else { return false };
        let Some(tx) = self.conns[idx]
            .as_mut()
            .and_then(|c| c.rings.as_mut())
            .filter(|r| r.tx_on)
            .and_then(|r| r.tx.as_mut())
        else {
            return false;
        };
        let head = header.encode();
        if !tx.write_whole(&[IoSlice::new(&head), IoSlice::new(payload)]) {
            return false;
        }
        if std::mem::take(&mut tx.ring_doorbell) {
            self.doorbell(idx, peer, sink);
        }
        true
    }

    /// The next frame from `peer`'s ring, looked at but left there: for a receive that waits
    /// on that peer alone and takes a frame it matches with [`Net::take_ring`].
    pub(crate) fn peek_ring(&mut self, peer: usize) -> RingPeek {
        let Some((_, r)) = self.rings_for(peer) else {
            return RingPeek::Other;
        };
        if !r.rx_reader.idle() {
            return RingPeek::Other;
        }
        let Some(rx) = r.reading() else {
            return RingPeek::Other;
        };
        let mut raw = [0u8; HEADER_LEN];
        match rx.peek(0, &mut raw) {
            Ok(0) => return RingPeek::Empty,
            Ok(HEADER_LEN) => {}
            _ => return RingPeek::Other,
        }
        let left = rx.record_left().unwrap_or(0);
        match Header::decode(&raw) {
            Ok(h) if h.payload_len() + HEADER_LEN as u64 == left as u64 => RingPeek::Whole(h),
            _ => RingPeek::Other,
        }
    }

    /// Takes the frame [`Net::peek_ring`] saw, of `len` payload bytes: the first of them into
    /// `dst`, the rest (a truncated message) dropped. False if the ring broke (the peer is
    /// failed).
    pub(crate) fn take_ring(
        &mut self,
        peer: usize,
        len: usize,
        dst: &mut [u8],
        sink: &mut impl Sink,
    ) -> bool {
        let Some((idx, r)) = self.rings_for(peer) else {
            return false;
        };
        let Some(rx) = r.reading() else { return false };
        // The payload where it lies, then the whole record taken (a truncated message's rest
        // with it).
        let keep = len.min(dst.len());
        match rx.peek(HEADER_LEN, &mut dst[..keep]) {
            Ok(n) if n == keep => rx.skip_record(),
            Ok(_) => {
                let cause = PeerCause::Protocol("a ring record shorter than its frame".into());
                self.conn_failed(idx, cause, sink);
                return false;
            }
            Err(e) => {
                self.conn_failed(idx, PeerCause::io("ring", &e), sink);
                return false;
            }
        }
        let wake = std::mem::take(&mut rx.ring_doorbell);
        self.bytes_read += (HEADER_LEN + len) as u64;
        if wake {
            self.doorbell(idx, peer, sink);
        }
        true
    }

    /// The connection to `peer` and its rings, if it has any.
    fn rings_for(&mut self, peer: usize) -> Option<(usize, &mut Rings)> {
        let idx = self.links.get(peer)?.up?;
        let r = self.conns[idx].as_mut()?.rings.as_deref_mut()?;
        Some((idx, r))
    }

    /// Reads what the peer's ring on connection `idx` holds; true if any byte came.
    pub(super) fn read_ring(&mut self, idx: usize, sink: &mut impl Sink) -> bool {
        let mut moved = false;
        loop {
            let Some(conn) = self.conns[idx].as_mut() else {
                return moved;
            };
            let (Some(peer), Some(r)) = (conn.peer, conn.rings.as_deref_mut()) else {
                return moved;
            };
            let Rings {
                rx: Some(rx),
                rx_on: true,
                rx_reader,
                ..
            } = r
            else {
                return moved;
            };
            let before = rx_reader.bytes_in;
            let mut fin = false;
            let outcome = rx_reader.read_ring(rx, peer, sink, &mut fin);
            let came = rx_reader.bytes_in - before;
            self.bytes_read += came;
            moved |= came > 0;
            let wake = std::mem::take(&mut rx.ring_doorbell);
            if fin {
                self.links[peer].fin_in = true;
            }
            if wake {
                self.doorbell(idx, peer, sink);
            }
            match outcome {
                ReadOutcome::Drained => return moved,
                ReadOutcome::Control(h) => self.on_control(idx, h, true, sink),
                ReadOutcome::Failed(cause) => {
                    self.conn_failed(idx, cause, sink);
                    return moved;
                }
                ReadOutcome::Closed | ReadOutcome::Handshake(_) => {
                    let cause = PeerCause::Protocol("a ring that ended".into());
                    self.conn_failed(idx, cause, sink);
                    return moved;
                }
            }
        }
    }

    /// Reads every ring and writes into every ring with frames waiting; true if anything moved.
    pub(super) fn poll_rings(&mut self, sink: &mut impl Sink) -> bool {
        let mut active = false;
        let mut i = 0;
        while i < self.ring_conns.len() {
            let idx = self.ring_conns[i];
            i += 1;
            // An empty ring also says whether its writer waits for space reads freed.
            let (ready, wake) = self.conns[idx]
                .as_mut()
                .and_then(|c| c.rings.as_mut())
                .and_then(|r| r.reading())
                .map_or((false, false), |rx| {
                    let ready = rx.maybe_ready();
                    (ready, !ready && std::mem::take(&mut rx.ring_doorbell))
                });
            if ready {
                active |= self.read_ring(idx, sink);
            }
            if let Some(peer) = self.conns[idx].as_ref().and_then(|c| c.peer) {
                if wake {
                    self.doorbell(idx, peer, sink);
                }
                active |= self.flush_waiting(idx, peer, sink);
            }
        }
        active
    }

    /// Before a poll that may sleep: tells every ring so. False if one of them has bytes to
    /// read or room for bytes waiting: then do not sleep.
    pub(super) fn rings_may_sleep(&mut self, sink: &mut impl Sink) -> bool {
        let mut may = true;
        let mut broken = Vec::new();
        let mut wake = Vec::new();
        for &idx in &self.ring_conns {
            let Some(conn) = self.conns[idx].as_mut() else {
                continue;
            };
            let Some(r) = conn.rings.as_mut() else {
                continue;
            };
            let waiting = conn
                .peer
                .is_some_and(|p| self.links[p].up == Some(idx) && !self.links[p].q.is_empty());
            if let Some(rx) = r.reading() {
                match rx.may_sleep() {
                    Ok(true) => {}
                    Ok(false) => may = false,
                    Err(e) => broken.push((idx, e)),
                }
                if let (true, Some(peer)) = (std::mem::take(&mut rx.ring_doorbell), conn.peer) {
                    wake.push((idx, peer));
                }
            }
            if let Some(tx) = r.tx.as_mut().filter(|_| r.tx_on && waiting) {
                match tx.may_sleep() {
                    Ok(true) => {}
                    Ok(false) => may = false,
                    Err(e) => broken.push((idx, e)),
                }
            }
        }
        for (idx, peer) in wake {
            self.doorbell(idx, peer, sink);
        }
        for (idx, e) in broken {
            self.conn_failed(idx, PeerCause::io("ring", &e), sink);
            may = false;
        }
        may
    }

    /// After a poll that may have slept: no ring needs a doorbell until the next sleep.
    pub(super) fn rings_awake(&mut self) {
        for &idx in &self.ring_conns {
            if let Some(rx) = self.conns[idx]
                .as_mut()
                .and_then(|c| c.rings.as_mut())
                .and_then(|r| r.reading())
            {
                rx.awake();
            }
        }
    }

    /// Whether connection `idx` reads its peer's frames from a ring (so reading its socket
    /// while spinning would only cost a system call).
    pub(super) fn reads_ring(&self, idx: usize) -> bool {
        self.conns
            .get(idx)
            .and_then(Option::as_ref)
            .and_then(|c| c.rings.as_ref())
            .is_some_and(|r| r.rx_on)
    }
}

/// The writing half of [`Net::flush_rings`], with the rings taken out of the connection.
fn write_both(
    conn: &mut Conn,
    r: &mut Rings,
    q: &mut SendQueue,
    sink: &mut impl Sink,
) -> Result<(), PeerCause> {
    let io = |e: std::io::Error| PeerCause::io("write", &e);
    if !r.tx_on {
        let mut socket = |q: &mut SendQueue| conn.write_queue(q, sink).map_err(io);
        if r.pre_switch == 0 {
            // No switch under way: the socket's path, as for any link.
            return socket(q).map(|_| ());
        }
        // The frames up to ShmSwitch on the socket (a short queue: those queued while the peer
        // mapped the ring), then the rest into the ring.
        let mut ahead: SendQueue = q.drain(..r.pre_switch.min(q.len())).collect();
        let res = socket(&mut ahead);
        r.pre_switch = ahead.len();
        r.tx_on = r.pre_switch == 0;
        while let Some(f) = ahead.pop_back() {
            q.push_front(f);
        }
        res?;
        if !r.tx_on {
            return Ok(());
        }
    }
    match r.tx.as_mut() {
        Some(tx) => write_frames(tx, q, sink).map(|_| ()).map_err(io),
        None => Ok(()),
    }
}

/// A header-only frame of the transport's own.
fn control(kind: Kind) -> OutFrame {
    OutFrame::new(&Header::new(kind), RawSlice::EMPTY, None)
}
