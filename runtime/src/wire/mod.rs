//! The bytes on the wire, and nothing else: no sockets, no tags-to-queues logic.
//!
//! Every frame starts with a fixed [`Header`] of [`HEADER_LEN`] little-endian bytes; frames of
//! kind [`Kind::Eager`] and [`Kind::Data`] are followed by `len` payload bytes, all others carry
//! none. Decoding checks magic, version, kind and a cap on every length before anything trusts
//! the header, so garbage from the network is an error, never a panic or a huge allocation.

mod header;

pub(crate) use header::{
    Header, Kind, FLAG_BLOCKS, FLAG_DECLINE, FLAG_PULL, FLAG_PULLED, FLAG_PUSH, FLAG_SYNC,
    HEADER_LEN, MAX_EAGER_BYTES, MAX_MESSAGE_BYTES,
};
#[cfg(test)]
pub(crate) use header::{MAGIC, VERSION};
