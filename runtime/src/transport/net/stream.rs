//! The two kinds of socket a link can run on, behind one type each for streams and listeners.
//!
//! Between hosts a link is TCP. Between two ranks of one host it is a Unix-domain stream socket
//! in the Linux abstract namespace (no file to create or clean up; the name is scoped to the
//! network namespace, so ranks that share a host by name share it). Both carry the same frames
//! with the same reader and writer; only the kernel path under them differs, and the local one is
//! shorter: measured on our 2-core machines (C ping-pong, spinning, BENCHMARKS.md), one-way 8 B
//! takes 2.6-2.8 µs over a Unix socket against 5.9-6.2 µs over loopback TCP, and streaming
//! 1 MiB writes moves 4.5-4.9 GB/s against 1.8-2.3 GB/s (16 MiB: 4.1-4.3 against 3.6-3.7).
//! `MPR_LOCAL=tcp` keeps every link on TCP.

use std::io::{self, IoSlice, Read, Write};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// A connected, non-blocking socket.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A non-blocking listener.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// The abstract-namespace name rank `rank` of job `job_id` listens on for its host's ranks.
/// (A path that starts with a NUL byte is an abstract name.)
pub(crate) fn local_name(job_id: u64, rank: usize) -> io::Result<socket2::SockAddr> {
    socket2::SockAddr::unix(format!("\0mpr.{job_id:016x}.{rank}"))
}

impl Stream {
    /// Whether the stream is connected (a dial's connect has completed).
    pub(crate) fn is_connected(&self) -> bool {
        socket2::SockRef::from(self).peer_addr().is_ok()
    }

    /// The process at the other end, if this is a local socket (see `sys::peer_pid`).
    pub(crate) fn local_peer_pid(&self) -> Option<u32> {
        match self {
            Stream::Tcp(_) => None,
            Stream::Unix(s) => crate::sys::peer_pid(std::os::fd::AsFd::as_fd(s)),
        }
    }
}

impl Listener {
    /// Accepts one connection: Ok(None) when none is waiting.
    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        let r = match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        };
        match r {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        both!(self, s => s.as_fd())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        both!(self, s => s.read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        both!(self, s => s.read_vectored(bufs))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        both!(self, s => s.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        both!(self, s => s.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        both!(self, s => s.register(r, t, i))
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        both!(self, s => s.reregister(r, t, i))
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        both!(self, s => s.deregister(r))
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix(l) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix(l) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l) => l.deregister(r),
        }
    }
}
