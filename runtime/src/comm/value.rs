//! Values of any serde type: `send_value`, `recv_value` and the value collectives.
//!
//! **Why.** Slices of [`Pod`](crate::Pod) go from and into the caller's memory with no copy, but
//! a `Vec<String>`, an enum or a map is not plain data: users encoded such messages by hand into
//! `&[u8]` and received them with `probe` and `recv_vec`. These calls do that for them, for any
//! `T: Serialize + DeserializeOwned`, and keep every property of the byte messages underneath:
//! matching, wildcards, order, probe (a value's [`Status::bytes`] is its encoded size).
//!
//! **The format** is [postcard](https://docs.rs/postcard) 1 (stable wire format; varints for
//! lengths and integers, no field names). Measured on this machine against bincode 1 and 2,
//! MessagePack (`rmp-serde`) and bitcode's serde mode, on a struct of a `String` and a
//! `Vec<f64>` of 1, 1 Ki and 1 Mi elements and on enums, maps and bytes
//! (`benches/encodings`, figures in BENCHMARKS.md): postcard and bincode were the fastest to
//! encode and decode within a few per cent of each other, postcard's small messages were the
//! smallest of the two (varint lengths, where bincode 1 writes 8 bytes a length), and it is
//! actively kept with a specified format; MessagePack writes a type tag a value and was slower,
//! bitcode was as compact but slower through serde.
//!
//! **Trust.** A received value is decoded from exactly the bytes of one message, whose size the
//! receiver learned before allocating them (an allocation that fails is
//! [`Error::OutOfMemory`], the message left queued). Decoding allocates in proportion to the
//! bytes it reads (serde caps what a claimed length may reserve ahead), so a peer cannot make a
//! rank allocate more than the size it announced. Bytes that do not decode as a `T`, or that
//! leave bytes over, are [`Error::Decode`] naming the source rank and tag, never a panic.
//!
//! **Collectives** exchange the encoded sizes first (one `u64` per rank, [`FAILED`] for a rank
//! whose value could not be encoded), then the bytes with the v-collective of the same shape.
//! A rank that cannot encode still takes part with no bytes, so no rank waits for it: it
//! returns [`Error::Encode`], and every rank that would have decoded its value returns
//! [`Error::InvalidArgument`] naming it.

use serde::{de::DeserializeOwned, Serialize};

use super::p2p::{Source, TagMatch};
use super::{Comm, Status};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope, VecRequest};

/// The size a rank announces for a value it could not encode.
const FAILED: u64 = u64::MAX;

/// `v` encoded, or [`Error::Encode`] naming the call.
pub(crate) fn encode<T: Serialize + ?Sized>(v: &T, what: &'static str) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| Error::Encode {
        what,
        detail: e.to_string(),
    })
}

/// `v` encoded into `buf` (cleared first; its capacity is reused).
fn encode_into<T: Serialize + ?Sized>(v: &T, buf: &mut Vec<u8>, what: &'static str) -> Result<()> {
    buf.clear();
    *buf = postcard::to_extend(v, std::mem::take(buf)).map_err(|e| Error::Encode {
        what,
        detail: e.to_string(),
    })?;
    Ok(())
}

thread_local! {
    /// A buffer the blocking calls encode into and receive into, kept between calls so that a
    /// stream of values of one size allocates (and faults in) its bytes once: for a value of
    /// 8 MiB this was a third of the one-way time.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The most scratch memory kept between calls.
const KEEP_SCRATCH: usize = 16 << 20;

/// Runs `f` with the scratch buffer (a new one if it is in use).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.take();
    let r = f(&mut buf);
    if buf.capacity() <= KEEP_SCRATCH {
        SCRATCH.set(buf);
    }
    r
}

