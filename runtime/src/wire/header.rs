//! The frame header: encode and decode over byte slices.
//!
//! Layout (48 bytes, little-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 2 | magic `0x4d50` ("MP") |
//! | 2 | 1 | version |
//! | 3 | 1 | kind |
//! | 4 | 4 | flags |
//! | 8 | 4 | context id (communicator) |
//! | 12 | 4 | source rank (world) |
//! | 16 | 4 | tag |
//! | 20 | 4 | sequence number (per connection, per direction) |
//! | 24 | 8 | length: payload bytes (eager, data), message bytes (rts, cts, pushed), job id (hello); the receiver's buffer or block list address (cts with [`FLAG_PUSH`]) |
//! | 32 | 8 | send id: the sender's operation (rts, cts, sync eager, ack, pushed) |
//! | 40 | 8 | recv id: the receiver's operation (cts, data, pushed); the sender's buffer or block list address (rts with [`FLAG_PULL`]) |
//!
//! In the handshake, send id and recv id carry the 16 bytes of a challenge (challenge) or a
//! proof (hello, hello ack, hello reject), and tag and seq the dialler's own challenge (hello).

use std::fmt;

/// Bytes in every header.
pub(crate) const HEADER_LEN: usize = 48;
pub(crate) const MAGIC: u16 = 0x4d50;
pub(crate) const VERSION: u8 = 1;

/// Largest payload an eager frame may announce. The receiver may have to buffer an eager
/// message it did not expect, so this bounds what a peer can make it allocate per frame.
pub(crate) const MAX_EAGER_BYTES: u64 = 64 << 20;
/// Largest message (rendezvous) size accepted: 2^48 bytes.
pub(crate) const MAX_MESSAGE_BYTES: u64 = 1 << 48;

/// Eager frame whose sender waits for an [`Kind::Ack`] once it is matched (synchronous send).
pub(crate) const FLAG_SYNC: u32 = 1;
/// Clear-to-send that declines the data (the receive buffer is too small: truncation); on
/// [`Kind::Pushed`], the sender could not write its part.
pub(crate) const FLAG_DECLINE: u32 = 2;
/// Request-to-send between ranks of one host: the receiver may copy the message out of the
/// sender's memory itself (its address is in `recv_id`, see [`FLAG_BLOCKS`]) instead of asking
/// for it. With [`FLAG_PUSH`] instead: the sender's message lies in short blocks (a layout),
/// which the receiver may ask it to write into the receiver's memory, all of it (a
/// clear-to-send with [`FLAG_PUSH`]).
pub(crate) const FLAG_PULL: u32 = 4;
/// Clear-to-send saying the receiver has copied its part of the message itself (all of it,
/// unless a [`FLAG_PUSH`] clear-to-send came first): no data frame follows.
pub(crate) const FLAG_PULLED: u32 = 8;
/// Clear-to-send asking the sender to write the tail of the message into the receiver's memory
/// itself (at the address in `len`, see [`FLAG_BLOCKS`]) while the receiver copies the head,
/// then to answer [`Kind::Pushed`]; a [`FLAG_PULLED`] clear-to-send follows once the head is
/// copied.
pub(crate) const FLAG_PUSH: u32 = 16;
/// With [`FLAG_PULL`] or [`FLAG_PUSH`]: the address is of a block list in the sender's
/// (receiver's) memory naming where the message's bytes lie (a layout; engine/place.rs), not of
/// the bytes themselves.
pub(crate) const FLAG_BLOCKS: u32 = 32;
const KNOWN_FLAGS: u32 =
    FLAG_SYNC | FLAG_DECLINE | FLAG_PULL | FLAG_PULLED | FLAG_PUSH | FLAG_BLOCKS;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// First frame of a dialled connection: who is calling (src) for which job (len).
    Hello = 1,
    /// The acceptor keeps this connection.
    HelloAck = 2,
    /// The acceptor keeps the other connection between the pair (simultaneous dial).
    HelloReject = 3,
    /// A whole message: header then payload.
    Eager = 4,
    /// Request to send: announces a large message; no payload.
    Rts = 5,
    /// Clear to send: the receiver matched an RTS and names its receive.
    Cts = 6,
    /// The payload of a rendezvous message, sent after a CTS.
    Data = 7,
    /// A synchronous eager message was matched.
    Ack = 8,
    /// The sender finalized: nothing more comes on this connection.
    Fin = 9,
    /// The sender wrote its part of a message into the receiver's memory (see [`FLAG_PUSH`]).
    Pushed = 10,
    /// First frame of an accepted connection: a random challenge (`send_id`, `recv_id`) that
    /// the dialler's Hello must answer (see `auth.rs`).
    Challenge = 11,
    /// The receiver gives back `len` bytes of the sender's eager window (engine/credit.rs).
    Credit = 12,
    /// Between ranks of one host: the sender offers a ring for its frames (`len` bytes of data,
    /// its descriptor number in `tag`; see `transport/shm`).
    ShmOffer = 13,
    /// The offered ring is mapped.
    ShmAccept = 14,
    /// The offered ring could not be mapped: frames stay on the socket.
    ShmRefuse = 15,
    /// The last frame on the socket: every later one comes through the ring.
    ShmSwitch = 16,
    /// Wake up: the ring has bytes for you, or room for your bytes.
    Doorbell = 17,
}

