//! Rank program for the job-behaviour tests: `t_job CASE [ARGS]`.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().cloned().unwrap_or_default();
    let arg = |i: usize| args.get(i).and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
    let world = match mpr::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("init: {e}");
            return ExitCode::from(10);
        }
    };
    let (rank, size) = (world.rank(), world.size());
    match case.as_str() {
        // Rank ARG1 exits with code ARG2 at once; the others wait for a message from it.
        "exit" => {
            if rank as i64 == arg(1) {
                std::process::exit(arg(2) as i32);
            }
            wait_for(&world, arg(1) as usize)
        }
        // After a barrier, rank ARG1 kills itself with SIGKILL while the others compute outside
        // mpr calls for ever: only mprun can end them.
        "die_busy" => {
            let _ = world.barrier();
            if rank as i64 == arg(1) {
                let _ = kill_self();
            }
            loop {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Rank ARG1 kills itself with SIGKILL.
        "kill" => {
            if rank as i64 == arg(1) {
                let _ = kill_self();
                std::thread::sleep(Duration::from_secs(5));
            }
            let _ = world.barrier();
            ExitCode::SUCCESS
        }
        // Rank ARG1 calls abort(ARG2).
        "abort" => {
            if rank as i64 == arg(1) {
                world.abort(arg(2) as i32);
            }
            let _ = world.barrier();
            ExitCode::SUCCESS
        }
        // Every rank prints ARG1 long lines.
        "lines" => {
            let line: String = format!("{rank}:").repeat(200);
            let mut out = std::io::stdout().lock();
            for i in 0..arg(1) {
                let _ = writeln!(out, "{line}#{i}");
            }
            eprintln!("stderr line from rank {rank}");
            ExitCode::SUCCESS
        }
        // Rank 0 reads stdin and reports lines and bytes; others check theirs is empty.
        "stdin" => {
            let (mut lines, mut bytes) = (0, 0);
            for l in std::io::stdin().lock().lines().map_while(Result::ok) {
                lines += 1;
                bytes += l.len();
            }
            println!("rank {rank} read {lines} lines {bytes} bytes");
            ExitCode::SUCCESS
        }
        // Rank 0 leaves its stdin unread for 2 s, then reports the peak memory of its parent
        // (mprun, or the helper on its host) and reads one line. Backpressure keeps that peak
        // small whatever floods mprun's stdin.
        "stdin_idle" => {
            if rank == 0 {
                std::thread::sleep(std::time::Duration::from_secs(2));
                let ppid = std::os::unix::process::parent_id();
                let peak = std::fs::read_to_string(format!("/proc/{ppid}/status"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
                    .unwrap_or_default();
                let mut first = String::new();
                let _ = std::io::stdin().lock().read_line(&mut first);
                println!(
                    "rank 0 parent peak {peak}; first line {:?}",
                    first.trim_end()
                );
            }
            ExitCode::SUCCESS
        }
        // A job of about ARG1 ms during which strangers crowd a rank: rank 0 says ready at
        // once, every rank stays in the library for 3 s (the strangers connect meanwhile), then
        // the pairs of ranks talk, most for the first time, and go on every 250 ms to the end.
        "crowd" => {
            if rank == 0 {
                println!("ready");
                let _ = std::io::stdout().flush();
            }
            if !idle_in_library(&world, Duration::from_secs(3)) {
                return ExitCode::from(23);
            }
            let rounds = (arg(1) / 250).max(1);
            for _ in 0..rounds {
                if !matches!(all_pairs(&world), Ok(true)) {
                    return ExitCode::from(21);
                }
                if !idle_in_library(&world, Duration::from_millis(250)) {
                    return ExitCode::from(23);
                }
            }
            println!("rank {rank} done after {rounds} rounds");
            ExitCode::SUCCESS
        }
        // Prints the launch environment.
        "env" => {
            let get = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
            println!(
                "rank={} size={} MPR_RANK={} MPR_SIZE={} MPR_LOCAL_RANK={} MPR_LOCAL_SIZE={} FOO={}",
                rank,
                size,
                get("MPR_RANK"),
                get("MPR_SIZE"),
                get("MPR_LOCAL_RANK"),
                get("MPR_LOCAL_SIZE"),
                get("FOO")
            );
            println!("rank={rank} machine_ranks={}", get("MPR_MACHINE_RANKS"));
            ExitCode::SUCCESS
        }
        // Every rank connects to every other (so all listeners are in use), says ready, polls
        // while a test throws strangers at its ports, until the test creates the file named by
        // ARG2 in the temporary directory (at most ARG1 ms: a job that outlived the probing
        // would refuse the test's next connection), then checks that traffic is untouched: a
        // message with every other rank and a sum.
        "stranger" => {
            let check = || all_pairs(&world);
            if !matches!(check(), Ok(true)) {
                return ExitCode::from(21);
            }
            if rank == 0 {
                println!("ready");
                let _ = std::io::stdout().flush();
            }
            // Stay in the library meanwhile (progress happens inside calls).
            let stop = std::env::temp_dir().join(args.get(2).map_or("-", String::as_str));
            let until = std::time::Instant::now() + Duration::from_millis(arg(1) as u64);
            while !stop.exists() && std::time::Instant::now() < until {
                if !idle_in_library(&world, Duration::from_millis(50)) {
                    return ExitCode::from(23);
                }
            }
            let _ = world.barrier();
            let mut sum = [0u64];
            let ok = matches!(check(), Ok(true))
                && world
                    .allreduce(&[rank as u64], &mut sum, mpr::Op::Sum)
                    .is_ok()
                && sum[0] == (size * (size - 1) / 2) as u64;
            if !ok {
                return ExitCode::from(22);
            }
            println!("rank {rank} untouched");
            ExitCode::SUCCESS
        }
        // Rank ARG1 panics midway; the others wait for a message from it.
        "panic" => {
            if rank as i64 == arg(1) {
                let v: Vec<u8> = Vec::new();
                let i = args.len() + 7; // out of bounds: a real panic, not an exit call
                println!("{}", v[i]);
            }
            wait_for(&world, arg(1) as usize)
        }
        // Ranks 0 and 1 each wait in a blocking receive from the other (tag 5): a deadlock;
        // any others wait in a barrier.
        "deadlock" => {
            let mut b = [0u8];
            if rank < 2 {
                let _ = world.recv(&mut b, 1 - rank, 5);
            } else {
                let _ = world.barrier();
            }
            ExitCode::SUCCESS
        }
        // The deadlock above on a communicator named "rows": the report names it.
        "named" => {
            let Ok(rows) = world.dup() else {
                return ExitCode::from(24);
            };
            rows.set_name("rows");
            let mut b = [0u8];
            if rank < 2 {
                let _ = rows.recv(&mut b, 1 - rank, 6);
            } else {
                let _ = rows.barrier();
            }
            ExitCode::SUCCESS
        }
        // Waits the --timeout report used to call "nothing": rank 0 computes outside mpr calls
        // for ever; rank 1 has sent it a message and waits in finalize for its goodbye; the
        // others wait in an all-to-all of 1 MiB blocks that rank 0 never joins.
        "stuck" => {
            if world.barrier().is_err() {
                return ExitCode::from(24);
            }
            match rank {
                0 => loop {
                    std::thread::sleep(Duration::from_secs(1));
                },
                1 => {
                    let _ = world.send(&[1u8], 0, 9);
                }
                _ => {
                    let block = 1 << 20;
                    let send = vec![1u8; block * size];
                    let mut recv = vec![0u8; block * size];
                    let _ = world.alltoall(&send, &mut recv);
                }
            }
            ExitCode::SUCCESS
        }
        // Blocks forever in a receive nobody sends (for --timeout and signal tests).
        "hang" => {
            println!("rank {rank} waiting");
            let _ = std::io::stdout().flush();
            let mut b = [0u8];
            let _ = world.recv(&mut b, (rank + 1) % size, 0);
            ExitCode::SUCCESS
        }
        // Known calls for `mprun --profile`: 10 barriers and 5 allreduces of 4 u64 on every
        // rank; rank 0 sends rank 1 three messages of 100 bytes; rank 2 sends rank 3 one of
        // 8 bytes by isend (waited for) and rank 3 takes it by irecv (waited for).
        "profile" => {
            let run = || -> mpr::Result<()> {
                for _ in 0..10 {
                    world.barrier()?;
                }
                let mut sum = [0u64; 4];
                for _ in 0..5 {
                    world.allreduce(&[1u64; 4], &mut sum, mpr::Op::Sum)?;
                }
                match rank {
                    0 => (0..3).try_for_each(|_| world.send(&[7u8; 100], 1, 0))?,
                    1 => (0..3).try_for_each(|_| world.recv(&mut [0u8; 100], 0, 0).map(|_| ()))?,
                    2 => mpr::scope(|s| world.isend(s, &[9u64], 3, 1)?.wait().map(|_| ()))?,
                    3 => {
                        let mut b = [0u64];
                        mpr::scope(|s| world.irecv(s, &mut b, 2, 1)?.wait().map(|_| ()))?
                    }
                    _ => {}
                }
                world.finalize()
            };
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rank {rank}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        // 20 round trips between ranks 0 and 1, rank 1 holding each message a millisecond
        // before it answers (for `--trace`: the arrows go both ways).
        "pingpong" => {
            let run = || -> mpr::Result<()> {
                let mut b = [0u8; 8];
                for i in 0..20u8 {
                    if rank == 0 {
                        world.send(&[i; 8], 1, 0)?;
                        world.recv(&mut b, 1, 0)?;
                    } else if rank == 1 {
                        world.recv(&mut b, 0, 0)?;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        world.send(&b, 0, 0)?;
                    }
                }
                world.finalize()
            };
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rank {rank}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        other => {
            eprintln!("unknown case {other:?}");
            ExitCode::from(3)
        }
    }
}

/// Waits for a message from `from`; exit status 20 (after saying why) if that fails.
fn wait_for(world: &mpr::World, from: usize) -> ExitCode {
    let mut b = [0u8];
    match world.recv(&mut b, from, 0) {
        Err(e) => {
            eprintln!("rank {}: {e}", world.rank());
            ExitCode::from(20)
        }
        Ok(_) => ExitCode::SUCCESS,
    }
}

/// Every rank gathers every rank's number and exchanges one with each other rank: true when all
/// came back right.
fn all_pairs(world: &mpr::Comm) -> mpr::Result<bool> {
    let (rank, size) = (world.rank(), world.size());
    let mut all = vec![0u64; size];
    world.allgather(&[rank as u64], &mut all)?;
    for p in 0..size {
        if p != rank {
            let mut back = [0u64];
            world.sendrecv(&[rank as u64], p, 1, &mut back, p, 1)?;
            if back[0] != p as u64 {
                return Ok(false);
            }
        }
    }
    Ok(all == (0..size as u64).collect::<Vec<_>>())
}

/// Stays in the library for `d` (progress happens inside calls), probing for a message nobody
/// sends; false if one came.
fn idle_in_library(world: &mpr::Comm, d: Duration) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if !matches!(world.iprobe(mpr::ANY_SOURCE, 77), Ok(None)) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// SIGKILL to this process, through kill(1) (the rank programs use no libc of their own).
fn kill_self() -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status()
}
