//! Rank program for the nonblocking tests: `t_nb CASE [ARGS]`. Each case checks its own results
//! and exits non-zero with a message on any mismatch; rank 0 prints `ok CASE` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};
use std::time::{Duration, Instant};

use mpr::{Error, Request, ANY_SOURCE};

/// The bytes rank `src` sends to rank `dst` in message `k` of `n` bytes.
fn pattern(src: usize, dst: usize, k: usize, n: usize) -> Vec<u8> {
    let seed = src * 131 + dst * 17 + k * 7;
    (0..n).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

fn main() -> ExitCode {
    run_case(|world, case, args| match case {
        "exchange" => exchange(world, args),
        "waitany" => waitany(world),
        "testpoll" => testpoll(world),
        "unwaited" => unwaited(world),
        "forget" => forget(world),
        "issend" => issend(world),
        "truncate" => truncate(world),
        "panic" => panic_in_scope(world),
        "icoll" => icoll(world),
        "cancel" => cancel(world),
        "waitsome" => waitsome(world),
        "replace" => replace(world),
        "mprobe" => mprobe(world),
        "handback" => handback(world),
        "irecv_vec" => irecv_vec(world),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// Every rank sends a message of each size to every other rank with isend, *then* posts the
/// receives, then drains everything with wait_any. Sizes from the command line (bytes).
fn exchange(w: &mpr::World, sizes: &[String]) -> R<()> {
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|s| s.parse().map_err(|_| format!("bad size {s}")))
        .collect::<R<_>>()?;
    let (rank, size) = (w.rank(), w.size());
    let peers: Vec<usize> = (0..size).filter(|&p| p != rank).collect();
    let outs: Vec<Vec<Vec<u8>>> = peers
        .iter()
        .map(|&p| {
            sizes
                .iter()
                .enumerate()
                .map(|(k, &n)| pattern(rank, p, k, n))
                .collect()
        })
        .collect();
    let mut ins: Vec<Vec<Vec<u8>>> = peers
        .iter()
        .map(|_| sizes.iter().map(|&n| vec![0u8; n]).collect())
        .collect();
    let mut received = 0usize;
    mpr::scope(|s| -> R<()> {
        let mut reqs: Vec<Request> = Vec::new();
        let mut kinds = Vec::new();
        for (i, &p) in peers.iter().enumerate() {
            for (k, buf) in outs[i].iter().enumerate() {
                reqs.push(w.isend(s, buf, p, k as u32).map_err(e)?);
                kinds.push(None);
            }
        }
        for (row, &p) in ins.iter_mut().zip(peers.iter()) {
            for (k, buf) in row.iter_mut().enumerate() {
                reqs.push(w.irecv(s, buf, p, k as u32).map_err(e)?);
                kinds.push(Some((p, k)));
            }
        }
        while !reqs.is_empty() {
            let (i, st) = mpr::wait_any(&mut reqs).map_err(e)?;
            if let Some((p, k)) = kinds.remove(i) {
                check!(
                    st.source() == p && st.tag() == k as u32 && st.bytes() == sizes[k],
                    "status {st:?} for {p}/{k}"
                );
                received += 1;
            }
        }
        Ok(())
    })?;
    check!(received == peers.len() * sizes.len(), "received {received}");
    for (i, &p) in peers.iter().enumerate() {
        for (k, &n) in sizes.iter().enumerate() {
            check!(
                ins[i][k] == pattern(p, rank, k, n),
                "bytes from {p}, size {n} differ"
            );
        }
    }
    w.barrier().map_err(e)
}

/// Rank 0 posts a receive from every other rank; they send at staggered times; wait_any reports
/// each exactly once, with the right index.
fn waitany(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    if rank == 0 {
        let mut bufs = vec![[0u64; 2]; size - 1];
        mpr::scope(|s| -> R<()> {
            let mut reqs = Vec::new();
            let mut from = Vec::new();
            // Posted in reverse order of arrival, so completion order differs from posting order.
            for (i, b) in bufs.iter_mut().enumerate() {
                reqs.push(w.irecv(s, b, i + 1, 3).map_err(e)?);
                from.push(i + 1);
            }
            let mut order = Vec::new();
            while !reqs.is_empty() {
                let (i, st) = mpr::wait_any(&mut reqs).map_err(e)?;
                let src = from.remove(i);
                check!(
                    st.source() == src,
                    "index {i} reported source {} but was posted for {src}",
                    st.source()
                );
                order.push(src);
            }
            order.sort_unstable();
            check!(
                order == (1..size).collect::<Vec<_>>(),
                "completions {order:?}"
            );
            let mut none: Vec<Request> = Vec::new();
            check!(
                mpr::wait_any(&mut none).is_err(),
                "wait_any on nothing must be an error"
            );
            Ok(())
        })?;
        for (i, b) in bufs.iter().enumerate() {
            check!(b[0] == (i + 1) as u64 && b[1] == 77, "payload {b:?}");
        }
    } else {
        std::thread::sleep(Duration::from_millis(20 * (size - rank) as u64));
        w.send(&[rank as u64, 77], 0, 3).map_err(e)?;
    }
    Ok(())
}

/// Rank 0 polls a receive with test while rank 1 is late; test never blocks, then reports the
/// message, and keeps reporting it.
fn testpoll(w: &mpr::World) -> R<()> {
    const LATE: Duration = Duration::from_millis(300);
    match w.rank() {
        0 => {
            let mut b = vec![0u32; 50_000];
            let mut polls = 0u64;
            let start = Instant::now();
            mpr::scope(|s| -> R<()> {
                let mut r = w.irecv(s, &mut b, 1, 9).map_err(e)?;
                let st = loop {
                    let t = Instant::now();
                    let got = r.test().map_err(e)?;
                    check!(
                        t.elapsed() < Duration::from_millis(100),
                        "test blocked for {:?}",
                        t.elapsed()
                    );
                    if let Some(st) = got {
                        break st;
                    }
                    polls += 1;
                    std::thread::sleep(Duration::from_millis(1)); // "computing"
                };
                check!(r.is_complete(), "complete after test");
                check!(r.test().map_err(e)? == Some(st), "test after completion");
                check!(r.wait().map_err(e)? == st, "wait after completion");
                check!(st.count::<u32>() == 50_000, "{st:?}");
                Ok(())
            })?;
            check!(
                start.elapsed() >= LATE - Duration::from_millis(50),
                "finished before the peer sent"
            );
            check!(polls > 10, "only {polls} polls while the peer was late");
            check!(
                b.iter().enumerate().all(|(i, &v)| v == i as u32),
                "payload differs"
            );
        }
        1 => {
            std::thread::sleep(LATE);
            let v: Vec<u32> = (0..50_000).collect();
            w.send(&v, 0, 9).map_err(e)?;
        }
        _ => {}
    }
    Ok(())
}

/// Requests dropped without waiting: the scope waits for them, so after it the data is there
/// (small and large, sends and receives).
fn unwaited(w: &mpr::World) -> R<()> {
    let peer = 1 - w.rank().min(1);
    if w.rank() > 1 {
        return Ok(());
    }
    let sizes = [8usize, 100_000, 3 << 20];
    let outs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| pattern(w.rank(), peer, k, n))
        .collect();
    let mut ins: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
    mpr::scope(|s| -> R<()> {
        for (k, (o, i)) in outs.iter().zip(ins.iter_mut()).enumerate() {
            let _dropped = w.irecv(s, i, peer, k as u32).map_err(e)?;
            let _also = w.isend(s, o, peer, k as u32).map_err(e)?;
        }
        Ok(())
    })?;
    for (k, &n) in sizes.iter().enumerate() {
        check!(
            ins[k] == pattern(peer, w.rank(), k, n),
            "size {n}: data missing after the scope"
        );
    }
    Ok(())
}

/// Requests leaked with mem::forget: the scope still waits for them; the send buffer is freed
/// only afterwards, and the receiver gets the right bytes.
// The scope's promise holds whatever a Request's Drop does (today it has none, so forget is a
// drop); this keeps the promise tested should Request ever gain one.
#[allow(clippy::forget_non_drop)]
fn forget(w: &mpr::World) -> R<()> {
    match w.rank() {
        0 => {
            let big = pattern(0, 1, 0, 5 << 20);
            mpr::scope(|s| -> R<()> {
                let r = w.isend(s, &big, 1, 1).map_err(e)?;
                std::mem::forget(r);
                Ok(())
            })?;
            drop(big); // Only now may the buffer go.
            let mut small = [0u8; 4];
            mpr::scope(|s| -> R<()> {
                std::mem::forget(w.irecv(s, &mut small, 1, 2).map_err(e)?);
                Ok(())
            })?;
            check!(
                small == [1, 2, 3, 4],
                "leaked receive did not complete: {small:?}"
            );
        }
        1 => {
            std::thread::sleep(Duration::from_millis(100)); // Let rank 0 reach the scope's end first.
            let (v, _) = w.recv_vec::<u8>(0, 1).map_err(e)?;
            check!(v == pattern(0, 1, 0, 5 << 20), "large payload differs");
            w.send(&[1u8, 2, 3, 4], 0, 2).map_err(e)?;
        }
        _ => {}
    }
    Ok(())
}

/// issend completes only once the receiver matched it, even for a small message.
fn issend(w: &mpr::World) -> R<()> {
    const LATE: Duration = Duration::from_millis(300);
    match w.rank() {
        0 => {
            let start = Instant::now();
            mpr::scope(|s| -> R<()> {
                let mut r = w.issend(s, &[5u8; 16], 1, 4).map_err(e)?;
                std::thread::sleep(Duration::from_millis(50));
                check!(
                    r.test().map_err(e)?.is_none(),
                    "issend completed before the receive was posted"
                );
                r.wait().map_err(e)?;
                Ok(())
            })?;
            check!(
                start.elapsed() >= LATE - Duration::from_millis(50),
                "issend returned after {:?}",
                start.elapsed()
            );
        }
        1 => {
            std::thread::sleep(LATE);
            let mut b = [0u8; 16];
            w.recv(&mut b, 0, 4).map_err(e)?;
        }
        _ => {}
    }
    Ok(())
}

/// A nonblocking receive that is too small reports Truncated; the next works.
fn truncate(w: &mpr::World) -> R<()> {
    match w.rank() {
        0 => {
            w.send(&[1u8; 100], 1, 0).map_err(e)?;
            w.send(&[2u8; 200_000], 1, 0).map_err(e)?;
            w.send(&[3u8; 10], 1, 0).map_err(e)?;
        }
        1 => {
            let mut small = [0u8; 10];
            let mut big = vec![0u8; 1000];
            let mut ok = [0u8; 10];
            mpr::scope(|s| -> R<()> {
                let a = w.irecv(s, &mut small, 0, 0).map_err(e)?;
                let b = w.irecv(s, &mut big, ANY_SOURCE, 0).map_err(e)?;
                let c = w.irecv(s, &mut ok, 0, 0).map_err(e)?;
                check!(
                    matches!(
                        a.wait(),
                        Err(Error::Truncated {
                            message_bytes: 100,
                            buffer_bytes: 10,
                            ..
                        })
                    ),
                    "eager truncation"
                );
                check!(
                    matches!(
                        b.wait(),
                        Err(Error::Truncated {
                            message_bytes: 200_000,
                            ..
                        })
                    ),
                    "rendezvous truncation"
                );
                check!(c.wait().map_err(e)?.bytes() == 10, "next receive");
                Ok(())
            })?;
            check!(ok == [3u8; 10], "{ok:?}");
        }
        _ => {}
    }
    Ok(())
}

/// A panic inside a scope with a receive pending: the scope still waits for it before the panic
/// goes on, so the buffer is never written after it is gone.
fn panic_in_scope(w: &mpr::World) -> R<()> {
    match w.rank() {
        0 => {
            let mut b = vec![0u8; 300_000];
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                mpr::scope(|s| {
                    let _r = w.irecv(s, &mut b, 1, 6).expect("post");
                    panic!("boom");
                })
            }));
            check!(caught.is_err(), "the panic went missing");
            check!(b == pattern(1, 0, 6, 300_000), "payload after the panic");
        }
        1 => {
            std::thread::sleep(Duration::from_millis(100));
            w.send(&pattern(1, 0, 6, 300_000), 0, 6).map_err(e)?;
        }
        _ => {}
    }
    Ok(())
}

