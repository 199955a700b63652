//! DNS for the sender: push-service names may only resolve to public addresses.
//!
//! The endpoint check at subscribe time sees a name; what matters is where the connection
//! goes. Resolving here, for every connection, refuses loopback, private, link-local,
//! CGNAT, multicast, unspecified and reserved addresses (also after a DNS rebinding),
//! except for hosts the operator listed in `CLARION_PUSH_HOSTS`.

use clarion_domain::subscription::PushHostPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

/// Refuses, besides the obvious, every IPv6 form that carries an IPv4 address a relay or
/// translator may turn into a private one (NAT64, 6to4, Teredo, IPv4-compatible).
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (first == 0x2001 && s[1] == 0x0db8) // documentation
        || (first == 0x2001 && s[1] == 0x0000) // Teredo 2001::/32
        || first == 0x2002 // 6to4 2002::/16
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]) // NAT64 64:ff9b::/96
        || s[..6] == [0; 6]) // IPv4-compatible ::a.b.c.d (::/96)
}

/// A resolver that drops non-public addresses for every host the operator did not list.
#[derive(Debug)]
pub struct PublicOnlyResolver {
    policy: Arc<PushHostPolicy>,
}

impl PublicOnlyResolver {
    pub fn new(policy: Arc<PushHostPolicy>) -> Self {
        Self { policy }
    }

    /// Resolves `host`, keeping only the addresses it may connect to.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, String> {
        let trusted = self.policy.is_operator_hostname(host);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await.map_err(|e| format!("{host}: {e}"))?.collect();
        let allowed: Vec<SocketAddr> = if trusted { addresses } else { addresses.into_iter().filter(|a| is_public(a.ip())).collect() };
        if allowed.is_empty() {
            return Err(format!("{host} resolves only to private or reserved addresses; refusing to connect"));
        }
        Ok(allowed)
    }
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let resolver = Self { policy: self.policy.clone() };
        Box::pin(async move {
            match resolver.lookup(&host).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as Addrs),
                Err(reason) => {
                    tracing::warn!(%host, %reason, "refused a push-service address");
                    Err(reason.into())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
            "::8.8.8.8",
            "fec0::1",
            "192.0.0.8",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["142.250.74.42", "2a00:1450:4001:80b::200a", "1.1.1.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn refuses_names_that_resolve_to_loopback_unless_listed() {
        let refusing = PublicOnlyResolver::new(Arc::new(PushHostPolicy::default()));
        assert!(refusing.lookup("localhost").await.unwrap_err().contains("private"));
        let listed = PublicOnlyResolver::new(Arc::new(PushHostPolicy::from_list("localhost:8090").unwrap()));
        assert!(listed.lookup("localhost").await.unwrap().iter().all(|a| a.ip().is_loopback()));
    }
}
