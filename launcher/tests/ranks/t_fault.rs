//! Rank program for the fault tests (`tests/faults.rs`): `t_fault CASE [ARGS]`. Each case is one
//! way a job used to hang, grow without bound or blame the wrong rank.

use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        // As `fn main() -> mpr::Result<()>` would end: the world is dropped (finalized) inside
        // `run`, then the error is printed and the process exits 1.
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> mpr::Result<ExitCode> {
    let case = args.first().map_or("", String::as_str);
    let word = |i: usize| args.get(i).map_or("", String::as_str);
    let num = |i: usize| word(i).parse::<usize>().unwrap_or(0);
    let world = mpr::init()?;
    let rank = world.rank();
    match case {
        // After a barrier, rank 1 panics (`panic`) or returns an error from main (`err`) while
        // the others call allreduce.
        "coll_fail" => {
            world.barrier()?;
            if rank == 1 {
                if word(1) == "panic" {
                    let v: Vec<u32> = Vec::new();
                    let i = args.len() + 7;
                    println!("{}", v[i]); // a real panic: index out of bounds
                }
                return Err(mpr::Error::InvalidArgument {
                    what: "t_fault",
                    detail: "rank 1 gives up".into(),
                });
            }
            let mut out = [0u32];
            world.allreduce(&[1u32], &mut out, mpr::Op::Sum)?;
            Ok(ExitCode::SUCCESS)
        }
        // Rank 1 returns from main at once; rank 0 then needs it for OP, which must fail with
        // PeerFailed at once (exit 0 after saying so) rather than wait for ever.
        "ended" => {
            if rank == 1 {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(300));
            let start = Instant::now();
            let mut b = [0u8; 4];
            let r = match word(1) {
                "recv" => world.recv(&mut b, 1, 0).map(drop),
                "probe" => world.probe(1, 0).map(drop),
                "ssend" => world.ssend(&b, 1, 0),
                "barrier" => world.barrier(),
                "allreduce" => world.allreduce(&[1u32], &mut [0u32], mpr::Op::Sum),
                "bcast" => world.broadcast(&mut b, 1),
                other => panic!("unknown op {other}"),
            };
            match r {
                Err(e @ mpr::Error::PeerFailed { rank: 1, .. }) => {
                    let ms = start.elapsed().as_millis();
                    println!("rank 0: {}: PeerFailed after {ms} ms: {e}", word(1));
                    Ok(ExitCode::SUCCESS)
                }
                other => {
                    println!("rank 0: {}: not PeerFailed: {other:?}", word(1));
                    Ok(ExitCode::from(30))
                }
            }
        }
        // Rank 0 posts COUNT eager messages of BYTES bytes (tag 1, each numbered in its first
        // word) and then one of tag 2; rank 1 waits for the tag-2 message first, then takes the
        // others in order, checking every one, and reports its peak memory.
        "flood" => {
            let (count, bytes) = (num(1), num(2));
            let words = bytes / 8;
            if rank == 0 {
                let mut bufs = vec![0u64; count * words];
                for (i, m) in bufs.chunks_mut(words).enumerate() {
                    m[0] = i as u64;
                    m[words - 1] = !(i as u64);
                }
                mpr::scope(|s| -> mpr::Result<()> {
                    let mut reqs = Vec::with_capacity(count);
                    for m in bufs.chunks(words) {
                        reqs.push(world.isend(s, m, 1, 1)?);
                    }
                    world.send(&[u64::MAX], 1, 2)?;
                    mpr::wait_all(reqs)?;
                    Ok(())
                })?;
            } else if rank == 1 {
                let mut last = [0u64];
                world.recv(&mut last, 0, 2)?;
                let mut m = vec![0u64; words];
                for i in 0..count {
                    world.recv(&mut m, 0, 1)?;
                    if m[0] != i as u64 || m[words - 1] != !(i as u64) {
                        println!("message {i} out of order: got {}", m[0]);
                        return Ok(ExitCode::from(31));
                    }
                }
                println!(
                    "rank 1: {count} messages in order; peak memory {} KiB",
                    peak_kib()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        // Rank 0 sends a message of BYTES bytes; rank 1, allowed only 1 GiB more address
        // space than it has, takes it with recv_vec: an OutOfMemory error, not an abort, and the
        // message is still there (received into a small buffer: truncated).
        "huge" => {
            if rank == 0 {
                let big = vec![0u8; num(1)];
                match world.send(&big, 1, 5) {
                    Ok(()) => println!("rank 0: sent"),
                    Err(e) => println!("rank 0: send: {e}"),
                }
            } else if rank == 1 {
                use nix::sys::resource::{getrlimit, setrlimit, Resource};
                let vm_kib = status_kib("VmSize:");
                let (_, hard) = getrlimit(Resource::RLIMIT_AS).expect("getrlimit");
                let soft = (vm_kib << 10) + (1 << 30);
                setrlimit(Resource::RLIMIT_AS, soft, hard).expect("setrlimit");
                match world.recv_vec::<u8>(0, 5) {
                    Err(e @ mpr::Error::OutOfMemory { .. }) => println!("rank 1: {e}"),
                    other => {
                        println!("rank 1: not OutOfMemory: {:?}", other.map(|(v, _)| v.len()));
                        return Ok(ExitCode::from(32));
                    }
                }
                let mut small = [0u8; 16];
                match world.recv(&mut small, 0, 5) {
                    Err(mpr::Error::Truncated { message_bytes, .. }) => {
                        println!("rank 1: then truncated: {message_bytes} bytes")
                    }
                    other => println!("rank 1: then {other:?}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("unknown case {other:?}");
            Ok(ExitCode::from(3))
        }
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

/// A KiB figure of /proc/self/status.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
