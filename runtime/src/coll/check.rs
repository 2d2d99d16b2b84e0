//! `MPR_CHECK=1`: every collective first agrees on its signature across the communicator.
//!
//! A collective called differently at one rank (another collective, another root, operator,
//! element type or count) is a bug that MPI leaves undefined: in practice some ranks get an
//! error or wrong data and the others wait for ever. With the check on, every collective begins
//! with an exchange of each rank's signature (a few words), and
//! a disagreement is an `InvalidArgument` error at *every* rank, naming the rank that differs
//! from the others and what differs. Its cost is that exchange (BENCHMARKS.md); off (the
//! default), a collective pays one flag test.
//!
//! Agreement is settled by one allreduce (maximum) of the signature's words and their
//! complements, through the node's shared segment when it can; only when the ranks differ do
//! they gather every signature, to name the odd rank alike everywhere. A nonblocking
//! collective is checked when it starts: with the check on, its start waits until every rank
//! has started it (a debugging mode may serialize what it checks).

use crate::comm::Comm;
use crate::error::{Error, Result};

use super::op::Op;

/// What a rank passed to a collective, as far as the others must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signature {
    /// Which collective (its name).
    pub kind: &'static str,
    pub root: Option<usize>,
    /// The operator: a built-in one, or a function of the caller's (`Some(None)`).
    pub op: Option<Option<Op>>,
    /// The element type: its size, and a hash of its name.
    pub elem: Option<(usize, u32)>,
    /// Elements that must be the same at every rank (what each rank sends, or receives).
    pub count: Option<usize>,
}

/// The collectives, in the order their numbers go on the wire.
const KINDS: [&str; 20] = [
    "barrier",
    "broadcast",
    "reduce",
    "allreduce",
    "gather",
    "scatter",
    "allgather",
    "alltoall",
    "scan",
    "exscan",
    "reduce_scatter_block",
    "gatherv",
    "scatterv",
    "allgatherv",
    "alltoallv",
    "ibarrier",
    "ibroadcast",
    "iallreduce",
    "allreduce_with",
    "reduce_with",
];

const OPS: [Op; 12] = [
    Op::Sum,
    Op::Prod,
    Op::Min,
    Op::Max,
    Op::BitAnd,
    Op::BitOr,
    Op::BitXor,
    Op::And,
    Op::Or,
    Op::Xor,
    Op::MinLoc,
    Op::MaxLoc,
];

/// A stable 32-bit hash of a type's name (FNV-1a), so that ranks can compare element types.
fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Signature {
    /// The signature of collective `kind`, to be completed with the `with_*` methods.
    pub(crate) fn of(kind: &'static str) -> Signature {
        Signature {
            kind,
            root: None,
            op: None,
            elem: None,
            count: None,
        }
    }

    pub(crate) fn root(mut self, root: usize) -> Signature {
        self.root = Some(root);
        self
    }

    pub(crate) fn op(mut self, op: Option<Op>) -> Signature {
        self.op = Some(op);
        self
    }

    /// Elements of type `T`, `count` of them (the count every rank must agree on).
    pub(crate) fn elems<T>(mut self, count: usize) -> Signature {
        self.elem = Some((
            std::mem::size_of::<T>(),
            name_hash(std::any::type_name::<T>()),
        ));
        self.count = Some(count);
        self
    }

    /// Elements of type `T`, whose count may differ between ranks (the vector collectives).
    pub(crate) fn elem_type<T>(mut self) -> Signature {
        self.elem = Some((
            std::mem::size_of::<T>(),
            name_hash(std::any::type_name::<T>()),
        ));
        self
    }

    /// Four words: [kind, root + 1 (0: none)], [op + 1 (0: none; 255: a function), elem size],
    /// [type hash], [count + 1 (0: none)].
    fn encode(&self) -> [u64; 4] {
        let kind = KINDS
            .iter()
            .position(|k| *k == self.kind)
            .unwrap_or(KINDS.len()) as u64;
        let root = self.root.map_or(0, |r| r as u64 + 1);
        let op = match self.op {
            None => 0,
            Some(None) => 255,
            Some(Some(op)) => OPS
                .iter()
                .position(|o| *o == op)
                .map_or(254, |i| i as u64 + 1),
        };
        let (size, hash) = self.elem.unwrap_or((0, 0));
        let count = self.count.map_or(0, |c| c as u64 + 1);
        [
            kind | root << 32,
            op | (size as u64) << 32,
            u64::from(hash),
            count,
        ]
    }

    fn decode(w: &[u64]) -> Signature {
        let kind = KINDS
            .get((w[0] & 0xffff_ffff) as usize)
            .copied()
            .unwrap_or("?");
        let root = (w[0] >> 32).checked_sub(1).map(|r| r as usize);
        let op = match w[1] & 0xffff_ffff {
            0 => None,
            255 => Some(None),
            i => OPS.get(i as usize - 1).map(|o| Some(*o)),
        };
        let size = (w[1] >> 32) as usize;
        let elem = (size > 0 || w[2] != 0).then_some((size, w[2] as u32));
        let count = w[3].checked_sub(1).map(|c| c as usize);
        Signature {
            kind,
            root,
            op,
            elem,
            count,
        }
    }

    /// What differs from `other`, in words: "root 1, not 0".
    fn difference(&self, other: &Signature) -> String {
        if self.kind != other.kind {
            return format!("called {}, not {}", self.kind, other.kind);
        }
        if self.root != other.root {
            let r = |r: Option<usize>| r.map_or("none".to_string(), |r| r.to_string());
            return format!("root {}, not {}", r(self.root), r(other.root));
        }
        if self.op != other.op {
            let o = |o: Option<Option<Op>>| match o {
                Some(Some(op)) => format!("{op:?}"),
                Some(None) => "a function of its own".into(),
                None => "none".into(),
            };
            return format!("operator {}, not {}", o(self.op), o(other.op));
        }
        if self.elem != other.elem {
            let (a, b) = (
                self.elem.unwrap_or_default(),
                other.elem.unwrap_or_default(),
            );
            return if a.0 != b.0 {
                format!("{}-byte elements, not {}-byte", a.0, b.0)
            } else {
                "elements of another type".into()
            };
        }
        let c = |c: Option<usize>| c.map_or("?".to_string(), |c| c.to_string());
        format!("{} elements, not {}", c(self.count), c(other.count))
    }
}

