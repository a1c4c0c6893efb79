//! The client's IP for rate limiting, one rule for the widget API and the site: the socket
//! peer, or — only when the peer is one of the operator's trusted proxies — the right-most
//! X-Forwarded-For entry that is not itself a trusted proxy. A client cannot choose its own
//! rate-limit bucket by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    forwarded_for
        .into_iter()
        .flat_map(|h| h.rsplit(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// The client's IP of a request, or `None` when the server was not given the peer address
/// (a router served without `into_make_service_with_connect_info`).
pub fn of_request(parts: &Parts, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
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
    Some(resolve(peer, header, trusted))
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
}
