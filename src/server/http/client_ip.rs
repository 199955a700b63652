//! The client's address: the socket peer, unless the peer is a trusted proxy; then it is
//! the rightmost address in `Forwarded` (or `X-Forwarded-For`) that is not a trusted
//! proxy. Entries left of it are written by the client itself and never believed.

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap};
use clarion_core::admission::canonical;
use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which proxies' forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub enum ClientIpPolicy {
    /// None: the client is the socket peer.
    #[default]
    Direct,
    /// `CLARION_TRUST_PROXY_HEADERS` alone: the peer, whatever it is, is the only proxy,
    /// so the client is the last address it appended.
    PeerIsTheProxy,
    /// `CLARION_TRUSTED_PROXIES`: headers are read only from a peer in these networks,
    /// and every address in them is skipped from the right.
    Trusted(Arc<Vec<IpNet>>),
}

impl ClientIpPolicy {
    /// From the settings: a comma-separated list of CIDRs (or bare addresses), and the
    /// older switch that trusts the peer as the only proxy.
    pub fn from_settings(trusted_proxies: &str, trust_proxy_headers: bool) -> Result<Self, String> {
        let networks = trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an address or a CIDR network (e.g. 10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match (networks.is_empty(), trust_proxy_headers) {
            (false, _) => Self::Trusted(Arc::new(networks)),
            (true, true) => Self::PeerIsTheProxy,
            (true, false) => Self::Direct,
        })
    }

    /// True when this peer is a proxy whose headers (`X-Forwarded-*`, `Forwarded`) count.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        match self {
            Self::Direct => false,
            Self::PeerIsTheProxy => true,
            Self::Trusted(networks) => networks.iter().any(|n| n.contains(&canonical(peer))),
        }
    }

    /// The client IP: the socket peer, or, when the peer is a trusted proxy, the rightmost
    /// forwarded address that is not a trusted proxy.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let peer = peer.map(|p| canonical(p.ip())).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        let client = match self {
            Self::Trusted(networks) => hops.iter().rev().find(|ip| !networks.iter().any(|n| n.contains(*ip))).or(hops.first()).copied(),
            _ => hops.last().copied(),
        };
        client.unwrap_or(peer)
    }

    /// The client IP of a request: its headers, and the socket peer that axum's
    /// `ConnectInfo` puts in its extensions.
    pub fn of(&self, headers: &HeaderMap, extensions: &axum::http::Extensions) -> IpAddr {
        self.client_ip(headers, peer(extensions))
    }

    /// True when the request came through a trusted proxy, whose `X-Forwarded-Proto` counts.
    pub fn via_trusted_proxy(&self, extensions: &axum::http::Extensions) -> bool {
        peer(extensions).is_some_and(|p| self.trusts(canonical(p.ip())))
    }
}

fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The addresses a request passed through, client side first: from `X-Forwarded-For`
/// (what nginx, HAProxy and cloud load balancers append), else `Forwarded`. A proxy that
/// writes only `Forwarded` must drop a client's `X-Forwarded-For`. Hops without an
/// address (`unknown`, obfuscated) are left out; an unparsable header yields none.
fn forwarded_hops(headers: &HeaderMap) -> Vec<IpAddr> {
    let parse = |name: header::HeaderName, parser: fn(&str) -> Option<ForwardedHeaderValue>| {
        let joined = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
        (!joined.trim().is_empty()).then(|| parser(&joined)).flatten()
    };
    let value = parse(header::HeaderName::from_static("x-forwarded-for"), |v| ForwardedHeaderValue::from_x_forwarded_for(v).ok())
        .or_else(|| parse(header::FORWARDED, |v| ForwardedHeaderValue::from_forwarded(v).ok()));
    value.map(|v| v.iter().filter_map(|stanza| stanza.forwarded_for_ip()).map(canonical).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn proxy_headers_count_only_from_a_trusted_peer() {
        let mut headers = HeaderMap::new();
        // The client wrote 6.6.6.6 itself; the proxy at 10.0.0.1 appended what it saw.
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7"));
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 9000)));
        let direct = ClientIpPolicy::from_settings("", false).unwrap();
        assert_eq!(direct.client_ip(&headers, peer), ip("10.0.0.1"));
        let alone = ClientIpPolicy::from_settings("", true).unwrap();
        assert_eq!(alone.client_ip(&headers, peer), ip("203.0.113.7"), "the rightmost entry, never the client-written leftmost");
        let listed = ClientIpPolicy::from_settings("10.0.0.0/8, 192.0.2.5", false).unwrap();
        assert_eq!(listed.client_ip(&headers, peer), ip("203.0.113.7"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7, 192.0.2.5"));
        assert_eq!(listed.client_ip(&headers, peer), ip("203.0.113.7"), "trusted proxies are skipped from the right");
        let stranger = Some(SocketAddr::from(([198, 51, 100, 9], 9000)));
        assert_eq!(listed.client_ip(&headers, stranger), ip("198.51.100.9"), "headers from an untrusted peer are ignored");
        assert_eq!(ClientIpPolicy::from_settings("10.0.0.0/8", true).unwrap().client_ip(&headers, stranger), ip("198.51.100.9"));
        assert!(ClientIpPolicy::from_settings("10.0.0.0/33", false).unwrap_err().contains("10.0.0.0/33"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let mut headers = HeaderMap::new();
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=198.51.100.2, for=\"[2001:db8::1]:4711\";proto=https"));
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(ClientIpPolicy::PeerIsTheProxy.client_ip(&headers, peer), ip("2001:db8::1"));
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=unknown"));
        assert_eq!(ClientIpPolicy::PeerIsTheProxy.client_ip(&headers, peer), ip("127.0.0.1"), "no address: the peer");
    }
}
