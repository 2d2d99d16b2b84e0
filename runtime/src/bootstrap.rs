//! The launch contract between `mprun` and the ranks it starts.
//!
//! This is the only part of the runtime the launcher imports. It has two halves:
//!
//! - [`Bootstrap`]: what a rank learns from its environment (its rank, the job size, where the
//!   launcher's rendezvous service listens, the job id). Built from data before any socket opens.
//! - The rendezvous protocol: one line of text per message over TCP, in both directions
//!   ([`Request`], [`Reply`]). A rank registers the address it listens on; when it first needs a
//!   peer, it asks for that peer's address (the service answers once the peer has registered).
//!   Connections between ranks are thus made on first use, and no rank ever learns the whole
//!   address table: start-up stays O(1) per rank however large the job.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use crate::auth::Secret;
use crate::auth::{hex, rendezvous_proof, unhex, PROOF_LEN};
use crate::error::{Error, Result};

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

/// Longest line either side of the rendezvous protocol accepts.
pub const MAX_LINE: usize = 512;

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
    /// The job's secret (see `auth.rs`).
    pub secret: Secret,
    /// Ranks on this rank's machine, hosts that share it included (at least `local_size`).
    pub machine_ranks: usize,
}

impl Bootstrap {
    /// Reads the contract from the environment. `Ok(None)` when the process was not started by
    /// `mprun` (no `MPR_RANK`): the caller makes a singleton world.
    pub fn from_env() -> Result<Option<Bootstrap>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the contract through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Bootstrap>> {
        if get(ENV_RANK).is_none() {
            return Ok(None);
        }
        let need = |k: &'static str| get(k).ok_or_else(|| bad(k, "is not set"));
        let num = |k: &'static str| -> Result<u64> {
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
fn valid_node(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && !h.chars().any(char::is_whitespace)
}

fn bad(var: &str, why: &str) -> Error {
    Error::Bootstrap {
        what: format!("environment variable {var} {why}"),
    }
}

/// A message from a rank to the rendezvous service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// First message on the connection: who is speaking.
    Hello {
        /// The job id the rank was given.
        job_id: u64,
        /// The rank.
        rank: usize,
        /// Its answer to the service's challenge (see `auth.rs`).
        proof: [u8; PROOF_LEN],
    },
    /// The address this rank listens on.
    Register {
        /// Listening address.
        addr: SocketAddr,
        /// The host it runs on, when it also listens for that host's ranks on a local socket.
        node: Option<String>,
    },
    /// Where does `rank` listen? Answered with [`Reply::Addr`] once it has registered.
    Lookup {
        /// The rank asked about.
        rank: usize,
    },
    /// The rank called `abort(code)`: end the job with that exit code.
    Abort {
        /// The exit code.
        code: i32,
    },
    /// The rank finalized cleanly.
    Bye,
    /// Answer to [`Reply::Report`], one line per thing the rank waits for: on `peer` (a world
    /// rank), or on no one rank in particular.
    Blocked {
        /// The rank waited on.
        peer: Option<usize>,
        /// What for, in words.
        what: String,
    },
    /// The end of a report.
    End,
    /// An operation of this rank failed because world rank `rank` is gone: should this rank
    /// fail too, it is that rank's victim, not the cause.
    Gone {
        /// The rank whose failure this rank saw.
        rank: usize,
    },
}

/// A message from the rendezvous service to a rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The address of a rank.
    Addr {
        /// The rank.
        rank: usize,
        /// Where it listens.
        addr: SocketAddr,
        /// Its host, when it listens on a local socket too (see [`Request::Register`]).
        node: Option<String>,
    },
    /// Say what you are waiting for (`--timeout` expired): answered with [`Request::Blocked`]
    /// lines and [`Request::End`].
    Report,
    /// Rank `rank` ended (`how`, in words): operations on it cannot complete.
    Failed {
        /// The rank (in the world).
        rank: usize,
        /// How it ended.
        how: String,
    },
    /// Rank `rank` ended normally (exit code 0): operations that need it cannot complete.
    Finished {
        /// The rank (in the world).
        rank: usize,
    },
    /// The service's first line: prove the job's secret by answering this.
    Challenge {
        /// Random bytes.
        challenge: [u8; PROOF_LEN],
    },
    /// The hello was proven: the connection is the rank's (so the rank knows its hello was
    /// not lost with a connection the service dropped).
    Welcome,
    /// The request was refused.
    Refused {
        /// Why (one line).
        reason: String,
    },
}

