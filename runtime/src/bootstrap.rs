//! A rank's side of the launch: its connection to mprun's rendezvous service.
//!
//! The contract itself (the environment, the line protocol, the proofs) is the `mpr-launch`
//! crate, shared with the launcher and kept out of `mpr`'s public API; this module is what
//! only a rank does with it: join the service (with deadlines and retries, as a lossy network
//! needs), look up peers, and answer the service's requests.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mpr_launch::auth::rendezvous_proof;
pub(crate) use mpr_launch::env::Bootstrap;
pub(crate) use mpr_launch::rendezvous::{read_line, Reply, Request, MAX_LINE};

use crate::error::{Error, Result};

/// How long a rank may take to join the rendezvous service, attempts included.
pub(crate) const JOIN_WITHIN: Duration = Duration::from_secs(60);

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
        // Notices of ranks that ended before this one joined are kept for the poller.
        match c.answer("its welcome")? {
            Reply::Welcome => {}
            other => return Err(format!("{other} where a welcome was due")),
        }
        c.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| format!("socket options: {e}"))?;
        Ok(c)
    }

    /// The service's answer to what this rank asked: the next line that is not a request of
    /// the service's own (a report, a notice that a rank ended), which are kept for the poller
    /// ([`Client::take_request`]).
    fn answer(&mut self, what: &str) -> std::result::Result<Reply, String> {
        loop {
            match self.read_reply(what)? {
                r @ (Reply::Report | Reply::Failed { .. } | Reply::Finished { .. }) => {
                    self.stash.push(r);
                }
                r => return Ok(r),
            }
        }
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

    /// Whether requests wait unread: in the stash (see [`Client::take_request`]), or as bytes a
    /// read for a lookup's reply pulled into the buffer after it. Either raises no event on the
    /// socket again, so a poller must look without waiting for one (a notice that a rank ended,
    /// left there, once hung a probe on that rank).
    pub(crate) fn has_stash(&self) -> bool {
        !self.stash.is_empty() || !self.reader.buffer().is_empty()
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

    /// mprun's clock: nanoseconds since its service started (for `--trace`, `observe.rs`).
    pub(crate) fn clock(&mut self) -> std::result::Result<u64, String> {
        self.send(&Request::Clock).map_err(|e| e.to_string())?;
        match self.answer("the time")? {
            Reply::Clock { ns } => Ok(ns),
            other => Err(format!(
                "rendezvous service: {other} where the time was due"
            )),
        }
    }

    /// The address of `rank` (and its host, if it listens locally too), waiting until it has
    /// registered.
    pub(crate) fn lookup(
        &mut self,
        rank: usize,
    ) -> std::result::Result<(SocketAddr, Option<String>), String> {
        self.send(&Request::Lookup { rank })
            .map_err(|e| e.to_string())?;
        match self.answer("an address")? {
            Reply::Addr {
                rank: r,
                addr,
                node,
            } if r == rank => Ok((addr, node)),
            Reply::Addr { rank: r, .. } => {
                Err(format!("asked for rank {rank}, told about rank {r}"))
            }
            Reply::Refused { reason } => Err(reason),
            other => Err(format!(
                "rendezvous service: {other} where an address was due"
            )),
        }
    }
}
