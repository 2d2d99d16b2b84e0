//! Passes a token around the ring of ranks: rank 0 starts it, each rank adds its rank number and
//! passes it on, and rank 0 checks the sum when it comes back.
//!
//! `mprun -n 4 target/release/ring [LAPS]`

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ring: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> mpr::Result<ExitCode> {
    let world = mpr::init()?;
    let (rank, size) = (world.rank(), world.size());
    let laps: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("ring: LAPS must be a positive whole number");
            return Ok(ExitCode::from(2));
        }
    };
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    let mut token = [0u64];
    let t0 = mpr::wtime();
    for lap in 0..laps {
        if rank == 0 {
            token[0] = 0;
            world.send(&token, next, 0)?;
            world.recv(&mut token, prev, 0)?;
            let expect = (size * (size - 1) / 2) as u64;
            if token[0] != expect {
                eprintln!(
                    "ring: lap {lap}: token came back as {}, expected {expect}",
                    token[0]
                );
                return Ok(ExitCode::FAILURE);
            }
        } else {
            world.recv(&mut token, prev, 0)?;
            token[0] += rank as u64;
            world.send(&token, next, 0)?;
        }
    }
    if rank == 0 {
        let dt = mpr::wtime() - t0;
        println!(
            "ring of {size} ranks: token {} after {laps} lap(s), {:.1} us per hop",
            token[0],
            dt * 1e6 / (laps as f64 * size as f64)
        );
    }
    Ok(ExitCode::SUCCESS)
}
