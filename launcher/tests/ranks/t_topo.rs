//! Rank program for process topologies, no-rank peers and groups: `t_topo CASE [ARGS]`.
//! - `cart`: grids of every shape `dims_create` gives in 1 to 3 dimensions, all periods,
//!   coordinates and shifts against a model, real exchanges with the shifted neighbours
//!   (blocking and nonblocking; `None` at open edges), sub-grids, bad and mismatched grids.
//! - `null`: every point-to-point call with no rank (`PROC_NULL`) as peer completes at once.
//! - `groups`: group algebra against a model (random subsets), `create`, `compare`.
//! - `persistent`: persistent sends and receives around a ring, started 10,000 times, with new
//!   data each time (every element checked), through `start_all`, `test`, and `ssend_init`;
//!   restarts of active requests refused; no-rank peers.
//! - `neighbors`: neighbour collectives (all four, blocking and nonblocking) on a ring, a torus,
//!   an open grid and an irregular graph with repeated edges, against a model; a graph whose
//!   ends disagree is refused on every rank.
//! - `shared MODE`: `split_type_shared`; MODE `one` (one host), `slot:S` (S slots a host,
//!   filled in order) or `node:H` (H hosts, ranks dealt round-robin).
//!
//! Rank 0 prints `ok CASE` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

use mpr::{CartComm, Comm, Comparison, DistGraphComm, Group, Op};