/// Nonblocking collectives: results match the blocking ones, they progress while the rank waits
/// on something else, and they interleave with blocking collectives without mixing messages.
fn icoll(w: &mpr::World) -> R<()> {
    let (n, me) = (w.size(), w.rank());
    for len in [0usize, 1, 5, 1000, 100_000] {
        let send: Vec<i64> = (0..len).map(|i| (i * 7 + me * 13) as i64 % 101).collect();
        let want: Vec<i64> = (0..len)
            .map(|i| (0..n).map(|r| (i * 7 + r * 13) as i64 % 101).sum())
            .collect();
        let mut got = vec![0i64; len];
        let mut blocking = vec![0i64; len];
        let mut b = vec![0u8; len];
        let root = len % n;
        if me == root {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = (i % 251) as u8);
        }
        mpr::scope(|s| -> R<()> {
            let r1 = w.iallreduce(s, &send, &mut got, mpr::Op::Sum).map_err(e)?;
            let r2 = w.ibroadcast(s, &mut b, root).map_err(e)?;
            let r3 = w.ibarrier(s).map_err(e)?;
            // A blocking collective while three nonblocking ones are in flight.
            w.allreduce(&send, &mut blocking, mpr::Op::Sum).map_err(e)?;
            mpr::wait_all(vec![r3, r2, r1]).map_err(e)?;
            Ok(())
        })?;
        check!(got == want, "iallreduce len {len}");
        check!(blocking == want, "allreduce beside iallreduce, len {len}");
        check!(
            b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8),
            "ibroadcast len {len} root {root}"
        );
    }
    // Progress without waiting on the collective: rank 0 enters ibarrier and then blocks in a
    // receive from rank 1, which sends only after its own ibarrier completed. Rank 0's part of
    // the barrier must move while it waits on the receive, or this deadlocks.
    if n > 1 {
        mpr::scope(|s| -> R<()> {
            let bar = w.ibarrier(s).map_err(e)?;
            if me == 0 {
                let mut x = [0u32];
                w.recv(&mut x, 1, 77).map_err(e)?;
                check!(x[0] == 42, "message after the barrier");
                bar.wait().map_err(e)?;
            } else {
                bar.wait().map_err(e)?;
                if me == 1 {
                    w.send(&[42u32], 0, 77).map_err(e)?;
                }
            }
            Ok(())
        })?;
    }
    // Test-polling a nonblocking allreduce to completion.
    let mut total = [0u64];
    let mine = [me as u64 + 1];
    mpr::scope(|s| -> R<()> {
        let mut r = w
            .iallreduce(s, &mine, &mut total, mpr::Op::Sum)
            .map_err(e)?;
        while r.test().map_err(e)?.is_none() {
            std::thread::yield_now();
        }
        Ok(())
    })?;
    check!(
        total[0] == (n * (n + 1) / 2) as u64,
        "test-polled iallreduce: {}",
        total[0]
    );
    let (one, mut out) = ([1.0f64], [0.0f64]);
    check!(
        mpr::scope(|s| w.iallreduce(s, &one, &mut out, mpr::Op::BitAnd).is_err()),
        "bit op on floats"
    );
    w.barrier().map_err(e)
}

