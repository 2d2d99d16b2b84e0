//! The one public error type of mpr.
//!
//! Every fallible call returns [`Result<T>`]. Variants carry enough context (the rank, the tag, the
//! sizes, the operation) that the `Display` text alone tells a person at a terminal what went wrong.
//! `std::io::Error` never leaks out of the transport raw: it is wrapped with the operation and the
//! peer it concerned.

use std::fmt;
use std::io;

/// `Result<T, mpr::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong in an mpr call.
///
/// Its `Debug` form is its `Display` text (as with `anyhow`): `fn main() -> mpr::Result<()>`
/// prints an error that returns from `main` with `Debug`, and a person reads it at a terminal.
/// Match on the variants for the details.
#[non_exhaustive]
pub enum Error {
    /// A message was larger than the receive buffer. The message has been consumed: the next
    /// receive sees the next message.
    Truncated {
        /// Rank (in the communicator) that sent the message.
        source: usize,
        /// Tag of the message.
        tag: u32,
        /// Size of the message in bytes.
        message_bytes: usize,
        /// Size of the receive buffer in bytes.
        buffer_bytes: usize,
    },
    /// A rank outside `0..size` was named.
    InvalidRank {
        /// The rank that was given.
        rank: usize,
        /// The size of the communicator.
        size: usize,
    },
    /// A peer process died, finalized, or its connection broke.
    PeerFailed {
        /// Rank (in the world) of the peer.
        rank: usize,
        /// What was observed.
        cause: PeerCause,
    },
    /// The receive was cancelled ([`Request::cancel`](crate::Request::cancel)) before any
    /// message matched it: waiting on it returns this.
    Cancelled,
    /// Arguments that do not fit together (lengths, counts, sizes).
    InvalidArgument {
        /// The call or parameter concerned.
        what: &'static str,
        /// Why it was refused.
        detail: String,
    },
    /// The job could not be joined: the environment `mprun` sets is malformed or its rendezvous
    /// service could not be reached.
    Bootstrap {
        /// What failed.
        what: String,
    },
    /// Memory for a message could not be allocated (`recv_vec` of a message larger than this
    /// process may allocate). Nothing was received: the message is still there for a receive
    /// into a buffer of the caller's.
    OutOfMemory {
        /// The call concerned.
        what: &'static str,
        /// Bytes that could not be allocated.
        bytes: usize,
    },
    /// A value could not be encoded for sending (`send_value` and the other value calls): its
    /// `Serialize` returned an error, or it is a shape the format cannot write (a sequence
    /// whose length is not known in advance). Nothing was sent.
    Encode {
        /// The call concerned.
        what: &'static str,
        /// Why, as the encoder said.
        detail: String,
    },
    /// A received message is not the encoding of a value of the type asked for (`recv_value`
    /// and the other value calls). The message was consumed.
    Decode {
        /// The call concerned.
        what: &'static str,
        /// Rank (in the communicator) that sent the message.
        source: usize,
        /// Tag of the message (`None` in a collective).
        tag: Option<u32>,
        /// Why, as the decoder said.
        detail: String,
    },
    /// A local operating-system call failed.
    Os {
        /// The operation (for example `"bind listener"`, `"epoll_wait"`).
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The request at `index` of the vector given to [`wait_any`](crate::wait_any) or
    /// [`test_any`](crate::test_any) completed with `error` (it was removed from the vector).
    /// [`Error::inner`] looks through this to the error itself.
    InRequest {
        /// Where the request was in the vector.
        index: usize,
        /// What it failed with.
        error: Box<Error>,
    },
}

/// How a peer was seen to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerCause {
    /// The connection was closed without the peer finalizing (the process most likely exited or died).
    ConnectionClosed,
    /// The peer called finalize; no further traffic with it is possible.
    Finalized,
    /// A socket call on the connection failed.
    Io {
        /// The operation, for example `"read"`, `"write"`, `"connect"`.
        op: &'static str,
        /// The kind of error.
        kind: io::ErrorKind,
        /// The OS error text.
        message: String,
    },
    /// The peer sent bytes that are not a valid mpr frame.
    Protocol(String),
    /// The peer's address could not be obtained from the launcher.
    Unreachable(String),
    /// The peer's process no longer exists (seen by a rank of the same host).
    Vanished,
    /// The launcher saw the peer end, as said.
    Ended(String),
    /// The launcher saw the peer end normally (exit code 0) with no connection to this rank
    /// left that could still deliver anything from it.
    Finished,
}

