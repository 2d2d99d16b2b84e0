//! Tuning knobs as data.
//!
//! Every knob has a default chosen by measurement (see BENCHMARKS.md) and an environment override,
//! listed in the README. Tests shrink them (for example a tiny eager limit) so the rendezvous path
//! runs on small buffers.

use crate::error::{Error, Result};
use crate::wire::MAX_EAGER_BYTES;

/// Environment variable: messages of at most this many bytes are sent eagerly.
pub const ENV_EAGER_LIMIT: &str = "MPR_EAGER_LIMIT";
/// Environment variable: longest spin (µs) before a waiting rank sleeps in the poller.
pub const ENV_SPIN_US: &str = "MPR_SPIN_US";
/// Environment variable: SO_SNDBUF/SO_RCVBUF in bytes for rank-to-rank sockets (0: kernel autotuning).
pub const ENV_SOCKET_BUFFER: &str = "MPR_SOCKET_BUFFER";
/// Environment variable: reductions of at least this many elements run on rayon's threads
/// (when this host has fewer ranks than cores); 0 never.
pub const ENV_PAR_REDUCE: &str = "MPR_PAR_REDUCE";
/// Environment variable: communicators of at most this many ranks use flat collectives for small
/// messages when ranks outnumber cores; 0 never.
pub const ENV_FLAT_RANKS: &str = "MPR_FLAT_RANKS";
/// Environment variable: broadcasts of at least this many bytes use scatter + ring allgather.
pub const ENV_BCAST_LARGE: &str = "MPR_BCAST_LARGE";
/// Environment variable: `shm` (the default), `unix` or `tcp`: how ranks of one host talk to each
/// other (rings in shared memory, local sockets, or loopback TCP as between hosts).
pub const ENV_LOCAL: &str = "MPR_LOCAL";
/// Environment variable: `1` (the default) or `0`: may a rank copy a large message out of the
/// memory of a sender on its host?
pub const ENV_PULL: &str = "MPR_PULL";

/// Environment variable: rendezvous messages between ranks of one host of at least this many
/// bytes are copied once between the processes (`MPR_PULL`); smaller ones stream through the
/// pair's shared-memory ring, which is faster up to about a megabyte while both ranks run
/// (BENCHMARKS.md, "Issue 17"). Ranks that outnumber the cores always copy once.
pub const ENV_PULL_FROM: &str = "MPR_PULL_FROM";
/// Environment variable: `1` (the default) or `0`: may communicators whose ranks all run on one
/// host take barrier, small broadcasts and small allreduces through shared memory?
pub const ENV_NODE_COLL: &str = "MPR_NODE_COLL";
/// Environment variable: allreduce vectors of at least this many bytes use Rabenseifner's
/// algorithm instead of recursive doubling.
pub const ENV_ALLREDUCE_LARGE: &str = "MPR_ALLREDUCE_LARGE";

/// Environment variable: bytes of unexpected eager messages a rank may be made to hold, shared
/// among its peers; past a peer's share, its messages travel by rendezvous (engine/credit.rs).
pub const ENV_UNEXPECTED_LIMIT: &str = "MPR_UNEXPECTED_LIMIT";

/// Environment variable: `1` makes every collective first check that all ranks called it
/// alike (coll/check.rs); `0` (the default) does not.
pub const ENV_CHECK: &str = "MPR_CHECK";

/// Environment variable: `1` makes every rank count its calls (operation, bytes, time) and
/// tell mprun at its finalize, for `mprun --profile`, which sets it; `0` (the default) does
/// not (then the counting costs one branch per call).
pub const ENV_PROFILE: &str = "MPR_PROFILE";

/// Environment variable: set (to anything but `0` or nothing) makes every rank keep its calls
/// as they happen (operation, start, duration, bytes) and hand them to mprun at its finalize,
/// for `mprun --trace FILE`, which sets it (mprun also reads it: `MPR_TRACE=FILE mprun ...`
/// is `mprun --trace FILE ...`).
pub const ENV_TRACE: &str = "MPR_TRACE";

