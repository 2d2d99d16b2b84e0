//! Shared memory between ranks of one host (`transport/shm`), through the real mprun: streams of
//! random sizes both ways across ring wrap-around, CPU used by a rank blocked on a ring, a rank
//! killed with data in flight, and who may map a ring.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use util::{mprun, rank_case, rank_program, run, Limited};

#[test]
fn random_sizes_both_ways_on_4_and_16_ranks_every_byte_checked() {
    rank_case("t_shm", 4, "stress", &["1", "60"], &[]);
    // Every message through the rings, the large ones streaming through them in pieces.
    rank_case("t_shm", 4, "stress", &["2", "40"], &[("MPR_PULL", "0")]);
    // 16 ranks on 2 cores: oversubscribed, rings of a smaller size.
    rank_case("t_shm", 16, "stress", &["3", "20"], &[]);
}

#[test]
fn receives_straight_from_a_ring_keep_the_matching_rules() {
    rank_case("t_shm", 2, "direct", &["300"], &[]);
    rank_case("t_shm", 3, "direct", &["100"], &[("MPR_LOCAL", "unix")]);
}

#[test]
fn a_rank_in_a_node_barrier_keeps_its_other_operations_moving() {
    rank_case("t_shm", 2, "barrier_moves", &[], &[("MPR_PULL", "0")]);
    rank_case("t_shm", 4, "barrier_moves", &[], &[("MPR_PULL", "0")]);
}

#[test]
fn a_rank_blocked_on_a_ring_uses_almost_no_cpu_alone_or_oversubscribed() {
    rank_case("t_shm", 2, "idle", &[], &[]);
    rank_case("t_shm", 8, "idle", &[], &[]);
}

fn shm_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_rank_killed_mid_stream_fails_its_peer_at_once_and_leaves_nothing() {
    let before = shm_files();
    let prog = rank_program("t_shm");
    let out = run(
        &["-n", "2", prog.to_str().unwrap(), "kill"],
        &[],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(137), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("ok kill"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("rank 1"),
        "the killed rank is named: {}",
        out.stderr
    );
    assert_eq!(shm_files(), before, "files left in /dev/shm");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// What `uid` can open of process `pid`'s descriptors and mappings (lines `OPENED path`).
fn opened_as(uid: u32, pid: u32) -> String {
    use std::os::unix::process::CommandExt;
    let script = format!(
        "for f in /proc/{pid}/fd/* /proc/{pid}/map_files/*; do \
         if timeout 2 head -c 1 \"$f\" >/dev/null 2>&1 </dev/null; then echo \"OPENED $f\"; fi; \
         done; echo checked"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_process_of_another_user_cannot_map_a_ring() {
    if !is_root() {
        eprintln!("skipped: needs root (to run a process as another user)");
        return;
    }
    let prog = rank_program("t_shm");
    let mut cmd = Command::new(mprun());
    cmd.args(["-n", "3", prog.to_str().unwrap(), "hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut job = Limited::spawn(&mut cmd, Duration::from_secs(60));
    let mut lines = BufReader::new(job.child.stdout.take().unwrap());
    let mut pids = Vec::new();
    while pids.len() < 3 {
        let mut l = String::new();
        assert!(lines.read_line(&mut l).unwrap() > 0, "job ended early");
        if let Some(p) = l.trim().strip_prefix("hold ") {
            pids.push(p.parse::<u32>().unwrap());
        }
    }
    for &pid in &pids {
        // The rings are there: mapped, named, from memfds.
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let rings = maps
            .lines()
            .filter(|l| l.contains("/memfd:mpr-ring"))
            .count();
        assert!(rings >= 2, "rank {pid} maps {rings} rings:\n{maps}");
        // Its own user can (so the check below would see a ring that another user could).
        assert!(
            opened_as(0, pid).contains("OPENED"),
            "the check opens nothing at all"
        );
        // Nobody (uid 65534) opens none of its descriptors or mappings.
        let seen = opened_as(65534, pid);
        assert!(seen.contains("checked"), "{seen}");
        assert!(!seen.contains("OPENED"), "another user opened: {seen}");
    }
    job.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
    assert!(job.wait().success(), "{rest}");
    assert!(rest.contains("ok hold"), "{rest}");
}
