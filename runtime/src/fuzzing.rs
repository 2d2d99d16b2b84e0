//! Entry points for the fuzz targets in `fuzz/` (and the property tests): the decoders that read
//! bytes a peer or a stranger controls. Not part of the API; hidden from the docs.
//!
//! Each checks what must hold for any input: no panic, no allocation sized by the input beyond
//! the caps, and a decoded value re-encodes to bytes that decode to the same value.

use crate::wire::{Header, MAX_MESSAGE_BYTES};

/// Decodes a frame header from arbitrary bytes.
pub fn frame_header(bytes: &[u8]) {
    if let Ok(h) = Header::decode(bytes) {
        assert!(
            h.payload_len() <= MAX_MESSAGE_BYTES,
            "a decoded length above the cap"
        );
        assert_eq!(
            Header::decode(&h.encode()),
            Ok(h),
            "re-encoding changed the header"
        );
    }
}

/// Parses a line of the rendezvous protocol from arbitrary bytes, as the launcher and the ranks
/// read them.
pub fn rendezvous_line(bytes: &[u8]) {
    let mut reader = std::io::BufReader::new(bytes);
    while let Ok(Some(line)) = mpr_launch::rendezvous::read_line(&mut reader) {
        let _ = mpr_launch::rendezvous::Request::parse(&line);
        let _ = mpr_launch::rendezvous::Reply::parse(&line);
    }
}

#[cfg(test)]
mod tests {
    /// The property test of the normal suite: many pseudo-random inputs, half of them with a
    /// valid frame prefix so the deeper checks are reached.
    #[test]
    fn decoders_survive_arbitrary_bytes() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let rounds = if cfg!(miri) { 500 } else { 100_000 };
        for i in 0..rounds {
            let len = (x % 130) as usize;
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if i % 2 == 0 && len >= 4 {
                buf[0..2].copy_from_slice(&crate::wire::MAGIC.to_le_bytes());
                buf[2] = crate::wire::VERSION;
            }
            super::frame_header(&buf);
            super::rendezvous_line(&buf);
        }
    }
}
