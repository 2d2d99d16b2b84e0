//! The mpi-rs peer of `mpr-bench`: the measurements of `benches/peers/osu.c` and `coll.c`
//! (same iteration counts, windows and output lines) written against mpi-rs, so the comparison
//! scripts can run it beside mpr and Open MPI in one run.
//!
//!   mpiexec -n 2 mpirs-peer latency|bw MIN MAX
//!   mpiexec -n 2K mpirs-peer multi_lat MIN MAX     (K pairs: rank r with r + K)
//!   mpiexec -n N mpirs-peer coll allreduce|bcast|barrier BYTES [ITERS]

use mpi::collective::SystemOperation;
use mpi::traits::*;

const LARGE: usize = 8192;
const WINDOW_BYTES: usize = 256 << 20;

fn window_for(size: usize) -> usize {
    (WINDOW_BYTES / size.max(1)).clamp(1, 64)
}

fn main() {
    let universe = mpi::initialize().expect("mpi-rs initialize");
    let world = universe.world();
    let rank = world.rank() as usize;
    let n = world.size() as usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> usize { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0) };
    match args.first().map(String::as_str) {
        Some("coll") => coll(&world, rank, &args[1], arg(2), args.get(3).and_then(|a| a.parse().ok())),
        Some(b @ ("latency" | "bw" | "multi_lat")) => p2p(&world, rank, n, b, arg(1), arg(2)),
        _ => {
            if rank == 0 {
                eprintln!("usage: mpirs-peer latency|bw|multi_lat MIN MAX | coll OP BYTES [ITERS]");
            }
            std::process::exit(2);
        }
    }
}

fn p2p(world: &mpi::topology::SimpleCommunicator, rank: usize, n: usize, bench: &str, min: usize, max: usize) {
    let lat = bench != "bw";
    let half = n / 2;
    let peer = if rank < half { rank + half } else { rank - half };
    let pinger = rank < half;
    let other = world.process_at_rank(peer as i32);
    if rank == 0 {
        println!("# mpirs-peer {bench}, {n} ranks");
    }
    let mut size = if min == 0 { 0 } else { min.next_power_of_two() };
    while size <= max {
        let (iters, warmup) = match (lat, size > LARGE) {
            (true, true) => (1000, 10),
            (true, false) => (10000, 100),
            (false, true) => (20, 2),
            (false, false) => (100, 10),
        };
        let window = window_for(size);
        let sbuf = vec![b'a'; size];
        let mut rbuf = vec![0u8; size * window];
        world.barrier();
        let mut t0 = 0.0;
        for i in 0..warmup + iters {
            if i == warmup {
                t0 = mpi::time();
            }
            if lat {
                if pinger {
                    other.send(&sbuf[..]);
                    other.receive_into(&mut rbuf[..size]);
                } else {
                    other.receive_into(&mut rbuf[..size]);
                    other.send(&sbuf[..]);
                }
            } else {
                mpi::request::scope(|scope| {
                    let mut reqs = Vec::new();
                    if rank == 1 {
                        for chunk in rbuf.chunks_mut(size.max(1)).take(window) {
                            reqs.push(other.immediate_receive_into(scope, chunk));
                        }
                        mpi::request::wait_all(reqs);
                    } else {
                        let sends: Vec<_> = (0..window).map(|_| other.immediate_send(scope, &sbuf[..])).collect();
                        mpi::request::wait_all(sends);
                    }
                });
                let mut ack = [0u8; 4];
                if rank == 0 {
                    other.receive_into(&mut ack[..]);
                } else {
                    other.send(&ack[..]);
                }
            }
        }
        let dt = mpi::time() - t0;
        let mine = if pinger { dt * 1e6 / (2.0 * iters as f64) } else { 0.0 };
        let mut sum = 0.0f64;
        let root = world.process_at_rank(0);
        if rank == 0 {
            root.reduce_into_root(&mine, &mut sum, SystemOperation::sum());
            if lat {
                println!("{:<12} {:>14.2}", size, sum / half as f64);
            } else {
                println!("{:<12} {:>18.2}", size, (size * window * iters) as f64 / dt / 1e6);
            }
        } else {
            root.reduce_into(&mine, SystemOperation::sum());
        }
        size = if size == 0 { 1 } else { size * 2 };
    }
}

fn coll(world: &mpi::topology::SimpleCommunicator, rank: usize, op: &str, bytes: usize, iters: Option<usize>) {
    let iters = iters.unwrap_or(if bytes > LARGE { 100 } else { 1000 });
    let warmup = if bytes > LARGE { 10 } else { 200 };
    let floats = bytes / 4;
    let a = vec![0f32; floats];
    let mut b = vec![0f32; floats];
    let mut bytes_buf = vec![0u8; bytes];
    let root = world.process_at_rank(0);
    let mut t0 = 0.0;
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = mpi::time();
        }
        match op {
            "barrier" => world.barrier(),
            "allreduce" => world.all_reduce_into(&a[..], &mut b[..], SystemOperation::sum()),
            "bcast" => root.broadcast_into(&mut bytes_buf[..]),
            _ => {
                if rank == 0 {
                    eprintln!("mpirs-peer: unknown collective {op}");
                }
                std::process::exit(2);
            }
        }
    }
    let mine = (mpi::time() - t0) / iters as f64 * 1e6;
    let mut worst = 0.0f64;
    if rank == 0 {
        root.reduce_into_root(&mine, &mut worst, SystemOperation::max());
        println!("{:<12} {:>14.2}", bytes, worst);
    } else {
        root.reduce_into(&mine, SystemOperation::max());
    }
}
