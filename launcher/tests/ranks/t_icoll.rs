//! Rank program for the nonblocking collectives, in-place forms, displacements and the new
//! operators: `t_icoll CASE`. Every nonblocking collective is checked against its blocking twin
//! on random data; rank 0 prints `ok CASE` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

use mpr::{Comm, Op};

fn main() -> ExitCode {
    run_case(|world, case, _args| match case {
        "twins" => {
            // Small (all at once), medium, and above the one-round limit (ring, pairwise).
            for len in [0, 1, 7, 300, 20_000] {
                twins(world, len)?;
            }
            Ok(())
        }
        "overlap" => overlap(world),
        "displs" => displs(world),
        "in_place" => in_place(world),
        "ops" => ops(world),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// Deterministic pseudo-random numbers (splitmix64), different per rank and stream.
fn random(rank: usize, stream: u64, len: usize) -> Vec<u64> {
    let mut x = (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

fn floats(rank: usize, stream: u64, len: usize) -> Vec<f64> {
    random(rank, stream, len)
        .into_iter()
        .map(|v| (v % 1_000_000) as f64 / 7.0 - 50_000.0)
        .collect()
}

/// Runs one nonblocking collective in its own scope and waits for it.
macro_rules! nb {
    (|$s:ident| $call:expr) => {
        mpr::scope(|$s| -> R<()> {
            let r = $call.map_err(e)?;
            r.wait().map_err(e)?;
            Ok(())
        })
    };
}

/// Every nonblocking collective against its blocking twin, `len` elements per block.
fn twins(w: &Comm, len: usize) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    let tag = |what: &str| format!("{what} of {len} on {n} ranks");
    let x = floats(me, len as u64, len);
    let xi = random(me, 1 + len as u64, len);
    let big = floats(me, 2 + len as u64, len * n);
    let bigi = random(me, 3 + len as u64, len * n);
    for root in [0, n - 1] {
        // reduce, also with a closure
        let (mut a, mut b) = (vec![0.0f64; len], vec![0.0f64; len]);
        w.reduce(&x, &mut a, Op::Sum, root).map_err(e)?;
        nb!(|s| w.ireduce(s, &x, &mut b, Op::Sum, root))?;
        check!(
            me != root || a == b,
            "{} (root {root}) differs",
            tag("ireduce")
        );
        let (mut a, mut b) = (vec![0u64; len], vec![0u64; len]);
        let f = |p: &u64, q: &u64| p.wrapping_mul(3) ^ q.wrapping_mul(3);
        w.reduce_with(&xi, &mut a, f, root).map_err(e)?;
        nb!(|s| w.ireduce_with(s, &xi, &mut b, f, root))?;
        check!(me != root || a == b, "{} differs", tag("ireduce_with"));
        // gather, scatter and their v-forms
        let mut a = vec![0.0f64; if me == root { len * n } else { 0 }];
        let mut b = a.clone();
        w.gather(&x, &mut a, root).map_err(e)?;
        nb!(|s| w.igather(s, &x, &mut b, root))?;
        check!(a == b, "{} differs", tag("igather"));
        let (mut a, mut b) = (vec![0.0f64; len], vec![0.0f64; len]);
        w.scatter(&big, &mut a, root).map_err(e)?;
        nb!(|s| w.iscatter(s, &big, &mut b, root))?;
        check!(a == b, "{} differs", tag("iscatter"));
        let counts: Vec<usize> = (0..n).map(|r| (len + r * 3) % (len + 5)).collect();
        let mine = random(me, 4, counts[me]);
        let total = counts.iter().sum();
        let (mut a, mut b) = (vec![0u64; total], vec![0u64; total]);
        w.gatherv(&mine, &mut a, &counts, root).map_err(e)?;
        nb!(|s| w.igatherv(s, &mine, &mut b, &counts, root))?;
        check!(me != root || a == b, "{} differs", tag("igatherv"));
        let items = random(me, 5, total);
        let (mut a, mut b) = (vec![0u64; counts[me]], vec![0u64; counts[me]]);
        w.scatterv(&items, &counts, &mut a, root).map_err(e)?;
        nb!(|s| w.iscatterv(s, &items, &counts, &mut b, root))?;
        check!(a == b, "{} differs", tag("iscatterv"));
    }
    // allgather, alltoall and their v-forms
    let (mut a, mut b) = (vec![0.0f64; len * n], vec![0.0f64; len * n]);
    w.allgather(&x, &mut a).map_err(e)?;
    nb!(|s| w.iallgather(s, &x, &mut b))?;
    check!(a == b, "{} differs", tag("iallgather"));
    let (mut a, mut b) = (vec![0u64; len * n], vec![0u64; len * n]);
    w.alltoall(&bigi, &mut a).map_err(e)?;
    nb!(|s| w.ialltoall(s, &bigi, &mut b))?;
    check!(a == b, "{} differs", tag("ialltoall"));
    let counts: Vec<usize> = (0..n).map(|r| (len * (r + 1)) % (len + 3)).collect();
    let mine = random(me, 6, counts[me]);
    let total = counts.iter().sum();
    let (mut a, mut b) = (vec![0u64; total], vec![0u64; total]);
    w.allgatherv(&mine, &mut a, &counts).map_err(e)?;
    nb!(|s| w.iallgatherv(s, &mine, &mut b, &counts))?;
    check!(a == b, "{} differs", tag("iallgatherv"));
    // Rank r sends (len + r + j) % (len + 2) elements to rank j.
    let sc: Vec<usize> = (0..n).map(|j| (len + me + j) % (len + 2)).collect();
    let rc: Vec<usize> = (0..n).map(|j| (len + j + me) % (len + 2)).collect();
    let send = random(me, 7, sc.iter().sum());
    let rt = rc.iter().sum();
    let (mut a, mut b) = (vec![0u64; rt], vec![0u64; rt]);
    w.alltoallv(&send, &sc, &mut a, &rc).map_err(e)?;
    nb!(|s| w.ialltoallv(s, &send, &sc, &mut b, &rc))?;
    check!(a == b, "{} differs", tag("ialltoallv"));
    // reductions with an order: the same algorithm, so the same bits
    let (mut a, mut b) = (vec![0.0f64; len], vec![0.0f64; len]);
    w.scan(&x, &mut a, Op::Sum).map_err(e)?;
    nb!(|s| w.iscan(s, &x, &mut b, Op::Sum))?;
    check!(a == b, "{} differs", tag("iscan"));
    let (mut a, mut b) = (vec![-1.0f64; len], vec![-1.0f64; len]);
    w.exscan(&x, &mut a, Op::Sum).map_err(e)?;
    nb!(|s| w.iexscan(s, &x, &mut b, Op::Sum))?;
    check!(a == b, "{} differs", tag("iexscan"));
    // An associative, non-commutative closure (composition of affine maps): lower ranks
    // first in both, and as a serial fold.
    let maps: Vec<[u64; 2]> = random(me, 8 + len as u64, 2 * len)
        .chunks(2)
        .map(|c| [c[0] | 1, c[1]])
        .collect();
    let (mut a, mut b) = (vec![[0u64; 2]; len], vec![[0u64; 2]; len]);
    w.scan_with(&maps, &mut a, affine).map_err(e)?;
    nb!(|s| w.iscan_with(s, &maps, &mut b, affine))?;
    check!(a == b, "{} differs", tag("iscan_with"));
    let expect = serial_scan(w, &maps, affine)?;
    check!(
        a == expect,
        "{} differs from the serial fold",
        tag("scan_with")
    );
    let (mut a, mut b) = (vec![[0u64; 2]; len], vec![[0u64; 2]; len]);
    w.exscan_with(&maps, &mut a, affine).map_err(e)?;
    nb!(|s| w.iexscan_with(s, &maps, &mut b, affine))?;
    check!(a == b, "{} differs", tag("iexscan_with"));
    if me > 0 {
        let (mut up, mut before) = (vec![[0u64; 2]; len], vec![[0u64; 2]; len]);
        w.scan_with(&maps, &mut up, affine).map_err(e)?;
        before.copy_from_slice(&a);
        for (x, m) in before.iter_mut().zip(&maps) {
            *x = affine(x, m);
        }
        check!(
            before == up,
            "{}: exscan then own != scan",
            tag("exscan_with")
        );
    } else {
        // keep the collective count equal on every rank
        let mut up = vec![[0u64; 2]; len];
        w.scan_with(&maps, &mut up, affine).map_err(e)?;
    }
    let (mut a, mut b) = (vec![0.0f64; len], vec![0.0f64; len]);
    w.reduce_scatter_block(&big, &mut a, Op::Max).map_err(e)?;
    nb!(|s| w.ireduce_scatter_block(s, &big, &mut b, Op::Max))?;
    check!(a == b, "{} differs", tag("ireduce_scatter_block"));
    let (mut a, mut b) = (vec![0u64; len], vec![0u64; len]);
    let f = |p: &u64, q: &u64| p ^ q;
    w.reduce_scatter_block_with(&bigi, &mut a, f).map_err(e)?;
    nb!(|s| w.ireduce_scatter_block_with(s, &bigi, &mut b, f))?;
    check!(a == b, "{} differs", tag("ireduce_scatter_block_with"));
    let (mut a, mut b) = (vec![0u64; len], vec![0u64; len]);
    w.allreduce_with(&xi, &mut a, |p: &u64, q: &u64| p.wrapping_add(*q))
        .map_err(e)?;
    nb!(|s| w.iallreduce_with(s, &xi, &mut b, |p: &u64, q: &u64| p.wrapping_add(*q)))?;
    check!(a == b, "{} differs", tag("iallreduce_with"));
    Ok(())
}

/// `x -> p0 x + p1` then `x -> q0 x + q1`, as one map (wrapping): associative, not commutative.
fn affine(p: &[u64; 2], q: &[u64; 2]) -> [u64; 2] {
    [
        p[0].wrapping_mul(q[0]),
        q[0].wrapping_mul(p[1]).wrapping_add(q[1]),
    ]
}

/// The inclusive prefix of `f` over every rank's `x`, folded serially from an allgather.
fn serial_scan<T: mpr::Pod + PartialEq>(w: &Comm, x: &[T], f: impl Fn(&T, &T) -> T) -> R<Vec<T>> {
    let (n, me, len) = (w.size(), w.rank(), x.len());
    let mut all = vec![T::zeroed(); n * len];
    w.allgather(x, &mut all).map_err(e)?;
    let mut acc = all[..len].to_vec();
    for r in 1..=me {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = f(a, &all[r * len + i]);
        }
    }
    Ok(acc)
}

/// Many collectives in flight at once on three communicators, with point-to-point traffic and
/// computation between tests, completed in reverse order; then their blocking twins.
fn overlap(w: &Comm) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    let dup = w.dup().map_err(e)?;
    let half = w
        .split(Some((me % 2) as u32), me as i64)
        .map_err(e)?
        .ok_or("split")?;
    let len = 5000;
    let x = floats(me, 11, len);
    let xi = random(me, 12, len * n);
    let hx = random(me, 13, len * half.size());
    let xs = random(me, 14, len);
    let (mut r1, mut r2, mut r3) = (vec![0u64; len], vec![0u64; len * n], vec![0u64; len]);
    let mut r4 = vec![0u64; len * half.size()];
    let mut r5 = vec![0.0f64; len];
    let mut ring_in = vec![0u64; 64];
    let ring_out = vec![me as u64; 64];
    let mut work = 0.0f64;
    mpr::scope(|s| -> R<()> {
        let mut reqs = vec![
            w.iallreduce(s, &xs, &mut r1, Op::Sum).map_err(e)?,
            dup.ialltoall(s, &xi, &mut r2).map_err(e)?,
            half.iscan(s, &hx[..len], &mut r3, Op::BitXor).map_err(e)?,
            w.irecv(s, &mut ring_in, (me + n - 1) % n, 9).map_err(e)?,
            half.iallgather(s, &hx[..len], &mut r4).map_err(e)?,
            dup.ireduce(s, &x, &mut r5, Op::Max, n - 1).map_err(e)?,
            w.isend(s, &ring_out, (me + 1) % n, 9).map_err(e)?,
        ];
        // Compute while they move, testing now and then.
        let mut polls = 0;
        loop {
            for i in 0..2000 {
                work += (i as f64).sqrt();
            }
            if mpr::test_all(&mut reqs).map_err(e)?.is_some() {
                break;
            }
            polls += 1;
            check!(polls < 10_000_000, "collectives never completed");
        }
        while let Some(r) = reqs.pop() {
            r.wait().map_err(e)?;
        }
        Ok(())
    })?;
    check!(work.is_sign_positive() && work != 0.0, "no work");
    check!(
        ring_in == vec![((me + n - 1) % n) as u64; 64],
        "ring message"
    );
    let mut a = vec![0u64; len];
    w.allreduce(&xs, &mut a, Op::Sum).map_err(e)?;
    check!(a == r1, "iallreduce overlapped differs");
    let mut a = vec![0u64; len * n];
    dup.alltoall(&xi, &mut a).map_err(e)?;
    check!(a == r2, "ialltoall overlapped differs");
    let mut a = vec![0u64; len];
    half.scan(&hx[..len], &mut a, Op::BitXor).map_err(e)?;
    check!(a == r3, "iscan overlapped differs");
    let mut a = vec![0u64; len * half.size()];
    half.allgather(&hx[..len], &mut a).map_err(e)?;
    check!(a == r4, "iallgather overlapped differs");
    let mut a = vec![0.0f64; len];
    dup.reduce(&x, &mut a, Op::Max, n - 1).map_err(e)?;
    check!(me != n - 1 || a == r5, "ireduce overlapped differs");
    Ok(())
}

/// The displacement forms against the packed ones, with blocks reversed and spaced.
fn displs(w: &Comm) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    let counts: Vec<usize> = (0..n).map(|r| r % 3 + 1).collect();
    let packed: Vec<usize> = counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect();
    let total: usize = counts.iter().sum();
    // Reversed, with a gap of 2 after each block.
    let mut spaced = vec![0usize; n];
    let mut at = 0;
    for r in (0..n).rev() {
        spaced[r] = at;
        at += counts[r] + 2;
    }
    let mine = random(me, 20, counts[me]);
    for root in [0, n - 1] {
        let mut a = vec![0u64; total];
        let mut b = vec![0u64; total];
        w.gatherv(&mine, &mut a, &counts, root).map_err(e)?;
        w.gatherv_displs(&mine, &mut b, &counts, &packed, root)
            .map_err(e)?;
        check!(me != root || a == b, "gatherv_displs packed differs");
        let mut c = vec![7u64; at];
        w.gatherv_displs(&mine, &mut c, &counts, &spaced, root)
            .map_err(e)?;
        if me == root {
            for r in 0..n {
                let got = &c[spaced[r]..spaced[r] + counts[r]];
                check!(
                    got == &a[packed[r]..packed[r] + counts[r]],
                    "block {r} misplaced"
                );
                check!(
                    c[spaced[r] + counts[r]..spaced[r] + counts[r] + 2] == [7, 7],
                    "gap written"
                );
            }
        }
        let src = random(me, 21, at);
        let mut s1 = vec![0u64; counts[me]];
        w.scatterv_displs(&src, &counts, &spaced, &mut s1, root)
            .map_err(e)?;
        let from_root = random(root, 21, at);
        check!(
            s1 == from_root[spaced[me]..spaced[me] + counts[me]],
            "scatterv_displs block differs"
        );
    }
    let mut c = vec![7u64; at];
    w.allgatherv_displs(&mine, &mut c, &counts, &spaced)
        .map_err(e)?;
    let mut a = vec![0u64; total];
    w.allgatherv(&mine, &mut a, &counts).map_err(e)?;
    for r in 0..n {
        check!(
            c[spaced[r]..spaced[r] + counts[r]] == a[packed[r]..packed[r] + counts[r]],
            "allgatherv_displs block {r}"
        );
    }
    // alltoallv with displacements: one element to each rank, received in reverse order.
    let send: Vec<u64> = (0..n).map(|j| (me * 100 + j) as u64).collect();
    let ones = vec![1; n];
    let fwd: Vec<usize> = (0..n).collect();
    let rev: Vec<usize> = (0..n).map(|j| n - 1 - j).collect();
    let mut got = vec![0u64; n];
    w.alltoallv_displs(&send, &ones, &fwd, &mut got, &ones, &rev)
        .map_err(e)?;
    for j in 0..n {
        check!(
            got[n - 1 - j] == (j * 100 + me) as u64,
            "alltoallv_displs from {j}: {got:?}"
        );
    }
    // Overlapping receive blocks are refused before anything moves.
    let overlapping = vec![0usize; n];
    let mut small = vec![0u64; 4];
    if n > 1 {
        let err = w
            .allgatherv_displs(&[1u64], &mut small, &ones, &overlapping)
            .err()
            .ok_or("overlapping blocks accepted")?;
        check!(err.to_string().contains("overlap"), "{err}");
    }
    Ok(())
}

/// In-place forms against the two-buffer ones.
fn in_place(w: &Comm) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    let x = random(me, 30, 1000);
    let mut a = vec![0u64; 1000];
    w.allreduce(&x, &mut a, Op::BitXor).map_err(e)?;
    let mut b = x.clone();
    w.allreduce_in_place(&mut b, Op::BitXor).map_err(e)?;
    check!(a == b, "allreduce_in_place");
    let mut b = x.clone();
    w.allreduce_in_place_with(&mut b, |p: &u64, q: &u64| p ^ q)
        .map_err(e)?;
    check!(a == b, "allreduce_in_place_with");
    let mut b = x.clone();
    w.reduce_in_place(&mut b, Op::BitXor, n - 1).map_err(e)?;
    check!(me != n - 1 || a == b, "reduce_in_place at the root");
    check!(
        me == n - 1 || b == x,
        "reduce_in_place changed a non-root's buffer"
    );
    let mut all = vec![0u64; 3 * n];
    all[3 * me..3 * me + 3].copy_from_slice(&x[..3]);
    let mut a = vec![0u64; 3 * n];
    w.allgather(&x[..3], &mut a).map_err(e)?;
    w.allgather_in_place(&mut all).map_err(e)?;
    check!(a == all, "allgather_in_place");
    let send = random(me, 31, 2 * n);
    let mut a = vec![0u64; 2 * n];
    w.alltoall(&send, &mut a).map_err(e)?;
    let mut b = send.clone();
    w.alltoall_in_place(&mut b).map_err(e)?;
    check!(a == b, "alltoall_in_place");
    let mut a = vec![0u64; 1000];
    w.scan(&x, &mut a, Op::Sum).map_err(e)?;
    let mut b = x.clone();
    w.scan_in_place(&mut b, Op::Sum).map_err(e)?;
    check!(a == b, "scan_in_place");
    let mut a = x.clone();
    w.exscan(&x, &mut a, Op::Sum).map_err(e)?;
    let mut b = x.clone();
    w.exscan_in_place(&mut b, Op::Sum).map_err(e)?;
    check!(a == b, "exscan_in_place");
    if n > 1 {
        check!(
            w.allgather_in_place(&mut [0u8; 1]).is_err(),
            "uneven allgather_in_place"
        );
    }
    Ok(())
}