/// A `T` decoded from all of `bytes` (from rank `source` with `tag`, for the error).
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    source: usize,
    tag: Option<u32>,
) -> Result<T> {
    let fail = |detail: String| Error::Decode {
        what,
        source,
        tag,
        detail,
    };
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(fail(format!(
            "{} of its {} bytes are left over after the value (was it sent as another type?)",
            rest.len(),
            bytes.len()
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// A vector of `bytes` zeroed bytes, or [`Error::OutOfMemory`].
fn zeroed(bytes: u64, what: &'static str) -> Result<Vec<u8>> {
    let oom = Error::OutOfMemory {
        what,
        bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
    };
    let n = usize::try_from(bytes).map_err(|_| oom)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { what, bytes: n })?;
    v.resize(n, 0);
    Ok(v)
}

/// The error of a rank whose value rank `rank` could not provide.
fn failed_at(what: &'static str, rank: usize) -> Error {
    Error::InvalidArgument {
        what,
        detail: format!("rank {rank} could not encode its value (it returned the error)"),
    }
}

/// Splits `all` into the blocks of `sizes` and decodes each, from the rank of its index.
fn decode_blocks<T: DeserializeOwned>(
    all: &[u8],
    sizes: &[u64],
    what: &'static str,
) -> Result<Vec<T>> {
    if let Some(r) = sizes.iter().position(|&s| s == FAILED) {
        return Err(failed_at(what, r));
    }
    let mut at = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(r, &s)| {
            let block = &all[at..at + s as usize];
            at += s as usize;
            decode(block, what, r, None)
        })
        .collect()
}

/// The sizes as element counts of a v-collective (a [`FAILED`] rank sends nothing), and their
/// sum, which must fit in memory.
fn counts(sizes: &[u64], what: &'static str) -> Result<(Vec<usize>, u64)> {
    let mut total = 0u64;
    let counts = sizes
        .iter()
        .map(|&s| {
            let s = if s == FAILED { 0 } else { s };
            total = total.saturating_add(s);
            usize::try_from(s).map_err(|_| Error::OutOfMemory {
                what,
                bytes: usize::MAX,
            })
        })
        .collect::<Result<_>>()?;
    Ok((counts, total))
}

/// The size to announce for an encoding (or its failure).
fn announced(enc: &Result<Vec<u8>>) -> u64 {
    enc.as_ref().map_or(FAILED, |b| b.len() as u64)
}

impl Comm {
    /// Sends a value of any serde type to `dest` with `tag` (encoded with postcard: module
    /// docs). Received by [`Comm::recv_value`], or as bytes by any receive.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// let mut stock = BTreeMap::new();
    /// stock.insert("apples".to_string(), vec![3u32, 5]);
    /// world.send_value(&stock, me, 0)?;
    /// let (got, st) = world.recv_value::<BTreeMap<String, Vec<u32>>>(mpr::ANY_SOURCE, 0)?;
    /// assert_eq!((got, st.source()), (stock, me));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn send_value<T: Serialize + ?Sized>(&self, v: &T, dest: usize, tag: u32) -> Result<()> {
        let _seen = self.seen("send_value", 0);
        with_scratch(|buf| {
            encode_into(v, buf, "send_value")?;
            self.send(buf, dest, tag)
        })
    }

    /// Synchronous [`Comm::send_value`]: returns once the receiver has matched the message.
    ///
    /// ```no_run
    /// let world = mpr::init()?;
    /// if world.rank() == 0 {
    ///     world.ssend_value(&("ready", 7u8), 1, 0)?; // returns once rank 1 has matched it
    /// } else if world.rank() == 1 {
    ///     let ((what, n), _) = world.recv_value::<(String, u8)>(0, 0)?;
    ///     assert_eq!((what.as_str(), n), ("ready", 7));
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ssend_value<T: Serialize + ?Sized>(&self, v: &T, dest: usize, tag: u32) -> Result<()> {
        let _seen = self.seen("ssend_value", 0);
        with_scratch(|buf| {
            encode_into(v, buf, "ssend_value")?;
            self.ssend(buf, dest, tag)
        })
    }

    /// Receives a value sent by [`Comm::send_value`] (or any message whose bytes are its
    /// encoding) from `src` (or [`ANY_SOURCE`](crate::ANY_SOURCE)) with `tag` (or
    /// [`ANY_TAG`](crate::ANY_TAG)). Bytes that are not a `T` are [`Error::Decode`].
    ///
    /// ```
    /// // The derives come with mpr: no serde dependency of your own is needed.
    /// #[derive(mpr::serde::Serialize, mpr::serde::Deserialize, PartialEq, Debug)]
    /// #[serde(crate = "mpr::serde")]
    /// enum Task {
    ///     Work { id: u64, args: Vec<String> },
    ///     Stop,
    /// }
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send_value(&Task::Work { id: 1, args: vec!["-v".into()] }, me, 3)?;
    /// world.send_value(&Task::Stop, me, 3)?;
    /// let (first, st) = world.recv_value::<Task>(me, mpr::ANY_TAG)?;
    /// assert!(matches!(first, Task::Work { id: 1, .. }) && st.tag() == 3);
    /// assert_eq!(world.recv_value::<Task>(me, 3)?.0, Task::Stop);
    /// // Bytes that are not a Task are an error, not a panic:
    /// world.send(&[200u8, 1, 2], me, 4)?;
    /// assert!(matches!(world.recv_value::<Task>(me, 4), Err(mpr::Error::Decode { .. })));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn recv_value<T: DeserializeOwned>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<(T, Status)> {
        let _seen = self.seen("recv_value", 0);
        const WHAT: &str = "recv_value";
        // As `recv_vec`, into the scratch buffer: the oldest message of that source and tag
        // is the probed one (non-overtaking).
        let probed = self.probe(src, tag)?;
        with_scratch(|buf| {
            let n = probed.bytes();
            if buf.len() < n {
                buf.clear();
                buf.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
                    what: WHAT,
                    bytes: n,
                })?;
                buf.resize(n, 0);
            }
            let st = self.recv(&mut buf[..n], probed.source(), probed.tag())?;
            let v = decode(&buf[..n], WHAT, st.source(), Some(st.tag()))?;
            Ok((v, st))
        })
    }

    /// Sends `v` to `dest` and receives a value from `src` at the same time (no deadlock when
    /// two ranks exchange with each other). The two types may differ.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    /// let (name, st) =
    ///     world.sendrecv_value::<_, String>(&format!("rank {rank}"), right, 0, left, 0)?;
    /// assert_eq!((name, st.source()), (format!("rank {left}"), left));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn sendrecv_value<S: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        v: &S,
        dest: usize,
        send_tag: u32,
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<(R, Status)> {
        let _seen = self.seen("sendrecv_value", 0);
        let out = encode(v, "sendrecv_value")?;
        let (src, recv_tag) = (src.into(), recv_tag.into());
        crate::scope(|s| {
            let send = self.isend(s, &out, dest, send_tag)?;
            let got = self.recv_value::<R>(src, recv_tag);
            // The send is waited for even when the receive failed (the scope would anyway).
            let sent = send.wait();
            let got = got?;
            sent?;
            Ok(got)
        })
    }

    /// Starts sending a value: the request owns its encoding, so `v` is free at once and need
    /// not outlive the scope. Waiting on the request is waiting for the send.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut sends = Vec::new();
    ///     for i in 0..3u32 {
    ///         let note = format!("note {i} from {rank}"); // dropped at the end of each turn
    ///         sends.push(world.isend_value(s, &note, (rank + 1) % size, i)?);
    ///     }
    ///     for i in 0..3u32 {
    ///         let (note, _) = world.recv_value::<String>((rank + size - 1) % size, i)?;
    ///         assert!(note.starts_with(&format!("note {i}")));
    ///     }
    ///     mpr::wait_all(sends)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn isend_value<'scope, T: Serialize + ?Sized>(
        &self,
        s: &'scope Scope<'scope, '_>,
        v: &T,
        dest: usize,
        tag: u32,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("isend_value", 0);
        let peer = self.world_rank(dest)?;
        s.start_send_owned(self, peer, tag, encode(v, "isend_value")?, false)
    }

    /// Posts a receive of a value (the nonblocking [`Comm::recv_value`]): the buffer for its
    /// encoding is allocated when a message matches, and [`ValueRequest::wait`] decodes it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.irecv_value::<Vec<String>>(s, mpr::ANY_SOURCE, 2)?;
    ///     world.send_value(&vec!["a".to_string(), "bc".into()], me, 2)?;
    ///     let (names, _st) = r.wait()?;
    ///     assert_eq!(names[1], "bc");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn irecv_value<'scope, T: DeserializeOwned>(
        &self,
        s: &'scope Scope<'scope, '_>,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<ValueRequest<'scope, T>> {
        let _seen = self.seen("irecv_value", 0);
        Ok(ValueRequest {
            bytes: self.irecv_vec::<u8>(s, src, tag)?,
            _t: std::marker::PhantomData,
        })
    }

    /// Broadcasts `v` from `root`: on the others, `v` is replaced by the root's value (they pass
    /// any value of the type, a default for instance).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut config: Vec<(String, f64)> = Vec::new();
    /// if world.rank() == 0 {
    ///     config = vec![("dt".into(), 0.01), ("steps".into(), 100.0)];
    /// }
    /// world.broadcast_value(&mut config, 0)?;
    /// assert_eq!(config[1].0, "steps");
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn broadcast_value<T: Serialize + DeserializeOwned>(
        &self,
        v: &mut T,
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("broadcast_value", 0);
        const WHAT: &str = "broadcast_value";
        self.check_root(root)?;
        let mine = (self.rank() == root).then(|| encode(v, WHAT));
        let mut size = [mine.as_ref().map_or(0, announced)];
        self.broadcast(&mut size, root)?;
        match mine {
            Some(enc) => {
                let mut enc = enc?;
                self.broadcast(&mut enc, root)
            }
            None if size[0] == FAILED => Err(failed_at(WHAT, root)),
            None => {
                let mut bytes = zeroed(size[0], WHAT)?;
                self.broadcast(&mut bytes, root)?;
                *v = decode(&bytes, WHAT, root, None)?;
                Ok(())
            }
        }
    }

    /// Collects every rank's value at `root`, in rank order: `Some` there, `None` elsewhere.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mine = format!("host of rank {}", world.rank());
    /// if let Some(all) = world.gather_values(&mine, 0)? {
    ///     assert_eq!(all.len(), world.size()); // at the root only
    ///     assert_eq!(all[0], "host of rank 0");
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn gather_values<T: Serialize + DeserializeOwned>(
        &self,
        v: &T,
        root: usize,
    ) -> Result<Option<Vec<T>>> {
        let _seen = self.seen("gather_values", 0);
        const WHAT: &str = "gather_values";
        self.check_root(root)?;
        let enc = encode(v, WHAT);
        let is_root = self.rank() == root;
        let mut sizes = vec![0u64; if is_root { self.size() } else { 0 }];
        self.gather(&[announced(&enc)], &mut sizes, root)?;
        let empty = Vec::new();
        let mine = enc.as_ref().unwrap_or(&empty);
        if !is_root {
            self.gatherv(mine, &mut [], &[], root)?;
            return enc.map(|_| None);
        }
        let (counts, total) = counts(&sizes, WHAT)?;
        let mut all = zeroed(total, WHAT)?;
        self.gatherv(mine, &mut all, &counts, root)?;
        enc?;
        decode_blocks(&all, &sizes, WHAT).map(Some)
    }

    /// Every rank's value on every rank, in rank order.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mine: Vec<u32> = (0..world.rank() as u32).collect(); // of different lengths
    /// let all: Vec<Vec<u32>> = world.allgather_values(&mine)?;
    /// assert_eq!(all.len(), world.size());
    /// assert!(all[0].is_empty());
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allgather_values<T: Serialize + DeserializeOwned>(&self, v: &T) -> Result<Vec<T>> {
        let _seen = self.seen("allgather_values", 0);
        const WHAT: &str = "allgather_values";
        let enc = encode(v, WHAT);
        let mut sizes = vec![0u64; self.size()];
        self.allgather(&[announced(&enc)], &mut sizes)?;
        let (counts, total) = counts(&sizes, WHAT)?;
        let mut all = zeroed(total, WHAT)?;
        let empty = Vec::new();
        self.allgatherv(enc.as_ref().unwrap_or(&empty), &mut all, &counts)?;
        enc?;
        decode_blocks(&all, &sizes, WHAT)
    }

    /// Hands `values[i]` at `root` to each rank `i` (`values.len()` = size at the root; read
    /// at the root only, so elsewhere it may be empty).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let jobs: Vec<String> = if world.rank() == 0 {
    ///     (0..world.size()).map(|i| format!("job {i}")).collect()
    /// } else {
    ///     Vec::new()
    /// };
    /// let mine: String = world.scatter_values(&jobs, 0)?;
    /// assert_eq!(mine, format!("job {}", world.rank()));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scatter_values<T: Serialize + DeserializeOwned>(
        &self,
        values: &[T],
        root: usize,
    ) -> Result<T> {
        let _seen = self.seen("scatter_values", std::mem::size_of_val(values));
        const WHAT: &str = "scatter_values";
        self.check_root(root)?;
        let n = self.size();
        if self.rank() != root {
            let mut size = [0u64];
            self.scatter(&[], &mut size, root)?;
            if size[0] == FAILED {
                return Err(failed_at(WHAT, root));
            }
            let mut bytes = zeroed(size[0], WHAT)?;
            self.scatterv(&[], &[], &mut bytes, root)?;
            return decode(&bytes, WHAT, root, None);
        }
        // Refused here only after the others have been told, so none waits for the root.
        let encs = if values.len() == n {
            values.iter().map(|v| encode(v, WHAT)).collect()
        } else {
            Err(Error::InvalidArgument {
                what: WHAT,
                detail: format!("{} values for {n} ranks", values.len()),
            })
        };
        let encs: Vec<Vec<u8>> = match encs {
            Ok(encs) => encs,
            Err(e) => {
                self.scatter(&vec![FAILED; n], &mut [0u64], root)?;
                return Err(e);
            }
        };
        let sizes: Vec<u64> = encs.iter().map(|e| e.len() as u64).collect();
        self.scatter(&sizes, &mut [0u64], root)?;
        let counts: Vec<usize> = encs.iter().map(Vec::len).collect();
        let mut mine = vec![0u8; counts[root]];
        self.scatterv(&encs.concat(), &counts, &mut mine, root)?;
        decode(&mine, WHAT, root, None)
    }

    /// Sends `values[i]` to each rank `i` and returns the value each rank sent to this one, in
    /// rank order (`values.len()` = size on every rank).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let out: Vec<(usize, String)> = (0..size).map(|to| (rank, format!("to {to}"))).collect();
    /// let got = world.alltoall_values(&out)?;
    /// assert_eq!(got[0], (0, format!("to {rank}")));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn alltoall_values<T: Serialize + DeserializeOwned>(&self, values: &[T]) -> Result<Vec<T>> {
        let _seen = self.seen("alltoall_values", std::mem::size_of_val(values));
        const WHAT: &str = "alltoall_values";
        let n = self.size();
        // A rank that cannot encode, or was given the wrong number of values, still takes
        // part with no bytes, so that nobody waits for it.
        let encs: Result<Vec<Vec<u8>>> = if values.len() == n {
            values.iter().map(|v| encode(v, WHAT)).collect()
        } else {
            Err(Error::InvalidArgument {
                what: WHAT,
                detail: format!("{} values for {n} ranks", values.len()),
            })
        };
        let sizes: Vec<u64> = match &encs {
            Ok(encs) => encs.iter().map(|e| e.len() as u64).collect(),
            Err(_) => vec![FAILED; n],
        };
        let mut theirs = vec![0u64; n];
        self.alltoall(&sizes, &mut theirs)?;
        let (recv_counts, total) = counts(&theirs, WHAT)?;
        let (send, send_counts) = match &encs {
            Ok(encs) => (encs.concat(), encs.iter().map(Vec::len).collect()),
            Err(_) => (Vec::new(), vec![0; n]),
        };
        let mut all = zeroed(total, WHAT)?;
        self.alltoallv(&send, &send_counts, &mut all, &recv_counts)?;
        encs?;
        decode_blocks(&all, &theirs, WHAT)
    }
}

