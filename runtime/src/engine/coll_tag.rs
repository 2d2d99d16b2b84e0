//! How a collective's messages are tagged (on the communicator's collective context): the
//! round within the call in bits 0-15, the family (barrier, broadcast, ...) in bits 16-19, the
//! call's number in bits 20-31. `coll` writes these tags; the engine reads them back to say in
//! words what a rank waits for (`--timeout`), so both take the layout from here.

const FAMILY_SHIFT: u32 = 16;
const CALL_SHIFT: u32 = 20;

/// Collective calls of one communicator that may be in flight at once (the call number's span).
pub(crate) const SEQ_SPAN: u32 = 1 << (32 - CALL_SHIFT);

/// The families, by number.
const FAMILIES: [&str; 9] = [
    "barrier",
    "broadcast",
    "reduce",
    "allreduce",
    "gather",
    "scatter",
    "allgather",
    "all-to-all",
    "neighbor exchange",
];

/// The tag bits of family number `n` (an index into the families).
pub(crate) const fn family(n: u32) -> u32 {
    n << FAMILY_SHIFT
}

/// The tag of `family` (plus a round) in collective call number `call`.
pub(crate) const fn tag(call: u32, family: u32) -> u32 {
    ((call % SEQ_SPAN) << CALL_SHIFT) | family
}

/// The family's name and the call's number in a collective's tag.
pub(crate) fn decode(t: u32) -> (&'static str, u32) {
    let family = FAMILIES
        .get(((t >> FAMILY_SHIFT) & 0xf) as usize)
        .copied()
        .unwrap_or("collective");
    (family, t >> CALL_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_decode_to_what_they_were_made_of() {
        for (n, name) in FAMILIES.iter().enumerate() {
            let t = tag(7, family(n as u32)) + 3;
            assert_eq!(decode(t), (*name, 7));
        }
        assert_eq!(decode(tag(SEQ_SPAN + 2, family(1))), ("broadcast", 2));
        assert_eq!(decode(family(10)), ("collective", 0));
    }
}