/// Every knob, with its default and what it does, in a line each (`mprun --help` lists them;
/// the README's table says more).
pub const KNOBS: [(&str, &str); 15] = [
    (ENV_EAGER_LIMIT, "65536: messages up to this many bytes go eagerly, larger ones by request-to-send"),
    (ENV_UNEXPECTED_LIMIT, "67108864: bytes a rank buffers for eager messages not yet asked for, shared among its peers"),
    (ENV_SPIN_US, "200: longest a waiting rank polls before it sleeps (0: never spins)"),
    (ENV_SOCKET_BUFFER, "0: SO_SNDBUF/SO_RCVBUF of rank-to-rank sockets (0: the kernel's autotuning)"),
    (ENV_LOCAL, "shm: how ranks of one host talk, shm (shared-memory rings), unix (local sockets) or tcp"),
    (ENV_PULL, "1: large messages within a host are copied once between the processes (0: by socket)"),
    (ENV_PULL_FROM, "32768: messages within a host this large are copied once (by rendezvous, whatever the eager limit), smaller ones stream through the ring (rendezvous ones always copied once when ranks outnumber cores)"),
    (ENV_NODE_COLL, "1: barrier, broadcasts and allreduces within a host by shared memory"),
    (ENV_FLAT_RANKS, "16: up to this many ranks, flat small collectives when ranks outnumber cores"),
    (ENV_PAR_REDUCE, "262144: reductions of this many elements run on rayon's threads when cores are free"),
    (ENV_BCAST_LARGE, "524288 unless crowded: broadcasts of this many bytes use scatter + allgather"),
    (ENV_ALLREDUCE_LARGE, "65536: allreduces of this many bytes use reduce-scatter + allgather"),
    (ENV_CHECK, "0: 1 checks that every rank called each collective alike, naming the one that did not"),
    (ENV_PROFILE, "0: 1 counts each rank's calls for mprun --profile (which sets it)"),
    (ENV_TRACE, "unset: set, each rank keeps its calls as they happen for mprun --trace FILE (which sets it)"),
];