impl fmt::Display for PeerCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerCause::ConnectionClosed => write!(
                f,
                "connection closed without finalize (process exited or died)"
            ),
            PeerCause::Finalized => write!(f, "peer has already finalized"),
            PeerCause::Io { op, message, .. } => write!(f, "{op} failed: {message}"),
            PeerCause::Protocol(what) => write!(f, "protocol violation: {what}"),
            PeerCause::Unreachable(what) => write!(f, "unreachable: {what}"),
            PeerCause::Vanished => write!(f, "its process no longer exists"),
            PeerCause::Ended(how) => write!(f, "it {how} (mprun says)"),
            PeerCause::Finished => write!(f, "it has already ended normally (exit code 0)"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { source, tag, message_bytes, buffer_bytes } => write!(
                f,
                "message truncated: {message_bytes} bytes from rank {source} (tag {tag}) do not fit a {buffer_bytes}-byte receive buffer"
            ),
            Error::InvalidRank { rank, size } => {
                write!(f, "invalid rank {rank}: the communicator has {size} ranks (0..{size})")
            }
            Error::PeerFailed { rank, cause } => write!(f, "peer rank {rank} failed: {cause}"),
            Error::Cancelled => write!(f, "the receive was cancelled before a message matched it"),
            Error::InvalidArgument { what, detail } => write!(f, "invalid argument to {what}: {detail}"),
            Error::Bootstrap { what } => write!(f, "cannot join the job: {what}"),
            Error::OutOfMemory { what, bytes } => write!(
                f,
                "{what}: cannot allocate {bytes} bytes for the message (it was not received)"
            ),
            Error::Encode { what, detail } => {
                write!(f, "{what}: cannot encode the value: {detail}")
            }
            Error::Decode { what, source, tag: Some(tag), detail } => write!(
                f,
                "{what}: the message from rank {source} (tag {tag}) is not a value of the type asked for: {detail}"
            ),
            Error::Decode { what, source, tag: None, detail } => write!(
                f,
                "{what}: the value from rank {source} is not of the type asked for: {detail}"
            ),
            Error::Os { op, source } => write!(f, "{op} failed: {source}"),
            Error::InRequest { index, error } => write!(f, "request {index}: {error}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// A received message of `bytes` bytes that is not a whole number of `size`-byte elements
    /// (it was consumed): what every receive into a typed buffer of the message's own size says.
    pub(crate) fn not_whole(what: &'static str, bytes: usize, size: usize) -> Error {
        Error::InvalidArgument {
            what,
            detail: format!(
                "a message of {bytes} bytes is not a whole number of {size}-byte elements (it was consumed)"
            ),
        }
    }

    /// The error itself, looking through [`Error::InRequest`] (which only says which request
    /// of a [`wait_any`](crate::wait_any) failed).
    ///
    /// ```
    /// let e = mpr::Error::InRequest { index: 2, error: Box::new(mpr::Error::Cancelled) };
    /// assert!(matches!(e.inner(), mpr::Error::Cancelled));
    /// assert_eq!(e.request_index(), Some(2));
    /// ```
    pub fn inner(&self) -> &Error {
        match self {
            Error::InRequest { error, .. } => error.inner(),
            other => other,
        }
    }

    /// The index of the failed request, for an error of [`wait_any`](crate::wait_any) or
    /// [`test_any`](crate::test_any) that one request completed with.
    pub fn request_index(&self) -> Option<usize> {
        match self {
            Error::InRequest { index, .. } => Some(*index),
            _ => None,
        }
    }

    pub(crate) fn os(op: &'static str, source: io::Error) -> Error {
        Error::Os { op, source }
    }
}

impl PeerCause {
    /// The cause of a failed `op` on a link. `InvalidData` never comes from a socket: it is how
    /// a ring in shared memory says its peer wrote what no correct peer writes
    /// (`transport/shm`), a protocol violation.
    pub(crate) fn io(op: &'static str, e: &io::Error) -> PeerCause {
        if e.kind() == io::ErrorKind::InvalidData {
            return PeerCause::Protocol(e.to_string());
        }
        PeerCause::Io {
            op,
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_reads_like_display() {
        let e = Error::PeerFailed {
            rank: 1,
            cause: PeerCause::Finished,
        };
        assert_eq!(format!("{e:?}"), e.to_string());
        assert_eq!(
            format!("{e:?}"),
            "peer rank 1 failed: it has already ended normally (exit code 0)"
        );
    }
}
