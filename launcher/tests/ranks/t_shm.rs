//! Rank program for the shared-memory tests: `t_shm CASE [ARGS]`. Rank 0 prints `ok CASE` on
//! success; a failing rank says why on stderr and exits 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

fn main() -> ExitCode {
    run_case(|world, case, args| match case {
        "stress" => stress(world, args),
        "idle" => idle(world),
        "kill" => kill(world),
        "hold" => hold(world),
        "barrier_moves" => barrier_moves(world),
        "direct" => direct(world, args),
        other => Err(format!("unknown case {other:?}")),
    })
}

/// A small deterministic generator (splitmix64): every rank derives the same sizes.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The size of message `k` from `src` to `dst`: 0 B to 4 MiB, most of them small, many around
/// the sizes where rings wrap and protocols change (eager limit, ring capacity).
fn size_of(seed: u64, src: usize, dst: usize, k: usize) -> usize {
    let r = mix(seed ^ (src as u64) << 40 ^ (dst as u64) << 20 ^ k as u64);
    let jitter = (r >> 8) as usize % 4096;
    match r % 8 {
        0 => 0,
        1 | 2 => (r >> 16) as usize % 200,
        3 => (r >> 16) as usize % 70_000,
        4 => (64 << 10) - 2048 + jitter,
        5 => (256 << 10) - 2048 + jitter,
        6 => (r >> 16) as usize % (1 << 20),
        _ => (r >> 16) as usize % (4 << 20) + 1,
    }
}

fn byte_of(src: usize, k: usize, i: usize) -> u8 {
    (i.wrapping_mul(131) ^ src.wrapping_mul(17) ^ k.wrapping_mul(7)) as u8
}

/// Every pair of ranks exchanges ARG2 (default 40) messages of random sizes both ways at once,
/// through nonblocking sends and receives, every byte checked; seed ARG1.
fn stress(w: &mpr::World, args: &[String]) -> R<()> {
    let seed: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let (me, n) = (w.rank(), w.size());
    for k in 0..rounds {
        // Round k: each rank exchanges with the one `1 + k % (n - 1)` ahead (and behind).
        let step = 1 + k % (n - 1).max(1);
        let (to, from) = ((me + step) % n, (me + n - step) % n);
        let out: Vec<u8> = (0..size_of(seed, me, to, k))
            .map(|i| byte_of(me, k, i))
            .collect();
        let mut inb = vec![0u8; size_of(seed, from, me, k)];
        mpr::scope(|s| -> mpr::Result<()> {
            let r = w.irecv(s, &mut inb, from, k as u32)?;
            let q = w.isend(s, &out, to, k as u32)?;
            mpr::wait_all(vec![r, q])?;
            Ok(())
        })
        .map_err(e)?;
        if let Some(i) = (0..inb.len()).find(|&i| inb[i] != byte_of(from, k, i)) {
            return Err(format!(
                "round {k}: byte {i} of {} from rank {from} is {}, not {}",
                inb.len(),
                inb[i],
                byte_of(from, k, i)
            ));
        }
    }
    w.barrier().map_err(e)?;
    if me == 0 {
        println!("rank 0 exchanged {rounds} rounds");
    }
    Ok(())
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> R<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|x| x.to_string())?;
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    let ticks = f.iter().sum::<u64>();
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

/// Every rank but the last waits 2 s for a message the last one sends after sleeping, through
/// its ring; each says how much CPU it used while blocked (at most 2 % of the 2 s).
fn idle(w: &mpr::World) -> R<()> {
    let (me, n) = (w.rank(), w.size());
    let last = n - 1;
    // Links and rings first, so that the wait is a wait on a ring.
    let mut b = [0u8; 8];
    if me == last {
        for r in 0..last {
            w.send(&[1u8; 8], r, 0).map_err(e)?;
        }
    } else {
        w.recv(&mut b, last, 0).map_err(e)?;
    }
    w.barrier().map_err(e)?;
    if me == last {
        std::thread::sleep(Duration::from_secs(2));
        for r in 0..last {
            w.send(&[2u8; 8], r, 1).map_err(e)?;
        }
    } else {
        let (t0, c0) = (Instant::now(), cpu_time()?);
        w.recv(&mut b, last, 1).map_err(e)?;
        let (waited, used) = (t0.elapsed(), cpu_time()? - c0);
        check!(
            waited >= Duration::from_millis(1900),
            "waited only {waited:?}"
        );
        check!(
            used <= Duration::from_millis(40),
            "used {used:?} of CPU in a wait of {waited:?}"
        );
        println!("rank {me} used {} ms", used.as_millis());
    }
    w.barrier().map_err(e)
}

