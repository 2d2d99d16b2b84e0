//! Bad input to `mprun`: one line naming the cause, exit status 2, and no rank started.

mod util;

use std::time::Duration;

use util::{rank_program, run};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs mprun with bad arguments and returns its single stderr line.
fn refused(args: &[&str]) -> String {
    let out = run(args, &[], None, LIMIT);
    assert_eq!(
        out.code,
        Some(2),
        "{args:?} should be refused\\nstdout: {}\\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "a refused job printed: {}",
        out.stdout
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got:\\n{}",
        out.stderr
    );
    assert!(lines[0].starts_with("mprun: "), "{:?}", lines[0]);
    lines[0].to_string()
}

fn hostfile(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mpr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn unknown_option() {
    let l = refused(&["--frobnicate", "x"]);
    assert!(l.contains("--frobnicate"), "{l}");
}

#[test]
fn misspelt_options_get_a_suggestion() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    let l = refused(&["--timout", "5", p]);
    assert!(l.contains("--timout") && l.contains("--timeout"), "{l}");
    let l = refused(&["--tag-outptu", p]);
    assert!(l.contains("--tag-output"), "{l}");
    // The program's own options are its own, misspelt or not: t_job gets "--timout" as its
    // case, which it does not know (exit status 3).
    let out = run(&["-n", "1", p, "--timout", "-np", "2"], &[], None, LIMIT);
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("\"--timout\""), "{}", out.stderr);
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marks) in [
        ("bash", &["complete -F", "--timeout", "--hostfile"][..]),
        ("zsh", &["#compdef mprun", "--timeout"][..]),
        ("fish", &["complete -c mprun", "timeout"][..]),
    ] {
        let out = run(&["--completions", shell], &[], None, LIMIT);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        for m in marks {
            assert!(
                out.stdout.contains(m),
                "{shell}: no {m:?} in:\n{}",
                out.stdout
            );
        }
    }
    let l = refused(&["--completions", "tcsh"]);
    assert!(l.contains("\"tcsh\" is not one of bash"), "{l}");
}

#[test]
fn bad_rank_counts() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    assert!(refused(&["-n", "0", p]).contains("-n"));
    assert!(refused(&["-n", "-3", p]).contains("-3"));
    assert!(refused(&["-n", "lots", p]).contains("lots"));
    assert!(refused(&["-n", "99999999999999999999999", p]).contains("-n"));
    assert!(refused(&["-n"]).contains("-n"));
}

#[test]
fn missing_program() {
    let l = refused(&["-n", "2"]);
    assert!(l.contains("program"), "{l}");
    let l = refused(&["-n", "2", "/no/such/program-xyz"]);
    assert!(l.contains("/no/such/program-xyz"), "{l}");
    let l = refused(&["-n", "2", "no-such-program-on-path-xyz"]);
    assert!(l.contains("no-such-program-on-path-xyz"), "{l}");
}

#[test]
fn bad_hostfiles_name_the_line() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    let hf = hostfile(
        "bad-slots",
        "# comment\nlocalhost slots=2\n\nlocalhost slots=abc\n",
    );
    let l = refused(&["--hostfile", &hf, p]);
    assert!(l.contains(":4") || l.contains("line 4"), "{l}");
    let hf = hostfile("bad-count", "localhost:zero\n");
    let l = refused(&["--hostfile", &hf, p]);
    assert!(l.contains(":1") || l.contains("line 1"), "{l}");
    let l = refused(&["--hostfile", "/no/such/hostfile", p]);
    assert!(l.contains("/no/such/hostfile"), "{l}");
    let hf = hostfile("empty", "# nothing here\n\n");
    let l = refused(&["--hostfile", &hf, p]);
    assert!(l.contains("no hosts") || l.contains("empty"), "{l}");
}

