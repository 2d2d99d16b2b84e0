//! Context ids: which ones this process has in use.
//!
//! Every communicator owns a pair of ids (`2i` for point-to-point, `2i + 1` for collectives),
//! so its traffic never matches another communicator's. A new communicator's pair must be free
//! on every member; `split`/`dup` agree on one with an allreduce (bitwise and) of every rank's
//! [`ContextIds::free_mask`] over the parent and take the lowest pair free everywhere. The world
//! holds pair 0.

/// Pairs of context ids a process can hold at once.
pub(crate) const PAIRS: usize = 4096;

pub(crate) struct ContextIds {
    /// Bit `i` set: pair `i` is free here.
    free: Vec<u64>,
}

impl ContextIds {
    pub(crate) fn new() -> ContextIds {
        let mut ids = ContextIds {
            free: vec![u64::MAX; PAIRS / 64],
        };
        ids.take(0); // the world
        ids
    }

    /// The free pairs, as words for the agreeing allreduce.
    pub(crate) fn free_mask(&self) -> Vec<u64> {
        self.free.clone()
    }

    /// The lowest pair free in `agreed` (the and of every member's mask), if any.
    pub(crate) fn lowest(agreed: &[u64]) -> Option<usize> {
        agreed
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    pub(crate) fn take(&mut self, pair: usize) {
        self.free[pair / 64] &= !(1 << (pair % 64));
    }

    pub(crate) fn release(&mut self, pair: usize) {
        if pair != 0 && pair < PAIRS {
            self.free[pair / 64] |= 1 << (pair % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_take_release() {
        let mut a = ContextIds::new();
        let mut b = ContextIds::new();
        b.take(1);
        let agreed: Vec<u64> = a
            .free_mask()
            .iter()
            .zip(b.free_mask())
            .map(|(x, y)| x & y)
            .collect();
        assert_eq!(
            ContextIds::lowest(&agreed),
            Some(2),
            "0 is the world's, 1 is taken on b"
        );
        a.take(2);
        b.take(2);
        a.release(2);
        assert_eq!(ContextIds::lowest(&a.free_mask()), Some(1));
        a.release(0);
        assert_eq!(
            ContextIds::lowest(&a.free_mask()),
            Some(1),
            "the world's pair is never released"
        );
        assert_eq!(ContextIds::lowest(&vec![0; PAIRS / 64]), None);
    }
}
