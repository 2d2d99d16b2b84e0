//! The rendezvous service: where ranks register the address they listen on and look up their
//! peers' (protocol in `mpr_launch::rendezvous`). One thread accepts; one thread per rank serves its
//! connection. A lookup for a rank that has not registered yet waits until it has.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mpr_launch::rendezvous::{read_line, Reply, Request};
use mpr_launch::{auth, Secret};

use crate::error::LaunchError;
use crate::report::Event;
use crate::trace;

struct Table {
    addrs: Vec<Option<(SocketAddr, Option<String>)>>,
    closed: bool,
    /// Each rank's connection, to ask it for a report.
    writers: Vec<Option<TcpStream>>,
    /// Report lines as they come, and whole reports once a rank said END.
    partial: Vec<Vec<Wait>>,
    reports: Vec<Option<Vec<Wait>>>,
    /// The notices of ranks that ended (in failure or normally), as told to the others (and to
    /// those that connect later).
    failed: Vec<Reply>,
    /// Ranks that have ended: a lookup of one that never registered is refused.
    ended: Vec<bool>,
    /// Ranks whose connection is being served (until the service has read all they said).
    serving: Vec<bool>,
    /// What each rank said for `--profile` (at most [`MAX_OPS`] operations a rank).
    profiles: Vec<crate::profile::RankProfile>,
    /// What each rank said for `--trace` (at most [`MAX_EVENTS`] calls a rank).
    timelines: Vec<crate::timeline::RankTimeline>,
    /// The service's clock (`CLOCK`), and when it started by this host's clock.
    epoch: std::time::Instant,
    epoch_unix_ns: u64,
}

/// The most calls one rank's trace may hold (as many as a rank keeps).
const MAX_EVENTS: usize = 1 << 20;

/// The most operations one rank's profile may list (more are dropped).
const MAX_OPS: usize = 256;

/// One thing a rank waits for: on which rank (if one), and what for.
pub type Wait = (Option<usize>, String);

/// The running service.
pub struct Service {
    addr: SocketAddr,
    table: Arc<(Mutex<Table>, Condvar)>,
}