/// A path that is no list of hosts is refused after a bounded read, not read without end
/// (`/dev/zero` used to grow mprun at 1 GB/s until it was killed).
#[test]
fn a_hostfile_that_never_ends_or_is_not_text_is_refused() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    let start = std::time::Instant::now();
    let l = refused(&["--hostfile", "/dev/zero", p]);
    assert!(
        l.contains("/dev/zero") && l.contains("larger than 16 MiB"),
        "{l}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let long = format!("localhost\n{}\n", "h".repeat(5000));
    let l = refused(&["--hostfile", &hostfile("long-line", &long), p]);
    assert!(
        l.contains("line 2") && l.contains("longer than 4096"),
        "{l}"
    );
    let dir = std::env::temp_dir().join(format!("mpr-cli-{}", std::process::id()));
    let binary = dir.join("binary");
    std::fs::write(&binary, b"localhost\n\xff\xfe\n").unwrap();
    let l = refused(&["--hostfile", binary.to_str().unwrap(), p]);
    assert!(l.contains("line 2") && l.contains("not UTF-8"), "{l}");
}

#[test]
fn too_many_ranks_for_the_slots() {
    let prog = rank_program("t_job");
    let hf = hostfile("two", "localhost slots=2\n");
    let l = refused(&["--hostfile", &hf, "-n", "3", prog.to_str().unwrap(), "env"]);
    assert!(l.contains("slots") || l.contains("oversubscribe"), "{l}");
    // ... which --oversubscribe allows.
    let out = run(
        &[
            "--hostfile",
            &hf,
            "-n",
            "3",
            "--oversubscribe",
            prog.to_str().unwrap(),
            "env",
        ],
        &[],
        None,
        LIMIT,
    );
    assert_eq!(
        out.ok().lines().filter(|l| l.contains(" size=3 ")).count(),
        3
    );
}

#[test]
fn bad_values() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    assert!(refused(&["--timeout", "soon", p]).contains("soon"));
    assert!(refused(&["--map-by", "socket", p]).contains("socket"));
    assert!(refused(&["-x", "", p]).contains("-x"));
}

#[test]
fn hostfile_sample_runs() {
    let prog = rank_program("t_job");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../hostfiles/localhost");
    let out = run(
        &["--hostfile", sample, prog.to_str().unwrap(), "env"],
        &[],
        None,
        LIMIT,
    );
    assert!(out.ok().lines().count() >= 1);
}

#[test]
fn help_and_version() {
    let out = run(&["--help"], &[], None, LIMIT);
    assert!(out.ok().contains("usage: mprun"));
    for (name, _) in mpr::tuning::KNOBS {
        assert!(out.stdout.contains(name), "--help lacks {name}");
    }
    // What a rank is told and what the exit statuses mean, so no one needs another page.
    for what in ["MPR_RANK", "MPR_LOCAL_SIZE", "Exit status", "124", "130"] {
        assert!(out.stdout.contains(what), "--help lacks {what:?}");
    }
    let out = run(&["--version"], &[], None, LIMIT);
    assert!(out.ok().starts_with("mprun "));
}

#[test]
fn bad_tuning_values_are_refused_before_any_rank_starts() {
    let prog = rank_program("t_job");
    let p = prog.to_str().unwrap();
    let out = run(
        &["-n", "2", p, "env"],
        &[("MPR_EAGER_LIMIT", "lots")],
        None,
        LIMIT,
    );
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "a rank ran: {}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("MPR_EAGER_LIMIT") && out.stderr.contains("lots"),
        "{}",
        out.stderr
    );
    let l = refused(&["-n", "2", "-x", "MPR_SPIN_US=-5", p, "env"]);
    assert!(l.contains("MPR_SPIN_US"), "{l}");
}

/// Hosts of a hostfile that get no rank are never looked up (100 names that do not resolve
/// took 15 to 20 s, one after another, before a job of two local ranks could start).
#[test]
fn hosts_without_ranks_are_not_resolved() {
    let prog = rank_program("t_job");
    let mut text = String::from("localhost slots=2\n");
    for i in 0..100 {
        text.push_str(&format!("nohost-{i}.invalid slots=1\n"));
    }
    let hf = hostfile("unused-hosts", &text);
    let out = run(
        &["--hostfile", &hf, "-n", "2", prog.to_str().unwrap(), "env"],
        &[],
        None,
        LIMIT,
    );
    assert!(out.ok().contains("rank=1 size=2"), "{}", out.stderr);
    out.took_less_than(Duration::from_secs(3));
}
