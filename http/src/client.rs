//! Who the client is when flashcore runs behind load balancers: the address
//! rate limits, idempotency scopes and security events use.
//!
//! Only a peer in `FLASHCORE_TRUSTED_PROXIES` is believed about the client:
//! then the address comes from `Forwarded` (RFC 7239), or `X-Forwarded-For`
//! when there is none, taking the right-most address that is not itself a
//! trusted proxy (every hop appends, so the right-most untrusted entry is the
//! last one a proxy of ours saw; anything left of it a client could have
//! written). From any other peer the headers are ignored, so no client talks
//! its way past a limit. A header that does not parse where it matters is
//! ignored the same way: the client is then the peer itself.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// What a trusted proxy said about the request, or the peer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address (the peer's, unless a trusted proxy forwarded it).
    pub addr: Option<IpAddr>,
    /// True when a trusted proxy says the request came over HTTPS.
    pub https: bool,
}

impl TrustedProxies {
    /// Parses a comma-separated list of networks (`10.0.0.0/8`) or addresses
    /// (`10.0.0.7`, one host).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither a network (10.0.0.0/8) nor an address"))?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// True when no proxy is trusted (the default): the peer is the client.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let direct = Client { addr: peer, https: false };
        let Some(peer) = peer.filter(|p| !self.is_empty() && self.trusts(*p)) else {
            return direct;
        };
        let hops = match forwarded(headers) {
            Some(hops) => hops,
            None => match x_forwarded_for(headers) {
                Some(hops) => hops,
                None => return Client { addr: Some(peer), https: self.proto_https(headers) },
            },
        };
        let https = self.proto_https(headers);
        // Right to left: skip our own proxies; the first other hop is the client.
        let mut client = None;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => client = Some(*ip),
                Some(ip) => return Client { addr: Some(*ip), https },
                // `unknown`, obfuscated or malformed: nobody to name but the peer.
                None => return Client { addr: Some(peer), https },
            }
        }
        // Every hop a trusted proxy: the left-most one is where it began.
        Client { addr: client.or(Some(peer)), https }
    }

    /// `Forwarded: proto=https` (its last element, the hop nearest us) or
    /// `X-Forwarded-Proto: https`, from a trusted peer.
    fn proto_https(&self, headers: &HeaderMap) -> bool {
        let last_forwarded = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|element| param(element, "proto"));
        if let Some(proto) = last_forwarded {
            return proto.eq_ignore_ascii_case("https");
        }
        headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` of every element of every `Forwarded` header, in order; `None`
/// when there is no such header. An element without a usable address is a
/// `None` hop.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            hops.push(param(element, "for").and_then(node_ip));
        }
    }
    Some(hops)
}

/// The value of `name` in one `Forwarded` element (`for=…;proto=…`), unquoted.
fn param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"'))
    })
}

/// An RFC 7239 node (`192.0.2.60`, `192.0.2.60:8080`, `[2001:db8::17]:47011`)
/// as an address; `unknown` and obfuscated names (`_hidden`) are none.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _port) = rest.split_once(']')?;
        return v6.parse().ok().map(canonical);
    }
    let host = match node.rsplit_once(':') {
        // `a.b.c.d:port`; a bare IPv6 address has more than one colon.
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => node,
    };
    host.parse().ok().map(canonical)
}

/// Every address of every `X-Forwarded-For` header, in order; `None` when
/// there is no such header.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("x-forwarded-for").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        match value.to_str() {
            Ok(v) => hops.extend(v.split(',').map(|a| node_ip(a.trim()))),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8;proto=https")]);
        assert_eq!(proxies.client(ip("203.0.113.9"), &spoof), Client { addr: ip("203.0.113.9"), https: false });
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.1.1.1"), &spoof).addr, ip("10.1.1.1"));
    }

    #[test]
    fn through_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let peer = ip("10.0.0.2");
        // A client-written entry left of the real one is not believed.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(proxies.client(peer, &h).addr, ip("198.51.100.7"));
        // Forwarded wins over X-Forwarded-For; quoted IPv6 with a port; proto.
        let h = headers(&[
            ("forwarded", r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https"#),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(proxies.client(peer, &h), Client { addr: ip("2001:db8:cafe::17"), https: true });
        // Several headers are one list, in order.
        let h = headers(&[("forwarded", "for=198.51.100.1"), ("forwarded", "for=192.168.1.1")]);
        assert_eq!(proxies.client(peer, &h).addr, ip("198.51.100.1"));
        // All hops our own: the left-most one.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.9")]);
        assert_eq!(proxies.client(peer, &h).addr, ip("10.9.9.9"));
        // No forwarding headers: the proxy itself.
        assert_eq!(proxies.client(peer, &HeaderMap::new()).addr, peer);
        // An IPv4 peer seen as IPv6-mapped is still trusted.
        let h = headers(&[("x-forwarded-for", "198.51.100.8"), ("x-forwarded-proto", "https")]);
        assert_eq!(proxies.client(ip("::ffff:10.0.0.2"), &h), Client { addr: ip("198.51.100.8"), https: true });
    }

    #[test]
    fn unknown_obfuscated_or_malformed_hops_leave_the_peer_as_the_client() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let peer = ip("127.0.0.1");
        for bad in ["for=unknown", "for=_gazonk", "for=", "for=\"[::1\"", "garbage;;;=,,", "for=300.1.1.1"] {
            assert_eq!(proxies.client(peer, &headers(&[("forwarded", bad)])).addr, peer, "{bad}");
        }
        for bad in ["", "not-an-ip", "1.2.3.4.5", ",,,"] {
            assert_eq!(proxies.client(peer, &headers(&[("x-forwarded-for", bad)])).addr, peer, "{bad}");
        }
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(proxies.client(peer, &h).addr, peer);
    }

    #[test]
    fn the_list_takes_networks_and_addresses_and_refuses_anything_else() {
        let p = TrustedProxies::parse(" 10.0.0.0/8 ,fd00::/8, 127.0.0.1 ,").unwrap();
        assert!(p.trusts("10.2.3.4".parse().unwrap()) && p.trusts("fd12::1".parse().unwrap()));
        assert!(p.trusts("127.0.0.1".parse().unwrap()) && !p.trusts("127.0.0.2".parse().unwrap()));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("localhost").is_err());
    }
}