impl Comm {
    /// With `MPR_CHECK=1`, makes every rank agree on `sig` before the collective runs: an
    /// error at every rank, naming the rank that differs, if they do not.
    pub(crate) fn agree(&self, sig: Signature) -> Result<()> {
        if !self.engine.borrow().tuning.check || self.size() < 2 {
            return Ok(());
        }
        // Agreement first, in one allreduce of eight words (through the node segment when
        // the communicator is on one host): the maximum of each word and of its complement
        // (the minimum) are equal only if every rank passed the same words.
        let mine = sig.encode();
        let mut both = [0u64; 8];
        for (i, w) in mine.iter().enumerate() {
            both[i] = *w;
            both[i + 4] = !*w;
        }
        let mut max = [0u64; 8];
        self.allreduce_max_u64(&both, &mut max)?;
        if (0..4).all(|i| max[i] == !max[i + 4]) {
            return Ok(());
        }
        // They differ: every rank gathers every signature to name the odd one alike.
        let n = self.size();
        let mut all = vec![0u64; 4 * n];
        self.bruck_allgather(&mine, &mut all)?;
        let sigs: Vec<Signature> = all.chunks(4).map(Signature::decode).collect();
        // The reference is what most ranks passed; the odd one is the first that differs.
        let reference = sigs
            .iter()
            .max_by_key(|s| sigs.iter().filter(|t| t == s).count())
            .copied()
            .unwrap_or(sig);
        match sigs.iter().position(|s| *s != reference) {
            None => Ok(()),
            Some(odd) => Err(Error::InvalidArgument {
                what: "collective (MPR_CHECK)",
                detail: format!(
                    "rank {odd} {} (the other ranks called {})",
                    sigs[odd].difference(&reference),
                    reference.kind
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_survive_the_wire_and_say_what_differs() {
        let a = Signature::of("reduce")
            .root(2)
            .op(Some(Op::Max))
            .elems::<f32>(7);
        assert_eq!(Signature::decode(&a.encode()), a);
        let f = Signature::of("reduce_with")
            .root(0)
            .op(None)
            .elem_type::<u8>();
        assert_eq!(Signature::decode(&f.encode()), f);
        let b = Signature::of("broadcast").root(1).elems::<f32>(7);
        assert_eq!(b.difference(&a), "called broadcast, not reduce");
        let c = a.root(0);
        assert_eq!(c.difference(&a), "root 0, not 2");
        let d = a.op(Some(Op::Sum));
        assert_eq!(d.difference(&a), "operator Sum, not Max");
        let e = Signature::of("reduce")
            .root(2)
            .op(Some(Op::Max))
            .elems::<i32>(7);
        assert_eq!(e.difference(&a), "elements of another type");
        let g = Signature::of("reduce")
            .root(2)
            .op(Some(Op::Max))
            .elems::<f64>(7);
        assert_eq!(g.difference(&a), "8-byte elements, not 4-byte");
        let h = a.elems::<f32>(8);
        assert_eq!(h.difference(&a), "8 elements, not 7");
    }
}