fn main() -> ExitCode {
    run_case(|world, case, args| match case {
        "cart" => cart(world),
        "null" => null(world),
        "groups" => groups(world),
        "persistent" => persistent(world),
        "neighbors" => neighbors(world),
        "shared" => shared(world, args.first().map_or("one", String::as_str)),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// The coordinates of `rank` in `dims`, C order (the model).
fn coords_model(dims: &[usize], mut rank: usize) -> Vec<usize> {
    let mut c = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        c[d] = rank % dims[d];
        rank /= dims[d];
    }
    c
}

fn rank_model(dims: &[usize], c: &[usize]) -> usize {
    c.iter().zip(dims).fold(0, |r, (&x, &n)| r * n + x)
}

/// The model's neighbour of `me` moved by `by` along `dim`.
fn moved(dims: &[usize], periods: &[bool], me: usize, dim: usize, by: isize) -> Option<usize> {
    let mut c = coords_model(dims, me);
    let n = dims[dim] as isize;
    let x = c[dim] as isize + by;
    let x = if periods[dim] {
        x.rem_euclid(n)
    } else if (0..n).contains(&x) {
        x
    } else {
        return None;
    };
    c[dim] = x as usize;
    Some(rank_model(dims, &c))
}

fn cart(world: &Comm) -> R<()> {
    let n = world.size();
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    for k in 1..=3 {
        let mut d = vec![0; k];
        mpr::dims_create(n, &mut d).map_err(e)?;
        shapes.push(d);
    }
    // A grid smaller than the communicator: the ranks beyond it get None.
    if n > 2 {
        shapes.push(vec![n - 1]);
        shapes.push(vec![2, (n - 1) / 2]);
    }
    for dims in &shapes {
        let k = dims.len();
        for mask in 0..(1u32 << k) {
            let periods: Vec<bool> = (0..k).map(|d| mask & (1 << d) != 0).collect();
            let grid = world
                .cart_create(dims, &periods, mask % 2 == 0)
                .map_err(e)?;
            let cells: usize = dims.iter().product();
            let Some(grid) = grid else {
                check!(
                    world.rank() >= cells,
                    "rank {} left out of {dims:?}",
                    world.rank()
                );
                continue;
            };
            check!(
                world.rank() < cells,
                "rank {} in a grid of {cells}",
                world.rank()
            );
            check_grid(&grid, dims, &periods)?;
        }
    }
    // Bad grids are refused on every rank, and the job goes on.
    let too_big = world.cart_create(&[n + 1], &[false], false);
    check!(
        too_big.is_err(),
        "a grid of {} on {n} ranks was made",
        n + 1
    );
    check!(
        world.cart_create(&[n], &[false, true], false).is_err(),
        "dims and periods of different lengths were taken"
    );
    let mine = if world.rank() == 0 { [1] } else { [n] };
    let mismatched = world.cart_create(&mine, &[false], false);
    check!(
        n == 1 || mismatched.is_err(),
        "ranks passing different dims made a grid"
    );
    world.barrier().map_err(e)?;
    Ok(())
}

fn check_grid(grid: &CartComm, dims: &[usize], periods: &[bool]) -> R<()> {
    let me = grid.rank();
    check!(grid.dims() == dims, "dims {:?} != {dims:?}", grid.dims());
    check!(grid.coords() == coords_model(dims, me), "coords of {me}");
    for r in 0..grid.size() {
        let c = grid.coords_of(r).map_err(e)?;
        check!(grid.rank_of(&c).map_err(e)? == r, "rank_of(coords_of({r}))");
    }
    check!(
        grid.coords_of(grid.size()).is_err(),
        "coords_of past the end"
    );
    // Past the extent: wraps when periodic, an error when not.
    let mut far = grid.coords();
    far[0] += dims[0];
    check!(
        grid.rank_of(&far).is_ok() == periods[0],
        "rank_of beyond dimension 0 (periodic: {})",
        periods[0]
    );
    check!(
        grid.shift(dims.len(), 1).is_err(),
        "shift of a dimension too many"
    );
    for dim in 0..dims.len() {
        for disp in [-2isize, -1, 1, 2, 3] {
            let (src, dest) = grid.shift(dim, disp).map_err(e)?;
            let want = (
                moved(dims, periods, me, dim, -disp),
                moved(dims, periods, me, dim, disp),
            );
            check!(
                (src, dest) == want,
                "shift({dim}, {disp}) of {me} in {dims:?} {periods:?}: {:?} != {want:?}",
                (src, dest)
            );
            // The exchange the shift is for: every rank sends its rank on, receives from behind.
            let tag = (dim * 10) as u32 + (disp + 5) as u32;
            let mut got = [u64::MAX; 3];
            let st = grid
                .sendrecv(&[me as u64; 3], dest, tag, &mut got, src, tag)
                .map_err(e)?;
            match src {
                Some(s) => check!(
                    got == [s as u64; 3] && st.source() == s,
                    "from {s}: {got:?}"
                ),
                None => check!(
                    got == [u64::MAX; 3] && st.is_null(),
                    "an open edge wrote {got:?}"
                ),
            }
            let mut again = [u64::MAX; 2];
            let out = [me as u64 + 1000; 2];
            mpr::scope(|s| -> mpr::Result<()> {
                let r = grid.irecv(s, &mut again, src, tag + 100)?;
                let q = grid.isend(s, &out, dest, tag + 100)?;
                mpr::wait_all(vec![r, q])?;
                Ok(())
            })
            .map_err(e)?;
            let want = src.map_or(u64::MAX, |s| s as u64 + 1000);
            check!(again == [want; 2], "nonblocking from {src:?}: {again:?}");
        }
    }
    // Rows: keep the last dimension; the ranks of a row have the same other coordinates.
    let mut keep = vec![false; dims.len()];
    keep[dims.len() - 1] = true;
    let row = grid.sub(&keep).map_err(e)?;
    check!(
        row.dims() == [dims[dims.len() - 1]],
        "row dims {:?}",
        row.dims()
    );
    check!(
        row.coords()[0] == grid.coords()[dims.len() - 1],
        "row coordinate"
    );
    let mut sum = [0u64];
    row.allreduce(&[me as u64], &mut sum, Op::Sum).map_err(e)?;
    let first = me - grid.coords()[dims.len() - 1];
    let want: usize = (first..first + dims[dims.len() - 1]).sum();
    check!(sum[0] == want as u64, "row sum {} != {want}", sum[0]);
    let point = grid.sub(&vec![false; dims.len()]).map_err(e)?;
    check!(
        point.size() == 1 && point.ndims() == 0,
        "a sub-grid of nothing"
    );
    check!(
        grid.sub(&[true; 5][..dims.len() + 1]).is_err(),
        "sub with too many flags"
    );
    Ok(())
}

fn null(world: &Comm) -> R<()> {
    let none = mpr::PROC_NULL;
    let mut buf = [7u32; 4];
    world.send(&[1u32; 4], none, 0).map_err(e)?;
    world.ssend(&[1u32; 4], none, 0).map_err(e)?;
    let st = world.recv(&mut buf, none, mpr::ANY_TAG).map_err(e)?;
    check!(
        st.is_null() && st.bytes() == 0 && buf == [7; 4],
        "recv from no rank"
    );
    check!(
        world.probe(none, 3).map_err(e)?.is_null(),
        "probe of no rank"
    );
    check!(
        world
            .iprobe(none, 3)
            .map_err(e)?
            .is_some_and(|s| s.is_null()),
        "iprobe of no rank"
    );
    let (v, st) = world.recv_vec::<u32>(none, 0).map_err(e)?;
    check!(v.is_empty() && st.is_null(), "recv_vec from no rank");
    let st = world
        .sendrecv(&[1u8], none, 0, &mut buf, none, 0)
        .map_err(e)?;
    check!(st.is_null() && buf == [7; 4], "sendrecv with no ranks");
    let st = world
        .sendrecv_replace(&mut buf, none, 0, none, 0)
        .map_err(e)?;
    check!(
        st.is_null() && buf == [7; 4],
        "sendrecv_replace with no ranks"
    );
    // One side real, the other none: to itself, from none; and from itself, to none.
    let me = world.rank();
    world.send(&[5u32; 4], me, 9).map_err(e)?;
    let st = world
        .sendrecv(&[1u32], none, 0, &mut buf, me, 9)
        .map_err(e)?;
    check!(
        buf == [5; 4] && st.source() == me,
        "sendrecv to none from self"
    );
    let st = world
        .sendrecv(&[6u32; 4], me, 10, &mut buf, none, 0)
        .map_err(e)?;
    check!(st.is_null(), "sendrecv to self from none");
    world.recv(&mut buf, me, 10).map_err(e)?;
    check!(buf == [6; 4], "what sendrecv sent to self");
    let mut ghost = [3u16; 8];
    mpr::scope(|s| -> mpr::Result<()> {
        let r = world.irecv(s, &mut ghost, none, 0)?;
        let mut q = world.isend(s, &[1u16; 8], none, 0)?;
        let z = world.issend(s, &[1u16; 8], none, 0)?;
        let done = q.test()?;
        assert!(done.is_some(), "a send to no rank is complete at once");
        let st = r.wait()?;
        assert!(st.is_null());
        mpr::wait_all(vec![q, z])?;
        Ok(())
    })
    .map_err(e)?;
    check!(ghost == [3; 8], "irecv from no rank wrote {ghost:?}");
    // A bad rank is still an error, and no rank is refused where it means nothing.
    check!(
        world.send(&[1u8], world.size(), 0).is_err(),
        "send to a bad rank"
    );
    check!(
        world.recv_value::<u32>(none, 0).is_err(),
        "recv_value from no rank"
    );
    world.barrier().map_err(e)?;
    Ok(())
}

/// Deterministic pseudo-random numbers (splitmix64).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn groups(world: &Comm) -> R<()> {
    let n = world.size();
    let all = world.group();
    check!(
        all.size() == n && all.rank() == Some(world.rank()),
        "world group"
    );
    check!(
        all.world_ranks() == (0..n).collect::<Vec<_>>(),
        "world ranks"
    );
    let mut next = rng(42);
    for _ in 0..200 {
        // Two random ordered subsets, as lists of world ranks (the model).
        let mut pick = || -> Vec<usize> {
            let mut v: Vec<usize> = (0..n).filter(|_| next() % 2 == 0).collect();
            for i in (1..v.len()).rev() {
                v.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            v
        };
        let (a_list, b_list) = (pick(), pick());
        let a = all.incl(&a_list).map_err(e)?;
        let b = all.incl(&b_list).map_err(e)?;
        check!(a.world_ranks() == a_list, "incl");
        let union: Vec<usize> = a_list
            .iter()
            .copied()
            .chain(b_list.iter().copied().filter(|w| !a_list.contains(w)))
            .collect();
        check!(a.union(&b).world_ranks() == union, "union");
        let inter: Vec<usize> = a_list
            .iter()
            .copied()
            .filter(|w| b_list.contains(w))
            .collect();
        check!(a.intersection(&b).world_ranks() == inter, "intersection");
        let diff: Vec<usize> = a_list
            .iter()
            .copied()
            .filter(|w| !b_list.contains(w))
            .collect();
        check!(a.difference(&b).world_ranks() == diff, "difference");
        let out: Vec<usize> = (0..a_list.len()).filter(|i| i % 3 == 0).collect();
        let kept: Vec<usize> = (0..a_list.len())
            .filter(|i| i % 3 != 0)
            .map(|i| a_list[i])
            .collect();
        check!(a.excl(&out).map_err(e)?.world_ranks() == kept, "excl");
        let ranks: Vec<usize> = (0..a_list.len()).collect();
        let tr = a.translate_ranks(&ranks, &b).map_err(e)?;
        let want: Vec<Option<usize>> = a_list
            .iter()
            .map(|w| b_list.iter().position(|x| x == w))
            .collect();
        check!(tr == want, "translate_ranks");
        let mut sorted_a = a_list.clone();
        sorted_a.sort_unstable();
        let mut sorted_b = b_list.clone();
        sorted_b.sort_unstable();
        let cmp = if a_list == b_list {
            Comparison::Ident
        } else if sorted_a == sorted_b {
            Comparison::Similar
        } else {
            Comparison::Unequal
        };
        check!(a.compare(&b) == cmp, "compare {a_list:?} {b_list:?}");
        check!(
            a.rank() == a_list.iter().position(|&w| w == world.rank()),
            "rank in a group"
        );
    }
    check!(all.incl(&[n]).is_err(), "incl of a rank out of range");
    check!(all.excl(&[0, 0]).is_err(), "excl of a rank twice");
    check!(Group::empty().size() == 0, "empty group");

    // Communicators of groups: the evens, and everyone in reverse order.
    let evens = all
        .incl(&(0..n).step_by(2).collect::<Vec<_>>())
        .map_err(e)?;
    let sub = world.create(&evens).map_err(e)?;
    check!(
        sub.is_some() == (world.rank() % 2 == 0),
        "create: membership"
    );
    if let Some(sub) = &sub {
        check!(sub.rank() == world.rank() / 2, "create: rank order");
        let mut sum = [0u64];
        sub.allreduce(&[world.rank() as u64], &mut sum, Op::Sum)
            .map_err(e)?;
        let want: usize = (0..n).step_by(2).sum();
        check!(sum[0] == want as u64, "allreduce over the evens");
        check!(
            sub.group().compare(&evens) == Comparison::Ident,
            "group of create"
        );
        // A group with ranks that are not in this communicator is refused on all its ranks.
        if n > 1 {
            check!(
                sub.create(&all).is_err(),
                "create of a group beyond the communicator"
            );
        }
    }
    let reversed = all.incl(&(0..n).rev().collect::<Vec<_>>()).map_err(e)?;
    let rev = world
        .create(&reversed)
        .map_err(e)?
        .ok_or("not in the reversed")?;
    check!(rev.rank() == n - 1 - world.rank(), "reversed rank");
    let twin = world.dup().map_err(e)?;
    check!(
        world.compare(world) == Comparison::Ident,
        "compare with itself"
    );
    check!(
        world.compare(&twin) == Comparison::Congruent,
        "compare with a dup"
    );
    let want = if n <= 1 {
        Comparison::Congruent
    } else {
        Comparison::Similar
    };
    check!(world.compare(&rev) == want, "compare with the reversed");
    // Different groups on different ranks: an error everywhere, not a hang.
    let mine = if world.rank() == 0 {
        evens.clone()
    } else {
        all.clone()
    };
    check!(
        n == 1 || world.create(&mine).is_err(),
        "ranks passing different groups made a communicator"
    );
    world.barrier().map_err(e)?;
    Ok(())
}

fn shared(world: &Comm, mode: &str) -> R<()> {
    let n = world.size();
    let me = world.rank();
    let host_of = |r: usize| -> R<usize> {
        Ok(match mode.split_once(':') {
            None if mode == "one" => 0,
            Some(("slot", s)) => r / s.parse::<usize>().map_err(|x| x.to_string())?,
            Some(("node", h)) => r % h.parse::<usize>().map_err(|x| x.to_string())?,
            _ => return Err(format!("bad mode {mode:?}")),
        })
    };
    let host = world.split_type_shared().map_err(e)?;
    let mut want = Vec::new();
    for r in 0..n {
        if host_of(r)? == host_of(me)? {
            want.push(r);
        }
    }
    check!(
        host.group().world_ranks() == want,
        "host of rank {me}: {:?}, want {want:?}",
        host.group().world_ranks()
    );
    // It is a communicator of its own: a reduction over it counts the host's ranks.
    let mut count = [0u32];
    host.allreduce(&[1u32], &mut count, Op::Sum).map_err(e)?;
    check!(
        count[0] as usize == want.len(),
        "ranks on the host: {}",
        count[0]
    );
    world.barrier().map_err(e)?;
    Ok(())
}

fn persistent(world: &Comm) -> R<()> {
    let (me, n) = (world.rank(), world.size());
    let (right, left) = ((me + 1) % n, (me + n - 1) % n);
    const ITERS: u64 = 10_000;
    let mut out = vec![0u64; 33];
    let mut got = vec![0u64; 33];
    let mut out2 = vec![0u64; 5];
    let mut got2 = vec![0u64; 5];
    let fixed = [me as u32; 3];
    let mut sync_got = [0u32; 3];
    let mut nothing = [7u8; 2];
    let mut bad_rank = [0u8; 1];
    mpr::scope(|s| -> R<()> {
        let mut send = world.send_init_mut(s, &mut out, right, 1).map_err(e)?;
        let mut recv = world.recv_init(s, &mut got, left, 1).map_err(e)?;
        let mut pair = vec![
            world.recv_init(s, &mut got2, left, 2).map_err(e)?,
            world.send_init_mut(s, &mut out2, right, 2).map_err(e)?,
        ];
        for i in 0..ITERS {
            let stamp = |r: usize, k: usize| (r as u64) << 40 | i << 8 | k as u64;
            for (k, x) in send.buf_mut().map_err(e)?.iter_mut().enumerate() {
                *x = stamp(me, k);
            }
            for (k, x) in pair[1].buf_mut().map_err(e)?.iter_mut().enumerate() {
                *x = stamp(me, k) ^ 1;
            }
            recv.start().map_err(e)?;
            send.start().map_err(e)?;
            mpr::start_all(&mut pair).map_err(e)?;
            if i == 0 {
                check!(send.start().is_err(), "a second start of an active request");
                check!(recv.buf().is_err(), "the buffer of an active receive");
            }
            // Every 7th round completes by polling, the others by waiting.
            if i % 7 == 0 {
                while recv.test().map_err(e)?.is_none() {}
            } else {
                let st = recv.wait().map_err(e)?;
                check!(
                    st.source() == left && st.count::<u64>() == 33,
                    "status {st:?}"
                );
            }
            send.wait().map_err(e)?;
            let sts = mpr::wait_all_persistent(&mut pair).map_err(e)?;
            check!(sts[0].source() == left, "status of the pair's receive");
            let want: Vec<u64> = (0..33).map(|k| stamp(left, k)).collect();
            check!(
                recv.buf().map_err(e)? == want,
                "round {i}: {:?}",
                recv.buf()
            );
            let want2: Vec<u64> = (0..5).map(|k| stamp(left, k) ^ 1).collect();
            check!(pair[0].buf().map_err(e)? == want2, "round {i} of the pair");
        }
        check!(
            !send.is_active() && recv.wait().map_err(e)?.is_null(),
            "inactive wait"
        );
        // Synchronous and from a shared borrow; no rank on both sides.
        let mut ss = world.ssend_init(s, &fixed, right, 3).map_err(e)?;
        let mut sr = world.recv_init(s, &mut sync_got, left, 3).map_err(e)?;
        let mut none_r = world
            .recv_init(s, &mut nothing, mpr::PROC_NULL, 0)
            .map_err(e)?;
        let mut none_s = world.send_init(s, &fixed, mpr::PROC_NULL, 0).map_err(e)?;
        check!(
            ss.buf_mut().is_err(),
            "buf_mut of a send from a shared borrow"
        );
        for _ in 0..100 {
            sr.start().map_err(e)?;
            ss.start().map_err(e)?;
            none_r.start().map_err(e)?;
            none_s.start().map_err(e)?;
            check!(
                none_r.test().map_err(e)?.is_some_and(|s| s.is_null()),
                "no-rank start"
            );
            none_s.wait().map_err(e)?;
            ss.wait().map_err(e)?;
            sr.wait().map_err(e)?;
            check!(sr.buf().map_err(e)? == [left as u32; 3], "ssend_init data");
        }
        check!(
            none_r.buf().map_err(e)? == [7, 7],
            "a receive from no rank wrote"
        );
        check!(
            world.recv_init(s, &mut bad_rank[..], n, 0).is_err(),
            "recv_init from a bad rank"
        );
        Ok(())
    })?;
    world.barrier().map_err(e)?;
    Ok(())
}

/// What a rank sends to its destination slot `j`: (sender, slot) in one word.
fn word(sender: usize, slot: usize) -> u64 {
    (sender as u64) << 16 | slot as u64
}

/// Block lengths of the v-forms: what `sender` puts in its slot `j`.
fn vlen(sender: usize, j: usize) -> usize {
    1 + (sender + j) % 3
}

const NONE: u64 = u64::MAX;

/// The four neighbour collectives, blocking and nonblocking, on a topology whose model says,
/// for each source slot, which rank sends into it from which of its destination slots.
macro_rules! check_neighbors {
    ($g:expr, $expect:expr, $outdeg:expr, $name:expr) => {{
        let g = $g;
        let expect: &[Option<(usize, usize)>] = $expect;
        let (me, outdeg, name) = (g.rank(), $outdeg, $name);
        let indeg = expect.len();
        // allgather: every source's rank, or the sentinel where there is none.
        let want: Vec<u64> = expect
            .iter()
            .map(|e| e.map_or(NONE, |(s, _)| s as u64))
            .collect();
        let mut got = vec![NONE; indeg];
        g.neighbor_allgather(&[me as u64], &mut got).map_err(e)?;
        check!(
            got == want,
            "{name}: neighbor_allgather {got:?} != {want:?}"
        );
        let (mut got2, one) = (vec![NONE; indeg], [me as u64]);
        mpr::scope(|s| g.ineighbor_allgather(s, &one, &mut got2)?.wait().map(drop)).map_err(e)?;
        check!(got2 == want, "{name}: ineighbor_allgather");
        // alltoall: slot j of the sender goes to the receiver's matching slot.
        let send: Vec<u64> = (0..outdeg).map(|j| word(me, j)).collect();
        let want: Vec<u64> = expect
            .iter()
            .map(|e| e.map_or(NONE, |(s, j)| word(s, j)))
            .collect();
        let mut got = vec![NONE; indeg];
        g.neighbor_alltoall(&send, &mut got).map_err(e)?;
        check!(got == want, "{name}: neighbor_alltoall {got:?} != {want:?}");
        let mut got2 = vec![NONE; indeg];
        mpr::scope(|s| g.ineighbor_alltoall(s, &send, &mut got2)?.wait().map(drop)).map_err(e)?;
        check!(got2 == want, "{name}: ineighbor_alltoall");
        // allgatherv: each rank sends vlen(me, 0) copies of its rank.
        let mine = vec![me as u64; vlen(me, 0)];
        let counts: Vec<usize> = expect
            .iter()
            .map(|e| e.map_or(1, |(s, _)| vlen(s, 0)))
            .collect();
        let want: Vec<u64> = expect
            .iter()
            .flat_map(|e| match e {
                Some((s, _)) => vec![*s as u64; vlen(*s, 0)],
                None => vec![NONE],
            })
            .collect();
        let mut got = vec![NONE; counts.iter().sum()];
        g.neighbor_allgatherv(&mine, &mut got, &counts).map_err(e)?;
        check!(got == want, "{name}: neighbor_allgatherv");
        let mut got2 = vec![NONE; got.len()];
        mpr::scope(|s| {
            g.ineighbor_allgatherv(s, &mine, &mut got2, &counts)?
                .wait()
                .map(drop)
        })
        .map_err(e)?;
        check!(got2 == want, "{name}: ineighbor_allgatherv");
        // alltoallv: slot j carries vlen(me, j) copies of word(me, j).
        let scounts: Vec<usize> = (0..outdeg).map(|j| vlen(me, j)).collect();
        let send: Vec<u64> = (0..outdeg)
            .flat_map(|j| vec![word(me, j); vlen(me, j)])
            .collect();
        let rcounts: Vec<usize> = expect
            .iter()
            .map(|e| e.map_or(2, |(s, j)| vlen(s, j)))
            .collect();
        let want: Vec<u64> = expect
            .iter()
            .flat_map(|e| match e {
                Some((s, j)) => vec![word(*s, *j); vlen(*s, *j)],
                None => vec![NONE; 2],
            })
            .collect();
        let mut got = vec![NONE; rcounts.iter().sum()];
        g.neighbor_alltoallv(&send, &scounts, &mut got, &rcounts)
            .map_err(e)?;
        check!(got == want, "{name}: neighbor_alltoallv");
        let mut got2 = vec![NONE; got.len()];
        mpr::scope(|s| {
            g.ineighbor_alltoallv(s, &send, &scounts, &mut got2, &rcounts)?
                .wait()
                .map(drop)
        })
        .map_err(e)?;
        check!(got2 == want, "{name}: ineighbor_alltoallv");
        // Lengths that do not add up are refused before anything moves.
        check!(
            g.neighbor_alltoallv(
                &send,
                &scounts,
                &mut got,
                &rcounts[..indeg.saturating_sub(1)]
            )
            .is_err()
                || indeg == 0,
            "{name}: counts of the wrong length"
        );
    }};
}

/// The model of a grid's neighbour slots: slot 2d from the `-` neighbour's slot 2d+1, slot
/// 2d+1 from the `+` neighbour's slot 2d.
fn cart_expect(grid: &CartComm) -> R<Vec<Option<(usize, usize)>>> {
    let dims = grid.dims().to_vec();
    let periods = grid.periods().to_vec();
    let me = grid.rank();
    let mut v = Vec::new();
    for d in 0..dims.len() {
        v.push(moved(&dims, &periods, me, d, -1).map(|s| (s, 2 * d + 1)));
        v.push(moved(&dims, &periods, me, d, 1).map(|s| (s, 2 * d)));
    }
    Ok(v)
}

fn neighbors(world: &Comm) -> R<()> {
    let n = world.size();
    // A ring (n = 1 and 2: the same rank on both sides), a torus, an open grid.
    let mut d2 = vec![0; 2];
    mpr::dims_create(n, &mut d2).map_err(e)?;
    for (name, dims, periods) in [
        ("ring", vec![n], vec![true]),
        ("torus", d2.clone(), vec![true, true]),
        ("open grid", d2.clone(), vec![false, false]),
        ("half-open", d2.clone(), vec![true, false]),
    ] {
        let grid = world
            .cart_create(&dims, &periods, false)
            .map_err(e)?
            .ok_or("grid")?;
        let expect = cart_expect(&grid)?;
        check_neighbors!(&grid, &expect, 2 * dims.len(), name);
    }
    // An irregular graph: r sends to r + 1, 2r + 1 and r + 1 again (mod n).
    let dests = |r: usize| vec![(r + 1) % n, (2 * r + 1) % n, (r + 1) % n];
    let me = world.rank();
    let mut expect = Vec::new();
    for s in 0..n {
        for (j, d) in dests(s).into_iter().enumerate() {
            if d == me {
                expect.push(Some((s, j)));
            }
        }
    }
    let sources: Vec<usize> = expect.iter().map(|e| e.map_or(0, |(s, _)| s)).collect();
    let g: DistGraphComm = world
        .dist_graph_create_adjacent(&sources, &dests(me), false)
        .map_err(e)?;
    check!(
        g.sources() == sources && g.destinations() == dests(me),
        "graph lists"
    );
    check_neighbors!(&g, &expect, 3, "graph");
    // Ends that disagree: rank 0 claims one more source than anyone sends it.
    let mut wrong = sources.clone();
    if me == 0 {
        wrong.push(0);
    }
    check!(
        world
            .dist_graph_create_adjacent(&wrong, &dests(me), false)
            .is_err(),
        "a graph whose ends disagree was made"
    );
    check!(
        world.dist_graph_create_adjacent(&[n], &[], false).is_err(),
        "a graph with a rank out of range was made"
    );
    world.barrier().map_err(e)?;
    Ok(())
}
