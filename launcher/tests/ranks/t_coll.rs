//! Rank program for the collective tests: `t_coll`. Checks every collective against a serial
//! reference computed locally from the same deterministic inputs, for every root, at several
//! sizes; rank 0 prints `ok coll` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

use mpr::{Error, Op};

/// Rank `r`'s input of `len` elements for case `k`: small integers, so sums are exact in f64.
fn input(r: usize, k: usize, len: usize) -> Vec<i64> {
    (0..len)
        .map(|i| ((i * 7 + r * 13 + k * 3) % 101) as i64 - 50)
        .collect()
}

fn main() -> ExitCode {
    run_case(|world, case, args| match case {
        "coll" => run(world, args.iter().any(|a| a == "big")),
        "disagree" => disagree(world),
        "signature" => signature(world),
        other => Err(format!("unknown case {other:?}")),
    })
}

fn run(w: &mpr::World, big: bool) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    let mut sizes = vec![0usize, 1, 7, 1000, 70_000];
    if big {
        sizes.push(512 * 1024); // 4 MiB of i64
    }
    for (k, &len) in sizes.iter().enumerate() {
        let roots: Vec<usize> = if len <= 1000 {
            (0..n).collect()
        } else {
            vec![0, n - 1]
        };
        let all: Vec<Vec<i64>> = (0..n).map(|r| input(r, k, len)).collect();
        let mine = &all[me];
        let sum: Vec<i64> = (0..len).map(|i| all.iter().map(|v| v[i]).sum()).collect();
        let max: Vec<i64> = (0..len)
            .map(|i| all.iter().map(|v| v[i]).max().unwrap())
            .collect();

        // broadcast
        for &root in &roots {
            let mut b = if me == root {
                all[root].clone()
            } else {
                vec![0; len]
            };
            w.broadcast(&mut b, root).map_err(e)?;
            check!(b == all[root], "broadcast len {len} root {root}");
        }
        // reduce
        for &root in &roots {
            let mut out = if me == root { vec![0; len] } else { Vec::new() };
            w.reduce(mine, &mut out, Op::Sum, root).map_err(e)?;
            if me == root {
                check!(out == sum, "reduce sum len {len} root {root}");
            }
        }
        // allreduce, built-in and closure, integers and floats
        let mut out = vec![0i64; len];
        w.allreduce(mine, &mut out, Op::Sum).map_err(e)?;
        check!(out == sum, "allreduce sum len {len}");
        w.allreduce_with(mine, &mut out, |a, b| *a.max(b))
            .map_err(e)?;
        check!(out == max, "allreduce_with max len {len}");
        let fl: Vec<f64> = mine.iter().map(|&x| x as f64 * 0.5).collect();
        let mut fo = vec![0f64; len];
        w.allreduce(&fl, &mut fo, Op::Sum).map_err(e)?;
        check!(
            fo.iter().zip(&sum).all(|(a, &b)| *a == b as f64 * 0.5),
            "allreduce f64 len {len}"
        );
        // elements of 24 bytes, a size no chunk is a multiple of
        let triples: Vec<[i64; 3]> = mine.iter().map(|&x| [x, -x, 1]).collect();
        let mut to = vec![[0i64; 3]; len];
        w.allreduce_with(&triples, &mut to, |a, b| {
            [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
        })
        .map_err(e)?;
        check!(
            to.iter().zip(&sum).all(|(t, &s)| *t == [s, -s, n as i64]),
            "allreduce_with of triples len {len}"
        );
        let bits: Vec<u32> = mine
            .iter()
            .map(|&x| 1u32 << (x.unsigned_abs() % 32))
            .collect();
        let mut bo = vec![0u32; len];
        w.allreduce(&bits, &mut bo, Op::BitOr).map_err(e)?;
        let want: Vec<u32> = (0..len)
            .map(|i| {
                all.iter()
                    .fold(0, |acc, v| acc | 1u32 << (v[i].unsigned_abs() % 32))
            })
            .collect();
        check!(bo == want, "allreduce bitor len {len}");

        if len > 70_000 {
            continue; // gather-style collectives at the big size would need n x 4 MiB per rank
        }
        // gather
        for &root in &roots {
            let mut out = if me == root {
                vec![0; n * len]
            } else {
                Vec::new()
            };
            w.gather(mine, &mut out, root).map_err(e)?;
            if me == root {
                check!(out == all.concat(), "gather len {len} root {root}");
            }
        }
        // scatter
        for &root in &roots {
            let src = if me == root { all.concat() } else { Vec::new() };
            let mut out = vec![0; len];
            w.scatter(&src, &mut out, root).map_err(e)?;
            check!(out == all[me], "scatter len {len} root {root}");
        }
        // allgather
        let mut out = vec![0; n * len];
        w.allgather(mine, &mut out).map_err(e)?;
        check!(out == all.concat(), "allgather len {len}");
        // alltoall: block j of rank r's send is input(r * n + j, k, len)
        let send: Vec<i64> = (0..n).flat_map(|j| input(me * n + j, k, len)).collect();
        let mut out = vec![0; n * len];
        w.alltoall(&send, &mut out).map_err(e)?;
        let want: Vec<i64> = (0..n).flat_map(|r| input(r * n + me, k, len)).collect();
        check!(out == want, "alltoall len {len}");
    }

    // v-variants, scans and reduce-scatter, with uneven counts (zeros included).
    for k in 0..3usize {
        let counts: Vec<usize> = (0..n)
            .map(|i| (i * 3 + k * 5) % 7 * (1 + 400 * k))
            .collect();
        let total: usize = counts.iter().sum();
        let all: Vec<Vec<i64>> = (0..n).map(|r| input(r, 10 + k, counts[r])).collect();
        let packed = all.concat();
        for root in 0..n {
            let mut out = if me == root {
                vec![0; total]
            } else {
                Vec::new()
            };
            w.gatherv(&all[me], &mut out, &counts, root).map_err(e)?;
            if me == root {
                check!(out == packed, "gatherv k {k} root {root}");
            }
            let src = if me == root {
                packed.clone()
            } else {
                Vec::new()
            };
            let mut got = vec![0; counts[me]];
            w.scatterv(&src, &counts, &mut got, root).map_err(e)?;
            check!(got == all[me], "scatterv k {k} root {root}");
        }
        let mut out = vec![0; total];
        w.allgatherv(&all[me], &mut out, &counts).map_err(e)?;
        check!(out == packed, "allgatherv k {k}");
        // alltoallv: rank r sends c(r, j) = (r + 2j + k) % 4 * (1 + 300k) elements to j.
        let c = |r: usize, j: usize| (r + 2 * j + k) % 4 * (1 + 300 * k);
        let send_counts: Vec<usize> = (0..n).map(|j| c(me, j)).collect();
        let recv_counts: Vec<usize> = (0..n).map(|r| c(r, me)).collect();
        let send: Vec<i64> = (0..n)
            .flat_map(|j| input(me * 31 + j, k, c(me, j)))
            .collect();
        let mut out = vec![0; recv_counts.iter().sum()];
        w.alltoallv(&send, &send_counts, &mut out, &recv_counts)
            .map_err(e)?;
        let want: Vec<i64> = (0..n)
            .flat_map(|r| input(r * 31 + me, k, c(r, me)))
            .collect();
        check!(out == want, "alltoallv k {k}");
        // scan / exscan / reduce_scatter_block on blocks of len elements.
        let len = [0usize, 5, 3000][k];
        let all: Vec<Vec<i64>> = (0..n).map(|r| input(r, 20 + k, len)).collect();
        let prefix = |upto: usize| -> Vec<i64> {
            (0..len)
                .map(|i| all[..upto].iter().map(|v| v[i]).sum())
                .collect()
        };
        let mut out = vec![0; len];
        w.scan(&all[me], &mut out, Op::Sum).map_err(e)?;
        check!(out == prefix(me + 1), "scan k {k}");
        let mut out = vec![7; len];
        w.exscan(&all[me], &mut out, Op::Sum).map_err(e)?;
        check!(
            if me == 0 {
                out == vec![7; len]
            } else {
                out == prefix(me)
            },
            "exscan k {k}"
        );
        let blocks: Vec<Vec<i64>> = (0..n).map(|r| input(r, 30 + k, n * len)).collect();
        let mut out = vec![0; len];
        w.reduce_scatter_block(&blocks[me], &mut out, Op::Sum)
            .map_err(e)?;
        let want: Vec<i64> = (0..len)
            .map(|i| blocks.iter().map(|b| b[me * len + i]).sum())
            .collect();
        check!(out == want, "reduce_scatter_block k {k}");
    }
    check!(
        matches!(
            w.allgatherv(&[1i64], &mut [0i64; 1], &[1]),
            Err(Error::InvalidArgument { .. })
        ) || n == 1,
        "allgatherv counts"
    );

    // split and dup: groups, order by key, nesting, isolation, and context ids given back.
    let sub = w
        .split(Some((me % 2) as u32), -(me as i64))
        .map_err(e)?
        .ok_or("no sub-communicator")?;
    let mates: Vec<usize> = (0..n).filter(|r| r % 2 == me % 2).rev().collect(); // key = -rank
    check!(
        sub.size() == mates.len() && mates[sub.rank()] == me,
        "split order: rank {} of {}",
        sub.rank(),
        sub.size()
    );
    let mut total = [0i64];
    sub.allreduce(&[me as i64], &mut total, Op::Sum)
        .map_err(e)?;
    check!(
        total[0] == mates.iter().sum::<usize>() as i64,
        "allreduce on the split: {}",
        total[0]
    );
    let mut b = [me as i64];
    sub.broadcast(&mut b, 0).map_err(e)?;
    check!(
        b[0] == mates[0] as i64,
        "broadcast on the split got {}",
        b[0]
    );
    if sub.size() > 1 {
        // Point to point inside the split uses its ranks; ANY_SOURCE stays inside it.
        let next = (sub.rank() + 1) % sub.size();
        let prev = (sub.rank() + sub.size() - 1) % sub.size();
        let mut got = [0i64];
        let st = sub
            .sendrecv(&[me as i64], next, 3, &mut got, mpr::ANY_SOURCE, 3)
            .map_err(e)?;
        check!(
            st.source() == prev && got[0] == mates[prev] as i64,
            "sendrecv on the split: {st:?} {got:?}"
        );
    }
    let none = w
        .split(if me == 0 { None } else { Some(1) }, 0)
        .map_err(e)?;
    check!(none.is_none() == (me == 0), "a None color joins nothing");
    if let Some(c) = &none {
        check!(
            c.size() == n - 1 && c.rank() == me - 1,
            "split without rank 0"
        );
        let inner = c
            .split(Some((c.rank() % 2) as u32), 0)
            .map_err(e)?
            .ok_or("nested split")?;
        let mut t = [0i64];
        inner.allreduce(&[1i64], &mut t, Op::Sum).map_err(e)?;
        check!(t[0] as usize == inner.size(), "nested split allreduce");
    }
    let twin = w.dup().map_err(e)?;
    check!(twin.rank() == me && twin.size() == n, "dup keeps ranks");
    if n > 1 {
        if me == 0 {
            w.send(&[1i64], 1, 5).map_err(e)?;
            twin.send(&[2i64], 1, 5).map_err(e)?;
        } else if me == 1 {
            let mut x = [0i64];
            twin.recv(&mut x, mpr::ANY_SOURCE, mpr::ANY_TAG)
                .map_err(e)?;
            check!(x[0] == 2, "dup received the world's message: {}", x[0]);
            w.recv(&mut x, 0, 5).map_err(e)?;
            check!(x[0] == 1, "world received the twin's message: {}", x[0]);
        }
    }
    drop((sub, none, twin));
    // (On up to 4 ranks: the loop is thousands of collectives.)
    for i in 0..if n <= 4 { 4200 } else { 0 } {
        // More communicators than there are context ids: each one's ids come back when dropped.
        let c = w.dup().map_err(|err| format!("dup #{i}: {err}"))?;
        if i % 1000 == 0 {
            c.barrier().map_err(e)?;
        }
    }

    // Bad arguments: errors found locally, before any message, on every rank alike.
    let mut small = vec![0i64; 2];
    check!(
        matches!(
            w.allreduce(&[1i64, 2, 3], &mut small, Op::Sum),
            Err(Error::InvalidArgument { .. })
        ),
        "allreduce length mismatch"
    );
    check!(
        matches!(
            w.allreduce(&[1.0f64], &mut [0.0], Op::BitAnd),
            Err(Error::InvalidArgument { .. })
        ),
        "bit op on floats"
    );
    check!(
        matches!(w.broadcast(&mut small, n), Err(Error::InvalidRank { .. })),
        "broadcast root out of range"
    );
    check!(
        matches!(
            w.allgather(&[1i64], &mut small[..0]),
            Err(Error::InvalidArgument { .. })
        ) || n == 0,
        "allgather length"
    );
    if n > 1 {
        check!(
            matches!(
                w.alltoall(&[1i64; 1], &mut [0i64; 1]),
                Err(Error::InvalidArgument { .. })
            ),
            "alltoall blocks"
        );
    }
    // Collective traffic never matches user point-to-point traffic, whatever the tags.
    if n > 1 {
        let tag = 1u32 << 16; // a tag the collectives use on their own context
        if me == 0 {
            w.send(&[99i64], 1, tag).map_err(e)?;
        }
        let mut b = [me as i64];
        w.broadcast(&mut b, 0).map_err(e)?;
        check!(b[0] == 0, "broadcast got user data: {}", b[0]);
        if me == 1 {
            let mut u = [0i64];
            w.recv(&mut u, 0, tag).map_err(e)?;
            check!(u[0] == 99, "user message changed: {}", u[0]);
        }
    }
    w.barrier().map_err(e)
}