impl Kind {
    /// A frame of the transport's own (the move to shared memory, doorbells), which the
    /// transport handles and never hands on.
    pub(crate) fn is_transport(self) -> bool {
        matches!(
            self,
            Kind::ShmOffer | Kind::ShmAccept | Kind::ShmRefuse | Kind::ShmSwitch | Kind::Doorbell
        )
    }

    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::HelloAck,
            3 => Kind::HelloReject,
            4 => Kind::Eager,
            5 => Kind::Rts,
            6 => Kind::Cts,
            7 => Kind::Data,
            8 => Kind::Ack,
            9 => Kind::Fin,
            10 => Kind::Pushed,
            11 => Kind::Challenge,
            12 => Kind::Credit,
            13 => Kind::ShmOffer,
            14 => Kind::ShmAccept,
            15 => Kind::ShmRefuse,
            16 => Kind::ShmSwitch,
            17 => Kind::Doorbell,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub flags: u32,
    pub context: u32,
    pub src: u32,
    pub tag: u32,
    pub seq: u32,
    pub len: u64,
    pub send_id: u64,
    pub recv_id: u64,
}

/// Why bytes are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Short(usize),
    BadMagic(u16),
    BadVersion(u8),
    BadKind(u8),
    BadFlags(u32),
    TooLong { kind: Kind, len: u64, cap: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short(n) => write!(f, "header of {n} bytes, {HEADER_LEN} needed"),
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:#06x} (not an mpr peer?)"),
            DecodeError::BadVersion(v) => {
                write!(f, "wire version {v}, this build speaks {VERSION}")
            }
            DecodeError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            DecodeError::BadFlags(fl) => write!(f, "unknown flags {fl:#x}"),
            DecodeError::TooLong { kind, len, cap } => {
                write!(f, "{kind:?} frame of {len} bytes exceeds the cap of {cap}")
            }
        }
    }
}

impl Header {
    /// A header of `kind` with every other field zero.
    pub(crate) fn new(kind: Kind) -> Header {
        Header {
            kind,
            flags: 0,
            context: 0,
            src: 0,
            tag: 0,
            seq: 0,
            len: 0,
            send_id: 0,
            recv_id: 0,
        }
    }

    /// Payload bytes that follow this header on the wire.
    pub(crate) fn payload_len(&self) -> u64 {
        match self.kind {
            Kind::Eager | Kind::Data => self.len,
            _ => 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2] = VERSION;
        b[3] = self.kind as u8;
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.context.to_le_bytes());
        b[12..16].copy_from_slice(&self.src.to_le_bytes());
        b[16..20].copy_from_slice(&self.tag.to_le_bytes());
        b[20..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..40].copy_from_slice(&self.send_id.to_le_bytes());
        b[40..48].copy_from_slice(&self.recv_id.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Header, DecodeError> {
        if b.len() < HEADER_LEN {
            return Err(DecodeError::Short(b.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let magic = u16_at(0);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        if b[2] != VERSION {
            return Err(DecodeError::BadVersion(b[2]));
        }
        let kind = Kind::from_u8(b[3]).ok_or(DecodeError::BadKind(b[3]))?;
        let flags = u32_at(4);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::BadFlags(flags));
        }
        let h = Header {
            kind,
            flags,
            context: u32_at(8),
            src: u32_at(12),
            tag: u32_at(16),
            seq: u32_at(20),
            len: u64_at(24),
            send_id: u64_at(32),
            recv_id: u64_at(40),
        };
        let cap = match kind {
            Kind::Eager => MAX_EAGER_BYTES,
            Kind::Rts | Kind::Cts | Kind::Data | Kind::Pushed => MAX_MESSAGE_BYTES,
            _ => u64::MAX,
        };
        if h.len > cap {
            return Err(DecodeError::TooLong {
                kind,
                len: h.len,
                cap,
            });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind) -> Header {
        Header {
            kind,
            flags: FLAG_SYNC,
            context: 7,
            src: 3,
            tag: u32::MAX,
            seq: 99,
            len: 1234,
            send_id: u64::MAX - 1,
            recv_id: 42,
        }
    }

    #[test]
    fn round_trip_every_kind() {
        for k in 1..=17u8 {
            let h = sample(Kind::from_u8(k).unwrap());
            assert_eq!(Header::decode(&h.encode()), Ok(h));
        }
        assert_eq!(Kind::from_u8(18), None);
    }

    #[test]
    fn rejects_garbage() {
        let good = sample(Kind::Eager).encode();
        assert_eq!(Header::decode(&good[..10]), Err(DecodeError::Short(10)));
        let mut b = good;
        b[0] = 0;
        assert!(matches!(Header::decode(&b), Err(DecodeError::BadMagic(_))));
        let mut b = good;
        b[2] = 200;
        assert_eq!(Header::decode(&b), Err(DecodeError::BadVersion(200)));
        let mut b = good;
        b[3] = 0;
        assert_eq!(Header::decode(&b), Err(DecodeError::BadKind(0)));
        let mut b = good;
        b[7] = 0x80;
        assert!(matches!(Header::decode(&b), Err(DecodeError::BadFlags(_))));
        let mut h = sample(Kind::Eager);
        h.len = MAX_EAGER_BYTES + 1;
        assert!(matches!(
            Header::decode(&h.encode()),
            Err(DecodeError::TooLong { .. })
        ));
    }
}
