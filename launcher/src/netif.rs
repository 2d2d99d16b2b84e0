//! Which address a job's ranks listen on when it spans hosts: not loopback, but the address of
//! the interface that reaches the other hosts. `--iface NAME|CIDR` (`MPR_IFACE`) names it;
//! otherwise the kernel's routing table says which local address reaches a given host (a UDP
//! socket "connected" to it sends nothing, and its local address is the answer).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

/// The local address the routing table uses towards `dest`.
pub fn route_to(dest: IpAddr) -> Result<IpAddr, String> {
    let any: SocketAddr = match dest {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let s = UdpSocket::bind(any).map_err(|e| format!("no route to {dest}: {e}"))?;
    s.connect((dest, 9))
        .map_err(|e| format!("no route to {dest}: {e}"))?;
    let ip = s
        .local_addr()
        .map_err(|e| format!("no route to {dest}: {e}"))?
        .ip();
    if ip.is_unspecified() {
        return Err(format!("no route to {dest}"));
    }
    Ok(ip)
}

/// The address of `host` (a name or an address), IPv4 first.
pub fn resolve(host: &str) -> Result<IpAddr, String> {
    let addrs: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("host {host}: cannot resolve its address: {e}"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("host {host}: no address"))
}

/// The addresses of this machine's interfaces (empty if they cannot be listed).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let s = a.address?;
            s.as_sockaddr_in()
                .map(|v| IpAddr::V4(v.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
        })
        .collect()
}

/// The local IPv4 address that `spec` names: an interface name (`eth0`) or a network in CIDR
/// notation (`10.99.0.0/24`).
pub fn from_spec(spec: &str) -> Result<IpAddr, String> {
    let net = match spec.split_once('/') {
        Some((addr, bits)) => {
            let addr: std::net::Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("--iface {spec}: {addr:?} is not an IPv4 address"))?;
            let bits: u32 =
                bits.parse().ok().filter(|b| *b <= 32).ok_or_else(|| {
                    format!("--iface {spec}: {bits:?} is not a prefix length 0-32")
                })?;
            Some((u32::from(addr), bits))
        }
        None => None,
    };
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("--iface {spec}: cannot list the interfaces: {e}"))?;
    for a in addrs {
        let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        let hit = match net {
            Some((base, bits)) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(ip) & mask == base & mask
            }
            None => a.interface_name == spec,
        };
        if hit {
            return Ok(IpAddr::V4(ip));
        }
    }
    Err(match net {
        Some(_) => format!("--iface {spec}: no local IPv4 address in that network"),
        None => format!("--iface {spec}: no interface of that name with an IPv4 address"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_name_by_network_and_by_route() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(from_spec("lo").unwrap(), lo);
        assert_eq!(from_spec("127.0.0.0/8").unwrap(), lo);
        assert_eq!(route_to(lo).unwrap(), lo);
        assert_eq!(resolve("localhost").unwrap(), lo);
        for bad in ["nosuchif0", "10.0.0.0/33", "x/8", "240.0.0.0/8"] {
            let e = from_spec(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(resolve("no-such-host.invalid").is_err());
    }
}
