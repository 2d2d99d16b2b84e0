//! `mprun`: starts the ranks of an mpr job and stays with them until they end.
//!
//! The launcher reads as a data flow: [`cli`] -> [`hostfile`] -> [`plan`] -> [`rendezvous`] +
//! [`spawn`] -> [`relay`] / [`signals`] -> [`report`]. This file only wires them.

#![forbid(unsafe_code)]

mod batch;
mod cli;
mod error;
mod helper;
mod hostfile;
mod link;
mod netif;
mod plan;
mod profile;
mod relay;
mod remote;
mod rendezvous;
mod report;
mod signals;
mod spawn;
mod timeline;
mod trace;
mod waits;

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mpr_launch::env::{self as bootstrap, Bootstrap};

use crate::cli::Parsed;
use crate::error::LaunchError;
use crate::hostfile::HostSlots;

fn main() {
    raise_fd_limit();
    if std::env::args().nth(1).as_deref() == Some("--helper") {
        std::process::exit(helper::run());
    }
    trace::start();
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mprun: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// Raises the soft limit of open files to the hard one: mprun (and a helper) holds pipes for
/// every rank it starts and a connection per rank in the rendezvous service, and the ranks,
/// which hold a descriptor per peer (and a stranger's idle connections count against it too),
/// inherit the raised limit from it. Best effort: the old limit stays if the kernel says no.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A fresh random job id (std's hasher keys are random per process).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Is `name` this machine (its host name, or an address of one of its interfaces)? `me` is
/// this machine's host name; `addrs` its interfaces' addresses, listed once for all hosts and
/// only if a host needs them.
fn is_local(name: &str, me: Option<&str>, addrs: &std::sync::OnceLock<Vec<IpAddr>>) -> bool {
    if name == "localhost" || name == "::1" || name.starts_with("127.") {
        return true;
    }
    let by_name = me.is_some_and(|h| h == name || h.split('.').next() == Some(name));
    by_name
        || netif::resolve(name).is_ok_and(|ip| {
            ip.is_loopback() || addrs.get_or_init(netif::local_addresses).contains(&ip)
        })
}

/// How long telling which hosts are this machine may take: names are resolved at once, and
/// one the resolver has not answered for by then is taken for another machine (its launch
/// agent then says whether it can be reached).
const RESOLVE_WITHIN: Duration = Duration::from_secs(10);

/// Which hosts of the plan are this machine, for the hosts that get ranks (`used`); the others
/// are never looked up. Names are resolved in parallel, within [`RESOLVE_WITHIN`] in all.
fn local_hosts(hosts: &[String], used: &[bool], me: Option<&str>) -> Vec<bool> {
    let addrs = std::sync::Arc::new(std::sync::OnceLock::new());
    let (tx, rx) = mpsc::channel();
    let mut waiting = 0;
    for (i, name) in hosts.iter().enumerate().filter(|(i, _)| used[*i]) {
        let (tx, name, me) = (tx.clone(), name.clone(), me.map(str::to_string));
        let addrs = addrs.clone();
        // A thread each: a resolver that never answers holds only its own thread.
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let _ = tx.send((i, is_local(&name, me.as_deref(), &addrs)));
            });
        waiting += usize::from(spawned.is_ok());
    }
    let mut local = vec![false; hosts.len()];
    let until = Instant::now() + RESOLVE_WITHIN;
    while waiting > 0 {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok((i, yes)) => {
                local[i] = yes;
                waiting -= 1;
            }
            Err(_) => break,
        }
    }
    local
}

/// How many agents mprun (and each helper) starts at most by default (`MPR_LAUNCH_FANOUT`).
const LAUNCH_FANOUT: usize = 16;

/// How many agents mprun (and each helper) starts at most; more hosts start as a tree.
fn launch_fanout() -> Result<usize, LaunchError> {
    match std::env::var("MPR_LAUNCH_FANOUT") {
        Err(_) => Ok(LAUNCH_FANOUT),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=1024).contains(&n))
            .ok_or_else(|| {
                LaunchError::Usage(format!(
                    "environment: MPR_LAUNCH_FANOUT={v:?} is not a whole number from 1 to 1024"
                ))
            }),
    }
}

