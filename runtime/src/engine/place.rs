//! Where one side's bytes lie, as the other process of a single copy names them (engine/pull.rs).
//!
//! A contiguous buffer is one run, named by its address. A laid-out one (buf.rs) is many: its
//! side publishes them as a *block list* in its own memory, kept with the operation until it
//! completes, and sends the list's address instead of the bytes' (`FLAG_BLOCKS`). The other
//! side reads the list with one `process_vm_readv` and copies with those runs as its remote
//! iovecs, so a message laid out on both sides still goes by one copy, split between the two
//! cores like a contiguous one, with no packing anywhere.
//!
//! A list is `[u64; 2]` entries: entry 0 holds (blocks `n`, message bytes), entries `1..=n`
//! (address, bytes) of each block in travel order, the rest zeros. It has [`slots`] entries, a
//! function of the message's length alone, which both sides know: the reader fetches it in one
//! call. A list that does not check out (a count past its slots, lengths that overflow or do
//! not add up to the message) fails the copy as the peer's protocol error; whatever it names,
//! the kernel checks every run against the peer's own mappings, and this process's memory is
//! only ever its own iovecs.

use crate::sys::Span;
use crate::wire::FLAG_BLOCKS;

/// Where a side's bytes lie in its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// In one run from this address on.
    Run(u64),
    /// In the blocks of the list (module docs) at this address.
    Blocks(u64),
}

/// A published block list, kept by the operation whose bytes it names.
pub(crate) type List = Box<[[u64; 2]]>;

/// Entries in the list of a message of `len` bytes: one per block a laid-out view may have and
/// still be named (`buf::most_named_blocks`), and the count.
fn slots(len: usize) -> usize {
    1 + crate::buf::most_named_blocks(len)
}

/// The block list of a message of `len` bytes lying in `runs` (address, bytes) in order;
/// `None` if they are more than its slots.
pub(crate) fn publish(len: usize, runs: impl Iterator<Item = Span>) -> Option<List> {
    let mut list = vec![[0u64; 2]; slots(len)].into_boxed_slice();
    let mut n = 0;
    for (addr, bytes) in runs {
        n += 1;
        *list.get_mut(n)? = [addr, bytes as u64];
    }
    list[0] = [n as u64, len as u64];
    Some(list)
}

impl Place {
    /// The place of the blocks a published list names: the list's own address.
    pub(crate) fn of(list: &List) -> Place {
        Place::Blocks(list.as_ptr() as usize as u64)
    }

    /// The place a frame's address names, by its flags ([`Place::flag`]).
    pub(crate) fn named_by(flags: u32, addr: u64) -> Place {
        match flags & FLAG_BLOCKS {
            0 => Place::Run(addr),
            _ => Place::Blocks(addr),
        }
    }

    /// The address a frame carries.
    pub(crate) fn addr(self) -> u64 {
        match self {
            Place::Run(a) | Place::Blocks(a) => a,
        }
    }

    /// The flag a frame carrying this place's address sets: [`FLAG_BLOCKS`] for a list.
    pub(crate) fn flag(self) -> u32 {
        match self {
            Place::Run(_) => 0,
            Place::Blocks(_) => FLAG_BLOCKS,
        }
    }

    /// The runs of process `pid` holding bytes `start..end` (`start <= end`) of a message of
    /// `len` bytes that lies here: a block list is fetched from it and checked first.
    pub(crate) fn runs(
        self,
        pid: u32,
        len: usize,
        start: usize,
        end: usize,
    ) -> std::io::Result<Vec<Span>> {
        match self {
            Place::Run(a) => Ok(vec![(a.wrapping_add(start as u64), end - start)]),
            Place::Blocks(a) => {
                let mut list = vec![[0u64; 2]; slots(len)];
                crate::sys::pull(pid, a, bytemuck::cast_slice_mut(&mut list))?;
                cut(&list, len, start, end).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the peer's block list does not check out",
                    )
                })
            }
        }
    }
}

