//! Jobs across hosts, for real: four network namespaces made by `testnet` (util/testnet.rs; each
//! its own host name, address and network stack), mprun started on the first, the others reached
//! through `testnet exec` as the launch agent, then through a real sshd. Checks data between
//! ranks on different hosts (point to point and every collective), `split_type_shared`,
//! environment, output lines, stdin, exit codes, unreachable hosts and failing agents, and that
//! nothing is left running on any host afterwards.
//!
//! Needs root and iproute2 (testnet's own requirements); without them the test says so and
//! passes without running. testnet allows one network per machine, so everything runs in one
//! test, in order.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use util::testnet::{fresh, tn};
use util::{mprun, rank_program, run_cmd, Limited, Outcome};

const LIMIT: Duration = Duration::from_secs(120);
const HOSTS: &str = "/tmp/mpr-test-hosts";

/// mprun on host h1 with `args`.
fn on_h1(t: &Path, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
    on_h1_env(t, args, &[], stdin)
}

/// mprun on host h1 with `args` and `env` added to its environment.
fn on_h1_env(t: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Outcome {
    let m = mprun();
    let mut words = vec!["run", "h1", m.to_str().unwrap()];
    words.extend_from_slice(args);
    run_cmd(t.to_path_buf(), &words, env, stdin, LIMIT)
}

/// Nothing of ours still runs on the hosts.
fn nothing_left(t: &Path) {
    for _ in 0..50 {
        let left = tn(t, &["pids"]);
        if !left.contains("t_job") && !left.contains("t_coll") && !left.contains("mprun") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("left running on the hosts: {}", tn(t, &["pids"]));
}

#[test]
fn jobs_across_four_namespace_hosts_through_testnet_exec_and_sshd() {
    let Some((t, net)) = fresh() else {
        return;
    };
    tn(&t, &["up", "4", "--slots", "2", "--hostfile", HOSTS]);
    let coll = rank_program("t_coll");
    let job = rank_program("t_job");
    let topo = rank_program("t_topo");
    let (coll, job, topo) = (
        coll.to_str().unwrap(),
        job.to_str().unwrap(),
        topo.to_str().unwrap(),
    );
    let exec_agent = format!("{} exec", t.display());

    for agent in [exec_agent.clone(), ssh_agent(&t)] {
        let base = ["--hostfile", HOSTS, "--launch-agent", agent.as_str()];
        let with = |more: &[&str]| -> Vec<String> {
            base.iter().chain(more).map(|s| s.to_string()).collect()
        };
        let run = |more: &[&str], stdin: Option<&[u8]>| {
            let args = with(more);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            on_h1(&t, &args, stdin)
        };

        // Every collective and point-to-point traffic between ranks on different hosts.
        let out = run(&["-n", "8", coll, "coll"], None);
        assert!(out.ok().contains("ok coll"), "{agent}: {}", out.stderr);
        // By node too (ranks 0,4 on h1, 1,5 on h2, ...).
        let out = run(&["-n", "8", "--map-by", "node", coll, "coll"], None);
        assert!(out.ok().contains("ok coll"), "{agent}: {}", out.stderr);
        nothing_left(&t);

        // split_type_shared: the ranks of each of the four hosts, filled in order and dealt.
        let out = run(&["-n", "8", topo, "shared", "slot:2"], None);
        assert!(out.ok().contains("ok shared"), "{agent}: {}", out.stderr);
        let out = run(
            &["-n", "8", "--map-by", "node", topo, "shared", "node:4"],
            None,
        );
        assert!(out.ok().contains("ok shared"), "{agent}: {}", out.stderr);

        // Environment: the launch contract per rank, and -x values, on every host.
        let out = run(&["-n", "8", "-x", "FOO=from h1", job, "env"], None);
        let stdout = out.ok();
        for r in 0..8 {
            let want = format!(
                "rank={r} size=8 MPR_RANK={r} MPR_SIZE=8 MPR_LOCAL_RANK={} MPR_LOCAL_SIZE=2 FOO=from h1",
                r % 2
            );
            assert!(
                stdout.lines().any(|l| l == want),
                "{agent}: no {want:?} in {stdout}"
            );
            // The four namespace hosts share this machine's cores: every rank knows that
            // eight ranks run on it (and so waits politely).
            let shared = format!("rank={r} machine_ranks=8");
            assert!(
                stdout.lines().any(|l| l == shared),
                "{agent}: no {shared:?} in {stdout}"
            );
        }

        // A trace of ranks on four hosts: each rank's clock measured against mprun's (on h1),
        // every message received after it was sent, a track per rank named by its host.
        let trace = format!("/tmp/mpr-hosts-trace-{}.json", std::process::id());
        let out = run(
            &[
                "-n", "4", "--map-by", "node", "--trace", &trace, job, "profile",
            ],
            None,
        );
        out.ok();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        let _ = std::fs::remove_file(&trace);
        assert_eq!(
            util::trace_clocks_hold(&v),
            4,
            "{agent}: {}",
            v["otherData"]
        );
        assert_eq!(util::trace_messages_causal(&v), 4, "{agent}");
        let tracks: Vec<&str> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(tracks.len(), 4, "{agent}: {tracks:?}");
        for (r, t) in tracks.iter().enumerate() {
            assert!(t.starts_with(&format!("rank {r} (")), "{agent}: {tracks:?}");
        }

        // Output: whole lines, in order per rank, tagged.
        let out = run(&["-n", "8", "--tag-output", job, "lines", "300"], None);
        let mut counts = [0usize; 8];
        for line in out.ok().lines() {
            let (tag, body) = line.split_once(' ').expect("tagged line");
            let r: usize = tag.trim_matches(['[', ']']).parse().expect("rank tag");
            let (payload, idx) = body.rsplit_once('#').expect("line index");
            assert_eq!(
                payload,
                format!("{r}:").repeat(200),
                "{agent}: mixed line {line}"
            );
            assert_eq!(
                idx.parse::<usize>().unwrap(),
                counts[r],
                "{agent}: rank {r} out of order"
            );
            counts[r] += 1;
        }
        assert_eq!(counts, [300; 8], "{agent}");
        for r in 0..8 {
            assert!(
                out.stderr
                    .contains(&format!("[{r}] stderr line from rank {r}")),
                "{agent}"
            );
        }

        // A 3 MiB line from a rank on h2 crosses in 1 MiB frames and comes out as written.
        let script = "[ \"$MPR_RANK\" = 2 ] || exit 0; head -c 3145728 /dev/zero | tr '\\0' x; echo; printf end";
        let out = run(&["-n", "3", "--tag-output", "sh", "-c", script], None);
        let stdout = out.ok();
        assert!(
            stdout == format!("[2] {}\n[2] end\n", "x".repeat(3 << 20)),
            "{agent}: {} bytes, {} lines",
            stdout.len(),
            stdout.lines().count()
        );

        // Stdin reaches rank 0 (here on h1), nobody else.
        let input: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let out = run(&["-n", "8", job, "stdin"], Some(input.as_bytes()));
        let bytes: usize = (0..2000).map(|i| format!("line {i}").len()).sum();
        let stdout = out.ok();
        assert!(
            stdout.contains(&format!("rank 0 read 2000 lines {bytes} bytes")),
            "{stdout}"
        );
        assert_eq!(
            stdout.matches("read 0 lines 0 bytes").count(),
            7,
            "{stdout}"
        );

        // A rank on another host exits 3 while the others wait for it; one panics there; one
        // is killed by a signal there.
        let ends: [(&[&str], i32, &str); 3] = [
            (
                &["exit", "5", "3"],
                3,
                "mprun: rank 5 on 10.99.0.3 exited with code 3",
            ),
            (
                &["panic", "3"],
                101,
                "mprun: rank 3 on 10.99.0.2 exited with code 101",
            ),
            (
                &["kill", "6"],
                137,
                "mprun: rank 6 on 10.99.0.4 was killed by signal 9",
            ),
        ];
        for (case, code, says) in ends {
            let out = run(&[&["-n", "8", job][..], case].concat(), None);
            assert_eq!(out.code, Some(code), "{agent}: {}", out.stderr);
            assert!(out.stderr.contains(says), "{agent}: {}", out.stderr);
            nothing_left(&t);
        }
    }

    // The network named by interface or by CIDR (on every host: the helpers pick their own
    // address in it), with a bad name refused in one line.
    let base = ["--hostfile", HOSTS, "--launch-agent", exec_agent.as_str()];
    let out = on_h1(
        &t,
        &[&base[..], &["--iface", "eth0", "-n", "8", coll, "coll"]].concat(),
        None,
    );
    assert!(out.ok().contains("ok coll"), "--iface eth0: {}", out.stderr);
    let out = on_h1_env(
        &t,
        &[&base[..], &["-n", "8", coll, "coll"]].concat(),
        &[("MPR_IFACE", "10.99.0.0/24")],
        None,
    );
    assert!(out.ok().contains("ok coll"), "MPR_IFACE: {}", out.stderr);
    let out = on_h1(
        &t,
        &[&base[..], &["--iface", "nosuch0", job, "env"]].concat(),
        None,
    );
    refused_naming(&out, "nosuch0");

    // A start-up tree: with a fan-out of 1, h2's helper starts h3's, which starts h4's. Data,
    // exits from the deepest host, and an unreachable host at the bottom all pass through it.
    let tree = |args: &[&str], stdin: Option<&[u8]>| {
        on_h1_env(&t, args, &[("MPR_LAUNCH_FANOUT", "1")], stdin)
    };
    let out = tree(&[&base[..], &["-n", "8", coll, "coll"]].concat(), None);
    assert!(out.ok().contains("ok coll"), "tree: {}", out.stderr);
    let out = tree(
        &[&base[..], &["-n", "8", job, "exit", "7", "4"]].concat(),
        None,
    );
    assert_eq!(out.code, Some(4), "tree: {}", out.stderr);
    assert!(
        out.stderr
            .contains("mprun: rank 7 on 10.99.0.4 exited with code 4"),
        "{}",
        out.stderr
    );
    nothing_left(&t);
    let deep_bad = "/tmp/mpr-test-hosts-deep";
    std::fs::write(
        deep_bad,
        "10.99.0.1:2\n10.99.0.2:2\n10.99.0.3:2\n10.99.0.9:2\n",
    )
    .unwrap();
    let out = tree(
        &[
            "--hostfile",
            deep_bad,
            "--launch-agent",
            &exec_agent,
            job,
            "env",
        ],
        None,
    );
    refused_naming(&out, "host 10.99.0.9");
    nothing_left(&t);

    // SIGINT to mprun with 8 ranks blocked on 4 hosts: every rank on every host ends within a
    // second or so, exit 130, nothing left.
    let (mut child, pid, tok) = blocked_job(&t, &exec_agent, job, "sigint");
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signal mprun");
    let status = loop {
        if let Some(st) = child.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "mprun did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        sent.elapsed()
    );
    gone_within(&tok, Duration::from_secs(2));
    // mprun killed outright (no chance to end anything): the helpers see their link end and
    // kill their ranks, mprun's own ranks die with it; nothing is left anywhere.
    let (_child, pid, tok) = blocked_job(&t, &exec_agent, job, "sigkill");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill mprun");
    gone_within(&tok, Duration::from_secs(2));

    // Rank 0 on another host than mprun's: stdin follows it.
    let hosts_2_to_4 = "/tmp/mpr-test-hosts-234";
    std::fs::write(hosts_2_to_4, "10.99.0.2 slots=2\n10.99.0.3:2\nh4\n").unwrap();
    let out = on_h1(
        &t,
        &[
            "--hostfile",
            hosts_2_to_4,
            "-n",
            "5",
            "--launch-agent",
            &exec_agent,
            job,
            "stdin",
        ],
        Some(b"a\nb\n"),
    );
    assert!(
        out.ok().contains("rank 0 read 2 lines 2 bytes"),
        "{}",
        out.stderr
    );
    // ... with backpressure end to end: `yes` into mprun while rank 0 (on h2) reads nothing for
    // 2 s. The helper there used to buffer all of it (2.3 GB in 5 s); now it holds at most the
    // link's stdin window, and mprun stops reading its own stdin.
    let m = mprun();
    let yes = format!(
        "yes | {} --hostfile {hosts_2_to_4} -n 5 --launch-agent '{exec_agent}' {job} stdin_idle",
        m.display()
    );
    let out = run_cmd(
        t.to_path_buf(),
        &["run", "h1", "sh", "-c", &yes],
        &[],
        None,
        LIMIT,
    );
    let stdout = out.ok();
    let peak_kib: u64 = stdout
        .split("parent peak ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stdout}"));
    assert!(stdout.contains("first line \"y\""), "{stdout}");
    assert!(peak_kib < 64 << 10, "the helper peaked at {peak_kib} KiB");

    // Inside a Slurm allocation: hosts and slots from its variables, helpers through srun (a
    // fake one on PATH that records its arguments and reaches the host with testnet).
    let dir = std::env::temp_dir().join(format!("mpr-fake-srun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = fake_command(
        &dir,
        "srun",
        &format!(
            "host=\nfor a in \"$@\"; do case \"$a\" in --nodelist=*) host=\"${{a#--nodelist=}}\";; esac; done\nwhile [ $# -gt 0 ]; do case \"$1\" in --*) shift;; *) break;; esac; done\nexec {} exec \"$host\" \"$@\"",
            t.display()
        ),
    );
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let slurm_env = [
        ("PATH", path.as_str()),
        ("SLURM_JOB_NODELIST", "mprt-h[1-4]"),
        ("SLURM_TASKS_PER_NODE", "2(x4)"),
    ];
    let out = on_h1_env(&t, &["--tag-output", job, "env"], &slurm_env, None);
    every_rank_saw(
        &out,
        8,
        "rank=7 size=8 MPR_RANK=7 MPR_SIZE=8 MPR_LOCAL_RANK=1",
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let mut hosts: Vec<&str> = calls
        .lines()
        .map(|l| {
            assert!(l.contains("--nodes=1 --ntasks=1"), "srun called as {l}");
            assert!(l.ends_with("--helper"), "srun called as {l}");
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("--nodelist="))
                .unwrap_or("")
        })
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["mprt-h2", "mprt-h3", "mprt-h4"], "{calls}");
    let out = on_h1_env(&t, &[coll, "coll"], &slurm_env, None);
    assert!(out.ok().contains("ok coll"), "{}", out.stderr);
    // No agent named: ssh, without prompts, terminal, X11 or agent forwarding (a fake one on
    // PATH that records its arguments and reaches the host with testnet).
    let ssh_log = fake_command(
        &dir,
        "ssh",
        &format!(
            "while [ $# -gt 0 ]; do case \"$1\" in -o) shift 2;; -*) shift;; *) break;; esac; done\nexec {} exec \"$@\"",
            t.display()
        ),
    );
    let out = on_h1_env(
        &t,
        &["--host", "h1:1,h2:1", coll, "coll"],
        &[("PATH", path.as_str())],
        None,
    );
    assert!(out.ok().contains("ok coll"), "{}", out.stderr);
    let calls = std::fs::read_to_string(&ssh_log).unwrap();
    assert!(
        calls.starts_with("-o BatchMode=yes -T -x -a h2 ")
            && calls.trim_end().ends_with("--helper"),
        "ssh called as {calls}"
    );
    assert_eq!(calls.lines().count(), 1, "{calls}");
    // PBS: the node file, one line per slot; hosts reached with the launch agent.
    let nodefile = dir.join("nodes");
    std::fs::write(&nodefile, "h1\nh1\nh2\nh3\nh3\nh3\n").unwrap();
    let pbs_env = [
        ("PBS_NODEFILE", nodefile.to_str().unwrap()),
        ("MPR_LAUNCH_AGENT", exec_agent.as_str()),
    ];
    let out = on_h1_env(&t, &[job, "env"], &pbs_env, None);
    every_rank_saw(
        &out,
        6,
        "MPR_RANK=5 MPR_SIZE=6 MPR_LOCAL_RANK=2 MPR_LOCAL_SIZE=3",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    nothing_left(&t);

    // An unreachable host: one line naming it, exit 2, nothing started anywhere.
    let bad = "/tmp/mpr-test-hosts-bad";
    std::fs::write(
        bad,
        "10.99.0.1 slots=2\n10.99.0.2 slots=2\n10.99.0.9 slots=2\n",
    )
    .unwrap();
    let out = on_h1(
        &t,
        &[
            "--hostfile",
            bad,
            "-n",
            "6",
            "--launch-agent",
            &exec_agent,
            job,
            "env",
        ],
        None,
    );
    refused_naming(&out, "host 10.99.0.9");
    nothing_left(&t);
    // A failing agent.
    let out = on_h1(
        &t,
        &[
            "--hostfile",
            HOSTS,
            "-n",
            "8",
            "--launch-agent",
            "false",
            job,
            "env",
        ],
        None,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // Every agent fails at once: the line names whichever host failed first.
    let named = ["10.99.0.2", "10.99.0.3", "10.99.0.4"].iter().any(|h| {
        out.stderr
            .starts_with(&format!("mprun: host {h}: cannot start mprun there"))
    });
    assert!(named, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // A job whose arguments exceed what a link frame carries (1 MiB): one line, exit 2, not a
    // job cut short on the other host.
    let big = "a".repeat(110 << 10);
    let mut args = vec![
        "--host",
        "h1:1,h2:1",
        "--launch-agent",
        exec_agent.as_str(),
        "true",
    ];
    args.extend(std::iter::repeat_n(big.as_str(), 10));
    let out = on_h1(&t, &args, None);
    refused_naming(&out, "the job is too large to send to host h2");
    nothing_left(&t);
    // An agent that does not exist.
    let out = on_h1(
        &t,
        &[
            "--hostfile",
            HOSTS,
            "--launch-agent",
            "/no/such/agent",
            job,
            "env",
        ],
        None,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("/no/such/agent"), "{}", out.stderr);
    nothing_left(&t);
    drop(net);
}

/// Writes `dir/NAME`, a shell script that appends its arguments to `dir/NAME.log` and then runs
/// `body`; returns the log's path.
fn fake_command(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.log"));
    let path = dir.join(name);
    let script = format!("#!/bin/sh\necho \"$@\" >> {}\n{body}\n", log.display());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

/// Starts `mprun -n 8 t_job hang TOKEN` on h1 across the 4 hosts and waits until every rank is
/// blocked. Returns mprun (testnet execs into it), its pid, and the token.
fn blocked_job(
    t: &Path,
    agent: &str,
    job: &str,
    name: &str,
) -> (Limited, nix::unistd::Pid, String) {
    use std::io::Read;
    let tok = format!("tok-{name}-{}", std::process::id());
    let m = mprun();
    let mut child = Limited::spawn(
        std::process::Command::new(t.as_os_str())
            .args(["run", "h1", m.to_str().unwrap(), "--hostfile", HOSTS])
            .args(["--launch-agent", agent, "-n", "8", job, "hang", &tok])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
        LIMIT,
    );
    let mut stdout = child.child.stdout.take().unwrap();
    let (mut seen, mut buf) = (String::new(), [0u8; 4096]);
    let start = std::time::Instant::now();
    while seen.matches("waiting").count() < 8 {
        assert!(start.elapsed() < LIMIT, "ranks never started: {seen}");
        let n = stdout.read(&mut buf).expect("read stdout");
        assert!(n > 0, "mprun closed stdout early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Keep reading (and dropping) its output, so that mprun never blocks on a full pipe.
    std::thread::spawn(move || while matches!(stdout.read(&mut buf), Ok(n) if n > 0) {});
    let pid = util::processes_matching(&tok)
        .iter()
        .find(|l| {
            l.split_once(": ")
                .is_some_and(|(_, cmd)| cmd.starts_with(m.to_str().unwrap()))
        })
        .and_then(|l| l.split(':').next()?.parse::<i32>().ok())
        .expect("mprun's pid");
    (child, nix::unistd::Pid::from_raw(pid), tok)
}

/// Nothing with `tok` in its command line runs any more, within `limit`.
fn gone_within(tok: &str, limit: Duration) {
    let start = std::time::Instant::now();
    while !util::processes_matching(tok).is_empty() {
        assert!(
            start.elapsed() < limit,
            "left: {:?}",
            util::processes_matching(tok)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `t_job env` job of `size` ranks ran: every rank printed its line, one of them `want`.
fn every_rank_saw(out: &Outcome, size: usize, want: &str) {
    let stdout = out.ok();
    let lines = stdout.matches(&format!("MPR_SIZE={size} ")).count();
    assert_eq!(lines, size, "{stdout}\n{}", out.stderr);
    assert!(stdout.contains(want), "no {want:?} in {stdout}");
}

/// mprun refused to start: exit 2, one line of its own naming `what`, no rank started.
fn refused_naming(out: &Outcome, what: &str) {
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mprun:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains(what), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "a rank started: {}", out.stdout);
}

/// ssh through the sshd that testnet starts on every host.
fn ssh_agent(t: &Path) -> String {
    let cfg = tn(t, &["ssh-up"]);
    let cfg = cfg.lines().last().unwrap_or("").trim().to_string();
    assert!(!cfg.is_empty(), "testnet ssh-up printed no config");
    format!("ssh -F {cfg}")
}
