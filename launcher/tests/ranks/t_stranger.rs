//! A stranger for the network tests (`tests/network.rs`), not a rank: `t_stranger ADDR:PORT N
//! SECONDS` opens N TCP connections to ADDR:PORT, sends nothing on them, holds them for SECONDS
//! and says how many it opened (and how many the other side had closed by then).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(n), Some(secs)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: t_stranger ADDR:PORT N SECONDS");
        std::process::exit(2);
    };
    let until = Instant::now() + Duration::from_secs(secs);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            held.push(s);
        }
    }
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let closed = held
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let mut s: &TcpStream = s;
            let mut b = [0u8; 64];
            loop {
                match s.read(&mut b) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
                }
            }
        })
        .count();
    println!(
        "stranger: held {} connections, {closed} closed by the other side",
        held.len()
    );
}
