//! Rank program for the point-to-point tests: `t_p2p CASE`. Each case checks its own results and
//! exits non-zero with a message on any mismatch; rank 0 prints `ok CASE` on success.

use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpr::{Error, ANY_SOURCE, ANY_TAG};

fn pattern(seed: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

fn main() -> ExitCode {
    run_case(|world, case, args| match case {
        "sizes" => sizes(world),
        "wildcards" => wildcards(world),
        "order" => order(world),
        "probe" => probe(world),
        "ssend" => ssend(world),
        "truncate" => truncate(world),
        "invalid" => invalid(world),
        "sendrecv" => sendrecv(world),
        "selfsend" => selfsend(world),
        "ring" => ring(world),
        "flush" => flush(world),
        "connect_all" => connect_all(world),
        "barrier" => barrier(world),
        "singleton" => singleton(world),
        "local_path" => local_path(world, args),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// Round trips of every size class, verified both ways; u8 and u64 elements.
fn sizes(w: &mpr::World) -> R<()> {
    let sizes = [
        0usize,
        1,
        7,
        8,
        1000,
        4096,
        16383,
        65535,
        65536,
        65537,
        200_000,
        1 << 20,
        4 << 20,
        (16 << 20) + 3,
        64 << 20,
    ];
    if w.rank() > 1 {
        return Ok(());
    }
    for (i, &n) in sizes.iter().enumerate() {
        let out = pattern(i, n);
        let mut back = vec![0u8; n];
        if w.rank() == 0 {
            w.send(&out, 1, i as u32).map_err(e)?;
            let st = w.recv(&mut back, 1, i as u32).map_err(e)?;
            check!(
                st.bytes() == n && st.source() == 1 && st.tag() == i as u32,
                "status {st:?} for size {n}"
            );
            let expect: Vec<u8> = out.iter().map(|b| b.wrapping_add(1)).collect();
            check!(back == expect, "size {n}: echoed bytes differ");
        } else {
            let st = w.recv(&mut back, 0, i as u32).map_err(e)?;
            check!(st.bytes() == n, "size {n}: got {} bytes", st.bytes());
            check!(back == out, "size {n}: received bytes differ");
            for b in back.iter_mut() {
                *b = b.wrapping_add(1);
            }
            w.send(&back, 0, i as u32).map_err(e)?;
        }
    }
    // Typed elements.
    let words: Vec<u64> = (0..100_000u64).map(|i| i * 0x9e37_79b9).collect();
    if w.rank() == 0 {
        w.send(&words, 1, 99).map_err(e)?;
    } else {
        let mut got = vec![0u64; words.len()];
        let st = w.recv(&mut got, 0, 99).map_err(e)?;
        check!(
            st.count::<u64>() == words.len() && got == words,
            "u64 payload differs"
        );
    }
    Ok(())
}

/// ANY_SOURCE / ANY_TAG, alone and combined.
fn wildcards(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    check!(size >= 3, "needs 3 ranks");
    if rank == 0 {
        let mut seen = vec![false; size];
        for _ in 1..size {
            let mut v = [0u32; 2];
            let st = w.recv(&mut v, ANY_SOURCE, ANY_TAG).map_err(e)?;
            check!(
                v[0] as usize == st.source()
                    && v[1] == st.tag()
                    && st.tag() == 10 * st.source() as u32,
                "any/any: {v:?} {st:?}"
            );
            check!(!seen[st.source()], "rank {} twice", st.source());
            seen[st.source()] = true;
        }
        w.barrier().map_err(e)?;
        // Specific tag from any source, and any tag from a specific source.
        for _ in 1..size {
            let mut v = [0u32; 2];
            let st = w.recv(&mut v, ANY_SOURCE, 5).map_err(e)?;
            check!(
                st.tag() == 5 && v[0] as usize == st.source(),
                "any/5: {st:?}"
            );
        }
        for src in 1..size {
            let mut v = [0u32; 2];
            let st = w.recv(&mut v, src, ANY_TAG).map_err(e)?;
            check!(st.source() == src && st.tag() == 7, "{src}/any: {st:?}");
        }
    } else {
        w.send(&[rank as u32, 10 * rank as u32], 0, 10 * rank as u32)
            .map_err(e)?;
        w.barrier().map_err(e)?;
        w.send(&[rank as u32, 5], 0, 5).map_err(e)?;
        w.send(&[rank as u32, 7], 0, 7).map_err(e)?;
    }
    Ok(())
}

/// 10,000 messages (with a large one every 1000) arrive in the order sent.
fn order(w: &mpr::World) -> R<()> {
    const N: u64 = 10_000;
    let big = vec![0u8; 300_000];
    if w.rank() == 0 {
        for i in 0..N {
            if i % 1000 == 999 {
                let mut b = big.clone();
                b[..8].copy_from_slice(&i.to_le_bytes());
                w.send(&b, 1, 3).map_err(e)?;
            } else {
                w.send(&[i], 1, 3).map_err(e)?;
            }
        }
    } else if w.rank() == 1 {
        let mut buf = vec![0u8; big.len()];
        for i in 0..N {
            let tag = if i % 2 == 0 {
                mpr::TagMatch::Tag(3)
            } else {
                ANY_TAG
            };
            let st = w.recv(&mut buf, 0, tag).map_err(e)?;
            let got = u64::from_le_bytes(buf[..8].try_into().unwrap());
            check!(got == i, "message {i} arrived as number {got}");
            check!(
                st.bytes() == if i % 1000 == 999 { big.len() } else { 8 },
                "message {i}: {} bytes",
                st.bytes()
            );
        }
    }
    Ok(())
}

/// probe + recv_vec, iprobe, sizes unknown in advance.
fn probe(w: &mpr::World) -> R<()> {
    let lens = [0usize, 3, 5000, 300_000];
    if w.rank() == 0 {
        w.barrier().map_err(e)?; // rank 1 checks iprobe finds nothing first
        for (i, &n) in lens.iter().enumerate() {
            let v: Vec<f64> = (0..n).map(|k| k as f64 + i as f64 / 8.0).collect();
            w.send(&v, 1, 40 + i as u32).map_err(e)?;
        }
    } else if w.rank() == 1 {
        check!(
            w.iprobe(0, ANY_TAG).map_err(e)?.is_none(),
            "iprobe found a message before any was sent"
        );
        w.barrier().map_err(e)?;
        for (i, &n) in lens.iter().enumerate() {
            let st = w.probe(ANY_SOURCE, 40 + i as u32).map_err(e)?;
            check!(
                st.source() == 0 && st.count::<f64>() == n,
                "probe: {st:?}, expected {n} doubles"
            );
            let again = w.iprobe(0, 40 + i as u32).map_err(e)?;
            check!(again == Some(st), "iprobe after probe: {again:?}");
            let (v, st2) = w.recv_vec::<f64>(0, ANY_TAG).map_err(e)?;
            check!(
                st2 == st && v.len() == n,
                "recv_vec: {st2:?} len {}",
                v.len()
            );
            check!(
                v.iter()
                    .enumerate()
                    .all(|(k, &x)| x == k as f64 + i as f64 / 8.0),
                "recv_vec contents differ"
            );
        }
    } else {
        w.barrier().map_err(e)?;
    }
    Ok(())
}

/// ssend returns only once the receive is posted; send of a small message does not wait.
fn ssend(w: &mpr::World) -> R<()> {
    const DELAY: Duration = Duration::from_millis(400);
    for (n, sync) in [(8usize, true), (1 << 20, true), (8, false)] {
        let data = pattern(n, n);
        if w.rank() == 0 {
            let t = Instant::now();
            if sync {
                w.ssend(&data, 1, 1).map_err(e)?;
            } else {
                w.send(&data, 1, 1).map_err(e)?;
            }
            let took = t.elapsed();
            if sync {
                check!(
                    took >= DELAY - Duration::from_millis(50),
                    "ssend of {n} bytes returned after {took:?}, before the receive was posted"
                );
            } else {
                check!(took < DELAY / 2, "eager send of {n} bytes waited {took:?}");
            }
        } else if w.rank() == 1 {
            std::thread::sleep(DELAY);
            let mut buf = vec![0u8; n];
            w.recv(&mut buf, 0, 1).map_err(e)?;
            check!(buf == data, "ssend payload differs");
        }
        w.barrier().map_err(e)?;
    }
    Ok(())
}

/// A message larger than the buffer: Truncated, consumed, and the next receive works.
fn truncate(w: &mpr::World) -> R<()> {
    for n in [100usize, 1 << 20] {
        if w.rank() == 0 {
            w.send(&pattern(1, n), 1, 9).map_err(e)?;
            w.send(&[77u8; 4], 1, 9).map_err(e)?;
        } else if w.rank() == 1 {
            let mut small = [0u8; 10];
            match w.recv(&mut small, 0, 9) {
                Err(Error::Truncated {
                    source: 0,
                    tag: 9,
                    message_bytes,
                    buffer_bytes: 10,
                }) if message_bytes == n => {}
                other => return Err(format!("expected Truncated for {n} bytes, got {other:?}")),
            }
            let mut next = [0u8; 4];
            let st = w.recv(&mut next, 0, 9).map_err(e)?;
            check!(
                st.bytes() == 4 && next == [77; 4],
                "message after the truncated one: {st:?} {next:?}"
            );
        }
    }
    Ok(())
}

/// Invalid ranks are errors, not panics or hangs.
fn invalid(w: &mpr::World) -> R<()> {
    let size = w.size();
    match w.send(&[1u8], size, 0) {
        Err(Error::InvalidRank { rank, size: s }) if rank == size && s == size => {}
        other => return Err(format!("send to rank {size}: {other:?}")),
    }
    let mut b = [0u8];
    match w.recv(&mut b, size + 5, 0) {
        Err(err @ Error::InvalidRank { .. }) => {
            check!(err.to_string().contains("invalid rank"), "message: {err}")
        }
        other => return Err(format!("recv from rank {}: {other:?}", size + 5)),
    }
    check!(
        matches!(w.probe(usize::MAX, 0), Err(Error::InvalidRank { .. })),
        "probe of usize::MAX"
    );
    check!(
        matches!(w.iprobe(size, ANY_TAG), Err(Error::InvalidRank { .. })),
        "iprobe of rank {size}"
    );
    Ok(())
}

/// sendrecv shifts around the ring without deadlock, small and large.
fn sendrecv(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    for n in [1usize, 100_000, 3 << 20] {
        let out = vec![rank as u32; n];
        let mut inb = vec![u32::MAX; n];
        let st = w
            .sendrecv(
                &out,
                (rank + 1) % size,
                2,
                &mut inb,
                (rank + size - 1) % size,
                2,
            )
            .map_err(e)?;
        let from = (rank + size - 1) % size;
        check!(
            st.source() == from && inb.iter().all(|&x| x == from as u32),
            "sendrecv of {n}: {st:?}"
        );
    }
    Ok(())
}

/// A rank sends to itself.
/// Which path carried messages between ranks 0 and 1? First argument `shm`, `unix` or `tcp`:
/// the link. Rank 0 dials rank 1, so rank 1 accepts on its local listener if the link is local:
/// the kernel's table of Unix sockets (/proc/net/unix) then shows that listener's abstract name
/// twice (the listener and the accepted connection); over TCP, not at all. With `shm`, rank 1
/// also maps rank 0's ring (`/memfd:mpr-ring` in its /proc/self/maps); with `unix`, no ring.
/// Second argument `copy` or `socket`: how a 4 MiB message travels; copied between the
/// processes, it never passes through rank 1's link (socket or ring).
fn local_path(w: &mpr::World, args: &[String]) -> R<()> {
    let want = args.first().map(String::as_str).unwrap_or("unix");
    let copy = args.get(1).map(String::as_str) == Some("copy");
    let big = pattern(9, 4 << 20);
    let mut b = [0u8; 4];
    match w.rank() {
        0 => {
            w.send(b"ping", 1, 0).map_err(e)?;
            w.send(&big, 1, 1).map_err(e)?;
        }
        1 => {
            w.recv(&mut b, 0, 0).map_err(e)?;
            let job: u64 = std::env::var("MPR_JOB_ID")
                .map_err(|_| "no MPR_JOB_ID".to_string())?
                .parse()
                .map_err(|_| "bad MPR_JOB_ID".to_string())?;
            let name = format!("@mpr.{job:016x}.1");
            let table = std::fs::read_to_string("/proc/net/unix").map_err(|x| x.to_string())?;
            let n = table.lines().filter(|l| l.ends_with(&name)).count();
            match want {
                "shm" | "unix" => {
                    check!(n >= 2, "{n} sockets named {name}: the link is not local")
                }
                _ => check!(n == 0, "{n} sockets named {name} with MPR_LOCAL=tcp"),
            }
            let maps = std::fs::read_to_string("/proc/self/maps").map_err(|x| x.to_string())?;
            let rings = maps
                .lines()
                .filter(|l| l.contains("/memfd:mpr-ring"))
                .count();
            match want {
                "shm" => check!(
                    rings >= 1,
                    "no ring mapped: the link is not in shared memory"
                ),
                _ => check!(rings == 0, "{rings} rings mapped with MPR_LOCAL={want}"),
            }
            let before = w.socket_bytes_received();
            let mut got = vec![0u8; big.len()];
            w.recv(&mut got, 0, 1).map_err(e)?;
            let read = w.socket_bytes_received() - before;
            check!(got == big, "4 MiB message differs");
            if copy {
                check!(
                    read < 1 << 20,
                    "{read} bytes read: the message came through the socket"
                );
            } else {
                check!(read >= 4 << 20, "only {read} bytes read through the socket");
            }
        }
        _ => {}
    }
    w.barrier().map_err(e)
}

fn selfsend(w: &mpr::World) -> R<()> {
    let me = w.rank();
    w.send(&[1u16, 2, 3], me, 4).map_err(e)?;
    let mut b = [0u16; 3];
    let st = w.recv(&mut b, me, 4).map_err(e)?;
    check!(
        b == [1, 2, 3] && st.source() == me,
        "self eager: {b:?} {st:?}"
    );
    let big = pattern(3, 2 << 20);
    let mut got = vec![0u8; big.len()];
    w.sendrecv(&big, me, 5, &mut got, me, 5).map_err(e)?;
    check!(got == big, "self rendezvous differs");
    Ok(())
}

fn ring(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    let mut token = [0u64];
    for lap in 0..3u64 {
        if rank == 0 {
            token[0] = lap;
            w.send(&token, 1 % size, 0).map_err(e)?;
            w.recv(&mut token, size - 1, 0).map_err(e)?;
            let expect = lap + (size * (size - 1) / 2) as u64;
            check!(
                token[0] == expect,
                "lap {lap}: token {} != {expect}",
                token[0]
            );
        } else {
            w.recv(&mut token, rank - 1, 0).map_err(e)?;
            token[0] += rank as u64;
            w.send(&token, (rank + 1) % size, 0).map_err(e)?;
        }
    }
    Ok(())
}

/// Rank 0 sends and exits at once; rank 1 receives everything long after.
fn flush(w: &mpr::World) -> R<()> {
    if w.rank() == 0 {
        for i in 0..1000u32 {
            w.send(&[i], 1, 0).map_err(e)?;
        }
        w.send(&pattern(9, 5 << 20), 1, 1).map_err(e)?;
    } else if w.rank() == 1 {
        std::thread::sleep(Duration::from_millis(500));
        for i in 0..1000u32 {
            let mut v = [0u32];
            w.recv(&mut v, 0, 0).map_err(e)?;
            check!(v[0] == i, "message {i} lost or reordered ({})", v[0]);
        }
        let mut big = vec![0u8; 5 << 20];
        w.recv(&mut big, 0, 1).map_err(e)?;
        check!(big == pattern(9, 5 << 20), "large message differs");
    }
    Ok(())
}

/// Every rank contacts every other at the same moment (simultaneous dials).
fn connect_all(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    for round in 0..2u32 {
        for p in 0..size {
            if p != rank {
                w.send(&[rank as u32, p as u32, round], p, round)
                    .map_err(e)?;
            }
        }
        for _ in 1..size {
            let mut v = [0u32; 3];
            let st = w.recv(&mut v, ANY_SOURCE, round).map_err(e)?;
            check!(
                v == [st.source() as u32, rank as u32, round],
                "from {}: {v:?}",
                st.source()
            );
        }
    }
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Nobody leaves the barrier before everybody has entered it.
fn barrier(w: &mpr::World) -> R<()> {
    let (rank, size) = (w.rank(), w.size());
    for round in 0..3u32 {
        std::thread::sleep(Duration::from_millis(
            ((rank * 7 + round as usize * 3) % 5) as u64 * 10,
        ));
        let enter = now_us();
        w.barrier().map_err(e)?;
        let leave = now_us();
        if rank == 0 {
            let mut max_enter = enter;
            let mut min_leave = leave;
            for _ in 1..size {
                let mut v = [0u64; 2];
                w.recv(&mut v, ANY_SOURCE, 100 + round).map_err(e)?;
                max_enter = max_enter.max(v[0]);
                min_leave = min_leave.min(v[1]);
            }
            check!(
                max_enter <= min_leave,
                "round {round}: a rank left at {min_leave} before the last entered at {max_enter}"
            );
        } else {
            w.send(&[enter, leave], 0, 100 + round).map_err(e)?;
        }
    }
    Ok(())
}

/// Without mprun: a world of one.
fn singleton(w: &mpr::World) -> R<()> {
    check!(
        w.rank() == 0 && w.size() == 1,
        "rank {} size {}",
        w.rank(),
        w.size()
    );
    w.barrier().map_err(e)?;
    selfsend(w)?;
    let mut b = [0u8; 4];
    match w.recv(&mut b, 0, 1) {
        Err(err @ Error::InvalidArgument { .. }) => {
            check!(err.to_string().contains("never complete"), "{err}")
        }
        other => return Err(format!("a receive nobody can match returned {other:?}")),
    }
    check!(
        matches!(
            w.send(&b, 1, 0),
            Err(Error::InvalidRank { rank: 1, size: 1 })
        ),
        "send to rank 1"
    );
    Ok(())
}
