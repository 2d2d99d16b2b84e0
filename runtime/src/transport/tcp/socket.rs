//! Socket set-up with socket2: listeners and connections with the options mpr relies on.
//!
//! TCP_NODELAY is always on (a runtime batches its own frames; Nagle would add a delayed-ACK
//! stall to every small message). Buffer sizes follow [`Tuning::socket_buffer`]: left to the
//! kernel's autotuning by default, which measured best on loopback.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::tuning::Tuning;

/// A non-blocking listener on `ip`, any port.
pub(crate) fn listen(ip: IpAddr) -> io::Result<mio::net::TcpListener> {
    let addr = SocketAddr::new(ip, 0);
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(s.into()))
}

/// A connected, non-blocking, configured stream to `addr`.
pub(crate) fn connect(addr: SocketAddr, tuning: &Tuning) -> io::Result<mio::net::TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_cloexec(true)?;
    configure(&s, tuning)?;
    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    s.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(s.into()))
}

/// Applies the per-connection options to an accepted or dialled socket.
pub(crate) fn configure<'s>(s: impl Into<SockRef<'s>>, tuning: &Tuning) -> io::Result<()> {
    let s = s.into();
    s.set_tcp_nodelay(true)?;
    if tuning.socket_buffer > 0 {
        s.set_send_buffer_size(tuning.socket_buffer)?;
        s.set_recv_buffer_size(tuning.socket_buffer)?;
    }
    Ok(())
}
