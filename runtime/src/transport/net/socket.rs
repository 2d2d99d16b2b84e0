//! Socket set-up with socket2: listeners and connections with the options mpr relies on.
//!
//! TCP_NODELAY is always on (a runtime batches its own frames; Nagle would add a delayed-ACK
//! stall to every small message). Buffer sizes follow [`Tuning::socket_buffer`]: left to the
//! kernel's defaults (autotuning, for TCP) unless set, which measured best on loopback.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// A connected, non-blocking, configured TCP stream to `addr`.
pub(crate) fn connect(addr: SocketAddr, tuning: &Tuning) -> io::Result<Stream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_cloexec(true)?;
    configure(&s, tuning)?;
    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    s.set_nonblocking(true)?;
    Ok(Stream::Tcp(mio::net::TcpStream::from_std(s.into())))
}

/// A connected, non-blocking stream to rank `rank` of this host (see [`local_name`]).
pub(crate) fn connect_local(job_id: u64, rank: usize, tuning: &Tuning) -> io::Result<Stream> {
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_cloexec(true)?;
    configure(&s, tuning)?;
    s.connect(&local_name(job_id, rank)?)?;
    s.set_nonblocking(true)?;
    Ok(Stream::Unix(mio::net::UnixStream::from_std(s.into())))
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