/// The knobs of one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Largest message sent eagerly (header and payload at once); larger ones use
    /// request-to-send / clear-to-send so that the receiver never buffers them.
    pub eager_limit: usize,
    /// Messages between ranks of one host of at least this many bytes (and 4 KiB) are copied
    /// once between the processes, by rendezvous even below the eager limit; smaller ones
    /// stream through the pair's ring (while ranks do not outnumber the cores).
    pub pull_from: usize,
    /// Longest a wait spins (polling without sleeping) before it sleeps in `epoll_wait`, in
    /// microseconds. The waiter adapts below this bound; 0 never spins.
    pub max_spin_us: u32,
    /// Socket send/receive buffer size; 0 leaves the kernel's autotuning on.
    pub socket_buffer: usize,
    /// Bytes read from a connection at once while looking for a header: small messages arrive
    /// with their header in one system call (and are copied once from this read-ahead); larger
    /// payloads are read straight into their destination.
    pub read_ahead: usize,
    /// Allreduce vectors of at least this many bytes use reduce-scatter + allgather.
    pub allreduce_large: usize,
    /// Local reductions of at least this many elements run on rayon's threads, when the host
    /// has fewer ranks than cores (otherwise the other ranks already use the cores); 0: never.
    /// Measured on 2 cores (`fold_timing` in coll/op.rs): folding 4 Mi f32 takes 3.5-3.7 ms on
    /// one thread and 2.4-2.6 ms on rayon; from 256 Ki elements (1 MiB of f32) the split pays.
    pub par_reduce: usize,
    /// Communicators of at most this many ranks use flat (root-centred) barrier, broadcast and
    /// allreduce for small messages when this host has more ranks than cores; 0: never.
    pub flat_ranks: usize,
    /// Broadcasts of at least this many bytes (on more than 2 ranks) use scatter + ring
    /// allgather instead of a binomial tree. `None` (not set): 512 KiB (MPICH's long-message
    /// threshold) when no host of the job has more ranks than cores, never otherwise: with 3, 4
    /// or 8 ranks on 2 cores the tree won at every size from 64 KiB to 16 MiB (BENCHMARKS.md),
    /// since there the cores, not the links, are what the ranks share.
    pub bcast_large: Option<usize>,
    /// Ranks of one host talk over Unix-domain sockets (true) or loopback TCP, like ranks on
    /// different hosts (false). The local socket halves small-message latency (see
    /// `transport/net/stream.rs`); TCP is there to measure against and to test the TCP path on
    /// one machine.
    pub local_unix: bool,
    /// Frames between ranks of one host travel through a ring in shared memory once their local
    /// socket is up (`transport/shm`); the socket stays for set-up, wake-ups and the peer's end.
    /// Needs `local_unix`.
    pub local_shm: bool,
    /// Large messages between ranks of one host (over local sockets) are copied by the receiver
    /// straight out of the sender's memory (`process_vm_readv`: one copy) instead of through
    /// the socket (two). Off: through the socket, as between hosts.
    pub pull: bool,
    /// Communicators whose ranks all run on this host take barrier, broadcast and allreduce
    /// through shared memory (`coll/node.rs`, and `coll/node/large.rs` above 8 KiB) instead of
    /// messages.
    /// Off: every collective is built on point-to-point messages, as between hosts.
    pub node_coll: bool,
    /// Bytes of eager messages a rank may have to buffer for receives not yet posted, in all:
    /// each other rank may have `unexpected_limit / (size - 1)` eager bytes in flight toward it,
    /// and its messages beyond that go by rendezvous (only a queue entry waits at the receiver)
    /// until receives take what it sent. 0: every message goes by rendezvous.
    pub unexpected_limit: u64,
    /// Every collective first agrees on its signature across the communicator (which
    /// collective, root, operator, element type and count): a mismatch is an error at every
    /// rank naming the rank that differs, instead of errors at some and a hang at the others.
    pub check: bool,
    /// Count every call (`observe.rs`) and tell mprun at finalize (`mprun --profile`).
    pub profile: bool,
    /// Keep every call as it happened and hand them to mprun at finalize (`mprun --trace`).
    pub trace: bool,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            eager_limit: 64 << 10,
            pull_from: 32 << 10,
            max_spin_us: 200,
            socket_buffer: 0,
            read_ahead: 16 << 10,
            allreduce_large: 64 << 10,
            par_reduce: 1 << 18,
            flat_ranks: 16,
            bcast_large: None,
            local_unix: true,
            local_shm: true,
            pull: true,
            node_coll: true,
            unexpected_limit: 64 << 20,
            check: false,
            profile: false,
            trace: false,
        }
    }
}

