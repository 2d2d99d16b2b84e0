//! What a rank learns from its environment: [`Bootstrap`], read before any socket opens.
//!
//! mprun (or its helper on another host) sets these variables for every rank it starts; the
//! runtime reads them in `mpr::init`. Data first: the whole contract is parsed and checked in
//! one place, so a rank started wrongly fails at once with the variable named, not later with
//! a confusing network error.

use std::fmt;
use std::net::SocketAddr;

use crate::auth::Secret;

/// Rank of this process in the world (`0..MPR_SIZE`).
pub const ENV_RANK: &str = "MPR_RANK";
/// Number of ranks in the job.
pub const ENV_SIZE: &str = "MPR_SIZE";
/// Rank among the ranks on this host.
pub const ENV_LOCAL_RANK: &str = "MPR_LOCAL_RANK";
/// Number of ranks on this host.
pub const ENV_LOCAL_SIZE: &str = "MPR_LOCAL_SIZE";
/// `IP:PORT` of the launcher's rendezvous service.
pub const ENV_RENDEZVOUS: &str = "MPR_RENDEZVOUS";
/// Identifier of the job (a random 64-bit number, decimal); rank-to-rank handshakes check it.
pub const ENV_JOB_ID: &str = "MPR_JOB_ID";
/// IP address the rank's listener binds to (where its peers reach it).
pub const ENV_BIND: &str = "MPR_BIND";
/// Environment variable: "1" when some host of the job runs more ranks than it has cores. Every
/// rank gets the same value, so algorithm choices that depend on it agree job-wide.
pub const ENV_CROWDED: &str = "MPR_CROWDED";
/// Process id of the launcher that started the rank (the rank exits if that process goes away).
pub const ENV_LAUNCHER_PID: &str = "MPR_LAUNCHER_PID";
/// Name of the host the rank runs on, as the launcher knows it (hostfile name).
pub const ENV_HOST: &str = "MPR_HOST";
/// Environment variable: the job's secret (64 hex digits), which every connection proves.
pub const ENV_SECRET: &str = "MPR_SECRET";
/// Environment variable: ranks on this rank's machine, counting other hosts that share it
/// (network namespaces, containers); when it exceeds the cores, waits yield instead of spinning.
pub const ENV_MACHINE_RANKS: &str = "MPR_MACHINE_RANKS";

/// What a rank started by `mprun` learns from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// This rank.
    pub rank: usize,
    /// Ranks in the job.
    pub size: usize,
    /// Rank among this host's ranks.
    pub local_rank: usize,
    /// Ranks on this host.
    pub local_size: usize,
    /// The rendezvous service.
    pub rendezvous: SocketAddr,
    /// The job id.
    pub job_id: u64,
    /// Address to listen on.
    pub bind: std::net::IpAddr,
    /// The launcher's pid, if it runs on this host.
    pub launcher_pid: Option<u32>,
    /// Some host of the job runs more ranks than it has cores (the same on every rank).
    pub crowded: bool,
    /// The name of this rank's host as the launcher knows it; ranks with the same name share a
    /// host and talk over local sockets.
    pub host: Option<String>,
    /// The job's secret (see [`crate::auth`]).
    pub secret: Secret,
    /// Ranks on this rank's machine, hosts that share it included (at least `local_size`).
    pub machine_ranks: usize,
}