/// Checks a fetched block list for a message of `len` bytes and gives the runs holding its
/// bytes `start..end`; `None` if the list is not one (module docs).
fn cut(list: &[[u64; 2]], len: usize, start: usize, end: usize) -> Option<Vec<Span>> {
    let (&[n, total], rest) = list.split_first()?;
    let blocks = rest.get(..usize::try_from(n).ok()?)?;
    if total != len as u64 || start > end || end > len {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 0usize; // message bytes before this block
    for &[addr, bytes] in blocks {
        let bytes = usize::try_from(bytes).ok()?;
        addr.checked_add(bytes as u64)?;
        let next = at.checked_add(bytes)?;
        let (lo, hi) = (start.max(at), end.min(next));
        if lo < hi {
            out.push((addr + (lo - at) as u64, hi - lo));
        }
        at = next;
    }
    (at == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of 80000 bytes every 140000 from address 1 << 20 (not real memory: lists only
    /// name it).
    const B: usize = 80_000;
    fn runs(n: u64) -> impl Iterator<Item = Span> {
        (0..n).map(|k| ((1 << 20) + 140_000 * k, B))
    }

    /// Where message byte `b` lies.
    fn addr_of(b: usize) -> u64 {
        (1 << 20) + 140_000 * (b / B) as u64 + (b % B) as u64
    }

    #[test]
    fn lists_give_the_runs_of_every_range() {
        let len = 5 * B;
        let list = publish(len, runs(5)).unwrap();
        assert_eq!(list.len(), slots(len));
        assert_eq!(list[0], [5, len as u64]);
        for (start, end) in [
            (0, len),
            (0, 1),
            (B - 1, B + 1),
            (7000, 7000),
            (123_456, len),
        ] {
            let got = cut(&list, len, start, end).unwrap();
            // Run by run: each starts where its first byte lies and stays in one block.
            let mut b = start;
            for &(a, n) in &got {
                assert!(n > 0, "no empty run");
                assert_eq!(a, addr_of(b), "{start}..{end} at {b}");
                assert!(b % B + n <= B, "{start}..{end}: a run across blocks");
                b += n;
            }
            assert_eq!(b, end, "{start}..{end}: every byte");
        }
        assert_eq!(Place::Run(100).addr(), 100);
        assert_eq!(Place::Blocks(7).addr(), 7);
        for p in [Place::Run(100), Place::Blocks(7), Place::of(&list)] {
            assert_eq!(
                Place::named_by(p.flag() | crate::wire::FLAG_PULL, p.addr()),
                p,
                "{p:?} through a frame"
            );
        }
        let empty = publish(0, std::iter::empty()).unwrap();
        assert_eq!(cut(&empty, 0, 0, 0), Some(vec![]));
    }

    #[test]
    fn lists_that_do_not_check_out_are_refused() {
        let len = 5 * B;
        let most = crate::buf::most_named_blocks(len) as u64;
        assert!(publish(len, runs(most)).is_some());
        assert!(
            publish(len, runs(most + 1)).is_none(),
            "more blocks than slots"
        );
        let good = publish(len, runs(5)).unwrap();
        let refused = |edit: &dyn Fn(&mut [[u64; 2]])| {
            let mut l = good.to_vec();
            edit(&mut l);
            cut(&l, len, 0, len).is_none()
        };
        assert!(
            refused(&|l| l[0][0] = l.len() as u64),
            "count past the slots"
        );
        assert!(refused(&|l| l[0][0] = u64::MAX), "count past the slots");
        assert!(refused(&|l| l[0][1] += 1), "another message's length");
        assert!(refused(&|l| l[3][1] += 1), "blocks adding up to more");
        assert!(refused(&|l| l[0][0] = 4), "blocks adding up to less");
        assert!(
            refused(&|l| l[2] = [u64::MAX - 10, B as u64]),
            "a run past the end"
        );
        assert!(refused(&|l| l[2][1] = u64::MAX), "lengths that overflow");
        assert!(cut(&good, len, 2, 1).is_none(), "a range backwards");
        assert!(
            cut(&good, len, 0, len + 1).is_none(),
            "a range past the message"
        );
        assert!(cut(&[], 0, 0, 0).is_none(), "no count");
        assert!(cut(&good, len, 0, len).is_some());
    }
}
