//! Socket set-up with socket2: listeners and connections with the options mpr relies on.
//!
//! TCP_NODELAY is always on (a runtime batches its own frames; Nagle would add a delayed-ACK
//! stall to every small message). Buffer sizes follow [`Tuning::socket_buffer`]: left to the
//! kernel's defaults (autotuning, for TCP) unless set, which measured best on loopback.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use super::stream::{local_name, Listener, Stream};
use crate::tuning::Tuning;

/// A non-blocking TCP listener on `ip`, any port, and the address it got.
pub(crate) fn listen(ip: IpAddr) -> io::Result<(Listener, SocketAddr)> {
    let addr = SocketAddr::new(ip, 0);
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let s = bind_listen(s, &addr.into())?;
    let got = s
        .local_addr()?
        .as_socket()
        .ok_or(io::ErrorKind::AddrNotAvailable)?;
    Ok((
        Listener::Tcp(mio::net::TcpListener::from_std(s.into())),
        got,
    ))
}

/// A non-blocking listener for this host's ranks (see [`local_name`]).
pub(crate) fn listen_local(job_id: u64, rank: usize) -> io::Result<Listener> {
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let s = bind_listen(s, &local_name(job_id, rank)?)?;
    Ok(Listener::Unix(mio::net::UnixListener::from_std(s.into())))
}

fn bind_listen(s: Socket, addr: &SockAddr) -> io::Result<Socket> {
    s.set_cloexec(true)?;
    s.bind(addr)?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A non-blocking, configured TCP stream to `addr`, connecting: the connect completes (or
/// fails) while the rank goes on, and the transport learns which from the stream itself (the
/// acceptor's challenge, or an error on read). A rank blocked in a connect would accept no one
/// meanwhile, and under packet loss a connect can take seconds.
pub(crate) fn connect(addr: SocketAddr, tuning: &Tuning) -> io::Result<Stream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_cloexec(true)?;
    configure(&s, tuning)?;
    s.set_nonblocking(true)?;
    start_connect(&s, &addr.into())?;
    Ok(Stream::Tcp(mio::net::TcpStream::from_std(s.into())))
}

/// A non-blocking stream to rank `rank` of this host (see [`local_name`]). A full backlog at
/// the peer is an error (`WouldBlock`), for the caller to try again, not a wait.
pub(crate) fn connect_local(job_id: u64, rank: usize, tuning: &Tuning) -> io::Result<Stream> {
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_cloexec(true)?;
    configure(&s, tuning)?;
    s.set_nonblocking(true)?;
    start_connect(&s, &local_name(job_id, rank)?)?;
    Ok(Stream::Unix(mio::net::UnixStream::from_std(s.into())))
}

/// Starts a connect on a non-blocking socket: done, or under way (`EINPROGRESS`).
fn start_connect(s: &Socket, addr: &SockAddr) -> io::Result<()> {
    match s.connect(addr) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        other => other,
    }
}

/// Applies the per-connection options to an accepted or dialled socket.
pub(crate) fn configure<'s>(s: impl Into<SockRef<'s>>, tuning: &Tuning) -> io::Result<()> {
    let s = s.into();
    if s.domain()? != Domain::UNIX {
        s.set_tcp_nodelay(true)?;
    }
    if tuning.socket_buffer > 0 {
        s.set_send_buffer_size(tuning.socket_buffer)?;
        s.set_recv_buffer_size(tuning.socket_buffer)?;
    }
    Ok(())
}