/// Cancel under contention: rank 0's wildcard receives are cancelled before and after the
/// others send; a cancelled receive takes no message (every message is received once, by a
/// later receive), one that matched reports `false` and its data.
fn cancel(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    if rank == 0 {
        let mut early = [0u64; 1];
        mpr::scope(|s| -> R<()> {
            let mut r = w.irecv(s, &mut early, ANY_SOURCE, 5).map_err(e)?;
            check!(
                r.cancel().map_err(e)?,
                "an unmatched receive was not cancelled"
            );
            check!(
                matches!(r.wait(), Err(Error::Cancelled)),
                "wait after cancel"
            );
            Ok(())
        })?;
        w.barrier().map_err(e)?; // now the others send
        let mut got = vec![0usize; size];
        let mut late = [0u64; 1];
        let mut matched = 0;
        // Wait until the first message is surely here, then a receive matches at once.
        w.probe(ANY_SOURCE, 5).map_err(e)?;
        mpr::scope(|s| -> R<()> {
            let mut r = w.irecv(s, &mut late, ANY_SOURCE, 5).map_err(e)?;
            if !r.cancel().map_err(e)? {
                let st = r.wait().map_err(e)?;
                got[st.source()] += 1;
                matched += 1;
            }
            Ok(())
        })?;
        check!(
            matched == 1,
            "a receive with a message waiting was cancelled"
        );
        while got.iter().sum::<usize>() < 3 * (size - 1) {
            let mut b = [0u64; 1];
            let st = w.recv(&mut b, ANY_SOURCE, 5).map_err(e)?;
            check!(
                b[0] == st.source() as u64,
                "payload {b:?} from {}",
                st.source()
            );
            got[st.source()] += 1;
        }
        check!(got[1..].iter().all(|&c| c == 3), "counts {got:?}");
        check!(
            w.iprobe(ANY_SOURCE, 5).map_err(e)?.is_none(),
            "a message too many"
        );
        // Sends cannot be cancelled.
        let out = [1u8];
        mpr::scope(|s| -> R<()> {
            let mut q = w.isend(s, &out, 0, 6).map_err(e)?;
            check!(q.cancel().is_err(), "a send was cancelled");
            let mut b = [0u8];
            w.recv(&mut b, 0, 6).map_err(e)?;
            q.wait().map_err(e)?;
            Ok(())
        })?;
    } else {
        w.barrier().map_err(e)?;
        for _ in 0..3 {
            w.send(&[rank as u64], 0, 5).map_err(e)?;
        }
    }
    w.barrier().map_err(e)?;
    Ok(())
}

