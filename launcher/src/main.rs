//! `mprun`: starts the ranks of an mpr job and stays with them until they end.
//!
//! The launcher reads as a data flow: [`cli`] -> [`hostfile`] -> [`plan`] -> [`rendezvous`] +
//! [`spawn`] -> [`relay`] / [`signals`] -> [`report`]. This file only wires them.

#![forbid(unsafe_code)]

mod cli;
mod error;
mod hostfile;
mod plan;
mod relay;
mod rendezvous;
mod report;
mod signals;
mod spawn;

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::mpsc;

use mpr::bootstrap::Bootstrap;

use crate::cli::Parsed;
use crate::error::LaunchError;
use crate::hostfile::HostSlots;

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mprun: {e}");
            2
        }
    };
    std::process::exit(code);
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

/// Is `name` this machine?
fn is_local(name: &str) -> bool {
    if name == "localhost" || name == "::1" || name.starts_with("127.") {
        return true;
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .is_some_and(|h| h == name || h.split('.').next() == Some(name))
}

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
            print!("{}", cli::USAGE);
            return Ok(0);
        }
        Parsed::Version => {
            println!("mprun {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
    };
    // The ranks inherit mprun's environment: a bad tuning value would fail every rank's
    // `mpr::init` alike, so refuse it here, once, before anything starts. `-x` values too.
    check_tuning(&opts.env)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (hosts, listed): (Vec<HostSlots>, bool) = match (&opts.hostfile, &opts.hosts) {
        (Some(_), Some(_)) => {
            return Err(LaunchError::Usage(
                "give --hostfile or --host, not both".into(),
            ))
        }
        (Some(f), None) => (hostfile::load(f)?, true),
        (None, Some(h)) => (hostfile::parse_list(h)?, true),
        (None, None) => (
            vec![HostSlots {
                name: "localhost".into(),
                slots: cores,
                max_slots: None,
            }],
            false,
        ),
    };
    let np = opts.np.unwrap_or(if listed {
        hosts.iter().map(|h| h.slots).sum()
    } else {
        1
    });
    let plan = plan::build(np, &hosts, opts.map_by, opts.oversubscribe || !listed)?;
    if let Some(h) = plan
        .hosts
        .iter()
        .enumerate()
        .find(|(i, h)| !is_local(h) && plan.ranks.iter().any(|r| r.host == *i))
    {
        return Err(LaunchError::Plan(format!(
            "host {}: this mprun starts ranks on this machine only; launching on other hosts is not supported yet",
            h.1
        )));
    }
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
    if opts.verbose {
        eprint!("mprun: {np} rank(s) of {}:\n{plan}", program.display());
    }

    let (tx, rx) = mpsc::channel();
    signals::install(tx.clone())?;
    let job_id = random_u64();
    let ip = IpAddr::from([127, 0, 0, 1]);
    let service = rendezvous::Service::start(ip, job_id, np, tx.clone())?;
    let launcher_pid = std::process::id();
    // Every host here is this machine: the job is crowded when it runs more ranks than cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let crowded = plan.ranks.iter().any(|r| r.local_size > cores);
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
        }
    };
    let (mut ranks, pipes) = spawn::start(&plan, &program, &opts.args, &env, contract, &tx)?;
    let mut relays = 0;
    for (r, p) in pipes.into_iter().enumerate() {
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
    let code = report::supervise(&mut ranks, &rx, relays);
    service.close();
    Ok(code)
}
