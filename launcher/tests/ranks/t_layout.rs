//! Rank program for layouts: `t_layout CASE`.
//! - `combos`: vector, 2-D and 3-D subarray (every face of a cube) and indexed layouts, small
//!   and above the rendezvous limit, sent and received in every combination with contiguous
//!   buffers and with each other, blocking, through `sendrecv_layout` around a ring and through
//!   `isend_layout`, every element checked against a model; the elements a receive does not
//!   name stay untouched, and a shorter message fills only the first places of a layout.
//! - `persistent`: a halo exchange over one 3-D array (`exchange_init`: x faces as single
//!   blocks, z faces packed, small and above the eager limit) around a ring, 300 starts with new
//!   data each, every ghost element checked; `send_init_layout`/`recv_init_layout`; overlapping
//!   exchanges refused; a packed receive dropped while active still lands.
//! - `bad`: layouts out of the buffer, overlapping receive blocks and malformed subarrays are
//!   errors, and the job goes on.
//!
//! Rank 0 prints `ok CASE` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

use mpr::{Comm, Layout};

fn main() -> ExitCode {
    run_case(|world, case, _args| match case {
        "combos" => combos(world),
        "bad" => bad(world),
        "persistent" => persistent(world),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// The value at element `i` of rank `r`'s source buffer in round `k` (never 0).
fn value(r: usize, k: usize, i: usize) -> u64 {
    ((r as u64 + 1) << 48) | ((k as u64) << 32) | (i as u64 + 1)
}

/// The elements a layout names, in order (the model: blocks expanded by hand).
fn named(l: &Layout) -> Vec<usize> {
    l.blocks().iter().flat_map(|&(o, n)| o..o + n).collect()
}

/// Layouts to try, with the buffer length each is used with.
fn layouts() -> R<Vec<(String, Layout, usize)>> {
    let mut v = Vec::new();
    for (n, side) in [("small", 6usize), ("large", 100)] {
        // Column of a side x side matrix (8-byte elements: 100 x 8 = 800 B; the large ones
        // below are above the 64 KiB eager limit).
        v.push((
            format!("{n} column"),
            Layout::vector(side, 1, side),
            side * side,
        ));
        v.push((
            format!("{n} strided pairs"),
            Layout::vector(side * side / 4, 2, 4),
            side * side,
        ));
        let sub = Layout::subarray(&[side, side], &[side / 2, side / 3 + 1], &[1, 2]).map_err(e)?;
        v.push((format!("{n} 2-D block"), sub, side * side));
    }
    // Faces of a cube of 40^3 (64,000 elements; a face is 1,600 x 8 = 12.8 KiB) and of 100 x
    // 100 x 12 (faces up to 80 KiB: above the eager limit).
    for dims in [[40usize, 40, 40], [100, 100, 12]] {
        let total: usize = dims.iter().product();
        for d in 0..3 {
            for at in [0, dims[d] - 1] {
                let mut sub = dims;
                sub[d] = 1;
                let mut start = [0; 3];
                start[d] = at;
                let l = Layout::subarray(&dims, &sub, &start).map_err(e)?;
                v.push((format!("{dims:?} face {d}@{at}"), l, total));
            }
        }
        // An interior block with a one-element halo all round.
        let inner = dims.map(|x| x - 2);
        let l = Layout::subarray(&dims, &inner, &[1, 1, 1]).map_err(e)?;
        v.push((format!("{dims:?} interior"), l, total));
    }
    let idx = Layout::indexed(&[3, 1, 200_000, 5], &[10, 0, 20, 300_000]).map_err(e)?;
    v.push(("indexed".into(), idx, 300_005));
    // Blocks that take the single copy between ranks of a host: long ones, named to the peer
    // (64 KiB blocks, 512 KiB and 192 KiB in all: halves copied by each side, and one side
    // copying all), and shorter ones each side copies only as its own (16 KiB blocks, 512 KiB).
    v.push((
        "long blocks".into(),
        Layout::vector(8, 8192, 12_288),
        8 * 12_288,
    ));
    v.push((
        "three long blocks".into(),
        Layout::vector(3, 8192, 9000),
        3 * 9000,
    ));
    v.push((
        "16 KiB blocks".into(),
        Layout::vector(32, 2048, 3072),
        32 * 3072,
    ));
    Ok(v)
}

fn combos(world: &Comm) -> R<()> {
    let (me, n) = (world.rank(), world.size());
    let (right, left) = ((me + 1) % n, (me + n - 1) % n);
    let all = layouts()?;
    for (k, (name, l, len)) in all.iter().enumerate() {
        let src: Vec<u64> = (0..*len).map(|i| value(me, k, i)).collect();
        let want_from_left: Vec<u64> = named(l).iter().map(|&i| value(left, k, i)).collect();
        let tag = k as u32;

        // Layout -> contiguous (sends start first: a ring of blocking large sends would wait
        // on each other).
        let mut flat = vec![0u64; l.count()];
        let st = mpr::scope(|s| -> mpr::Result<mpr::Status> {
            let q = world.isend_layout(s, &src, l, right, tag)?;
            let st = world.recv(&mut flat, left, tag)?;
            q.wait()?;
            Ok(st)
        })
        .map_err(e)?;
        check!(flat == want_from_left, "{name}: layout -> contiguous");
        check!(st.count::<u64>() == l.count(), "{name}: count");

        // Contiguous -> layout: the named places get the elements in order, the rest stay 0.
        let packed: Vec<u64> = named(l).iter().map(|&i| value(me, k, i)).collect();
        let mut dst = vec![0u64; *len];
        mpr::scope(|s| -> mpr::Result<()> {
            let q = world.isend(s, &packed, right, tag)?;
            world.recv_layout(&mut dst, l, left, tag)?;
            q.wait()?;
            Ok(())
        })
        .map_err(e)?;
        check_placed(name, l, &dst, &want_from_left)?;

        // Layout -> layout, through sendrecv_layout around the ring.
        let mut dst = vec![0u64; *len];
        world
            .sendrecv_layout(&src, l, right, tag, &mut dst, l, left, tag)
            .map_err(e)?;
        check_placed(name, l, &dst, &want_from_left)?;

        // Into another layout of the same count: a contiguous run at an offset.
        let run = Layout::indexed(&[l.count()], &[3]).map_err(e)?;
        let mut dst = vec![0u64; l.count() + 5];
        mpr::scope(|s| -> mpr::Result<()> {
            let q = world.isend_layout(s, &src, l, right, tag)?;
            world.recv_layout(&mut dst, &run, left, tag)?;
            q.wait()?;
            Ok(())
        })
        .map_err(e)?;
        check!(
            dst[3..3 + l.count()] == want_from_left[..] && dst[..3] == [0; 3],
            "{name}: layout -> other layout"
        );

        // A message shorter than the receive's layout fills its first places only.
        let half = packed.len() / 2;
        let mut dst = vec![0u64; *len];
        let st = mpr::scope(|s| -> mpr::Result<mpr::Status> {
            let q = world.isend(s, &packed[..half], right, tag)?;
            let st = world.recv_layout(&mut dst, l, left, tag)?;
            q.wait()?;
            Ok(st)
        })
        .map_err(e)?;
        check!(
            st.count::<u64>() == half,
            "{name}: count of a shorter message"
        );
        let places = named(l);
        check!(
            places[..half]
                .iter()
                .zip(&want_from_left)
                .all(|(&i, &w)| dst[i] == w),
            "{name}: a shorter message"
        );
        check!(
            dst.iter().filter(|&&x| x != 0).count() == half,
            "{name}: a shorter message wrote past its end"
        );

        // Blocking send_layout and recv_layout in pairs (0-1, 2-3, ...; a rank without a
        // partner sends to itself through a nonblocking receive).
        let partner = me ^ 1;
        let mut dst = vec![0u64; *len];
        if partner < n {
            if me % 2 == 0 {
                world.send_layout(&src, l, partner, tag).map_err(e)?;
                world.recv_layout(&mut dst, l, partner, tag).map_err(e)?;
            } else {
                world.recv_layout(&mut dst, l, partner, tag).map_err(e)?;
                world.send_layout(&src, l, partner, tag).map_err(e)?;
            }
            let want: Vec<u64> = named(l).iter().map(|&i| value(partner, k, i)).collect();
            check_placed(name, l, &dst, &want)?;
        }
    }
    world.barrier().map_err(e)?;
    Ok(())
}

/// `dst` holds `want` at the places `l` names, in order, and 0 everywhere else.
fn check_placed(name: &str, l: &Layout, dst: &[u64], want: &[u64]) -> R<()> {
    let places = named(l);
    for (j, &i) in places.iter().enumerate() {
        check!(
            dst[i] == want[j],
            "{name}: element {i} is {} not {}",
            dst[i],
            want[j]
        );
    }
    let untouched = dst.iter().filter(|&&x| x == 0).count();
    check!(
        untouched == dst.len() - places.len(),
        "{name}: {} elements written outside the layout",
        dst.len() - places.len() - untouched
    );
    Ok(())
}

fn bad(world: &Comm) -> R<()> {
    let me = world.rank();
    let mut buf = vec![0u32; 16];
    let col = Layout::vector(4, 1, 5); // reaches element 15: fits 16
    check!(
        world.send_layout(&buf, &col, me, 0).is_ok(),
        "a fitting layout"
    );
    world.recv(&mut buf[..4], me, 0).map_err(e)?;
    let far = Layout::vector(4, 1, 6); // reaches element 18
    check!(
        world.send_layout(&buf, &far, me, 0).is_err(),
        "send beyond the buffer"
    );
    check!(
        world.recv_layout(&mut buf, &far, me, 0).is_err(),
        "receive beyond the buffer"
    );
    let overlapping = Layout::vector(3, 4, 2);
    check!(
        world.send_layout(&buf, &overlapping, me, 1).is_ok(),
        "an overlapping layout is fine to send"
    );
    check!(
        world.recv_layout(&mut buf, &overlapping, me, 1).is_err(),
        "overlapping receive blocks"
    );
    world.recv(&mut [0u32; 12], me, 1).map_err(e)?;
    let twice = Layout::indexed(&[2, 2], &[0, 1]).map_err(e)?;
    check!(
        world.recv_layout(&mut buf, &twice, me, 0).is_err(),
        "indexed overlap"
    );
    check!(
        Layout::subarray(&[4, 4], &[2, 5], &[0, 0]).is_err(),
        "subsize beyond size"
    );
    check!(
        Layout::subarray(&[4, 4], &[2, 2], &[3, 0]).is_err(),
        "start beyond size"
    );
    check!(
        Layout::subarray(&[4], &[2, 2], &[0]).is_err(),
        "ranks differ"
    );
    check!(
        Layout::indexed(&[1, 2], &[0]).is_err(),
        "indexed lengths differ"
    );
    let huge = Layout::vector(usize::MAX / 2, 4, 4);
    check!(
        world.send_layout(&buf, &huge, me, 0).is_err(),
        "an overflowing vector"
    );
    // Truncation: a message longer than the layout.
    world.send(&[1u32; 5], me, 2).map_err(e)?;
    check!(
        matches!(
            world.recv_layout(&mut buf, &col, me, 2),
            Err(mpr::Error::Truncated { .. })
        ),
        "a message longer than the layout"
    );
    world.barrier().map_err(e)?;
    Ok(())
}

fn persistent(world: &Comm) -> R<()> {
    let (me, n) = (world.rank(), world.size());
    let (right, left) = ((me + 1) % n, (me + n - 1) % n);
    for dims in [[6usize, 5, 4], [12, 100, 100]] {
        let [nx, ny, nz] = dims;
        let total = nx * ny * nz;
        // The face at `at` of dimension `d`, without the ghost layers of the others.
        let face = |d: usize, at: usize| -> R<Layout> {
            let mut sub = dims.map(|x| x - 2);
            sub[d] = 1;
            let mut start = [1; 3];
            start[d] = at;
            Layout::subarray(&dims, &sub, &start).map_err(e)
        };
        // x faces: runs of nz - 2 elements; z faces: one element per row (both packed); a
        // receive never writes what a send reads (checked by exchange_init).
        let sends = [
            (face(0, 1)?, right, 0),
            (face(0, nx - 2)?, left, 1),
            (face(2, 1)?, right, 2),
            (face(2, nz - 2)?, left, 3),
        ];
        let recvs = [
            (face(0, 0)?, left, 0),
            (face(0, nx - 1)?, right, 1),
            (face(2, 0)?, left, 2),
            (face(2, nz - 1)?, right, 3),
        ];
        let val = |r: usize, step: usize, i: usize| {
            (r * 1_000_000 + step * 10_000) as f64 + (i % 9973) as f64
        };
        let mut grid = vec![0.0f64; total];
        mpr::scope(|s| -> R<()> {
            let mut halo = world
                .exchange_init(s, &mut grid, &sends, &recvs)
                .map_err(e)?;
            for step in 0..300 {
                let g = halo.buf_mut().map_err(e)?;
                for (i, x) in g.iter_mut().enumerate() {
                    *x = val(me, step, i);
                }
                halo.start().map_err(e)?;
                check!(
                    halo.buf().is_err() && halo.start().is_err(),
                    "an active exchange"
                );
                if step % 5 == 0 {
                    while halo.test().map_err(e)?.is_none() {}
                } else {
                    halo.wait().map_err(e)?;
                }
                let g = halo.buf().map_err(e)?;
                // Ghost x = 0 holds what the left neighbour sent right (its x = 1 face), and so
                // on for each pair.
                for (recv, send_from, from) in [
                    (&recvs[0].0, &sends[0].0, left),
                    (&recvs[1].0, &sends[1].0, right),
                    (&recvs[2].0, &sends[2].0, left),
                    (&recvs[3].0, &sends[3].0, right),
                ] {
                    let dst: Vec<usize> =
                        recv.blocks().iter().flat_map(|&(o, k)| o..o + k).collect();
                    let src: Vec<usize> = send_from
                        .blocks()
                        .iter()
                        .flat_map(|&(o, k)| o..o + k)
                        .collect();
                    for (&d, &sidx) in dst.iter().zip(&src) {
                        check!(
                            g[d] == val(from, step, sidx),
                            "{dims:?} step {step}: ghost {d} is {} not {}",
                            g[d],
                            val(from, step, sidx)
                        );
                    }
                }
            }
            Ok(())
        })?;
    }
    // Single persistent requests with layouts: a column out, into a row.
    let m: Vec<u32> = (0..64).map(|i| (me * 1000 + i) as u32).collect();
    let mut into = vec![0u32; 16];
    mpr::scope(|s| -> mpr::Result<()> {
        let col = Layout::vector(8, 1, 8);
        let row = Layout::subarray(&[4, 4], &[2, 4], &[1, 0])?;
        let mut out = world.send_init_layout(s, &m, &col, right, 7)?;
        let mut inn = world.recv_init_layout(s, &mut into, &row, left, 7)?;
        for _ in 0..100 {
            inn.start()?;
            out.start()?;
            out.wait()?;
            inn.wait()?;
        }
        Ok(())
    })
    .map_err(e)?;
    let want: Vec<u32> = (0..8).map(|k| (left * 1000 + 8 * k) as u32).collect();
    check!(
        into[4..12] == want[..] && into[..4] == [0; 4],
        "column into a row: {into:?}"
    );
    // An exchange whose receive writes what a send reads is refused.
    let mut grid = vec![0u8; 16];
    let clash = mpr::scope(|s| {
        world
            .exchange_init(
                s,
                &mut grid,
                &[(Layout::vector(4, 1, 4), right, 0)],
                &[(Layout::contiguous(4), left, 0)],
            )
            .map(drop)
    });
    check!(clash.is_err(), "an exchange receiving into what it sends");
    // A packed receive dropped while active still lands once the scope ends.
    let mut col = vec![0u64; 12];
    mpr::scope(|s| -> mpr::Result<()> {
        let mut r = world.recv_init_layout(s, &mut col, &Layout::vector(3, 1, 4), left, 9)?;
        r.start()?;
        world.send(&[me as u64 + 1; 3], right, 9)?;
        Ok(())
    })
    .map_err(e)?;
    check!(
        col[0] == left as u64 + 1
            && col[4] == left as u64 + 1
            && col[8] == left as u64 + 1
            && col[1] == 0,
        "a dropped packed receive: {col:?}"
    );
    world.barrier().map_err(e)?;
    Ok(())
}