impl Bootstrap {
    /// Reads the contract from the environment. `Ok(None)` when the process was not started by
    /// `mprun` (no `MPR_RANK`): the caller makes a singleton world.
    pub fn from_env() -> Result<Option<Bootstrap>, BadEnv> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the contract through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Bootstrap>, BadEnv> {
        if get(ENV_RANK).is_none() {
            return Ok(None);
        }
        let need = |k: &'static str| get(k).ok_or_else(|| bad(k, "is not set"));
        let num = |k: &'static str| -> Result<u64, BadEnv> {
            let v = need(k)?;
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(k, &format!("{v:?} is not a whole number")))
        };
        let rank = num(ENV_RANK)? as usize;
        let size = num(ENV_SIZE)? as usize;
        let local_rank = num(ENV_LOCAL_RANK)? as usize;
        let local_size = num(ENV_LOCAL_SIZE)? as usize;
        if size == 0
            || rank >= size
            || local_size == 0
            || local_rank >= local_size
            || local_size > size
        {
            return Err(bad(
                ENV_RANK,
                &format!(
                    "rank {rank} of {size} (local {local_rank} of {local_size}) is inconsistent"
                ),
            ));
        }
        if size > u32::MAX as usize {
            return Err(bad(ENV_SIZE, "exceeds 2^32 ranks"));
        }
        let rdv = need(ENV_RENDEZVOUS)?;
        let rendezvous = rdv
            .parse()
            .map_err(|_| bad(ENV_RENDEZVOUS, &format!("{rdv:?} is not IP:PORT")))?;
        let job_id = num(ENV_JOB_ID)?;
        let bind = match get(ENV_BIND) {
            Some(b) => b
                .parse()
                .map_err(|_| bad(ENV_BIND, &format!("{b:?} is not an IP address")))?,
            None => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let launcher_pid = match get(ENV_LAUNCHER_PID) {
            Some(_) => Some(num(ENV_LAUNCHER_PID)? as u32),
            None => None,
        };
        let crowded = match get(ENV_CROWDED).as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(bad(ENV_CROWDED, &format!("{other:?} is not 0 or 1"))),
        };
        let secret = match get(ENV_SECRET) {
            Some(s) => {
                Secret::from_hex(&s).ok_or_else(|| bad(ENV_SECRET, "is not 64 hex digits"))?
            }
            None => return Err(bad(ENV_SECRET, "is not set")),
        };
        let machine_ranks = match get(ENV_MACHINE_RANKS) {
            Some(_) => (num(ENV_MACHINE_RANKS)? as usize).max(local_size),
            None => local_size,
        };
        let host = match get(ENV_HOST) {
            Some(h) if !valid_node(&h) => {
                return Err(bad(ENV_HOST, &format!("{h:?} is not a host name")))
            }
            h => h,
        };
        Ok(Some(Bootstrap {
            host,
            rank,
            size,
            local_rank,
            local_size,
            rendezvous,
            job_id,
            bind,
            launcher_pid,
            crowded,
            secret,
            machine_ranks,
        }))
    }

    /// The environment variables that carry this contract, for the launcher to set.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (ENV_RANK, self.rank.to_string()),
            (ENV_SIZE, self.size.to_string()),
            (ENV_LOCAL_RANK, self.local_rank.to_string()),
            (ENV_LOCAL_SIZE, self.local_size.to_string()),
            (ENV_RENDEZVOUS, self.rendezvous.to_string()),
            (ENV_JOB_ID, self.job_id.to_string()),
            (ENV_BIND, self.bind.to_string()),
            (
                ENV_CROWDED,
                if self.crowded { "1" } else { "0" }.to_string(),
            ),
        ];
        if let Some(pid) = self.launcher_pid {
            v.push((ENV_LAUNCHER_PID, pid.to_string()));
        }
        if let Some(h) = &self.host {
            v.push((ENV_HOST, h.clone()));
        }
        v.push((ENV_SECRET, self.secret.to_hex()));
        v.push((ENV_MACHINE_RANKS, self.machine_ranks.to_string()));
        v
    }
}

/// A host name as the rendezvous protocol carries it: one word of at most 255 bytes.
pub(crate) fn valid_node(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && !h.chars().any(char::is_whitespace)
}

/// A variable of the contract that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEnv {
    /// The variable.
    pub var: &'static str,
    /// What is wrong with it, in words ("is not set", "\"x\" is not IP:PORT").
    pub why: String,
}

impl fmt::Display for BadEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "environment variable {} {}", self.var, self.why)
    }
}

impl std::error::Error for BadEnv {}

fn bad(var: &'static str, why: &str) -> BadEnv {
    BadEnv {
        var,
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn environment_contract() {
        let b = Bootstrap {
            rank: 2,
            size: 4,
            local_rank: 2,
            local_size: 4,
            rendezvous: "127.0.0.1:9".parse().unwrap(),
            job_id: 77,
            bind: "127.0.0.1".parse().unwrap(),
            launcher_pid: Some(5),
            crowded: true,
            host: Some("node7".into()),
            secret: Secret::random().unwrap(),
            machine_ranks: 6,
        };
        let env: HashMap<&str, String> = b.to_env().into_iter().collect();
        let got = Bootstrap::from_lookup(|k| env.get(k).cloned())
            .unwrap()
            .unwrap();
        assert_eq!(got, b);
        assert_eq!(Bootstrap::from_lookup(|_| None).unwrap(), None);
        let mut bad_env = env.clone();
        bad_env.insert(ENV_RANK, "4".into());
        assert!(Bootstrap::from_lookup(|k| bad_env.get(k).cloned()).is_err());
        let mut bad_env = env.clone();
        bad_env.insert(ENV_HOST, "two words".into());
        assert!(Bootstrap::from_lookup(|k| bad_env.get(k).cloned()).is_err());
        let mut bad_env = env.clone();
        bad_env.insert(ENV_RENDEZVOUS, "nowhere".into());
        let e = Bootstrap::from_lookup(|k| bad_env.get(k).cloned())
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_RENDEZVOUS), "{e}");
    }
}