/// Rank 1 streams messages to rank 0 and is killed (SIGKILL, by itself) with more in flight:
/// rank 0's next receive fails with `PeerFailed` within a second of the last message it got.
fn kill(w: &mpr::World) -> R<()> {
    let me = w.rank();
    if me == 1 {
        let big = vec![7u8; 200_000];
        for k in 0..50u32 {
            w.send(&big[..(k as usize * 4000) % 200_000], 0, k)
                .map_err(e)?;
        }
        mpr::scope(|s| -> mpr::Result<()> {
            let _in_flight = w.isend(s, &big, 0, 50)?;
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
            std::thread::sleep(Duration::from_secs(10));
            Ok(())
        })
        .map_err(e)?;
        return Err("still alive after SIGKILL".into());
    }
    if me != 0 {
        return Ok(());
    }
    let mut buf = vec![0u8; 200_000];
    let mut last = Instant::now();
    for k in 0..1000u32 {
        match w.recv(&mut buf, 1, k) {
            Ok(_) => last = Instant::now(),
            Err(mpr::Error::PeerFailed { rank: 1, .. }) => {
                let after = last.elapsed();
                check!(
                    after < Duration::from_secs(1),
                    "PeerFailed came {after:?} after the last message"
                );
                println!(
                    "rank 0 saw rank 1 fail {} ms after message {k}",
                    after.as_millis()
                );
                // mprun ends the job for rank 1's death; say so first.
                println!("ok kill");
                return Ok(());
            }
            Err(other) => return Err(format!("message {k}: {other}")),
        }
    }
    Err("rank 1 never failed".into())
}

/// Every rank exchanges a message with every other (so every pair has its rings), prints
/// `hold PID`, and waits for a line on stdin (rank 0; the others wait for rank 0).
fn hold(w: &mpr::World) -> R<()> {
    let (me, n) = (w.rank(), w.size());
    for r in 0..n {
        if r != me {
            w.send(&[me as u8; 64], r, 0).map_err(e)?;
        }
    }
    for r in 0..n {
        if r != me {
            let mut b = [0u8; 64];
            w.recv(&mut b, r, 0).map_err(e)?;
        }
    }
    println!("hold {}", std::process::id());
    if me == 0 {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|x| x.to_string())?;
    }
    w.barrier().map_err(e)
}

/// A rank in a node barrier still moves its other operations: rank 0 starts a 1 MiB send and
/// enters the barrier; rank 1 needs rank 0's help to receive it (with `MPR_PULL=0` rank 0
/// must push the data once rank 1 answers) before it comes to the barrier. 50 rounds; if the
/// waiting rank moved only when it woke up to check its members (every 50 ms), this would take
/// seconds.
fn barrier_moves(w: &mpr::World) -> R<()> {
    let me = w.rank();
    let big = vec![7u8; 1 << 20];
    let mut into = vec![0u8; 1 << 20];
    let start = Instant::now();
    for round in 0..50 {
        if me == 0 {
            mpr::scope(|s| -> mpr::Result<()> {
                let r = w.isend(s, &big, 1, round)?;
                w.barrier()?;
                r.wait().map(|_| ())
            })
            .map_err(e)?;
        } else if me == 1 {
            w.recv(&mut into, 0, round).map_err(e)?;
            w.barrier().map_err(e)?;
        } else {
            w.barrier().map_err(e)?;
        }
    }
    let took = start.elapsed();
    if into != big && me == 1 {
        return Err("the message came wrong".into());
    }
    if took > Duration::from_millis(1500) {
        return Err(format!(
            "50 rounds took {took:?}: the barrier's wait kept the send from moving"
        ));
    }
    Ok(())
}

