//! Ping-pong between ranks 0 and 1 for a range of sizes; prints one-way latency and bandwidth.
//! (`mpr-bench latency` is the full benchmark; this is the short example.)
//!
//! `mprun -n 2 target/release/pingpong`

fn main() -> mpr::Result<()> {
    let world = mpr::init()?;
    if world.size() < 2 {
        eprintln!("pingpong needs at least 2 ranks");
        std::process::exit(2);
    }
    let rank = world.rank();
    if rank > 1 {
        return Ok(());
    }
    let peer = 1 - rank;
    if rank == 0 {
        println!("{:>10} {:>12} {:>12}", "bytes", "one-way us", "MB/s");
    }
    let mut size = 1usize;
    while size <= 4 << 20 {
        let mut buf = vec![rank as u8; size];
        let iters = if size < 65536 { 1000 } else { 50 };
        world.barrier()?;
        let t0 = mpr::wtime();
        for _ in 0..iters {
            if rank == 0 {
                world.send(&buf, peer, 1)?;
                world.recv(&mut buf, peer, 1)?;
            } else {
                world.recv(&mut buf, peer, 1)?;
                world.send(&buf, peer, 1)?;
            }
        }
        let one_way = (mpr::wtime() - t0) / (2.0 * iters as f64);
        if rank == 0 {
            println!(
                "{size:>10} {:>12.2} {:>12.1}",
                one_way * 1e6,
                size as f64 / one_way / 1e6
            );
        }
        size *= 4;
    }
    Ok(())
}