impl Tuning {
    /// Defaults with the environment's overrides applied.
    pub fn from_env() -> Result<Tuning> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Defaults with the overrides that `get` finds (the environment, or a map in tests and in
    /// mprun, which checks the ranks' environment before it starts them).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Tuning> {
        let mut t = Tuning::default();
        if let Some(v) = env_number(&get, ENV_EAGER_LIMIT, MAX_EAGER_BYTES)? {
            t.eager_limit = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_PULL_FROM, u64::MAX)? {
            t.pull_from = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_SPIN_US, 10_000_000)? {
            t.max_spin_us = v as u32;
        }
        if let Some(v) = env_number(&get, ENV_SOCKET_BUFFER, 1 << 30)? {
            t.socket_buffer = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_BCAST_LARGE, u64::MAX)? {
            t.bcast_large = Some(v as usize);
        }
        if let Some(v) = env_number(&get, ENV_FLAT_RANKS, 1 << 20)? {
            t.flat_ranks = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_PAR_REDUCE, u64::MAX)? {
            t.par_reduce = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_ALLREDUCE_LARGE, u64::MAX)? {
            t.allreduce_large = v as usize;
        }
        if let Some(v) = env_number(&get, ENV_UNEXPECTED_LIMIT, 1 << 48)? {
            t.unexpected_limit = v;
        }
        match get(ENV_LOCAL).as_deref().map(str::trim) {
            None | Some("shm") => {}
            Some("unix") => t.local_shm = false,
            Some("tcp") => (t.local_unix, t.local_shm) = (false, false),
            Some(other) => {
                return Err(Error::InvalidArgument {
                    what: ENV_LOCAL,
                    detail: format!("{other:?} is not shm, unix or tcp"),
                })
            }
        }
        if let Some(v) = env_switch(&get, ENV_PULL, "1", "0")? {
            t.pull = v;
        }
        if let Some(v) = env_switch(&get, ENV_NODE_COLL, "1", "0")? {
            t.node_coll = v;
        }
        if let Some(v) = env_switch(&get, ENV_CHECK, "1", "0")? {
            t.check = v;
        }
        if let Some(v) = env_switch(&get, ENV_PROFILE, "1", "0")? {
            t.profile = v;
        }
        if let Some(v) = get(ENV_TRACE) {
            t.trace = !v.is_empty() && v != "0";
        }
        Ok(t)
    }
}

/// A two-way knob: `Some(true)` when set to `on`, `Some(false)` to `off`, `None` when unset.
fn env_switch(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    on: &str,
    off: &str,
) -> Result<Option<bool>> {
    match get(name).as_deref().map(str::trim) {
        None => Ok(None),
        Some(v) if v == on => Ok(Some(true)),
        Some(v) if v == off => Ok(Some(false)),
        Some(other) => Err(Error::InvalidArgument {
            what: name,
            detail: format!("{other:?} is not {on} or {off}"),
        }),
    }
}

fn env_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    max: u64,
) -> Result<Option<u64>> {
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(v) if v <= max => Ok(Some(v)),
        _ => Err(Error::InvalidArgument {
            what: name,
            detail: format!("{raw:?} is not a whole number from 0 to {max}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Tuning> {
        Tuning::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn every_knob_is_listed_once() {
        let names: Vec<&str> = KNOBS.iter().map(|(n, _)| *n).collect();
        for n in &names {
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n}");
            if *n == ENV_TRACE {
                // Any value but 0 or nothing turns it on (mprun's own use is a file name).
                assert!(with(&[(n, "x")]).unwrap().trace);
                assert!(!with(&[(n, "0")]).unwrap().trace);
                continue;
            }
            // Each one is read: a bad value of it is refused by name.
            let e = with(&[(n, "x")]).unwrap_err().to_string();
            assert!(e.contains(n), "{e}");
        }
    }

    #[test]
    fn switches_take_their_two_words_and_nothing_else() {
        let d = with(&[]).unwrap();
        assert!(d.local_unix && d.pull && d.node_coll);
        let t = with(&[(ENV_LOCAL, "tcp"), (ENV_PULL, " 0 "), (ENV_NODE_COLL, "0")]).unwrap();
        assert!(!t.local_unix && !t.local_shm && !t.pull && !t.node_coll);
        let t = with(&[(ENV_LOCAL, "unix"), (ENV_PULL, "1")]).unwrap();
        assert!(t.local_unix && !t.local_shm);
        let t = with(&[(ENV_LOCAL, " shm")]).unwrap();
        assert!(t.local_unix && t.local_shm);
        assert_eq!(d.pull_from, 32 << 10);
        assert_eq!(with(&[(ENV_PULL_FROM, "0")]).unwrap().pull_from, 0);
        for (k, v) in [
            (ENV_LOCAL, "ring"),
            (ENV_PULL, "yes"),
            (ENV_NODE_COLL, "on"),
            (ENV_EAGER_LIMIT, "-1"),
            (ENV_UNEXPECTED_LIMIT, "64M"),
        ] {
            let e = with(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
