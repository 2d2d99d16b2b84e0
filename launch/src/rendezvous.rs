//! The rendezvous protocol: how ranks find each other through `mprun`.
//!
//! One line of text per message over TCP, in both directions ([`Request`], [`Reply`]). The
//! service speaks first (a challenge the rank's hello must answer, see [`crate::auth`]). A rank
//! registers the address it listens on; when it first needs a peer, it asks for that peer's
//! address (the service answers once the peer has registered). Connections between ranks are
//! thus made on first use, and no rank ever learns the whole address table: start-up stays
//! O(1) per rank however large the job. Text, because a person debugging a launch can read it
//! with `strace` or `tcpdump`, and because each line is short and capped ([`MAX_LINE`]), so a
//! stranger cannot make either side buffer without bound.

use std::fmt;
use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::{hex, unhex, PROOF_LEN};
use crate::env::valid_node;

/// Longest line either side of the rendezvous protocol accepts.
pub const MAX_LINE: usize = 512;

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
    /// For `mprun --profile`, sent before [`Request::Bye`]: this rank's calls of one
    /// operation (a name of lower-case letters and `_`), the bytes they carried and the time
    /// spent in them.
    Profile {
        /// The operation (`send`, `allreduce`, ...).
        op: String,
        /// How many calls.
        calls: u64,
        /// Bytes of the callers' buffers.
        bytes: u64,
        /// Nanoseconds spent in them.
        ns: u64,
    },
    /// For `mprun --profile`: the rank's time from `mpr::init` to its finalize, in
    /// nanoseconds, after its [`Request::Profile`] lines.
    Ran {
        /// Nanoseconds.
        ns: u64,
    },
    /// For `mprun --trace`, before the rank's [`Request::Event`] lines: when it joined the job,
    /// by its host's clock (nanoseconds since the Unix epoch); events count from there.
    Started {
        /// Nanoseconds since 1970.
        unix_ns: u64,
    },
    /// For `mprun --trace`: what time is it by mprun's clock? Answered with [`Reply::Clock`].
    Clock,
    /// For `mprun --trace`, after [`Request::Started`]: one measure of this rank's clock
    /// against mprun's (see `observe.rs`), at start-up and again at the end: by a round trip
    /// of `rtt_ns`, mprun's clock read `offset_ns` more than this rank's (nanoseconds from
    /// `Started`) at mid-trip, to within half the round trip.
    Aligned {
        /// mprun's clock less this rank's.
        offset_ns: i64,
        /// The round trip the measure took.
        rtt_ns: u64,
    },
    /// For `mprun --trace`: one call, as it happened.
    Event {
        /// The operation (as in [`Request::Profile`]).
        op: String,
        /// Nanoseconds from [`Request::Started`] to the call.
        start_ns: u64,
        /// Its duration.
        dur_ns: u64,
        /// Bytes of the caller's buffer.
        bytes: u64,
        /// The world rank a point-to-point call went to or came from.
        peer: Option<usize>,
        /// Its tag.
        tag: Option<u32>,
        /// The communicator (its number; see [`Request::Named`]), if it was a call.
        comm: Option<u32>,
        /// The algorithm a collective took (a name as [`valid_op`] allows).
        algo: Option<String>,
    },
    /// For `mprun --trace`: communicator `ctx` was given a name (one line of text).
    Named {
        /// The communicator's number.
        ctx: u32,
        /// Its name.
        name: String,
    },
}

/// Whether `op` is an operation's name as [`Request::Profile`] carries it.
pub fn valid_op(op: &str) -> bool {
    !op.is_empty() && op.len() <= 64 && op.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
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
    /// Answer to [`Request::Clock`]: nanoseconds since the service started, by its clock.
    Clock {
        /// Nanoseconds.
        ns: u64,
    },
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
            Request::Profile {
                op,
                calls,
                bytes,
                ns,
            } => write!(f, "PROFILE {op} {calls} {bytes} {ns}"),
            Request::Ran { ns } => write!(f, "RAN {ns}"),
            Request::Started { unix_ns } => write!(f, "STARTED {unix_ns}"),
            Request::Clock => write!(f, "CLOCK"),
            Request::Aligned { offset_ns, rtt_ns } => write!(f, "ALIGNED {offset_ns} {rtt_ns}"),
            Request::Event {
                op,
                start_ns,
                dur_ns,
                bytes,
                peer,
                tag,
                comm,
                algo,
            } => write!(
                f,
                "EVENT {op} {start_ns} {dur_ns} {bytes} {} {} {} {}",
                or_dash(peer),
                or_dash(tag),
                or_dash(comm),
                or_dash(algo)
            ),
            Request::Named { ctx, name } => write!(f, "NAMED {ctx} {}", one_line(name)),
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
            Reply::Clock { ns } => write!(f, "CLOCK {ns}"),
            Reply::Refused { reason } => write!(f, "REFUSED {}", reason.replace('\n', " ")),
        }
    }
}

/// `text` on one line of at most 200 bytes (a name, which fits a line however long it was).
fn one_line(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\n', '\r'], " ")
}