/// Ranks that disagree on lengths within one collective get errors, on every rank that can see
/// the disagreement, and no hang; the communicator stays usable afterwards.
fn disagree(w: &mpr::World) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    // Allreduce: rank 0 passes 2 elements, the others 3. Every rank sees it.
    let len = if me == 0 { 2 } else { 3 };
    let mut out = vec![0i64; len];
    let got = w.allreduce(&vec![1i64; len], &mut out, Op::Sum);
    check!(
        matches!(&got, Err(Error::InvalidArgument { detail, .. }) if detail.contains("mismatched")),
        "allreduce with mismatched lengths: {got:?}"
    );
    w.barrier().map_err(e)?;
    // Broadcast: the root sends 2 elements, the others expect 3; the root cannot tell.
    let root = n - 1;
    let mut b = vec![7i64; if me == root { 2 } else { 3 }];
    let got = w.broadcast(&mut b, root);
    if me == root {
        check!(got.is_ok(), "root of the mismatched broadcast: {got:?}");
    } else {
        check!(
            matches!(&got, Err(Error::InvalidArgument { .. })),
            "broadcast with mismatched lengths: {got:?}"
        );
    }
    // The same through the large region (both lengths above the small slots').
    let mut b = vec![7i64; if me == root { 40_000 } else { 70_000 }];
    let got = w.broadcast(&mut b, root);
    if me == root {
        check!(
            got.is_ok(),
            "root of the mismatched large broadcast: {got:?}"
        );
    } else {
        check!(
            matches!(&got, Err(Error::InvalidArgument { .. })),
            "large broadcast with mismatched lengths: {got:?}"
        );
    }
    let len = if me == 0 { 40_000 } else { 70_000 };
    let mut out = vec![0i64; len];
    let got = w.allreduce(&vec![1i64; len], &mut out, Op::Sum);
    check!(
        matches!(&got, Err(Error::InvalidArgument { detail, .. }) if detail.contains("mismatched")),
        "large allreduce with mismatched lengths: {got:?}"
    );
    // And the communicator still works: many broadcasts from rotating roots, then sums.
    for i in 0..200 {
        let mut x = [if me == i % n { i as u64 } else { 0 }];
        w.broadcast(&mut x, i % n).map_err(e)?;
        check!(x[0] == i as u64, "broadcast {i} after the errors: {}", x[0]);
    }
    let mut s = [0u64];
    w.allreduce(&[me as u64 + 1], &mut s, Op::Sum).map_err(e)?;
    check!(
        s[0] == (n * (n + 1) / 2) as u64,
        "allreduce after the errors: {}",
        s[0]
    );
    Ok(())
}

