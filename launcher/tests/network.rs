//! Hostile networks, for real, across four testnet hosts (network namespaces; see
//! `util/testnet.rs`): packet loss, which used to hang handshakes (a TCP connection established
//! on one side only, a challenge or hello slower than the other side's patience), and strangers
//! that hold idle connections to a rank's TCP port from another host.
//!
//! Needs root and iproute2; without them the test says so and passes without running.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::testnet::{fresh, tn};
use util::{listeners, mprun, processes_matching, rank_of, rank_program, run_cmd, Limited};

const HOSTS: &str = "/tmp/mpr-test-network-hosts";
/// The hard limit of one job: under 25 % loss a small job takes 10 to 30 s (TCP's
/// retransmission timers back off), so this is generous; mprun's own `--timeout` is below it.
const LIMIT: Duration = Duration::from_secs(300);

/// mprun on h1 over the four hosts: `n` ranks of `t_job ARGS`, reached with `testnet exec`.
fn job_words(t: &std::path::Path, n: usize, args: &[&str]) -> Vec<String> {
    let mut w: Vec<String> = ["run", "h1"].map(String::from).to_vec();
    w.push(mprun().display().to_string());
    let n = n.to_string();
    for a in [
        "--hostfile",
        HOSTS,
        "-n",
        &n,
        "--timeout",
        "240",
        "--launch-agent",
    ] {
        w.push(a.into());
    }
    w.push(format!("{} exec", t.display()));
    w.push(rank_program("t_job").display().to_string());
    w.extend(args.iter().map(|a| a.to_string()));
    w
}

/// Four hosts of one slot each, losing `loss` of what each sends.
fn lossy(t: &std::path::Path, loss: &str) {
    tn(t, &["down"]);
    tn(
        t,
        &[
            "up",
            "4",
            "--slots",
            "1",
            "--hostfile",
            HOSTS,
            "--loss",
            loss,
        ],
    );
}

#[test]
fn lossy_links_slow_jobs_down_and_strangers_from_other_hosts_are_dropped() {
    let Some((t, _net)) = fresh() else {
        return;
    };
    let tok = format!("tok-net-{}", std::process::id());

    // 1100 idle strangers on h2 at the TCP port of rank 5 (on h3), and 1100 at the rendezvous
    // service (on h1), during a 20 s job whose ranks first talk while the strangers are there.
    tn(&t, &["up", "4", "--slots", "2", "--hostfile", HOSTS]);
    let words = job_words(&t, 8, &["crowd", "20000", &tok]);
    let mut job = Limited::spawn(
        Command::new(&t)
            .args(&words)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        LIMIT,
    );
    let mut out = job.child.stdout.take().unwrap();
    Limited::read_until(&mut out, "ready");
    let pids = || -> Vec<u32> {
        processes_matching(&tok)
            .iter()
            .filter_map(|l| l.split(':').next()?.parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (rank5_port, service_port) = loop {
        let rank5 = pids().into_iter().find(|&p| rank_of(p) == Some(5));
        let rank5_port = rank5.and_then(|p| listeners(p).0.first().copied());
        // mprun is the one process with this job's hostfile and token that listens.
        let service = processes_matching("--hostfile")
            .iter()
            .filter(|l| l.contains(&tok))
            .filter_map(|l| l.split(':').next()?.parse::<u32>().ok())
            .find_map(|p| listeners(p).0.first().copied());
        if let (Some(r), Some(s)) = (rank5_port, service) {
            break (r, s);
        }
        assert!(
            Instant::now() < deadline,
            "no listeners found: {:?}",
            pids()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stranger = rank_program("t_stranger").display().to_string();
    let strangers: Vec<_> = [
        format!("10.99.0.3:{rank5_port}"),
        format!("10.99.0.1:{service_port}"),
    ]
    .into_iter()
    .map(|target| {
        let (t, s) = (t.clone(), stranger.clone());
        std::thread::spawn(move || {
            run_cmd(
                t,
                &["run", "h2", &s, &target, "1100", "15"],
                &[],
                None,
                LIMIT,
            )
        })
    })
    .collect();
    job.succeeds(&mut out, 8, "done");
    for s in strangers {
        let outcome = s.join().unwrap();
        let said = outcome.ok();
        let held: usize = said
            .split("held ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(
            held >= 1000,
            "the stranger got only {held} connections: {said}"
        );
        assert!(
            said.contains(&format!("{held} closed by the other side")),
            "strangers kept: {said}"
        );
    }

    // 5 % loss on every host's link: 50 small jobs of a rank per host (every pair of ranks
    // connects, then collectives), all finished.
    lossy(&t, "5%");
    for i in 0..50 {
        let words = job_words(&t, 4, &["stranger", "0", &tok]);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = run_cmd(t.clone(), &words, &[], None, LIMIT);
        let stdout = out.ok();
        for r in 0..4 {
            assert!(
                stdout.contains(&format!("rank {r} untouched")),
                "job {i}: {stdout}\n{}",
                out.stderr
            );
        }
    }

    // 25 % loss: 10 jobs, none hung (each finished, or ended with mprun's one-line error
    // rather than the time limit).
    lossy(&t, "25%");
    let mut finished = 0;
    for i in 0..10 {
        let words = job_words(&t, 4, &["stranger", "0", &tok]);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = run_cmd(t.clone(), &words, &[], None, LIMIT);
        assert_ne!(out.code, Some(124), "job {i} hung: {}", out.stderr);
        if out.code == Some(0) {
            finished += 1;
        } else {
            let last = out.stderr.lines().last().unwrap_or("");
            assert!(last.starts_with("mprun: "), "job {i}: {}", out.stderr);
        }
    }
    eprintln!("25 % loss: {finished} of 10 jobs finished");
}
