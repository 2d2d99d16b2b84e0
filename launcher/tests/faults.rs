//! Faults that used to hang a job, blame the wrong rank or grow a rank without bound, each
//! through the real `mprun` with a hard time limit (`t_fault` is the rank program).

mod util;

use std::time::Duration;

use util::{rank_program, run, Outcome};

const LIMIT: Duration = Duration::from_secs(60);

fn fault_job(n: usize, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let prog = rank_program("t_fault");
    let n = n.to_string();
    let mut words = vec!["-n", &n, prog.to_str().unwrap()];
    words.extend_from_slice(args);
    run(&words, env, None, LIMIT)
}

/// mprun's own lines on stderr.
fn mprun_lines(out: &Outcome) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("mprun:"))
        .collect()
}

/// Rank 1 panics, or returns an error from main, after a barrier while ranks 0 and 2 wait in
/// an allreduce (through the node's shared segment by default, by message with
/// MPR_NODE_COLL=0). With RUST_BACKTRACE=1 the panicking rank is slow to end and its victims
/// end first; rank 1 is still the one named, every time, and the job ends within 2 s.
#[test]
fn a_rank_failing_during_a_collective_is_named_and_the_job_ends() {
    for (mode, code) in [("panic", 101), ("err", 1)] {
        for node in ["1", "0"] {
            let runs = if node == "1" { 20 } else { 5 };
            for _ in 0..runs {
                let env = [("RUST_BACKTRACE", "1"), ("MPR_NODE_COLL", node)];
                let out = fault_job(3, &["coll_fail", mode], &env);
                let says = format!("mprun: rank 1 on localhost exited with code {code}");
                assert_eq!(out.code, Some(code), "{mode}: stderr: {}", out.stderr);
                assert_eq!(mprun_lines(&out), [says.as_str()], "stderr: {}", out.stderr);
                if mode == "err" {
                    // As `fn main() -> mpr::Result<()>` prints it: the Display text.
                    let said = "Error: invalid argument to t_fault: rank 1 gives up";
                    assert!(out.stderr.contains(said), "stderr: {}", out.stderr);
                }
                out.took_less_than(Duration::from_secs(2));
            }
        }
    }
}

/// Rank 1 returns from main at once, never having talked to rank 0: every operation of rank 0
/// that needs it fails with PeerFailed at once instead of waiting for ever.
#[test]
fn operations_on_a_rank_that_has_ended_fail_at_once() {
    for op in ["recv", "probe", "ssend", "barrier", "allreduce", "bcast"] {
        let out = fault_job(2, &["ended", op], &[]);
        let stdout = out.ok();
        assert!(
            stdout.contains(&format!("rank 0: {op}: PeerFailed")),
            "stdout: {stdout}\nstderr: {}",
            out.stderr
        );
        out.took_less_than(Duration::from_secs(2));
    }
}

/// Rank 0 posts 20,000 eager-sized messages of 60 KiB that rank 1 does not ask for yet (it
/// waits for a later message first), over the local socket and over TCP. Rank 1 used to buffer
/// them all (1.2 GB); with flow control it holds at most its unexpected-message budget (64 MiB)
/// and still receives every message, in order.
#[test]
fn a_flood_of_unexpected_messages_is_bounded_and_kept_in_order() {
    for local in ["unix", "tcp"] {
        let out = fault_job(2, &["flood", "20000", "61440"], &[("MPR_LOCAL", local)]);
        let stdout = out.ok();
        let peak: u64 = stdout
            .split("peak memory ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("no peak in {stdout}"));
        assert!(stdout.contains("20000 messages in order"), "{stdout}");
        assert!(peak < 256 << 10, "{local}: rank 1 peaked at {peak} KiB");
    }
    // A smaller budget is honoured too, and 0 sends everything by rendezvous.
    for limit in ["1048576", "0"] {
        let out = fault_job(
            2,
            &["flood", "2000", "61440"],
            &[("MPR_UNEXPECTED_LIMIT", limit)],
        );
        let stdout = out.ok();
        assert!(stdout.contains("2000 messages in order"), "{stdout}");
    }
}

/// A message larger than the receiver may allocate: recv_vec returns OutOfMemory (it used to
/// abort the process), and the message is still there to be received otherwise.
#[test]
fn recv_vec_of_a_message_too_large_to_allocate_is_an_error() {
    let out = fault_job(2, &["huge", "4294967296"], &[]);
    let stdout = out.ok();
    assert!(
        stdout.contains("rank 1: recv_vec: cannot allocate 4294967296 bytes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rank 1: then truncated: 4294967296 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("rank 0: sent"), "{stdout}");
}

/// A rank that dies while the others compute outside mpr calls: mprun ends them 200 ms after
/// the death (they cannot notice it themselves), locally and with 8 ranks on 2 cores.
#[test]
fn the_peers_of_a_dead_rank_are_ended_promptly() {
    let prog = rank_program("t_job");
    for n in ["3", "8"] {
        let out = run(
            &["-n", n, prog.to_str().unwrap(), "die_busy", "1"],
            &[],
            None,
            LIMIT,
        );
        assert_eq!(out.code, Some(137), "stderr: {}", out.stderr);
        assert_eq!(
            mprun_lines(&out),
            ["mprun: rank 1 on localhost was killed by signal 9 (SIGKILL)"],
            "stderr: {}",
            out.stderr
        );
        out.took_less_than(Duration::from_secs(1));
    }
}