/// With MPR_CHECK=1: rank 1 calls each collective differently from the others (another root,
/// operator, length, collective, element type); every rank gets an error naming rank 1 and what
/// differs, and the communicator goes on working.
fn signature(w: &mpr::World) -> R<()> {
    let odd = w.rank() == 1;
    let named = |what: &str, got: mpr::Result<()>, want: &str| -> R<()> {
        let text = got.err().map(|e| e.to_string()).unwrap_or_default();
        check!(
            text.contains("rank 1 ") && text.contains(want),
            "{what}: {text:?} does not name rank 1 and {want:?}"
        );
        Ok(())
    };
    let mut b = [0u32; 4];
    named(
        "root",
        w.broadcast(&mut b, if odd { 1 } else { 0 }),
        "root 1, not 0",
    )?;
    let mut out = [0u32; 4];
    let op = if odd { Op::Max } else { Op::Sum };
    named(
        "operator",
        w.allreduce(&[1u32; 4], &mut out, op),
        "operator Max, not Sum",
    )?;
    let len = if odd { 3 } else { 4 };
    named(
        "length",
        w.allreduce(&vec![1u32; len], &mut out[..len], Op::Sum),
        "3 elements, not 4",
    )?;
    let got = if odd {
        w.barrier()
    } else {
        w.allreduce(&[1u32; 4], &mut out, Op::Sum)
    };
    named("collective", got, "called barrier, not allreduce")?;
    let got = if odd {
        w.allreduce(&[1i32; 4], &mut [0i32; 4], Op::Sum)
    } else {
        w.allreduce(&[1u32; 4], &mut out, Op::Sum)
    };
    named("type", got, "elements of another type")?;
    w.allreduce(&[1u32; 4], &mut out, Op::Sum).map_err(e)?;
    check!(
        out == [w.size() as u32; 4],
        "allreduce after the checks: {out:?}"
    );
    Ok(())
}