/// A line that is not a valid rendezvous message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed rendezvous message: {}", self.0)
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Hello {
                job_id,
                rank,
                proof,
            } => write!(f, "HELLO {job_id} {rank} {}", hex(proof)),
            Request::Register { addr, node } => {
                write!(f, "REGISTER {addr}{}", with_node(node))
            }
            Request::Lookup { rank } => write!(f, "LOOKUP {rank}"),
            Request::Abort { code } => write!(f, "ABORT {code}"),
            Request::Bye => write!(f, "BYE"),
            Request::Blocked { peer, what } => match peer {
                Some(p) => write!(f, "BLOCKED {p} {}", what.replace('\n', " ")),
                None => write!(f, "BLOCKED - {}", what.replace('\n', " ")),
            },
            Request::End => write!(f, "END"),
            Request::Gone { rank } => write!(f, "GONE {rank}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Addr { rank, addr, node } => {
                write!(f, "ADDR {rank} {addr}{}", with_node(node))
            }
            Reply::Challenge { challenge } => write!(f, "CHALLENGE {}", hex(challenge)),
            Reply::Report => write!(f, "REPORT"),
            Reply::Welcome => write!(f, "WELCOME"),
            Reply::Failed { rank, how } => write!(f, "FAILED {rank} {}", how.replace('\n', " ")),
            Reply::Finished { rank } => write!(f, "FINISHED {rank}"),
            Reply::Refused { reason } => write!(f, "REFUSED {}", reason.replace('\n', " ")),
        }
    }
}

fn with_node(node: &Option<String>) -> String {
    node.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
}

/// The optional host name at `args[i]`.
fn node_arg(args: &[String], i: usize) -> std::result::Result<Option<String>, ParseError> {
    match args.get(i) {
        None => Ok(None),
        Some(n) if valid_node(n) => Ok(Some(n.clone())),
        Some(n) => Err(ParseError(format!("bad host name {n:?}"))),
    }
}

/// A proof or challenge: [`PROOF_LEN`] bytes in hex.
fn bytes_arg(word: &str, what: &str) -> std::result::Result<[u8; PROOF_LEN], ParseError> {
    unhex(word, PROOF_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| ParseError(format!("bad {what}")))
}

fn words(line: &str) -> std::result::Result<(String, Vec<String>), ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err(ParseError(format!("line of {} bytes", line.len())));
    }
    let mut it = line.split(' ');
    let verb = it.next().unwrap_or("").to_string();
    Ok((verb, it.map(str::to_string).collect()))
}

fn arg<T: std::str::FromStr>(
    args: &[String],
    i: usize,
    what: &str,
) -> std::result::Result<T, ParseError> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ParseError(format!("missing or bad {what}")))
}