/// wait_some / test_some with several senders and ANY_SOURCE: every message once, indices
/// of the vector as it was, and a failing request (truncated) reported with its index.
fn waitsome(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    let k = 20;
    if rank == 0 {
        let total = k * (size - 1);
        let mut bufs = vec![[0u32; 4]; total];
        let mut tiny = [0u8; 1];
        let mut seen = vec![0usize; size];
        mpr::scope(|s| -> R<()> {
            let mut reqs = Vec::new();
            let mut ids = Vec::new();
            for (i, b) in bufs.iter_mut().enumerate() {
                reqs.push(w.irecv(s, b, ANY_SOURCE, 1).map_err(e)?);
                ids.push(i);
            }
            reqs.push(w.irecv(s, &mut tiny, 1, 2).map_err(e)?);
            ids.push(usize::MAX);
            check!(
                mpr::test_some(&mut reqs).map_err(e)?.is_empty(),
                "completed before sends"
            );
            w.barrier().map_err(e)?;
            let (mut failed, mut done) = (0, 0);
            while !reqs.is_empty() {
                let batch = if done % 2 == 0 {
                    mpr::wait_some(&mut reqs).map_err(e)?
                } else {
                    mpr::test_some(&mut reqs).map_err(e)?
                };
                for (removed, (i, res)) in batch.into_iter().enumerate() {
                    let id = ids.remove(i - removed);
                    match res {
                        Ok(st) => {
                            check!(id != usize::MAX, "the tiny receive succeeded");
                            seen[st.source()] += 1;
                        }
                        Err(Error::Truncated { .. }) => {
                            check!(id == usize::MAX, "index {i} failed but was request {id}");
                            failed += 1;
                        }
                        Err(other) => return Err(e(other)),
                    }
                }
                done += 1;
            }
            check!(failed == 1, "{failed} failed requests reported");
            check!(mpr::wait_some(&mut reqs).is_err(), "wait_some on nothing");
            Ok(())
        })?;
        check!(seen[1..].iter().all(|&c| c == k), "counts {seen:?}");
        for b in &bufs {
            check!(b[1] == b[0] * 10 && b[2] == 7, "payload {b:?}");
        }
        // wait_any names the request that failed.
        let (mut big, mut small) = ([0u8; 8], [0u8; 1]);
        mpr::scope(|s| -> R<()> {
            let mut reqs = vec![
                w.irecv(s, &mut big, 1, 8).map_err(e)?,
                w.irecv(s, &mut small, 1, 4).map_err(e)?,
            ];
            w.barrier().map_err(e)?;
            let mut failed = None;
            while !reqs.is_empty() {
                if let Err(err) = mpr::wait_any(&mut reqs) {
                    failed = Some(err);
                }
            }
            let err = failed.ok_or("the truncated receive did not fail")?;
            check!(
                matches!(err.inner(), Error::Truncated { .. }) && err.request_index().is_some(),
                "{err:?}"
            );
            Ok(())
        })?;
    } else {
        w.barrier().map_err(e)?;
        for j in 0..k {
            w.send(&[rank as u32, rank as u32 * 10, 7, j as u32], 0, 1)
                .map_err(e)?;
        }
        if rank == 1 {
            w.send(&[1u8, 2, 3], 0, 2).map_err(e)?;
        }
        w.barrier().map_err(e)?;
        if rank == 1 {
            w.send(&[1u8, 2, 3], 0, 4).map_err(e)?;
            w.send(&[1u8], 0, 8).map_err(e)?;
        }
    }
    Ok(())
}

