//! Dialling by name: `/dns`, `/dns4` and `/dns6` multiaddrs (in `--bootstrap`, `--announce`,
//! `p2p.peers`, identify and Kademlia records) are resolved by the system resolver on every
//! dial, so a member that moved to a new address under the same name is found on its next
//! redial, and a name in `/etc/hosts`, nsswitch or a container's DNS means what it means to
//! every other program on the host.
//!
//! libp2p's DNS transport is not used: its resolver reads `/etc/hosts` once and caches answers,
//! so it would keep dialling a moved peer's old address. Owns only that resolution step, in
//! front of the TCP and QUIC transports; it keeps no addresses between dials and never touches
//! listening, which needs IP addresses.

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// Wraps a transport so that a dial of a name resolves it first, then dials each address
/// the name resolves to, in the resolver's order, until one connects.
pub struct SystemDns<T> {
    /// Shared with dials in flight, which dial the resolved addresses later.
    inner: Arc<Mutex<T>>,
}

impl<T> SystemDns<T> {
    /// Resolution in front of `inner`.
    pub fn new(inner: T) -> Self {
        SystemDns {
            inner: Arc::new(Mutex::new(inner)),
        }
    }
}

/// Which address family a name component asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// The name, wanted family and port of an address that starts with a DNS component, or `None`
/// for an address that needs no resolution.
fn name_of(addr: &Multiaddr) -> Option<(String, Family, u16)> {
    let mut it = addr.iter();
    let (name, family) = match it.next()? {
        Protocol::Dns(n) => (n.to_string(), Family::Any),
        Protocol::Dns4(n) => (n.to_string(), Family::V4),
        Protocol::Dns6(n) => (n.to_string(), Family::V6),
        _ => return None,
    };
    let port = match it.next() {
        Some(Protocol::Tcp(p) | Protocol::Udp(p)) => p,
        _ => 0,
    };
    Some((name, family, port))
}

/// `addr` with its leading name replaced by `ip`.
fn with_ip(addr: &Multiaddr, ip: IpAddr) -> Multiaddr {
    let mut out = Multiaddr::empty();
    out.push(match ip {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    });
    for p in addr.iter().skip(1) {
        out.push(p);
    }
    out
}

/// Every address `addr` names now, in the resolver's order, without repeats.
pub async fn resolve(addr: &Multiaddr) -> io::Result<Vec<Multiaddr>> {
    let Some((name, family, port)) = name_of(addr) else {
        return Ok(vec![addr.clone()]);
    };
    let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {name}: {e}")))?
        .collect();
    let mut out: Vec<Multiaddr> = Vec::new();
    for sa in found {
        let keep = match family {
            Family::Any => true,
            Family::V4 => sa.is_ipv4(),
            Family::V6 => sa.is_ipv6(),
        };
        let a = with_ip(addr, sa.ip());
        if keep && !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{name} has no {} address",
                match family {
                    Family::Any => "IP",
                    Family::V4 => "IPv4",
                    Family::V6 => "IPv6",
                }
            ),
        ));
    }
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Transport for SystemDns<T>
where
    T: Transport<Error = io::Error> + Send + Unpin + 'static,
    T::Dial: Send + 'static,
    T::Output: Send + 'static,
{
    type Output = T::Output;
    type Error = io::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = BoxFuture<'static, io::Result<T::Output>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        lock(&self.inner).listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        lock(&self.inner).remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if name_of(&addr).is_none() {
            return Ok(lock(&self.inner).dial(addr, opts)?.boxed());
        }
        let inner = self.inner.clone();
        Ok(async move {
            let mut last: Option<io::Error> = None;
            for a in resolve(&addr).await? {
                let dial = lock(&inner).dial(a.clone(), opts);
                match dial {
                    Ok(f) => match f.await {
                        Ok(out) => return Ok(out),
                        Err(e) => last = Some(e),
                    },
                    Err(TransportError::MultiaddrNotSupported(a)) => {
                        last = Some(io::Error::new(
                            io::ErrorKind::Unsupported,
                            format!("{a} (from {addr}) is not a TCP or QUIC address"),
                        ));
                    }
                    Err(TransportError::Other(e)) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{addr} resolves to nothing"),
                )
            }))
        }
        .boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut *lock(&self.inner)).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_per_family_and_keep_the_rest_of_the_address() {
        let peer = libp2p::PeerId::random();
        let a: Multiaddr = format!("/dns4/localhost/tcp/4001/p2p/{peer}")
            .parse()
            .expect("addr");
        let got = resolve(&a).await.expect("localhost resolves");
        let want: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .expect("addr");
        assert_eq!(got, vec![want]);
        let quic: Multiaddr = "/dns4/localhost/udp/4001/quic-v1".parse().expect("addr");
        assert_eq!(
            resolve(&quic).await.expect("resolves"),
            vec![
                "/ip4/127.0.0.1/udp/4001/quic-v1"
                    .parse::<Multiaddr>()
                    .expect("addr")
            ]
        );
        let ip: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().expect("addr");
        assert_eq!(resolve(&ip).await.expect("as is"), vec![ip]);
    }
}