impl Request {
    /// Parses one line (with or without its newline).
    pub fn parse(line: &str) -> std::result::Result<Request, ParseError> {
        let (verb, a) = words(line)?;
        let expect = |n: usize| {
            if a.len() == n {
                Ok(())
            } else {
                Err(ParseError(format!("{verb} takes {n} arguments")))
            }
        };
        Ok(match verb.as_str() {
            "HELLO" => {
                expect(3)?;
                Request::Hello {
                    job_id: arg(&a, 0, "job id")?,
                    rank: arg(&a, 1, "rank")?,
                    proof: bytes_arg(&a[2], "proof")?,
                }
            }
            "REGISTER" if a.len() == 1 || a.len() == 2 => Request::Register {
                addr: arg(&a, 0, "address")?,
                node: node_arg(&a, 1)?,
            },
            "BLOCKED" if !a.is_empty() => Request::Blocked {
                peer: match a[0].as_str() {
                    "-" => None,
                    p => Some(
                        p.parse()
                            .map_err(|_| ParseError(format!("bad rank {p:?}")))?,
                    ),
                },
                what: a[1..].join(" "),
            },
            "END" if a.is_empty() => Request::End,
            "LOOKUP" => {
                expect(1)?;
                Request::Lookup {
                    rank: arg(&a, 0, "rank")?,
                }
            }
            "ABORT" => {
                expect(1)?;
                Request::Abort {
                    code: arg(&a, 0, "exit code")?,
                }
            }
            "BYE" => {
                expect(0)?;
                Request::Bye
            }
            "GONE" => {
                expect(1)?;
                Request::Gone {
                    rank: arg(&a, 0, "rank")?,
                }
            }
            _ => {
                return Err(ParseError(format!(
                    "unknown verb or bad arguments: {verb:?}"
                )))
            }
        })
    }
}

impl Reply {
    /// Parses one line (with or without its newline).
    pub fn parse(line: &str) -> std::result::Result<Reply, ParseError> {
        let (verb, a) = words(line)?;
        Ok(match verb.as_str() {
            "ADDR" if a.len() == 2 || a.len() == 3 => Reply::Addr {
                rank: arg(&a, 0, "rank")?,
                addr: arg(&a, 1, "address")?,
                node: node_arg(&a, 2)?,
            },
            "REPORT" if a.is_empty() => Reply::Report,
            "WELCOME" if a.is_empty() => Reply::Welcome,
            "FAILED" if !a.is_empty() => Reply::Failed {
                rank: arg(&a, 0, "rank")?,
                how: a[1..].join(" "),
            },
            "FINISHED" if a.len() == 1 => Reply::Finished {
                rank: arg(&a, 0, "rank")?,
            },
            "CHALLENGE" if a.len() == 1 => Reply::Challenge {
                challenge: bytes_arg(&a[0], "challenge")?,
            },
            "REFUSED" => Reply::Refused {
                reason: a.join(" "),
            },
            _ => return Err(ParseError(format!("unexpected reply {verb:?}"))),
        })
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes. `Ok(None)` at end of stream.
pub fn read_line<R: BufRead>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = Read::take(&mut *r, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long or cut short",
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "line is not UTF-8"))
}

/// How long a rank may take to join the rendezvous service, attempts included.
pub const JOIN_WITHIN: Duration = Duration::from_secs(60);

/// A rank's connection to the rendezvous service: blocking, request/reply, used rarely (once at
/// start-up and once per new peer), so it stays outside the progress engine.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The start of a request line read without blocking (see [`Client::take_request`]).
    partial: Vec<u8>,
    /// Requests that came while `lookup` waited for its answer.
    stash: Vec<Reply>,
}