/// sendrecv_replace around the ring, several sizes.
fn replace(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    for n in [0, 1, 1000, 300_000] {
        let mut buf = pattern(rank, 0, n, n);
        let st = w
            .sendrecv_replace(&mut buf, (rank + 1) % size, 3, (rank + size - 1) % size, 3)
            .map_err(e)?;
        let left = (rank + size - 1) % size;
        check!(st.source() == left && st.bytes() == n, "{st:?}");
        check!(buf == pattern(left, 0, n, n), "size {n}: wrong data");
    }
    Ok(())
}

/// Matched probe with several senders and ANY_SOURCE: a probed message is received by its
/// handle only, never by a receive posted after the probe; a dropped handle gives it back.
fn mprobe(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    let k = 10;
    if rank == 0 {
        w.barrier().map_err(e)?;
        let mut got = vec![0usize; size];
        let mut stolen = [0u64; 2];
        let mut second = None;
        let mut count = 0;
        mpr::scope(|s| -> R<()> {
            let msg = w.mprobe(ANY_SOURCE, 1).map_err(e)?;
            // Posted after the probe: must take another message, not the probed one.
            let r = w.irecv(s, &mut stolen, ANY_SOURCE, 1).map_err(e)?;
            let probed = msg.status();
            let (v, st) = msg.recv_vec::<u64>().map_err(e)?;
            check!(
                st == probed && v[0] == st.source() as u64,
                "probed {probed:?}, got {st:?} {v:?}"
            );
            check!(v[1] == got[st.source()] as u64, "out of order: {v:?}");
            got[st.source()] += 1;
            second = Some(r.wait().map_err(e)?);
            Ok(())
        })?;
        // The buffer of the posted receive is ours again once the scope has ended.
        let st2 = second.ok_or("no status")?;
        check!(stolen[0] == st2.source() as u64, "the posted receive");
        check!(
            stolen[1] == got[st2.source()] as u64,
            "out of order: {stolen:?}"
        );
        got[st2.source()] += 1;
        count += 2;
        // A dropped handle gives its message back, to be received normally.
        let msg = w.mprobe(ANY_SOURCE, 1).map_err(e)?;
        let first = msg.status();
        drop(msg);
        let mut b = [0u64; 2];
        let st = w.recv(&mut b, first.source(), 1).map_err(e)?;
        check!(
            b[1] == got[st.source()] as u64,
            "the dropped message came back out of order: {b:?}"
        );
        got[st.source()] += 1;
        count += 1;
        while count < k * (size - 1) {
            let msg = match w.improbe(ANY_SOURCE, 1).map_err(e)? {
                Some(m) => m,
                None => w.mprobe(ANY_SOURCE, 1).map_err(e)?,
            };
            let mut buf = [0u64; 2];
            let st = msg.recv(&mut buf).map_err(e)?;
            check!(buf[0] == st.source() as u64, "payload {buf:?}");
            check!(buf[1] == got[st.source()] as u64, "out of order: {buf:?}");
            got[st.source()] += 1;
            count += 1;
        }
        check!(got[1..].iter().all(|&c| c == k), "counts {got:?}");
        check!(
            w.improbe(ANY_SOURCE, 1).map_err(e)?.is_none(),
            "a message too many"
        );
    } else {
        w.barrier().map_err(e)?;
        for j in 0..k {
            w.send(&[rank as u64, j as u64], 0, 1).map_err(e)?;
        }
    }
    w.barrier().map_err(e)?;
    Ok(())
}