/// MinLoc / MaxLoc and the logical operators against values computed from an allgather.
fn ops(w: &Comm) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    // Values with ties across ranks (v % 5), index = rank.
    let len = 50;
    let vals: Vec<f64> = random(me, 40, len).iter().map(|v| (v % 5) as f64).collect();
    let pairs: Vec<[f64; 2]> = vals.iter().map(|&v| [v, me as f64]).collect();
    let mut all = vec![0.0f64; n * len];
    w.allgather(&vals, &mut all).map_err(e)?;
    for op in [Op::MinLoc, Op::MaxLoc] {
        let mut got = vec![[0.0f64; 2]; len];
        w.allreduce(&pairs, &mut got, op).map_err(e)?;
        let mut nbgot = vec![[0.0f64; 2]; len];
        nb!(|s| w.iallreduce(s, &pairs, &mut nbgot, op))?;
        let mut red = vec![[0.0f64; 2]; len];
        w.reduce(&pairs, &mut red, op, 0).map_err(e)?;
        for i in 0..len {
            let column = (0..n).map(|r| all[r * len + i]);
            let best = if op == Op::MinLoc {
                column.clone().fold(f64::INFINITY, f64::min)
            } else {
                column.clone().fold(f64::NEG_INFINITY, f64::max)
            };
            let first = column.clone().position(|v| v == best).unwrap_or(0);
            check!(
                got[i] == [best, first as f64],
                "{op:?} [{i}] {:?}, want {best} at {first}",
                got[i]
            );
            check!(nbgot[i] == got[i], "nonblocking {op:?} [{i}]");
            check!(me != 0 || red[i] == got[i], "reduce {op:?} [{i}]");
        }
    }
    // Logical operators: a rank's flag is set in element i when bit `rank` of i is set.
    let flags: Vec<i32> = (0..64).map(|i: i32| (i >> (me % 6)) & 1).collect();
    let mut allf = vec![0i32; 64 * n];
    w.allgather(&flags, &mut allf).map_err(e)?;
    for (op, f) in [
        (
            Op::And,
            (|a: bool, b: bool| a && b) as fn(bool, bool) -> bool,
        ),
        (Op::Or, |a, b| a || b),
        (Op::Xor, |a, b| a != b),
    ] {
        let mut got = vec![0i32; 64];
        w.allreduce(&flags, &mut got, op).map_err(e)?;
        for i in 0..64 {
            let want = (1..n).fold(allf[i] != 0, |acc, r| f(acc, allf[r * 64 + i] != 0));
            check!(got[i] == i32::from(want), "{op:?} [{i}] = {}", got[i]);
        }
    }
    let err = w.allreduce(&[1.0f64], &mut [0.0], Op::And).err();
    check!(err.is_some(), "And on floats accepted");
    let err = w.allreduce(&[1u32], &mut [0], Op::MinLoc).err();
    check!(
        err.is_some_and(|e| e.to_string().contains("pairs")),
        "MinLoc on a scalar accepted"
    );
    Ok(())
}