/// `-` for none, else the value.
fn or_dash<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// The optional value at `args[i]`: `-` for none.
fn dash_or<T: std::str::FromStr>(
    args: &[String],
    i: usize,
    what: &str,
) -> std::result::Result<Option<T>, ParseError> {
    match args.get(i).map(String::as_str) {
        Some("-") => Ok(None),
        _ => arg(args, i, what).map(Some),
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
            "PROFILE" => {
                expect(4)?;
                if !valid_op(&a[0]) {
                    return Err(ParseError(format!("bad operation name {:?}", a[0])));
                }
                Request::Profile {
                    op: a[0].clone(),
                    calls: arg(&a, 1, "call count")?,
                    bytes: arg(&a, 2, "byte count")?,
                    ns: arg(&a, 3, "time")?,
                }
            }
            "RAN" => {
                expect(1)?;
                Request::Ran {
                    ns: arg(&a, 0, "time")?,
                }
            }
            "STARTED" => {
                expect(1)?;
                Request::Started {
                    unix_ns: arg(&a, 0, "time")?,
                }
            }
            "CLOCK" => {
                expect(0)?;
                Request::Clock
            }
            "ALIGNED" => {
                expect(2)?;
                Request::Aligned {
                    offset_ns: arg(&a, 0, "offset")?,
                    rtt_ns: arg(&a, 1, "round trip")?,
                }
            }
            "EVENT" => {
                expect(8)?;
                if !valid_op(&a[0]) {
                    return Err(ParseError(format!("bad operation name {:?}", a[0])));
                }
                let algo: Option<String> = dash_or(&a, 7, "algorithm")?;
                if algo.as_deref().is_some_and(|g| !valid_op(g)) {
                    return Err(ParseError(format!("bad algorithm name {:?}", a[7])));
                }
                Request::Event {
                    op: a[0].clone(),
                    start_ns: arg(&a, 1, "start")?,
                    dur_ns: arg(&a, 2, "duration")?,
                    bytes: arg(&a, 3, "byte count")?,
                    peer: dash_or(&a, 4, "peer")?,
                    tag: dash_or(&a, 5, "tag")?,
                    comm: dash_or(&a, 6, "communicator")?,
                    algo,
                }
            }
            "NAMED" if a.len() >= 2 => Request::Named {
                ctx: arg(&a, 0, "communicator")?,
                name: a[1..].join(" "),
            },
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
            "CLOCK" if a.len() == 1 => Reply::Clock {
                ns: arg(&a, 0, "time")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

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
            Request::Profile {
                op: "allreduce".into(),
                calls: 10,
                bytes: 80,
                ns: u64::MAX,
            },
            Request::Ran { ns: 12345 },
            Request::Clock,
            Request::Aligned {
                offset_ns: -42,
                rtt_ns: 9000,
            },
            Request::Started {
                unix_ns: 1_790_000_000_000_000_000,
            },
            Request::Event {
                op: "send".into(),
                start_ns: 5,
                dur_ns: 7,
                bytes: 8,
                peer: Some(3),
                tag: Some(0),
                comm: Some(2),
                algo: None,
            },
            Request::Event {
                op: "barrier".into(),
                start_ns: 5,
                dur_ns: 7,
                bytes: 0,
                peer: None,
                tag: None,
                comm: Some(0),
                algo: Some("recursive_doubling".into()),
            },
            Request::Named {
                ctx: 4,
                name: "rows of the grid".into(),
            },
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
            Reply::Clock { ns: 77 },
            Reply::Failed {
                rank: 2,
                how: "exited with code 3".into(),
            },
        ] {
            assert_eq!(Reply::parse(&r.to_string()), Ok(r));
        }
        assert!(Request::parse("LOOKUP").is_err());
        assert!(Request::parse("CLOCK 1").is_err());
        assert!(Request::parse("EVENT send 1 2 3 - - 0 Ring").is_err());
        assert!(Request::parse("NAMED x rows").is_err());
        let long = Request::Named {
            ctx: 1,
            name: "é".repeat(400),
        };
        assert!(Request::parse(&long.to_string()).is_ok());
        assert!(Request::parse("ALIGNED 1").is_err());
        assert!(Reply::parse("CLOCK -1").is_err());
        assert!(Request::parse("HELLO 1 2").is_err());
        assert!(Request::parse("HELLO 1 2 abc").is_err());
        assert!(Reply::parse("CHALLENGE 00").is_err());
        assert!(Request::parse("LOOKUP x").is_err());
        assert!(Request::parse("DANCE 1").is_err());
        assert!(Request::parse("PROFILE Send 1 2 3").is_err());
        assert!(Request::parse("PROFILE send 1 2").is_err());
        assert!(Request::parse("PROFILE send -1 2 3").is_err());
        assert!(Request::parse("REGISTER 127.0.0.1:1 a b").is_err());
        assert!(Reply::parse("ADDR 1 127.0.0.1:1 a b").is_err());
        assert!(Request::parse(&"A".repeat(MAX_LINE + 1)).is_err());
    }
}