/// Buffers handed back and posted again, 10,000 receives (ANY_SOURCE, several senders) in one
/// scope, every payload checked in its buffer inside the scope; senders refill and resend one
/// buffer handed back by its send.
fn handback(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    if size < 2 {
        return Err("needs 2 ranks".into());
    }
    let per = 10_000usize.div_ceil(size - 1);
    if rank == 0 {
        let mut storage = vec![0u64; 3];
        let mut next = vec![0u64; size];
        mpr::scope(|s| -> R<()> {
            let mut buf: &mut [u64] = &mut storage;
            for _ in 0..per * (size - 1) {
                let r = w.irecv_buf(s, buf, ANY_SOURCE, 2).map_err(e)?;
                let (back, st) = r.wait().map_err(e)?;
                let src = st.source();
                check!(
                    back[0] == src as u64 && back[1] == next[src],
                    "from {src}: {back:?}, want seq {}",
                    next[src]
                );
                check!(back[2] == back[1] * 3 + src as u64, "payload {back:?}");
                next[src] += 1;
                buf = back;
            }
            Ok(())
        })?;
        check!(
            next[1..].iter().all(|&c| c == per as u64),
            "counts {next:?}"
        );
    } else {
        let mut storage = vec![0u64; 3];
        mpr::scope(|s| -> R<()> {
            let mut buf: &mut [u64] = &mut storage;
            for j in 0..per as u64 {
                buf.copy_from_slice(&[rank as u64, j, j * 3 + rank as u64]);
                let q = w.isend_buf(s, buf, 0, 2).map_err(e)?;
                buf = q.wait().map_err(e)?.0;
            }
            Ok(())
        })?;
    }
    w.barrier().map_err(e)?;
    Ok(())
}