impl Client {
    /// Connects, says hello and registers `listen` (and `node`: see [`Request::Register`]).
    ///
    /// Every step has a deadline and a failed attempt is made again, for [`JOIN_WITHIN`] in
    /// all: on a lossy network a TCP handshake can leave a connection established on this side
    /// only (the service never sees it, and nothing ever arrives), a challenge or a hello can
    /// be slow enough for the service to drop the connection, and neither may hang the rank.
    pub(crate) fn connect(
        boot: &Bootstrap,
        listen: SocketAddr,
        node: Option<String>,
    ) -> Result<Client> {
        let start = std::time::Instant::now();
        let mut tries = 0u32;
        loop {
            let wait = Duration::from_secs(2 << tries.min(3));
            match Self::try_connect(boot, wait) {
                Ok(mut c) => {
                    c.send(&Request::Register { addr: listen, node })?;
                    return Ok(c);
                }
                Err(why) if start.elapsed() + wait >= JOIN_WITHIN => {
                    return Err(Error::Bootstrap {
                        what: format!(
                            "rendezvous service at {}: no answer in {} s ({} attempts; the last: {why})",
                            boot.rendezvous,
                            JOIN_WITHIN.as_secs(),
                            tries + 1
                        ),
                    })
                }
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100 << tries.min(3)));
                }
            }
        }
    }

    /// One attempt: connect, read the challenge, say hello, read the welcome, each within
    /// `wait`.
    fn try_connect(boot: &Bootstrap, wait: Duration) -> std::result::Result<Client, String> {
        let stream = TcpStream::connect_timeout(&boot.rendezvous, wait)
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|_| stream.set_read_timeout(Some(wait)))
            .map_err(|e| format!("socket options: {e}"))?;
        let writer = stream
            .try_clone()
            .map_err(|e| format!("clone socket: {e}"))?;
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
            partial: Vec::new(),
            stash: Vec::new(),
        };
        // The service speaks first: a challenge, which the hello answers.
        let challenge = match c.read_reply("its challenge")? {
            Reply::Challenge { challenge } => challenge,
            other => return Err(format!("{other} where a challenge was due")),
        };
        c.send(&Request::Hello {
            job_id: boot.job_id,
            rank: boot.rank,
            proof: rendezvous_proof(&boot.secret, boot.job_id, boot.rank, &challenge),
        })
        .map_err(|e| e.to_string())?;
        loop {
            match c.read_reply("its welcome")? {
                Reply::Welcome => break,
                // Ranks that ended before this one joined: for the poller.
                r @ (Reply::Failed { .. } | Reply::Finished { .. } | Reply::Report) => {
                    c.stash.push(r)
                }
                other => return Err(format!("{other} where a welcome was due")),
            }
        }
        c.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| format!("socket options: {e}"))?;
        Ok(c)
    }

    /// The next line from the service, as a reply; `what` names it in errors.
    fn read_reply(&mut self, what: &str) -> std::result::Result<Reply, String> {
        match read_line(&mut self.reader) {
            Ok(Some(line)) => Reply::parse(&line).map_err(|e| e.to_string()),
            Ok(None) => Err(format!("closed before {what}")),
            Err(e) => Err(format!("waiting for {what}: {e}")),
        }
    }

    pub(crate) fn send(&mut self, req: &Request) -> Result<()> {
        let line = format!("{req}\n");
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::Bootstrap {
                what: format!("rendezvous service: sending {req}: {e}"),
            })
    }

    /// Asks the launcher to end the job with `code`, then waits (at most a second) for it to
    /// close this connection, so that the launcher has the abort on record before this process
    /// exits.
    pub(crate) fn abort(&mut self, code: i32) {
        if self.send(&Request::Abort { code }).is_ok() {
            let _ = self
                .reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(1)));
            while let Ok(Some(_)) = read_line(&mut self.reader) {}
        }
    }

    /// The socket, for the poller to watch for the service's requests ([`Client::take_request`]).
    pub(crate) fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// A request from the service ([`Reply::Report`]), if one has arrived: read without
    /// blocking (replies to lookups are read by `lookup` itself, which waits for them).
    pub(crate) fn take_request(&mut self) -> Option<Reply> {
        if !self.stash.is_empty() {
            return Some(self.stash.remove(0));
        }
        self.reader.get_ref().set_nonblocking(true).ok()?;
        let line = self.read_line_now();
        let _ = self.reader.get_ref().set_nonblocking(false);
        Reply::parse(&line?).ok()
    }

    /// A whole line if one has arrived, without blocking; a part of a line is kept for the next
    /// call (a line may arrive in pieces).
    fn read_line_now(&mut self) -> Option<String> {
        loop {
            let avail = match self.reader.fill_buf() {
                Ok([]) => return None, // the service closed the connection
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None, // nothing more now
            };
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            self.partial.extend_from_slice(&avail[..take]);
            self.reader.consume(take);
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
                return None;
            }
            if done {
                let line = String::from_utf8(std::mem::take(&mut self.partial)).ok();
                return line;
            }
        }
    }

    /// Whether requests wait in the stash (see [`Client::take_request`]).
    pub(crate) fn has_stash(&self) -> bool {
        !self.stash.is_empty()
    }

    /// Sends a report: what this rank waits for.
    pub(crate) fn report(&mut self, waits: &[(Option<usize>, String)]) {
        for (peer, what) in waits {
            let _ = self.send(&Request::Blocked {
                peer: *peer,
                what: what.clone(),
            });
        }
        let _ = self.send(&Request::End);
    }

    /// The address of `rank` (and its host, if it listens locally too), waiting until it has
    /// registered.
    pub(crate) fn lookup(
        &mut self,
        rank: usize,
    ) -> std::result::Result<(SocketAddr, Option<String>), String> {
        self.send(&Request::Lookup { rank })
            .map_err(|e| e.to_string())?;
        loop {
            let line = read_line(&mut self.reader)
                .map_err(|e| format!("rendezvous service: {e}"))?
                .ok_or_else(|| "rendezvous service closed the connection".to_string())?;
            return match Reply::parse(&line).map_err(|e| e.to_string())? {
                Reply::Addr {
                    rank: r,
                    addr,
                    node,
                } if r == rank => Ok((addr, node)),
                Reply::Addr { rank: r, .. } => {
                    Err(format!("asked for rank {rank}, told about rank {r}"))
                }
                Reply::Refused { reason } => Err(reason),
                // The service's own requests may come first: kept for the poller.
                r @ (Reply::Report | Reply::Failed { .. } | Reply::Finished { .. }) => {
                    self.stash.push(r);
                    continue;
                }
                Reply::Challenge { .. } | Reply::Welcome => Err(format!(
                    "rendezvous service: {line:?} where an address was due"
                )),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn messages_round_trip() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for r in [
            Request::Hello {
                job_id: u64::MAX,
                rank: 3,
                proof: [7; PROOF_LEN],
            },
            Request::Register { addr, node: None },
            Request::Register {
                addr,
                node: Some("mprt-h1".into()),
            },
            Request::Lookup { rank: 7 },
            Request::Abort { code: -1 },
            Request::Bye,
            Request::Blocked {
                peer: Some(3),
                what: "receive from rank 3, tag 5".into(),
            },
            Request::Blocked {
                peer: None,
                what: "barrier".into(),
            },
            Request::End,
            Request::Gone { rank: 2 },
        ] {
            assert_eq!(Request::parse(&format!("{r}\n")), Ok(r));
        }
        for r in [
            Reply::Addr {
                rank: 1,
                addr,
                node: None,
            },
            Reply::Addr {
                rank: 1,
                addr,
                node: Some("10.99.0.2".into()),
            },
            Reply::Refused {
                reason: "no such rank 9".into(),
            },
            Reply::Finished { rank: 4 },
            Reply::Challenge {
                challenge: [0xa5; PROOF_LEN],
            },
            Reply::Report,
            Reply::Welcome,
            Reply::Failed {
                rank: 2,
                how: "exited with code 3".into(),
            },
        ] {
            assert_eq!(Reply::parse(&r.to_string()), Ok(r));
        }
        assert!(Request::parse("LOOKUP").is_err());
        assert!(Request::parse("HELLO 1 2").is_err());
        assert!(Request::parse("HELLO 1 2 abc").is_err());
        assert!(Reply::parse("CHALLENGE 00").is_err());
        assert!(Request::parse("LOOKUP x").is_err());
        assert!(Request::parse("DANCE 1").is_err());
        assert!(Request::parse("REGISTER 127.0.0.1:1 a b").is_err());
        assert!(Reply::parse("ADDR 1 127.0.0.1:1 a b").is_err());
        assert!(Request::parse(&"A".repeat(MAX_LINE + 1)).is_err());
    }

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