impl Service {
    /// Starts listening on `ip` for the ranks of job `job_id`.
    pub fn start(
        ip: std::net::IpAddr,
        job_id: u64,
        size: usize,
        secret: Secret,
        events: Sender<Event>,
    ) -> Result<Service, LaunchError> {
        let listener = TcpListener::bind((ip, 0))
            .map_err(|e| LaunchError::System(format!("rendezvous service: bind {ip}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LaunchError::System(format!("rendezvous service: {e}")))?;
        let table = Arc::new((
            Mutex::new(Table {
                addrs: vec![None; size],
                closed: false,
                writers: (0..size).map(|_| None).collect(),
                partial: vec![Vec::new(); size],
                reports: vec![None; size],
                failed: Vec::new(),
                ended: vec![false; size],
                serving: vec![false; size],
                profiles: vec![crate::profile::RankProfile::default(); size],
                timelines: vec![crate::timeline::RankTimeline::default(); size],
                epoch: std::time::Instant::now(),
                epoch_unix_ns: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            }),
            Condvar::new(),
        ));
        let t = table.clone();
        std::thread::Builder::new()
            .name("rendezvous".into())
            .spawn(move || {
                let unproven = Unproven::default();
                for (id, stream) in (0u64..).zip(listener.incoming()) {
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            // Out of descriptors: make room by dropping the oldest stranger
                            // (or wait a little for one to go).
                            if !unproven.drop_oldest() {
                                trace::note(|| format!("rendezvous: accept: {e}"));
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            continue;
                        }
                    };
                    if !unproven.admit(id, &stream) {
                        continue;
                    }
                    let (t, ev, secret) = (t.clone(), events.clone(), secret.clone());
                    let mine = unproven.clone();
                    let spawned = std::thread::Builder::new()
                        .name("rendezvous-conn".into())
                        .spawn(move || serve(stream, job_id, &secret, t, ev, || mine.proven(id)));
                    if spawned.is_err() {
                        unproven.proven(id);
                    }
                }
            })
            .map_err(|e| LaunchError::System(format!("rendezvous service: thread: {e}")))?;
        Ok(Service { addr, table })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks every connected rank what it waits for; returns the reports that came within
    /// `within` (`None` for a rank that did not answer: busy outside mpr calls, or gone).
    pub fn reports(&self, within: Duration) -> Vec<Option<Vec<Wait>>> {
        let (m, cv) = &*self.table;
        let Ok(mut t) = m.lock() else {
            return Vec::new();
        };
        let mut asked = Vec::new();
        for r in 0..t.reports.len() {
            t.reports[r] = None;
            t.partial[r].clear();
            if let Some(w) = t.writers[r].as_mut() {
                if send(w, &Reply::Report) {
                    asked.push(r);
                }
            }
        }
        let deadline = std::time::Instant::now() + within;
        while asked.iter().any(|&r| t.reports[r].is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            t = match cv.wait_timeout(t, left) {
                Ok((g, _)) => g,
                Err(_) => return Vec::new(),
            };
        }
        t.reports.clone()
    }

    /// Tells every other connected rank that `ended` ranks ended: in failure (`how`), or
    /// normally (`None`), so that their operations on them fail instead of waiting.
    ///
    /// First it reads to the end what the ended ranks said (waiting at most [`DRAIN_WITHIN`]):
    /// a rank that failed because another was gone said so just before it exited (`GONE`),
    /// and the supervisor must hear that before it takes the rank for the root cause.
    pub fn tell_ended(&self, ended: &[usize], how: Option<&str>) {
        let (m, cv) = &*self.table;
        let Ok(mut t) = m.lock() else { return };
        let until = std::time::Instant::now() + DRAIN_WITHIN;
        while ended.iter().any(|&r| t.serving.get(r) == Some(&true)) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            t = match cv.wait_timeout(t, left) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
        let notices: Vec<Reply> = ended
            .iter()
            .map(|&rank| match how {
                Some(how) => Reply::Failed {
                    rank,
                    how: how.to_string(),
                },
                None => Reply::Finished { rank },
            })
            .collect();
        for (r, w) in t.writers.iter_mut().enumerate() {
            if ended.contains(&r) {
                continue;
            }
            if let Some(w) = w.as_mut() {
                for n in &notices {
                    send(w, n);
                }
            }
        }
        for &r in ended {
            if let Some(e) = t.ended.get_mut(r) {
                *e = true;
            }
        }
        t.failed.extend(notices);
        drop(t);
        cv.notify_all(); // lookups of these ranks that wait for them to register
    }

    /// What every rank said for `--profile`, once the service has read all the ranks said
    /// (waiting at most [`DRAIN_WITHIN`] for connections still being read).
    pub fn profiles(&self) -> Vec<crate::profile::RankProfile> {
        self.drained(|t| t.profiles.clone())
    }

    /// What every rank said for `--trace` (taken: asked once, at the end), as
    /// [`Service::profiles`].
    pub fn timelines(&self) -> (Vec<crate::timeline::RankTimeline>, u64) {
        self.drained(|t| (std::mem::take(&mut t.timelines), t.epoch_unix_ns))
    }

    /// `take` of the table once every rank's connection has been read to its end (or
    /// [`DRAIN_WITHIN`] has passed).
    fn drained<T: Default>(&self, take: impl FnOnce(&mut Table) -> T) -> T {
        let (m, cv) = &*self.table;
        let Ok(mut t) = m.lock() else {
            return T::default();
        };
        let until = std::time::Instant::now() + DRAIN_WITHIN;
        while t.serving.iter().any(|&s| s) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            t = match cv.wait_timeout(t, left) {
                Ok((g, _)) => g,
                Err(_) => return T::default(),
            };
        }
        take(&mut t)
    }

    /// Wakes every waiting lookup with a refusal (the job is ending).
    pub fn close(&self) {
        let (m, cv) = &*self.table;
        if let Ok(mut t) = m.lock() {
            t.closed = true;
        }
        cv.notify_all();
    }
}

/// How long [`Service::tell_ended`] waits for the service to read what ended ranks said last.
const DRAIN_WITHIN: Duration = Duration::from_millis(500);
/// How long a connection may take to prove it is a rank of the job; then it is dropped (a rank
/// whose connection is dropped connects again).
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// Connections that have not yet proven themselves, at most (each has a thread): past it the
/// oldest is dropped, so idle strangers cannot take the service's threads or descriptors, and
/// a rank, which proves itself within a round trip, still gets in.
const MAX_UNPROVEN: usize = 64;

/// The connections accepted and not yet proven, oldest first, with a handle to shut each down.
#[derive(Clone, Default)]
struct Unproven(Arc<Mutex<std::collections::VecDeque<(u64, TcpStream)>>>);

impl Unproven {
    /// Takes connection `id` on, dropping the oldest unproven one if there are too many. False
    /// if it cannot be watched (it is dropped).
    fn admit(&self, id: u64, stream: &TcpStream) -> bool {
        let Ok(handle) = stream.try_clone() else {
            return false;
        };
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_UNPROVEN {
            if let Some((_, oldest)) = q.pop_front() {
                let _ = oldest.shutdown(std::net::Shutdown::Both);
            }
        }
        q.push_back((id, handle));
        true
    }

    /// Connection `id` proved itself, or its thread ended.
    fn proven(&self, id: u64) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.retain(|(i, _)| *i != id);
    }

    /// Shuts the oldest unproven connection down; false if there is none.
    fn drop_oldest(&self) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match q.pop_front() {
            Some((_, s)) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

/// Sends one line, in one write: a rank reads the service's requests without blocking, and a
/// line cut in two writes could reach it in two pieces. False if the connection is gone.
fn send(w: &mut TcpStream, r: &Reply) -> bool {
    w.write_all(format!("{r}\n").as_bytes()).is_ok()
}

fn serve(
    stream: TcpStream,
    job_id: u64,
    secret: &Secret,
    table: Arc<(Mutex<Table>, Condvar)>,
    events: Sender<Event>,
    proven: impl FnOnce(),
) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let (m, cv) = &*table;
    let size = m.lock().map(|t| t.addrs.len()).unwrap_or(0);
    // A challenge first; the first line back must say who this is, for this job, with the
    // proof that it holds the job's secret. Anything else is dropped unanswered.
    let Ok(challenge) = auth::challenge() else {
        return;
    };
    if !send(&mut out, &Reply::Challenge { challenge }) {
        return;
    }
    let _ = reader.get_ref().set_read_timeout(Some(HELLO_WITHIN));
    let hello = read_line(&mut reader).ok().flatten();
    proven(); // or dropped: either way no longer waiting
    let rank = match hello.map(|l| Request::parse(&l)) {
        Some(Ok(Request::Hello {
            job_id: j,
            rank,
            proof,
        })) if j == job_id
            && rank < size
            && auth::same(
                &auth::rendezvous_proof(secret, job_id, rank, &challenge),
                &proof,
            ) =>
        {
            rank
        }
        _ => return, // not one of our ranks: drop it
    };
    let _ = reader.get_ref().set_read_timeout(None);
    if let (Ok(mut t), Ok(mut w)) = (m.lock(), out.try_clone()) {
        // A rank that connects after others failed hears of it at once.
        for n in &t.failed {
            send(&mut w, n);
        }
        if !send(&mut w, &Reply::Welcome) {
            return;
        }
        t.writers[rank] = Some(w);
        t.serving[rank] = true;
    }
    serve_rank(rank, &mut reader, &mut out, &table, &events);
    if let Ok(mut t) = m.lock() {
        t.serving[rank] = false;
    }
    cv.notify_all();
}

/// Serves the requests of authenticated rank `rank` until its connection ends.
fn serve_rank(
    rank: usize,
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
    table: &Arc<(Mutex<Table>, Condvar)>,
    events: &Sender<Event>,
) {
    let (m, cv) = &**table;
    let size = m.lock().map(|t| t.addrs.len()).unwrap_or(0);
    while let Ok(Some(line)) = read_line(reader) {
        let reply = match Request::parse(&line) {
            Ok(Request::Register { addr, node }) => {
                if let Ok(mut t) = m.lock() {
                    t.addrs[rank] = Some((addr, node));
                }
                cv.notify_all();
                None
            }
            Ok(Request::Lookup { rank: r }) if r >= size => Some(Reply::Refused {
                reason: format!("no rank {r} in a job of {size}"),
            }),
            Ok(Request::Lookup { rank: r }) => {
                let Ok(mut t) = m.lock() else { return };
                loop {
                    if let Some((addr, node)) = &t.addrs[r] {
                        break Some(Reply::Addr {
                            rank: r,
                            addr: *addr,
                            node: node.clone(),
                        });
                    }
                    if t.closed {
                        break Some(Reply::Refused {
                            reason: format!("the job is ending; rank {r} never registered"),
                        });
                    }
                    if t.ended[r] {
                        break Some(Reply::Refused {
                            reason: format!("rank {r} ended before it registered"),
                        });
                    }
                    t = match cv.wait_timeout(t, Duration::from_millis(500)) {
                        Ok((g, _)) => g,
                        Err(_) => return,
                    };
                }
            }
            Ok(Request::Abort { code }) => {
                let _ = events.send(Event::Abort { rank, code });
                return; // closing the connection tells the rank its abort is on record
            }
            Ok(Request::Bye) => None,
            Ok(Request::Gone { rank: of }) => {
                let _ = events.send(Event::Gone { rank, of });
                None
            }
            Ok(Request::Blocked { peer, what }) => {
                if let Ok(mut t) = m.lock() {
                    if t.partial[rank].len() < 1024 {
                        t.partial[rank].push((peer, what));
                    }
                }
                None
            }
            Ok(Request::End) => {
                if let Ok(mut t) = m.lock() {
                    let lines = std::mem::take(&mut t.partial[rank]);
                    t.reports[rank] = Some(lines);
                }
                cv.notify_all();
                None
            }
            Ok(Request::Profile {
                op,
                calls,
                bytes,
                ns,
            }) => {
                if let Ok(mut t) = m.lock() {
                    let p = &mut t.profiles[rank];
                    if p.ops.len() < MAX_OPS {
                        p.ops.push(crate::profile::OpLine {
                            op,
                            calls,
                            bytes,
                            ns,
                        });
                    }
                }
                None
            }
            Ok(Request::Ran { ns }) => {
                if let Ok(mut t) = m.lock() {
                    t.profiles[rank].ran_ns = Some(ns);
                }
                None
            }
            Ok(Request::Started { unix_ns }) => {
                // A rank tells all its calls so far each time (at a `--timeout` report, then
                // at finalize if it gets there): the last telling replaces the one before.
                if let Ok(mut t) = m.lock() {
                    t.timelines[rank] = crate::timeline::RankTimeline {
                        started_unix_ns: Some(unix_ns),
                        aligned: Vec::new(),
                        names: Vec::new(),
                        calls: Vec::new(),
                    };
                }
                None
            }
            Ok(Request::Clock) => {
                let Ok(t) = m.lock() else { return };
                Some(Reply::Clock {
                    ns: u64::try_from(t.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX),
                })
            }
            Ok(Request::Aligned { offset_ns, rtt_ns }) => {
                if let Ok(mut t) = m.lock() {
                    let tl = &mut t.timelines[rank];
                    if tl.aligned.len() < 2 {
                        tl.aligned.push((offset_ns, rtt_ns));
                    }
                }
                None
            }
            Ok(Request::Event {
                op,
                start_ns,
                dur_ns,
                bytes,
                peer,
                tag,
                comm,
                algo,
            }) => {
                if let Ok(mut t) = m.lock() {
                    let tl = &mut t.timelines[rank];
                    if tl.calls.len() < MAX_EVENTS {
                        tl.calls.push(crate::timeline::Call {
                            op,
                            start_ns,
                            dur_ns,
                            bytes,
                            peer,
                            tag,
                            comm,
                            algo,
                        });
                    }
                }
                None
            }
            Ok(Request::Named { ctx, name }) => {
                if let Ok(mut t) = m.lock() {
                    let names = &mut t.timelines[rank].names;
                    if names.len() < MAX_OPS {
                        names.push((ctx, name));
                    }
                }
                None
            }
            Ok(Request::Hello { .. }) | Err(_) => return,
        };
        if let Some(r) = reply {
            if !send(out, &r) {
                return;
            }
        }
    }
}
