//! Matched probe (MPI's `Mprobe` / `Mrecv`): find a message and receive exactly that one.
//!
//! [`Comm::probe`] followed by a receive for the probed source and tag is enough on one thread
//! (nothing can take the message in between), but not when the program also has receives posted
//! that match it (a nonblocking `ANY_SOURCE` receive takes it at the next progress step), nor
//! when it wants to look at several messages before deciding. [`Comm::mprobe`] takes the
//! message out of matching: no receive can take it any more, and only its [`Message`] handle
//! receives it (into a buffer, a vector sized for it, or as a value).
//!
//! A `Message` dropped without being received goes back to matching: to the oldest posted
//! receive it matches, else to its place among the messages not yet received. Receives that
//! completed meanwhile are not undone (so a later message of the same pair may have been
//! received before it: receive what you probe).

use bytemuck::Pod;

use super::p2p::{Source, TagMatch};
use super::{bytes_mut, Comm};
use crate::error::{Error, Result};
use crate::Status;

/// A message taken out of matching by [`Comm::mprobe`] or [`Comm::improbe`]; receive it with
/// [`Message::recv`], [`Message::recv_vec`] or [`Message::recv_value`].
#[must_use = "a probed message is received only through its handle (dropped, it goes back to matching)"]
pub struct Message {
    comm: Comm,
    arrival: u64,
    status: Status,
    received: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("status", &self.status)
            .finish()
    }
}

impl Comm {
    /// Waits for a message matching `src` and `tag` and takes it out of matching: no other
    /// receive can take it; receive it through the returned [`Message`].
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&[1.5f64, 2.5], me, 4)?;
    /// let msg = world.mprobe(mpr::ANY_SOURCE, mpr::ANY_TAG)?;
    /// assert_eq!(msg.status().count::<f64>(), 2);
    /// let (v, st) = msg.recv_vec::<f64>()?; // exactly the probed message
    /// assert_eq!((v, st.tag()), (vec![1.5, 2.5], 4));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn mprobe(&self, src: impl Into<Source>, tag: impl Into<TagMatch>) -> Result<Message> {
        let _seen = self.seen("mprobe", 0);
        let src = self.src(src.into())?;
        let tag = tag.into().as_option();
        loop {
            let got = self.engine.borrow_mut().mprobe(self.ctx, src, tag, true)?;
            if let Some((arrival, raw)) = got {
                return Ok(self.message(arrival, raw));
            }
        }
    }

    /// [`Comm::mprobe`] without waiting: `None` if no matching message has arrived.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// assert!(world.improbe(world.rank(), 77)?.is_none()); // nothing sent with tag 77
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn improbe(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Option<Message>> {
        let _seen = self.seen("improbe", 0);
        let src = self.src(src.into())?;
        let tag = tag.into().as_option();
        let got = self.engine.borrow_mut().mprobe(self.ctx, src, tag, false)?;
        Ok(got.map(|(arrival, raw)| self.message(arrival, raw)))
    }

    fn message(&self, arrival: u64, raw: crate::engine::RawStatus) -> Message {
        Message {
            comm: self.handle(),
            arrival,
            status: self.status(raw),
            received: false,
        }
    }
}

impl Message {
    /// What the message is: its source, tag and size.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Receives the message into `buf` ([`Error::Truncated`] if it does not fit: it is consumed).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send(&[7u32; 3], me, 0)?;
    /// let msg = world.mprobe(me, 0)?;
    /// let mut buf = vec![0u32; msg.status().count::<u32>()];
    /// msg.recv(&mut buf)?;
    /// assert_eq!(buf, [7, 7, 7]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn recv<T: Pod>(mut self, buf: &mut [T]) -> Result<Status> {
        self.received = true;
        let bytes = bytes_mut(buf);
        let cap = bytes.len();
        let raw = self
            .comm
            .engine
            .borrow_mut()
            .recv_held(self.arrival, bytes)?;
        self.comm.received(raw, cap)
    }

    /// Receives the message into a vector of its size (an error if the size is not a whole
    /// number of `T`s; the message is consumed then).
    pub fn recv_vec<T: Pod>(self) -> Result<(Vec<T>, Status)> {
        let size = std::mem::size_of::<T>();
        let len = self.status.bytes();
        if size == 0 || len % size != 0 {
            let _ = self.recv::<u8>(&mut []);
            return Err(Error::not_whole("Message::recv_vec", len, size));
        }
        let mut v = Vec::new();
        if v.try_reserve_exact(len / size).is_err() {
            // Not received: dropping the handle gives the message back.
            return Err(Error::OutOfMemory {
                what: "Message::recv_vec",
                bytes: len,
            });
        }
        v.resize(len / size, T::zeroed());
        let st = self.recv(&mut v)?;
        Ok((v, st))
    }

    /// Receives the message as a value (feature `serde`); [`Error::Decode`] if it is not one of
    /// type `T`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let me = world.rank();
    /// world.send_value(&("job", vec![1u8, 2]), me, 3)?;
    /// let msg = world.mprobe(mpr::ANY_SOURCE, 3)?;
    /// let ((name, data), _st) = msg.recv_value::<(String, Vec<u8>)>()?;
    /// assert_eq!((name.as_str(), data.len()), ("job", 2));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn recv_value<T: serde::de::DeserializeOwned>(self) -> Result<(T, Status)> {
        let (bytes, st) = self.recv_vec::<u8>()?;
        let v = super::value::decode(&bytes, "Message::recv_value", st.source(), Some(st.tag()))?;
        Ok((v, st))
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if self.received {
            return;
        }
        // Outside every engine call (a handle is dropped by the program); if the engine were in
        // use the message would stay held, never received, rather than be lost silently.
        if let Ok(mut engine) = self.comm.engine.try_borrow_mut() {
            engine.release_held(self.arrival);
        }
    }
}
