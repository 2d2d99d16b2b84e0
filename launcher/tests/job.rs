//! Job behaviour through the real `mprun`: exit statuses, stdio relay, environment, time limits,
//! signals, and that nothing of a job is left running afterwards.

mod util;

use std::time::Duration;

use util::{processes_matching, rank_program, run, Outcome};

const LIMIT: Duration = Duration::from_secs(60);

/// A token unique to one test, passed as an extra argument to the ranks so the leftover check
/// finds only this test's processes.
fn token(name: &str) -> String {
    format!("tok-{name}-{}", std::process::id())
}

fn job(
    n: usize,
    case: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> (Outcome, String) {
    job_with(&[], n, case, extra, env, stdin)
}

/// `mprun OPTS -n N t_job CASE EXTRA... TOKEN`.
fn job_with(
    opts: &[&str],
    n: usize,
    case: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> (Outcome, String) {
    let prog = rank_program("t_job");
    let tok = token(case);
    let n = n.to_string();
    let mut args = opts.to_vec();
    args.extend_from_slice(&["-n", &n, prog.to_str().unwrap(), case]);
    args.extend_from_slice(extra);
    args.push(&tok);
    (run(&args, env, stdin, LIMIT), tok)
}

fn assert_nothing_left(tok: &str) {
    // The ranks are gone once mprun returns; allow the kernel a moment to reap.
    for _ in 0..100 {
        if processes_matching(tok).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("processes left running: {:?}", processes_matching(tok));
}

/// The job ended with `code` within `within`, and mprun's own lines on stderr are exactly `says`
/// (the one line naming the rank and how it ended); nothing of it is left running.
fn assert_ended(out: &Outcome, tok: &str, code: i32, says: &str, within: Duration) {
    assert_eq!(out.code, Some(code), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mprun:"))
        .collect();
    assert_eq!(lines, [says], "stderr: {}", out.stderr);
    out.took_less_than(within);
    assert_nothing_left(tok);
}

#[test]
fn a_rank_exiting_3_makes_mprun_exit_3_naming_it() {
    let (out, tok) = job(4, "exit", &["1", "3"], &[], None);
    let says = "mprun: rank 1 on localhost exited with code 3";
    assert_ended(&out, &tok, 3, says, Duration::from_secs(2));
    // The others, blocked in a receive from it (with no connection to it), were told and saw
    // their receives fail with PeerFailed before the job ended.
    for r in [0, 2, 3] {
        let line = format!("rank {r}: peer rank 1 failed: it exited with code 3 (mprun says)");
        assert!(out.stderr.contains(&line), "no {line:?} in {}", out.stderr);
    }
}

#[test]
fn a_panicking_rank_ends_the_job_with_its_code_naming_it() {
    let (out, tok) = job(4, "panic", &["2"], &[], None);
    let says = "mprun: rank 2 on localhost exited with code 101";
    assert_ended(&out, &tok, 101, says, Duration::from_secs(5));
    assert!(out.stderr.contains("panicked"), "stderr: {}", out.stderr);
}

#[test]
fn a_rank_killed_by_a_signal_gives_128_plus_n() {
    let (out, tok) = job(3, "kill", &["2"], &[], None);
    let says = "mprun: rank 2 on localhost was killed by signal 9 (SIGKILL)";
    assert_ended(&out, &tok, 137, says, Duration::from_secs(10));
}

#[test]
fn abort_ends_the_job_with_its_code() {
    let (out, tok) = job(3, "abort", &["1", "7"], &[], None);
    let says = "mprun: rank 1 on localhost called abort(7)";
    assert_ended(&out, &tok, 7, says, Duration::from_secs(5));
}

#[test]
fn output_lines_are_never_mixed_and_tagged_on_request() {
    let prog = rank_program("t_job");
    let out = run(
        &[
            "-n",
            "4",
            "--tag-output",
            prog.to_str().unwrap(),
            "lines",
            "500",
        ],
        &[],
        None,
        LIMIT,
    );
    let stdout = out.ok();
    let mut counts = [0usize; 4];
    for line in stdout.lines() {
        let (tag, body) = line.split_once(' ').expect("tagged line");
        let r: usize = tag
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .expect("rank tag");
        let (payload, idx) = body.rsplit_once('#').expect("line index");
        assert_eq!(
            payload,
            format!("{r}:").repeat(200),
            "line of rank {r} mixed: {line}"
        );
        assert_eq!(
            idx.parse::<usize>().unwrap(),
            counts[r],
            "rank {r} lines out of order"
        );
        counts[r] += 1;
    }
    assert_eq!(counts, [500; 4]);
    for r in 0..4 {
        assert!(
            out.stderr
                .contains(&format!("[{r}] stderr line from rank {r}")),
            "stderr: {}",
            out.stderr
        );
    }
    // Untagged: the lines are there as the rank wrote them.
    let out = run(
        &["-n", "2", prog.to_str().unwrap(), "lines", "3"],
        &[],
        None,
        LIMIT,
    );
    assert!(out
        .ok()
        .lines()
        .all(|l| l.starts_with("0:0:") || l.starts_with("1:1:")));
}

#[test]
fn a_line_longer_than_a_relay_holds_comes_out_as_written() {
    // 3 MiB without a newline (the relay passes it on in 1 MiB pieces), then a last line
    // without one: nothing added inside the long line, the tag only where lines start.
    let script = "head -c 3145728 /dev/zero | tr '\\0' x; echo; printf end";
    let out = run(
        &["-n", "1", "--tag-output", "sh", "-c", script],
        &[],
        None,
        LIMIT,
    );
    let stdout = out.ok();
    let expected = format!("[0] {}\n[0] end\n", "x".repeat(3 << 20));
    assert!(
        stdout == expected,
        "{} bytes, {} lines; starts {:?}",
        stdout.len(),
        stdout.lines().count(),
        &stdout[..stdout.len().min(40)]
    );
}

#[test]
fn verbose_shows_the_map_and_each_step_with_its_time() {
    let out = run(&["-v", "-n", "2", "true"], &[], None, LIMIT);
    out.ok();
    let steps: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("mprun: +"))
        .collect();
    let mut at = Vec::new();
    for s in &steps {
        let (ms, what) = s.split_once(" ms: ").expect("`+T ms: step`");
        at.push((ms.parse::<f64>().expect("a time"), what));
    }
    let whats: Vec<&str> = at.iter().map(|a| a.1).collect();
    assert_eq!(whats[0], "2 local rank(s) started", "{}", out.stderr);
    for r in 0..2 {
        assert!(
            whats
                .iter()
                .any(|w| w.starts_with(&format!("rank {r} on ")) && w.ends_with(" ended")),
            "{}",
            out.stderr
        );
    }
    assert_eq!(
        &whats[whats.len() - 2..],
        ["every rank ended", "done"],
        "{}",
        out.stderr
    );
    assert!(
        at.windows(2).all(|w| w[0].0 <= w[1].0),
        "times go forward: {}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("mprun: 2 rank(s) of "),
        "{}",
        out.stderr
    );
}

#[test]
fn stdin_goes_to_rank_0_only() {
    let input: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    let (out, _) = job(3, "stdin", &[], &[], Some(input.as_bytes()));
    let stdout = out.ok();
    let bytes: usize = (0..1000).map(|i| format!("line {i}").len()).sum();
    assert!(
        stdout.contains(&format!("rank 0 read 1000 lines {bytes} bytes")),
        "{stdout}"
    );
    assert!(stdout.contains("rank 1 read 0 lines 0 bytes"), "{stdout}");
    assert!(stdout.contains("rank 2 read 0 lines 0 bytes"), "{stdout}");
}

#[test]
fn ranks_see_their_environment_and_x_variables() {
    let prog = rank_program("t_job");
    let out = run(
        &["-n", "3", "-x", "FOO", prog.to_str().unwrap(), "env"],
        &[("FOO", "bar")],
        None,
        LIMIT,
    );
    let stdout = out.ok();
    for r in 0..3 {
        assert!(
            stdout.contains(&format!("rank={r} machine_ranks=3")),
            "{stdout}"
        );
        let want = format!(
            "rank={r} size=3 MPR_RANK={r} MPR_SIZE=3 MPR_LOCAL_RANK={r} MPR_LOCAL_SIZE=3 FOO=bar"
        );
        assert!(
            stdout.lines().any(|l| l == want),
            "missing {want:?} in {stdout}"
        );
    }
    let out = run(
        &[
            "-n",
            "2",
            "-x",
            "FOO=set by x",
            prog.to_str().unwrap(),
            "env",
        ],
        &[],
        None,
        LIMIT,
    );
    assert_eq!(out.ok().matches("FOO=set by x").count(), 2);
}

#[test]
fn timeout_ends_a_hung_job_with_124_saying_who_waits_for_whom() {
    let (out, tok) = job_with(&["--timeout", "1"], 3, "hang", &[], &[], None);
    assert_eq!(out.code, Some(124), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mprun:"))
        .collect();
    assert_eq!(
        lines,
        [
            "mprun: timed out after 1.0 s",
            "mprun: what each rank waits for:",
            "mprun:   rank 0 on localhost: receive from rank 1, tag 0",
            "mprun:   rank 1 on localhost: receive from rank 2, tag 0",
            "mprun:   rank 2 on localhost: receive from rank 0, tag 0",
            "mprun: deadlock: 0 -> 1 -> 2 -> 0 (rank 0: receive from rank 1, tag 0; rank 1: receive from rank 2, tag 0; rank 2: receive from rank 0, tag 0)",
            "mprun: timed out after 1.0 s; ended 3 running rank(s)",
        ],
        "stderr: {}",
        out.stderr
    );
    out.took_less_than(Duration::from_secs(5));
    assert_nothing_left(&tok);
}

/// Ranks in finalize and in an all-to-all are named with what they wait for (the report used
/// to say "nothing" for them).
#[test]
fn timeout_report_names_waits_in_finalize_and_alltoall() {
    let (out, tok) = job_with(&["--timeout", "2"], 4, "stuck", &[], &[], None);
    assert_eq!(out.code, Some(124), "stderr: {}", out.stderr);
    let line = |r: usize| {
        let head = format!("mprun:   rank {r} on localhost: ");
        out.stderr
            .lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .unwrap_or_else(|| panic!("no line for rank {r}: {}", out.stderr))
    };
    assert!(line(0).starts_with("no answer"), "{}", out.stderr);
    assert!(
        line(1).contains("finalize (waiting for rank 0 to finalize too)"),
        "{}",
        out.stderr
    );
    for r in [2, 3] {
        assert!(line(r).contains("all-to-all #"), "{}", out.stderr);
    }
    assert!(!out.stderr.contains("nothing"), "stderr: {}", out.stderr);
    assert_nothing_left(&tok);
}

#[test]
fn timeout_names_the_cycle_of_two_ranks_in_blocking_receives() {
    let (out, tok) = job_with(&["--timeout", "1"], 4, "deadlock", &[], &[], None);
    assert_eq!(out.code, Some(124), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains(
            "mprun: deadlock: 0 -> 1 -> 0 (rank 0: receive from rank 1, tag 5; rank 1: receive from rank 0, tag 5)"
        ),
        "stderr: {}",
        out.stderr
    );
    // The others wait in the barrier: still setting up its shared segment, which rank 0 (stuck)
    // was to broadcast.
    assert!(
        out.stderr
            .contains("rank 2 on localhost: receive from rank 0, broadcast #1 on communicator 0"),
        "stderr: {}",
        out.stderr
    );
    assert_nothing_left(&tok);
}

#[test]
fn timeout_report_names_communicators_by_their_names() {
    let (out, tok) = job_with(&["--timeout", "1"], 3, "named", &[], &[], None);
    assert_eq!(out.code, Some(124), "stderr: {}", out.stderr);
    let named = |r: usize, what: &str| {
        out.stderr.lines().any(|l| {
            l.starts_with(&format!("mprun:   rank {r} on localhost: "))
                && l.contains(what)
                && l.contains("(\"rows\")")
        })
    };
    assert!(
        named(0, "receive from rank 1, tag 6 on communicator"),
        "{}",
        out.stderr
    );
    assert!(
        named(1, "receive from rank 0, tag 6 on communicator"),
        "{}",
        out.stderr
    );
    // Rank 2 is in the barrier (setting up its shared segment, which rank 0 was to broadcast).
    assert!(named(2, "on communicator"), "{}", out.stderr);
    assert_nothing_left(&tok);
}

#[test]
fn sigint_to_mprun_ends_every_rank_within_a_second() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let prog = rank_program("t_job");
    let tok = token("sigint");
    let mut job = util::Limited::spawn(
        Command::new(util::mprun())
            .args(["-n", "8", prog.to_str().unwrap(), "hang", &tok])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0),
        LIMIT,
    );
    // Wait until all 8 ranks say they are blocked.
    let mut stdout = job.child.stdout.take().unwrap();
    let mut seen = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while seen.matches("waiting").count() < 8 {
        assert!(start.elapsed() < LIMIT, "ranks never started: {seen}");
        let n = stdout.read(&mut buf).expect("read stdout");
        assert!(n > 0, "mprun closed stdout early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let pid = nix::unistd::Pid::from_raw(job.child.id() as i32);
    let sent = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signal mprun");
    let status = loop {
        if let Some(st) = job.child.try_wait().expect("wait") {
            break st;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("mprun did not end after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_nothing_left(&tok);
}

#[test]
fn job_of_16_ranks_oversubscribed_starts_and_finishes() {
    let prog = rank_program("t_job");
    let out = run(
        &["-n", "16", prog.to_str().unwrap(), "env"],
        &[],
        None,
        LIMIT,
    );
    assert_eq!(
        out.ok().lines().filter(|l| l.contains("size=16")).count(),
        16
    );
}

#[test]
fn profile_counts_the_calls_the_program_made() {
    let (out, _) = job_with(&["--profile"], 4, "profile", &[], &[], None);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    // operation, calls, bytes: summed over the ranks.
    let row = |name: &str| -> Vec<String> {
        out.stderr
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{}", out.stderr))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for (name, calls, bytes) in [
        ("barrier", "40", "0"),
        ("allreduce", "20", "640"),
        ("send", "3", "300"),
        ("recv", "3", "300"),
        ("isend", "1", "8"),
        ("irecv", "1", "8"),
        ("wait", "2", "0"),
    ] {
        assert_eq!(row(name)[1..3], [calls, bytes], "{name}:\n{}", out.stderr);
    }
    assert!(
        out.stderr.contains("4 of 4 ranks finalized"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("longest in mpr calls: rank "),
        "{}",
        out.stderr
    );
    // Nothing without the option.
    let (out, _) = job(4, "profile", &[], &[], None);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("--profile"), "{}", out.stderr);
}

/// Whether what a test needs from outside the workspace is here (`missing`: what is not, and
/// how to get it): where it is not, the test says so and skips, but in CI (`MPR_CI`, which
/// `.ci/run` sets after installing it all) it fails.
fn have(missing: Option<String>) -> bool {
    let Some(what) = missing else {
        return true;
    };
    assert!(std::env::var_os("MPR_CI").is_none(), "CI must have {what}");
    eprintln!("skipped: needs {what}");
    false
}

/// Debian's libfaketime (package `faketime`), which makes a process see its host's clock wrong.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn trace_lines_up_ranks_whose_host_clocks_disagree() {
    let faketime = LIBFAKETIME;
    let missing = !std::path::Path::new(faketime).exists();
    if !have(missing.then(|| format!("{faketime} (apt-get install faketime)"))) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mpr-clocks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pingpong.json");
    // Rank 1's clock says an hour later than rank 0's and mprun's.
    let prog = rank_program("t_job");
    let tok = token("clocks");
    let wrap = format!(
        "if [ \"$MPR_RANK\" = 1 ]; then export LD_PRELOAD={faketime} FAKETIME=+1h; fi; \
         exec \"$0\" \"$@\""
    );
    let out = run(
        &[
            "--trace",
            path.to_str().unwrap(),
            "-n",
            "2",
            "sh",
            "-c",
            &wrap,
            prog.to_str().unwrap(),
            "pingpong",
            &tok,
        ],
        &[],
        None,
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Both ranks measured their clocks against mprun's, and the measure held; every message
    // is received after it was sent, both ways (on the hosts' clocks, rank 1's receives would
    // end an hour after its answers began and rank 0's an hour before).
    assert_eq!(util::trace_clocks_hold(&v), 2);
    assert_eq!(util::trace_messages_causal(&v), 40);
    let events = v["traceEvents"].as_array().unwrap();
    // Rank 0 waits a millisecond for each answer: its receives sleep, inside the call.
    let recvs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["pid"] == 0 && e["name"] == "recv")
        .collect();
    let sleeps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["pid"] == 0 && e["cat"] == "sleep")
        .collect();
    let span = |e: &serde_json::Value| {
        let ts = e["ts"].as_f64().unwrap();
        (ts, ts + e["dur"].as_f64().unwrap())
    };
    let slept_in_recv: f64 = sleeps
        .iter()
        .filter_map(|z| {
            let (a, b) = span(z);
            recvs
                .iter()
                .any(|r| span(r).0 <= a && b <= span(r).1 + 0.001)
                .then_some(b - a)
        })
        .sum();
    let in_recv: f64 = recvs.iter().map(|r| span(r).1 - span(r).0).sum();
    assert!(
        slept_in_recv > 0.5 * in_recv,
        "rank 0 slept {slept_in_recv} µs of the {in_recv} µs in its receives"
    );
}

/// Runs the 4-rank "profile" case with `--trace` into a file under a directory named from
/// `name`, and returns the file's path once the job has succeeded.
fn traced_profile_job(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calls.json");
    let (out, _) = job_with(
        &["--trace", path.to_str().unwrap()],
        4,
        "profile",
        &[],
        &[],
        None,
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    path
}

#[test]
fn trace_opens_in_a_trace_viewer() {
    // speedscope (a trace viewer that reads the trace-event format) in headless Chromium, by
    // launcher/tests/viewer/open.js, which says what the viewer showed.
    let viewer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node_ok {
        Some("node (apt-get install nodejs)".to_string())
    } else if !viewer.join("node_modules/speedscope").exists() {
        Some(format!("npm ci --prefix {}", viewer.display()))
    } else if !std::path::Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium (apt-get install chromium)".to_string())
    } else {
        None
    };
    if !have(missing) {
        return;
    }
    let path = traced_profile_job("mpr-viewer");
    let open = viewer.join("open.js");
    let shown = util::run_cmd(
        "node".into(),
        &[open.to_str().unwrap(), path.to_str().unwrap()],
        &[],
        None,
        LIMIT,
    );
    assert_eq!(shown.code, Some(0), "viewer: {}", shown.stderr);
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).expect("the viewer's report");
    assert_eq!(v["imported"], true, "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    // A track per rank, named by rank and host, each listing the calls the rank made.
    let tracks: Vec<&str> = v["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tracks.len(), 4, "{v}");
    for (r, t) in tracks.iter().enumerate() {
        assert!(t.starts_with(&format!("rank {r} (localhost)")), "{v}");
    }
    let calls = |r: usize| -> Vec<&str> {
        v["calls"][r]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect()
    };
    for (r, own) in [(0, "send"), (1, "recv"), (2, "isend"), (3, "irecv")] {
        // (and maybe times it slept inside them)
        let mut c: Vec<&str> = calls(r).into_iter().filter(|&c| c != "asleep").collect();
        c.sort_unstable();
        let mut want = vec!["allreduce", "barrier", own];
        if r >= 2 {
            want.push("wait");
        }
        want.sort_unstable();
        assert_eq!(c, want, "rank {r}: {v}");
    }
}

/// The trace-event JSON `mprun --trace` wrote at `path`: its slices as (rank, name, ts, dur),
/// after checking that it names a track for each of `n` ranks.
fn trace_slices(path: &std::path::Path, n: usize) -> Vec<(u64, String, f64, f64)> {
    let text = std::fs::read_to_string(path).expect("the trace file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    let tracks: Vec<String> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..n).map(|r| format!("rank {r} (localhost)")).collect();
    assert_eq!(tracks, want);
    events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
            assert!(ts >= 0.0 && dur >= 0.0, "{e}");
            (
                e["pid"].as_u64().unwrap(),
                e["name"].as_str().unwrap().to_string(),
                ts,
                dur,
            )
        })
        .collect()
}

#[test]
fn trace_holds_every_call_of_every_rank() {
    // A job that finishes: every call of every rank, one slice each.
    let path = traced_profile_job("mpr-trace");
    let dir = path.parent().unwrap().to_path_buf();
    let slices = trace_slices(&path, 4);
    let count = |rank: Option<u64>, name: &str| {
        slices
            .iter()
            .filter(|s| s.1 == name && rank.is_none_or(|r| s.0 == r))
            .count()
    };
    for r in 0..4 {
        assert_eq!(count(Some(r), "barrier"), 10, "rank {r}");
        assert_eq!(count(Some(r), "allreduce"), 5, "rank {r}");
    }
    // Sends and receives pair up.
    assert_eq!((count(Some(0), "send"), count(Some(1), "recv")), (3, 3));
    assert_eq!((count(Some(2), "isend"), count(Some(3), "irecv")), (1, 1));
    assert_eq!((count(Some(2), "wait"), count(Some(3), "wait")), (1, 1));
    assert_eq!(count(None, "send"), count(None, "recv"));
    // An arrow from each send to its receive: 3 from rank 0 to 1 (tag 0), 1 from 2 to 3.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let flows: Vec<(String, u64, u64)> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "message")
        .map(|e| {
            let f = |k: &str| e[k].as_u64().unwrap();
            (e["ph"].as_str().unwrap().to_string(), f("id"), f("pid"))
        })
        .collect();
    let starts: Vec<_> = flows.iter().filter(|f| f.0 == "s").collect();
    assert_eq!(starts.len(), 4, "{flows:?}");
    // Every call names its communicator; collectives their algorithm.
    for e in v["traceEvents"].as_array().unwrap() {
        if e["cat"] != "mpr" {
            continue;
        }
        assert_eq!(e["args"]["comm"], "world", "{e}");
        if e["name"] == "barrier" || e["name"] == "allreduce" {
            let algo = e["args"]["algorithm"]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"));
            assert!(
                [
                    "node_segment",
                    "flat",
                    "dissemination",
                    "recursive_doubling"
                ]
                .contains(&algo),
                "{e}"
            );
        }
    }
    for s in starts {
        let to = flows.iter().find(|f| f.0 == "f" && f.1 == s.1);
        let to = to.unwrap_or_else(|| panic!("flow {} has no end: {flows:?}", s.1));
        assert_eq!(to.2, if s.2 == 0 { 1 } else { 3 }, "{flows:?}");
    }
    // A rank's calls follow one another (the times it slept lie inside them).
    for r in 0..4 {
        let mine: Vec<_> = slices
            .iter()
            .filter(|s| s.0 == r && s.1 != "asleep")
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0].2 + w[0].3 <= w[1].2 + 0.01),
            "rank {r}: {mine:?}"
        );
    }

    // A deadlock ended by --timeout: each rank's last slice is the call it was stuck in.
    let path = dir.join("deadlock.json");
    let (out, _) = job_with(
        &["--trace", path.to_str().unwrap(), "--timeout", "2"],
        4,
        "deadlock",
        &[],
        &[],
        None,
    );
    assert_eq!(out.code, Some(124), "stderr: {}", out.stderr);
    let slices = trace_slices(&path, 4);
    for (r, name) in [(0, "recv"), (1, "recv"), (2, "barrier"), (3, "barrier")] {
        let last = slices.iter().rfind(|s| s.0 == r);
        let last = last.unwrap_or_else(|| panic!("rank {r} has no slice: {slices:?}"));
        assert_eq!(last.1, name, "rank {r}");
        assert!(last.3 > 1.5e6, "rank {r} waited {} us", last.3);
    }

    // A rank that panics: the others' failed receives from it are in the trace.
    let path = dir.join("panic.json");
    let (out, _) = job_with(
        &["--trace", path.to_str().unwrap()],
        3,
        "panic",
        &["1"],
        &[],
        None,
    );
    assert_eq!(out.code, Some(101), "stderr: {}", out.stderr);
    let slices = trace_slices(&path, 3);
    for r in [0, 2] {
        assert!(
            slices.iter().any(|s| s.0 == r && s.1 == "recv"),
            "rank {r}: {slices:?}"
        );
    }
}
