//! Shared helpers of the integration tests: run real jobs through the built `mprun`, with a hard
//! timeout so a deadlock fails the test instead of hanging the suite.

#![allow(dead_code)]

pub mod testnet;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process with a hard time limit: killed (SIGKILL) by a watchdog once `limit` has
/// passed, and when dropped, so that a test blocked reading its output, or failing half-way,
/// neither hangs the suite nor leaves a job behind.
pub struct Limited {
    pub child: std::process::Child,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Limited {
    pub fn spawn(cmd: &mut Command, limit: Duration) -> Limited {
        use std::sync::atomic::{AtomicBool, Ordering};
        let child = cmd.spawn().expect("spawn");
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let (flag, pid) = (done.clone(), child.id() as i32);
        std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                if start.elapsed() > limit {
                    let pid = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Limited { child, done }
    }

    /// Waits for the child to end (the watchdog stands down first).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.child.wait().expect("wait")
    }

    /// Reads `out` (its stdout, taken earlier) until `word` has come; panics if the job ends
    /// first.
    pub fn read_until(out: &mut impl Read, word: &str) {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(word) {
            let mut b = [0u8; 256];
            match out.read(&mut b) {
                Ok(0) | Err(_) => panic!("mprun ended early: {}", String::from_utf8_lossy(&seen)),
                Ok(n) => seen.extend_from_slice(&b[..n]),
            }
        }
    }

    /// Reads the rest of `out` (its stdout, taken earlier) and all of its stderr, waits for it,
    /// and checks that it succeeded and that each of ranks `0..n` said `"rank R {word}"`.
    pub fn succeeds(&mut self, out: &mut impl Read, n: usize, word: &str) {
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        let status = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "job failed: {err}\n{rest}");
        for r in 0..n {
            let said = format!("rank {r} {word}");
            assert!(rest.contains(&said), "no {said:?} in:\n{rest}\n{err}");
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        // Before the child is reaped (so the watchdog never signals a reused pid).
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The built launcher.
pub fn mprun() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mprun"))
}

/// A rank program built as an example of this package. Cargo builds the examples on a plain
/// `cargo test`, but not when only some test targets are selected, and then a stale build would
/// test old code: so the examples are (re)built here, once per test process (a no-op when they
/// are up to date).
pub fn rank_program(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "mprun", "--examples"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo to build the rank programs");
        assert!(st.success(), "building the rank programs failed");
    });
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// How a job ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// Asserts that the job took less than `limit`.
    pub fn took_less_than(&self, limit: Duration) {
        assert!(self.elapsed < limit, "took {:?}", self.elapsed);
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "job failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs `mprun ARGS...` with `env`, feeding `stdin`, killed (and failed) after `limit`.
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    run_cmd(mprun(), args, env, stdin, limit)
}

/// Runs any command the same way.
pub fn run_cmd(
    program: PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{} {args:?} did not finish within {limit:?} (killed)",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    Outcome {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed,
    }
}

/// `mprun -n N t_p2p CASE`, which must succeed and print `ok CASE`.
pub fn p2p_case(n: usize, case: &str, env: &[(&str, &str)]) {
    rank_case("t_p2p", n, case, &[], env);
}

/// `mprun -n N PROGRAM CASE ARGS...` for a rank program of the tests, which must succeed and
/// print `ok CASE`.
pub fn rank_case(program: &str, n: usize, case: &str, args: &[&str], env: &[(&str, &str)]) {
    let prog = rank_program(program);
    let n = n.to_string();
    let mut words = vec!["-n", &n, prog.to_str().unwrap(), case];
    words.extend_from_slice(args);
    let out = run(&words, env, None, Duration::from_secs(120));
    let stdout = out.ok();
    assert!(
        stdout.contains(&format!("ok {case}")),
        "stdout: {stdout}\nstderr: {}",
        out.stderr
    );
}

/// Processes whose command line mentions `needle` (to check nothing of a job is left running).
pub fn processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

/// Listening sockets of process `pid`: TCP ports (IPv4, this namespace) and abstract Unix names.
pub fn listeners(pid: u32) -> (Vec<u16>, Vec<String>) {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let l = link.to_string_lossy().into_owned();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address, st (0A = listen), inode
        if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            if let Some(port) = f[1]
                .split(':')
                .nth(1)
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    let mut names = Vec::new();
    let unix = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    for line in unix.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening
        if f.len() >= 8 && f[3] == "00010000" && inodes.iter().any(|i| i == f[6]) {
            if let Some(name) = f[7].strip_prefix('@') {
                names.push(name.to_string());
            }
        }
    }
    (ports, names)
}

/// The rank of `pid` (its MPR_RANK), if it is one.
pub fn rank_of(pid: u32) -> Option<usize> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"MPR_RANK="))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
}

/// How many descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Checks the clocks of an `mprun --trace` file `v`: each rank that told measured its clock
/// against mprun's at start-up and at the end, and the measure held (it moved by no more than
/// the two measures' uncertainty, and a little). Returns how many ranks measured.
pub fn trace_clocks_hold(v: &serde_json::Value) -> usize {
    let clocks = v["otherData"]["clocks"]
        .as_array()
        .expect("otherData.clocks");
    for c in clocks {
        let f = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("no {k} in {c}"));
        let within = f("within_us") + f("end_within_us");
        assert!(f("moved_by_end_us").abs() <= within + 100.0, "{c}");
    }
    clocks.len()
}

/// Checks that every arrow of an `mprun --trace` file `v` to a blocking receive goes forward in
/// time: the receive ends after the send began, to within the ranks' clock uncertainty.
/// Returns the arrows (all of them, those to an `irecv` too).
pub fn trace_messages_causal(v: &serde_json::Value) -> usize {
    let slack = 1.0
        + v["otherData"]["clocks"]
            .as_array()
            .expect("otherData.clocks")
            .iter()
            .map(|c| c["within_us"].as_f64().unwrap())
            .sum::<f64>();
    let events = v["traceEvents"].as_array().expect("traceEvents");
    let slice_at = |pid: u64, ts: f64| {
        events
            .iter()
            .find(|e| e["ph"] == "X" && e["pid"] == pid && e["ts"].as_f64() == Some(ts))
            .unwrap_or_else(|| panic!("no slice of rank {pid} at {ts}"))
    };
    let flows: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "message").collect();
    let starts: Vec<_> = flows.iter().filter(|f| f["ph"] == "s").collect();
    for s in &starts {
        let f = flows
            .iter()
            .find(|f| f["ph"] == "f" && f["id"] == s["id"])
            .unwrap_or_else(|| panic!("arrow {} has no end", s["id"]));
        let send = slice_at(s["pid"].as_u64().unwrap(), s["ts"].as_f64().unwrap());
        let recv = slice_at(f["pid"].as_u64().unwrap(), f["ts"].as_f64().unwrap());
        if recv["name"] == "irecv" {
            continue; // posted, maybe before the send: it completes in a later wait
        }
        let recv_end = recv["ts"].as_f64().unwrap() + recv["dur"].as_f64().unwrap();
        assert!(
            recv_end + slack >= send["ts"].as_f64().unwrap(),
            "received before it was sent: {send} then {recv}"
        );
    }
    starts.len()
}