/// A receive of a value ([`Comm::irecv_value`]); waiting decodes it.
#[must_use = "a request completes only by the end of its scope; wait for it to get the value"]
pub struct ValueRequest<'scope, T> {
    bytes: VecRequest<'scope, u8>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> ValueRequest<'_, T> {
    /// Waits for the message and decodes it ([`Error::Decode`] if it is not a `T`).
    pub fn wait(self) -> Result<(T, Status)> {
        let (bytes, st) = self.bytes.wait()?;
        Ok((
            decode(&bytes, "irecv_value", st.source(), Some(st.tag()))?,
            st,
        ))
    }

    /// Moves communication forward without blocking; the value once it has been received.
    pub fn test(&mut self) -> Result<Option<(T, Status)>> {
        match self.bytes.test()? {
            None => Ok(None),
            Some((bytes, st)) => {
                let v = decode(&bytes, "irecv_value", st.source(), Some(st.tag()))?;
                Ok(Some((v, st)))
            }
        }
    }

    /// Whether the receive has completed (as last seen; does not make progress).
    pub fn is_complete(&self) -> bool {
        self.bytes.is_complete()
    }
}

impl<T> std::fmt::Debug for ValueRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueRequest")
            .field("bytes", &self.bytes)
            .finish()
    }
}
