//! Who may talk to a job: strangers that connect to a rank's ports (TCP and the local socket)
//! or to the rendezvous service, with garbage, with a forged hello, or with nothing at all, are
//! dropped without a word of the job's traffic, and the job completes untouched.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{listeners, mprun, open_fds, processes_matching, rank_of, rank_program, Limited};

/// What a stranger sends: garbage, a forged hello (valid header, no knowledge of the secret),
/// a forged rendezvous hello, or nothing.
fn payloads() -> Vec<Vec<u8>> {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut hello = vec![0x50, 0x4d, 1, 1]; // magic "MP", version 1, kind Hello
    hello.extend_from_slice(&[0; 8]); // flags, context
    hello.extend_from_slice(&1u32.to_le_bytes()); // "I am rank 1"
    hello.extend_from_slice(&[0; 8]); // tag, seq
    hello.extend_from_slice(&[0xff; 24]); // job id, a made-up proof
    hello.extend_from_slice(&[0x50, 0x4d, 1, 4, 0, 0, 0, 0]); // then an eager frame's start
    hello.extend_from_slice(&[0; 40]);
    let line = format!(
        "HELLO 1 0 {}\nREGISTER 127.0.0.1:1\nLOOKUP 0\n",
        "00".repeat(16)
    );
    vec![garbage, hello, line.into_bytes(), Vec::new()]
}

/// Sends `what`; returns how many bytes came back (a challenge of at most one header or line is
/// all a stranger may see) and whether the other side hung up.
fn probe(mut s: impl Read + Write, what: &[u8]) -> (usize, bool) {
    let _ = s.write_all(what);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got.len(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got.len(), false)
            }
            Err(_) => return (got.len(), true),
        }
    }
}

#[test]
fn strangers_at_every_port_are_dropped_and_the_job_completes_untouched() {
    let tok = format!("tok-stranger-{}", std::process::id());
    let prog = rank_program("t_job");
    let mut job = Limited::spawn(
        Command::new(mprun())
            .args(["-n", "4", prog.to_str().unwrap(), "stranger", "60000", &tok])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(90),
    );
    let mut out = job.child.stdout.take().unwrap();
    // Wait for "ready": every rank is connected to every other.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("ready") {
        assert!(
            Instant::now() < deadline,
            "no ready line: {}",
            String::from_utf8_lossy(&seen)
        );
        let mut b = [0u8; 256];
        match out.read(&mut b) {
            Ok(0) | Err(_) => panic!("mprun ended early: {}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
    }
    let mut pids: Vec<u32> = processes_matching(&tok)
        .iter()
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    pids.push(job.child.id());
    pids.sort_unstable();
    pids.dedup();
    let (mut tcp, mut unix) = (0, 0);
    for pid in pids {
        let (ports, names) = listeners(pid);
        let rank = pid != job.child.id();
        for port in ports {
            for p in payloads() {
                let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let (got, closed) = probe(s, &p);
                assert!(got <= 48, "port {port} sent a stranger {got} bytes");
                // A rank drops a stranger at its first wrong header; the rendezvous service
                // waits for a whole line (a binary stranger may just be left waiting).
                if rank && !p.is_empty() {
                    assert!(
                        closed,
                        "rank port {port} kept a stranger that sent {} bytes",
                        p.len()
                    );
                }
                tcp += 1;
            }
        }
        for name in names {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            for p in payloads() {
                let s = UnixStream::connect_addr(&addr).expect("connect local");
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let (got, closed) = probe(s, &p);
                assert!(got <= 48, "local socket {name} sent a stranger {got} bytes");
                assert!(
                    closed || p.is_empty(),
                    "local socket {name} kept a stranger"
                );
                unix += 1;
            }
        }
    }
    // Probing done: the ranks may finish (they wait for this file, so that none ends while a
    // stranger is still to come).
    let stop = std::env::temp_dir().join(&tok);
    std::fs::write(&stop, b"").expect("write the stop file");
    // 4 ranks with a TCP and a local listener each, and the rendezvous service.
    assert!(
        tcp >= 5 * 4 && unix >= 4 * 4,
        "probed only {tcp} TCP and {unix} local connections"
    );
    job.succeeds(&mut out, 4, "untouched");
    let _ = std::fs::remove_file(&stop);
}

/// 1100 strangers that connect and send nothing, at each of a rank's ports (TCP and local) and
/// at the rendezvous service, under `ulimit -n 1024` (soft and hard): they used to take the rank
/// to its descriptor limit, so that its own next connect failed, a live peer was reported
/// failed and the job hung. Now a rank drops connections that do not prove themselves (the
/// oldest first, past 64, and any after 5 s), and the job, whose ranks first talk while the
/// strangers are there, finishes correctly.
#[test]
fn idle_strangers_by_the_thousand_do_not_starve_a_rank() {
    crowd(1024, 20_000);
}

/// Under `ulimit -n 64` the strangers exhaust the descriptors of the rank (and of mprun) before
/// the cap of unproven connections is reached: accept fails with EMFILE, and the rank (the
/// service) makes room by dropping the oldest stranger instead of never accepting again.
#[test]
fn a_rank_out_of_descriptors_keeps_accepting_its_peers() {
    crowd(64, 8_000);
}

/// Strangers crowd rank 1 and mprun under `ulimit -n LIMIT` during a job of `ms` whose ranks
/// first talk while the strangers are there.
fn crowd(limit: u32, ms: u32) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let strangers = if hard >= 4000 {
        1100
    } else {
        (hard as usize - 200) / 3
    };
    let tok = format!("tok-crowd-{}", std::process::id());
    let prog = rank_program("t_job");
    let script = format!(
        "ulimit -n {limit} && exec {} -n 4 {} crowd {ms} {tok}",
        mprun().display(),
        prog.display()
    );
    let mut job = Limited::spawn(
        Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(90),
    );
    let mut out = job.child.stdout.take().unwrap();
    Limited::read_until(&mut out, "ready");
    let ranks: Vec<u32> = processes_matching(&tok)
        .iter()
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .filter(|&p| p != job.child.id())
        .collect();
    let victim = *ranks
        .iter()
        .find(|&&p| rank_of(p) == Some(1))
        .expect("rank 1 runs");
    // Its listeners exist once it has joined; mprun's rendezvous port is mprun's only one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (ports, names) = loop {
        let l = listeners(victim);
        if !l.0.is_empty() && !l.1.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline, "rank 1 never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (service, _) = listeners(job.child.id());
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut max_fds = 0;
    for i in 0..strangers {
        for port in ports.iter().chain(&service) {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                held.push(Box::new(s));
            }
        }
        for name in &names {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            if let Ok(s) = UnixStream::connect_addr(&addr) {
                held.push(Box::new(s));
            }
        }
        if i % 100 == 0 {
            max_fds = max_fds.max(open_fds(victim));
        }
    }
    assert!(
        held.len() >= strangers * 2,
        "only {} strangers got in",
        held.len()
    );
    job.succeeds(&mut out, 4, "done");
    assert!(max_fds < 512, "rank 1 held {max_fds} descriptors");
    drop(held);
}