/// The default launch agent: ssh without prompts and without a terminal, and without X11 or
/// agent forwarding even where the user's ssh config turns them on (helpers need neither: X11
/// forwarding runs `xauth` on every host at every launch, and a forwarded agent would hand the
/// user's keys to every host of the job). MPICH's Hydra passes `-x` too.
const DEFAULT_AGENT: &str = "ssh -o BatchMode=yes -T -x -a";

/// Checks the runtime's tuning variables (`MPR_EAGER_LIMIT`, ...) as the ranks will see them:
/// mprun's environment with the `-x` values over it.
fn check_tuning(extra: &[(String, Option<String>)]) -> Result<(), LaunchError> {
    let lookup = |k: &str| -> Option<String> {
        match extra.iter().rev().find(|(name, _)| name == k) {
            Some((_, Some(v))) => Some(v.clone()),
            _ => std::env::var(k).ok(),
        }
    };
    mpr::Tuning::from_lookup(lookup)
        .map(|_| ())
        .map_err(|e| LaunchError::Usage(format!("environment: {e}")))
}

fn run() -> Result<i32, LaunchError> {
    let opts = match cli::parse(std::env::args().skip(1))? {
        Parsed::Run(o) => o,
        Parsed::Help => {
            print!("{}", cli::help());
            println!(
                "\nEnvironment of the ranks (default: what it does; set it, or pass it with -x):"
            );
            for (name, what) in mpr::tuning::KNOBS {
                println!("  {name:<22}{what}");
            }
            println!(
                "  {:<22}{LAUNCH_FANOUT}: at most this many agents started at once; more hosts start as a tree",
                "MPR_LAUNCH_FANOUT"
            );
            print!("{}", cli::AFTER_KNOBS);
            return Ok(0);
        }
        Parsed::Version => {
            println!("mprun {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        Parsed::Completions(shell) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&cli::completions(shell));
            return Ok(0);
        }
    };
    // The ranks inherit mprun's environment: a bad tuning value would fail every rank's
    // `mpr::init` alike, so refuse it here, once, before anything starts. `-x` values too.
    check_tuning(&opts.env)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut allocation = None;
    let (hosts, listed): (Vec<HostSlots>, bool) = match (&opts.hostfile, &opts.hosts) {
        (Some(_), Some(_)) => {
            return Err(LaunchError::Usage(
                "give --hostfile or --host, not both".into(),
            ))
        }
        (Some(f), None) => (hostfile::load(f)?, true),
        (None, Some(h)) => (hostfile::parse_list(h)?, true),
        (None, None) => match batch::from_env(|k| std::env::var(k).ok())? {
            Some((src, hosts)) => {
                allocation = Some(src);
                (hosts, true)
            }
            None => (
                vec![HostSlots {
                    name: "localhost".into(),
                    slots: cores,
                    max_slots: None,
                }],
                false,
            ),
        },
    };
    let np = opts.np.unwrap_or(if listed {
        hosts.iter().map(|h| h.slots).sum()
    } else {
        1
    });
    let plan = plan::build(np, &hosts, opts.map_by, opts.oversubscribe || !listed)?;
    // Hosts with ranks that are not this machine: reached through the launch agent.
    let me = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    let used: Vec<bool> = (0..plan.hosts.len())
        .map(|i| plan.ranks.iter().any(|r| r.host == i))
        .collect();
    let local = local_hosts(&plan.hosts, &used, me.as_deref());
    let remote_hosts: Vec<(usize, String)> = plan
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| !local[*i] && plan.ranks.iter().any(|r| r.host == *i))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    let program = spawn::resolve(&opts.program)?;
    let mut env = Vec::new();
    for (k, v) in &opts.env {
        let v = match v {
            Some(v) => v.clone(),
            None => std::env::var(k).map_err(|_| {
                LaunchError::Usage(format!("-x {k}: {k} is not set in mprun's environment"))
            })?,
        };
        env.push((k.clone(), v));
    }
    if opts.profile {
        env.push((mpr::tuning::ENV_PROFILE.into(), "1".into()));
    }
    if opts.trace.is_some() {
        env.push((mpr::tuning::ENV_TRACE.into(), "1".into()));
    }
    if opts.verbose {
        eprint!("mprun: {np} rank(s) of {}:\n{plan}", program.display());
        trace::enable();
    }

    let (tx, rx) = mpsc::channel();
    signals::install(tx.clone())?;
    let job_id = random_u64();
    // A job on this machine alone stays on loopback; across hosts, ranks here and the
    // rendezvous service listen on the address that reaches the other hosts.
    let ip = match (remote_hosts.first(), &opts.iface) {
        (None, _) => IpAddr::from([127, 0, 0, 1]),
        (Some(_), Some(spec)) => netif::from_spec(spec).map_err(LaunchError::Usage)?,
        (Some((_, h)), None) => netif::resolve(h)
            .and_then(netif::route_to)
            .map_err(LaunchError::Plan)?,
    };
    // The job's secret: every connection to a rank or to the rendezvous service proves it.
    let secret = mpr_launch::Secret::random()
        .map_err(|e| LaunchError::System(format!("cannot draw the job's secret: {e}")))?;
    let service = rendezvous::Service::start(ip, job_id, np, secret.clone(), tx.clone())?;
    let (startup_tx, startup_rx) = mpsc::channel();
    // An agent named by the user wins; inside a Slurm allocation, srun; else ssh.
    let launcher = match (&opts.launch_agent, allocation) {
        (Some(a), _) => remote::Launcher::agent(a),
        (None, Some(batch::Source::Slurm)) => remote::Launcher::Srun,
        (None, _) => remote::Launcher::agent(DEFAULT_AGENT),
    };
    let (helpers, remote_machines) = if remote_hosts.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        remote::connect(
            &remote_hosts,
            &launcher,
            launch_fanout()?,
            opts.tag_output,
            &tx,
            (startup_tx, &startup_rx),
        )?
    };
    let launcher_pid = std::process::id();
    // Which machine each host is (hosts with one kernel share its cores: namespaces,
    // containers), and how many ranks each machine runs: more than its cores is crowded.
    let here = link::Machine::here();
    let machine_of: Vec<link::Machine> = (0..plan.hosts.len())
        .map(|h| match remote_machines.iter().find(|(i, _)| *i == h) {
            Some((_, m)) if !m.boot_id.is_empty() => m.clone(),
            // A machine that did not say: only its own host counts.
            Some((_, m)) => link::Machine {
                boot_id: format!("host {h}"),
                cores: m.cores,
            },
            None => here.clone(),
        })
        .collect();
    let mut on_machine: std::collections::HashMap<&str, usize> = Default::default();
    for p in &plan.ranks {
        *on_machine.entry(&machine_of[p.host].boot_id).or_default() += 1;
    }
    let machine_ranks: Vec<usize> = plan
        .ranks
        .iter()
        .map(|p| on_machine[machine_of[p.host].boot_id.as_str()])
        .collect();
    let crowded = plan
        .ranks
        .iter()
        .zip(&machine_ranks)
        .any(|(p, &n)| n > machine_of[p.host].cores);
    let contract = |rank: usize| {
        let p = &plan.ranks[rank];
        Bootstrap {
            rank,
            size: np,
            local_rank: p.local_rank,
            local_size: p.local_size,
            rendezvous: service.addr(),
            job_id,
            bind: ip,
            launcher_pid: Some(launcher_pid),
            crowded,
            host: Some(plan.hosts[p.host].clone()),
            secret: secret.clone(),
            machine_ranks: machine_ranks[rank],
        }
    };
    let (local_ranks, pipes) = match spawn::start(
        &plan,
        |h| local[h],
        &program,
        &opts.args,
        &env,
        contract,
        &tx,
    ) {
        Ok(r) => r,
        Err(e) => {
            remote::end_all(&helpers);
            return Err(e);
        }
    };
    // What each host's helper needs: the `-x` values, mprun's own MPR_ settings (local ranks
    // inherit them), and the bootstrap contract less what differs per rank or host.
    let common_env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MPR_"))
        .chain(env.iter().cloned())
        .collect();
    let specs = remote_hosts
        .iter()
        .map(|(host, name)| {
            let mine: Vec<(usize, usize)> = plan
                .ranks
                .iter()
                .filter(|p| p.host == *host)
                .map(|p| (p.rank, p.local_rank))
                .collect();
            let mut env = common_env.clone();
            let per_rank = [
                bootstrap::ENV_RANK,
                bootstrap::ENV_LOCAL_RANK,
                bootstrap::ENV_LOCAL_SIZE,
                bootstrap::ENV_BIND,
                bootstrap::ENV_LAUNCHER_PID,
            ];
            env.extend(
                contract(mine[0].0)
                    .to_env()
                    .into_iter()
                    .filter(|(k, _)| !per_rank.contains(k))
                    .map(|(k, v)| (k.to_string(), v)),
            );
            let spec = link::JobSpec {
                program: program.to_string_lossy().into_owned(),
                args: opts.args.clone(),
                cwd: std::env::current_dir()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                iface: opts.iface.clone().unwrap_or_default(),
                env,
                ranks: mine,
            };
            (*host, name.clone(), spec)
        })
        .collect();
    trace::note(|| format!("{} local rank(s) started", local_ranks.len()));
    if let Err(e) = remote::start(&helpers, specs, &startup_rx) {
        for r in &local_ranks {
            r.signal(nix::sys::signal::Signal::SIGKILL);
        }
        return Err(e);
    }
    // Every rank, in rank order: local ones as started, the others through their helper.
    let mut local_iter = local_ranks.into_iter();
    let mut ranks = Vec::with_capacity(np);
    for p in &plan.ranks {
        if local[p.host] {
            ranks.extend(local_iter.next());
        } else if let Some(h) = helpers.iter().find(|h| h.reaches(p.host)) {
            ranks.push(spawn::Rank {
                rank: p.rank,
                host: plan.hosts[p.host].clone(),
                place: spawn::Place::Remote(h.clone()),
                status: None,
            });
        }
    }
    let host_of: Vec<usize> = plan.ranks.iter().map(|p| p.host).collect();
    let mut relays = helpers.len();
    if !local[plan.ranks[0].host] {
        if let Some(h) = helpers.iter().find(|h| h.reaches(plan.ranks[0].host)) {
            relay::stdin(remote::RemoteStdin(h.clone()));
        }
    }
    for (r, p) in pipes {
        relay::output(
            r,
            p.stdout,
            relay::Stream::Stdout,
            opts.tag_output,
            tx.clone(),
        );
        relay::output(
            r,
            p.stderr,
            relay::Stream::Stderr,
            opts.tag_output,
            tx.clone(),
        );
        relays += 2;
        if let Some(stdin) = p.stdin {
            relay::stdin(stdin);
        }
    }
    if let Some(t) = opts.timeout {
        let tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("timeout".into())
            .spawn(move || {
                std::thread::sleep(t);
                let _ = tx.send(report::Event::Timeout);
            });
    }
    drop(tx);
    // On `--timeout`: ask every rank what it waits for, and say who waits on whom.
    let rank_hosts: Vec<String> = plan
        .ranks
        .iter()
        .map(|p| plan.hosts[p.host].clone())
        .collect();
    let on_timeout = || waits::summarize(&service.reports(Duration::from_secs(2)), &rank_hosts);
    let on_ended = |ended: &[usize], how: Option<&str>| service.tell_ended(ended, how);
    let code = report::supervise(&mut ranks, &host_of, &rx, relays, &on_timeout, &on_ended);
    trace::note(|| "every rank ended".into());
    if opts.profile {
        eprint!("{}", profile::table(&service.profiles(), &rank_hosts));
    }
    if let Some(path) = &opts.trace {
        let (timelines, epoch_unix_ns) = service.timelines();
        if let Err(e) = timeline::write(path, &timelines, &rank_hosts, epoch_unix_ns) {
            eprintln!("mprun: {e}");
        }
    }
    remote::end_all(&helpers);
    service.close();
    trace::note(|| "done".into());
    Ok(code)
}