/// Blocking receives that may take their message straight from the sender's ring keep MPI's
/// matching rules whatever comes first (ARG1 rounds, so that the rings wrap many times): a
/// receive posted earlier takes its message first, a message of another tag, communicator or
/// kind (synchronous) waits in order for its own receive, a truncated message is an error and
/// the next is untouched, ANY_TAG takes the next in order. Ranks 0 and 1; others idle.
fn direct(w: &mpr::World, args: &[String]) -> R<()> {
    let rounds: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let twin = w.dup().map_err(e)?;
    let msg = |round: u32, k: u32| -> [u32; 2] { [round, k] };
    for round in 0..rounds {
        match w.rank() {
            0 => {
                w.send(&msg(round, 1), 1, 5).map_err(e)?;
                w.send(&msg(round, 2), 1, 6).map_err(e)?;
                w.send(&msg(round, 3), 1, 5).map_err(e)?;
                twin.send(&msg(round, 4), 1, 5).map_err(e)?;
                w.send(&msg(round, 5), 1, 5).map_err(e)?;
                w.ssend(&msg(round, 6), 1, 7).map_err(e)?;
                w.send(&[round; 25], 1, 8).map_err(e)?;
                w.send(&msg(round, 7), 1, 9).map_err(e)?;
                w.send(&msg(round, 8), 1, 5).map_err(e)?;
                w.send(&msg(round, 9), 1, 5).map_err(e)?;
            }
            1 => {
                let mut early = [0u32; 2];
                let mut six = [0u32; 2];
                let mut b = [0u32; 2];
                mpr::scope(|s| -> R<()> {
                    // Posted before any blocking receive: tag 6 must land here, not be
                    // skipped over or taken by a receive of tag 5.
                    let r6 = w.irecv(s, &mut six, 0, 6).map_err(e)?;
                    w.recv(&mut b, 0, 5).map_err(e)?;
                    check!(b == msg(round, 1), "round {round}: first tag 5 got {b:?}");
                    w.recv(&mut b, 0, 5).map_err(e)?;
                    check!(b == msg(round, 3), "round {round}: second tag 5 got {b:?}");
                    r6.wait().map_err(e)?;
                    Ok(())
                })?;
                check!(six == msg(round, 2), "round {round}: tag 6 got {six:?}");
                w.recv(&mut b, 0, 5).map_err(e)?;
                check!(
                    b == msg(round, 5),
                    "round {round}: the other communicator's came"
                );
                twin.recv(&mut b, 0, 5).map_err(e)?;
                check!(b == msg(round, 4), "round {round}: twin got {b:?}");
                w.recv(&mut b, 0, 7).map_err(e)?;
                check!(b == msg(round, 6), "round {round}: ssend got {b:?}");
                match w.recv(&mut b, 0, 8) {
                    Err(mpr::Error::Truncated {
                        message_bytes: 100, ..
                    }) => {}
                    other => return Err(format!("round {round}: truncation gave {other:?}")),
                }
                let st = w.recv(&mut b, 0, mpr::ANY_TAG).map_err(e)?;
                check!(
                    b == msg(round, 7) && st.tag() == 9,
                    "round {round}: ANY_TAG got {b:?} {st:?}"
                );
                mpr::scope(|s| -> R<()> {
                    // Same tag: the receive posted first takes the first message.
                    let r = w.irecv(s, &mut early, 0, 5).map_err(e)?;
                    w.recv(&mut b, 0, 5).map_err(e)?;
                    r.wait().map_err(e)?;
                    Ok(())
                })?;
                check!(
                    early == msg(round, 8) && b == msg(round, 9),
                    "round {round}: posted first got {early:?}, blocking {b:?}"
                );
            }
            _ => {}
        }
    }
    w.barrier().map_err(e)?;
    Ok(())
}
