//! The client's address for rate limiting, one rule for the widget API and the site: the
//! socket peer, or — only when the peer is one of the operator's trusted proxies — the
//! right-most X-Forwarded-For entry that is not itself a trusted proxy. A client cannot
//! choose its own rate-limit bucket by sending the header.
//!
//! The bucket is a network, not an address: an IPv4 client is its /32, an IPv6 client its
//! /64 (one subscriber usually holds a whole /64, so per-address buckets would give it 2^64
//! of them). X-Forwarded-For entries may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::error::AppError;
use crate::state::AppState;

/// The network a client is counted as (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpNet);

/// Bits of an IPv6 address that name one client.
pub const IPV6_CLIENT_PREFIX: u8 = 64;

/// The rate-limit bucket of an address: its /32 (IPv4, also IPv4-mapped IPv6) or its /64.
pub fn bucket(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => IpNet::from(v4),
        v6 @ IpAddr::V6(_) => IpNet::new(v6, IPV6_CLIENT_PREFIX)
            .expect("a valid prefix length")
            .trunc(),
    }
}

/// One X-Forwarded-For entry: an address, optionally with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`) or in brackets (`[2001:db8::1]`).
pub fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<IpAddr>().ok())
}

pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| {
        let ip = ip.to_canonical();
        trusted.iter().any(|n| n.contains(&ip))
    };
    if !is_trusted(&peer) {
        return peer;
    }
    forwarded_for
        .into_iter()
        .flat_map(|h| h.rsplit(','))
        .filter_map(parse_forwarded_entry)
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// The client's rate-limit bucket of a request, or `None` when the server was not given the
/// peer address (a router served without `into_make_service_with_connect_info`).
pub fn of_request(parts: &Parts, trusted: &[IpNet]) -> Option<IpNet> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let xff: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = xff.join(",");
    let header = (!xff.is_empty()).then_some(joined.as_str());
    Some(bucket(resolve(peer, header, trusted)))
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        of_request(parts, &state.config.trusted_proxies)
            .map(ClientIp)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("203.0.113.5"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn rightmost_untrusted_entry_wins_behind_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the proxy appended the real address.
        assert_eq!(
            resolve(
                ip("10.0.0.2"),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.9"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(resolve(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
    }

    /// Attack: a client holding a /64 rotates through its 2^64 addresses to get a fresh
    /// bucket for every request.
    #[test]
    fn ipv6_addresses_of_one_slash_64_share_one_bucket() {
        let a = bucket(ip("2001:db8:1:2::1"));
        let b = bucket(ip("2001:db8:1:2:ffff:ffff:ffff:fffe"));
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_ne!(
            a,
            bucket(ip("2001:db8:1:3::1")),
            "the next /64 is someone else"
        );
        assert_eq!(bucket(ip("203.0.113.5")).to_string(), "203.0.113.5/32");
        assert_ne!(bucket(ip("203.0.113.5")), bucket(ip("203.0.113.6")));
        // An IPv4-mapped IPv6 peer is its IPv4 address, not the /64 of every IPv4 client.
        assert_eq!(bucket(ip("::ffff:203.0.113.5")), bucket(ip("203.0.113.5")));
    }

    /// Attack: a proxy that appends `address:port` made Parlo skip the real client and
    /// count every request against the proxy's own address.
    #[test]
    fn forwarded_entries_with_ports_are_parsed_not_skipped() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(ip("10.0.0.2"), Some("6.6.6.6, 198.51.100.7:5678"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), Some("[2001:db8::1]:443"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), Some("[2001:db8::2]"), &trusted),
            ip("2001:db8::2")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), Some("10.0.0.7:80, 203.0.113.1:1"), &trusted),
            ip("203.0.113.1")
        );
        assert_eq!(parse_forwarded_entry("unknown"), None);
        assert_eq!(parse_forwarded_entry("_hidden"), None);
    }
}