/// Receives of unknown size: posted before the message arrives and after, eager and
/// rendezvous, several senders with ANY_SOURCE, values, a length that is not whole elements,
/// and requests dropped before their message came.
fn irecv_vec(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    let sizes = [0usize, 1, 1000, 300_000];
    let data =
        |src: usize, n: usize| -> Vec<u64> { (0..n as u64).map(|i| i * 7 + src as u64).collect() };
    if rank == 0 {
        for &n in &sizes {
            // Posted early (before the others send), one per sender, ANY_SOURCE.
            let mut got = vec![false; size];
            mpr::scope(|s| -> R<()> {
                let mut reqs = Vec::new();
                for _ in 1..size {
                    reqs.push(w.irecv_vec::<u64>(s, ANY_SOURCE, 1).map_err(e)?);
                }
                w.barrier().map_err(e)?;
                for r in reqs.into_iter().rev() {
                    let (v, st) = r.wait().map_err(e)?;
                    check!(
                        v == data(st.source(), n),
                        "early, size {n}, from {}",
                        st.source()
                    );
                    check!(!got[st.source()], "twice from {}", st.source());
                    got[st.source()] = true;
                }
                Ok(())
            })?;
            // Posted late (the messages, or their announcements, are already here), tested
            // until done.
            mpr::scope(|s| -> R<()> {
                for src in 1..size {
                    w.probe(src, 2).map_err(e)?;
                    let mut r = w.irecv_vec::<u64>(s, src, 2).map_err(e)?;
                    let (v, st) = loop {
                        if let Some(done) = r.test().map_err(e)? {
                            break done;
                        }
                    };
                    check!(r.test().is_err(), "the vector came twice");
                    check!(
                        st.source() == src && v == data(src, n),
                        "late, size {n}, from {src}"
                    );
                }
                Ok(())
            })?;
        }
        // Values, and a length that is not a whole number of elements.
        mpr::scope(|s| -> R<()> {
            let r = w.irecv_value::<(String, Vec<u16>)>(s, 1, 3).map_err(e)?;
            let odd = w.irecv_vec::<u32>(s, 1, 4).map_err(e)?;
            w.barrier().map_err(e)?;
            let ((name, v), _) = r.wait().map_err(e)?;
            check!(name == "one" && v == [1, 2, 3], "value {name:?} {v:?}");
            check!(odd.wait().is_err(), "5 bytes as u32s accepted");
            // Dropped before its message: the scope still completes it.
            let _dropped = w.irecv_vec::<u8>(s, 1, 5).map_err(e)?;
            Ok(())
        })?;
    } else {
        for &n in &sizes {
            w.barrier().map_err(e)?;
            w.send(&data(rank, n), 0, 1).map_err(e)?;
            w.send(&data(rank, n), 0, 2).map_err(e)?;
        }
        if rank == 1 {
            w.barrier().map_err(e)?;
            w.send_value(&("one", vec![1u16, 2, 3]), 0, 3).map_err(e)?;
            w.send(&[1u8; 5], 0, 4).map_err(e)?;
            w.send(&vec![9u8; 200_000], 0, 5).map_err(e)?;
        } else {
            w.barrier().map_err(e)?;
        }
    }
    w.barrier().map_err(e)?;
    Ok(())
}
