//! Who the client is behind proxies: the networks whose word is trusted, and the walk of
//! `X-Forwarded-For` (or RFC 7239 `Forwarded`) from the right that stops at the first hop
//! no trusted proxy is in, so that what a client writes itself is never taken.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One network of proxies or load balancers in front of the gateway, written as a CIDR
/// (`10.0.0.0/8`, `fd00::/8`) or a bare address (a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyNetwork(IpNet);

impl ProxyNetwork {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for ProxyNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let net = if s.contains('/') {
            s.parse::<IpNet>()
                .map_err(|_| format!("`{s}` is not an IP network such as 10.0.0.0/8 or fd00::/8"))?
        } else {
            IpNet::from(
                s.parse::<IpAddr>()
                    .map_err(|_| format!("`{s}` is not an IP address or network"))?,
            )
        };
        // Written with host bits, the network is likely not the one meant.
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has bits set past its prefix (the network is {})",
                net.trunc()
            ));
        }
        if net.prefix_len() == 0 {
            return Err(format!(
                "`{s}` trusts every address: any client could choose the address recorded"
            ));
        }
        Ok(ProxyNetwork(ipv4_mapped(net)))
    }
}

/// Peers are compared in their canonical form (`::ffff:10.0.0.1` is `10.0.0.1`), so an
/// IPv4-mapped network is kept as the IPv4 network it names.
fn ipv4_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

impl TryFrom<String> for ProxyNetwork {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProxyNetwork> for String {
    fn from(net: ProxyNetwork) -> Self {
        net.to_string()
    }
}

impl fmt::Display for ProxyNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which header the trusted proxies write the client into. Only that one is read: a
/// proxy passes the other on as the client sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (a hop may be `ip:port`, `[ipv6]:port`).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for="[ipv6]:port";proto=https, for=…`, which carries ports.
    Forwarded,
}

/// How the client's address is found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Forwarding {
    trusted: Vec<ProxyNetwork>,
    header: ForwardedHeader,
}

impl Forwarding {
    pub(crate) fn new(trusted: &[ProxyNetwork], header: ForwardedHeader) -> Self {
        Forwarding {
            trusted: trusted.to_vec(),
            header,
        }
    }

    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client of a request from `peer` (the TCP peer, or the PROXY header's source):
    /// the peer itself unless it is trusted; then the rightmost hop of the header that is
    /// not trusted. A hop that cannot be read where one is needed gives the last trusted
    /// address, never a value the client may have written.
    pub(crate) fn client(&self, headers: &HeaderMap, peer: SocketAddr) -> SocketAddr {
        let peer = canonical(peer);
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let (name, read): (HeaderName, fn(&str) -> Option<SocketAddr>) = match self.header {
            ForwardedHeader::XForwardedFor => (X_FORWARDED_FOR, x_forwarded_for_hop),
            ForwardedHeader::Forwarded => (FORWARDED, forwarded_element),
        };
        // Split on bytes: one hop that is not UTF-8 spoils only itself.
        let hops: Vec<&[u8]> = headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .filter(|hop| !hop.trim_ascii().is_empty())
            .collect();
        let mut last_trusted = peer;
        for hop in hops.into_iter().rev() {
            match std::str::from_utf8(hop).ok().and_then(|h| read(h.trim())) {
                Some(addr) if self.trusts(addr.ip()) => last_trusted = canonical(addr),
                Some(addr) => return canonical(addr),
                None => return last_trusted,
            }
        }
        last_trusted
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:5678`; the
/// port is 0 (unknown) when the proxy wrote none.
fn x_forwarded_for_hop(hop: &str) -> Option<SocketAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bracketed = hop.strip_prefix('[')?.strip_suffix(']')?;
    bracketed
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

/// The `for` node of one RFC 7239 element, e.g. `for="[2001:db8::1]:4711";proto=https`.
/// `unknown` and obfuscated nodes (`_hidden`) name no address; an obfuscated port is 0.
fn forwarded_element(element: &str) -> Option<SocketAddr> {
    let mut node = None;
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if node.is_some() {
                return None;
            }
            node = Some(forwarded_node(unquote(value.trim())?)?);
        }
    }
    node
}

fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        // No escapes: an address never needs one.
        Some(rest) => rest.strip_suffix('"').filter(|v| !v.contains(['"', '\\'])),
        None => Some(value),
    }
}

fn forwarded_node(node: &str) -> Option<SocketAddr> {
    let (ip, port) = match node.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?), port)
        }
        None => {
            let (ip, port) = match node.split_once(':') {
                Some((ip, port)) => (ip, Some(port)),
                None => (node, None),
            };
            (IpAddr::V4(ip.parse::<Ipv4Addr>().ok()?), port)
        }
    };
    let port = match port {
        None => 0,
        Some(p) if p.starts_with('_') && p.len() > 1 => 0,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok()?
        }
        Some(_) => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ProxyNetwork> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(trusted: &[&str], peer: &str, values: &[&str]) -> SocketAddr {
        walk(ForwardedHeader::XForwardedFor, trusted, peer, values)
    }

    fn walk(header: ForwardedHeader, trusted: &[&str], peer: &str, values: &[&str]) -> SocketAddr {
        let name = match header {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => FORWARDED,
        };
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                name.clone(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        Forwarding::new(&nets(trusted), header).client(&headers, peer.parse().unwrap())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_as_cidrs_or_bare_addresses() {
        let n = nets(&["10.0.0.0/8", "192.0.2.7", "fd00::/8", "2001:db8::1"]);
        assert_eq!(n[1].to_string(), "192.0.2.7/32");
        assert_eq!(n[3].to_string(), "2001:db8::1/128");
        assert!(n[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!n[0].contains("11.0.0.1".parse().unwrap()));
        assert!(n[2].contains("fd12::5".parse().unwrap()));
        // A dual-stack listener reports IPv4 peers mapped into IPv6.
        assert!(n[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        let mapped: ProxyNetwork = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.1/8",
            "0.0.0.0/0",
            "::/0",
            "proxy.internal",
            "10.0.0.0/",
            "",
            " 10.0.0.1",
        ] {
            assert!(bad.parse::<ProxyNetwork>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored() {
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "198.51.100.4:40000",
                &["203.0.113.9, 10.0.0.2"]
            ),
            addr("198.51.100.4:40000")
        );
        assert_eq!(
            xff(&[], "127.0.0.1:40000", &["203.0.113.9"]),
            addr("127.0.0.1:40000")
        );
    }

    #[test]
    fn the_spoofed_leftmost_hop_is_ignored_and_the_rightmost_untrusted_taken() {
        // The client wrote "6.6.6.6"; the proxy appended the address it saw.
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "10.0.0.1:1234",
                &["6.6.6.6, 198.51.100.20"]
            ),
            addr("198.51.100.20:0")
        );
        // Two trusted proxies: both skipped.
        assert_eq!(
            xff(
                &["10.0.0.0/8", "192.0.2.0/24"],
                "10.0.0.1:1234",
                &["6.6.6.6, 198.51.100.20, 192.0.2.9, 10.0.0.7"]
            ),
            addr("198.51.100.20:0")
        );
        // Every header instance, in order, as one list.
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "10.0.0.1:1234",
                &["6.6.6.6", "198.51.100.20", "10.0.0.7"]
            ),
            addr("198.51.100.20:0")
        );
        // A port the proxy wrote is kept.
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "10.0.0.1:1234",
                &["6.6.6.6:1, 198.51.100.20:50123"]
            ),
            addr("198.51.100.20:50123")
        );
    }

    #[test]
    fn ipv6_hops_and_peers() {
        assert_eq!(
            xff(
                &["fd00::/8"],
                "[fd00::1]:443",
                &["2001:db8::66, [2001:db8::9]:4711"]
            ),
            addr("[2001:db8::9]:4711")
        );
        assert_eq!(
            xff(&["fd00::/8"], "[fd00::1]:443", &["2001:db8::9, fd00::2"]),
            addr("[2001:db8::9]:0")
        );
        assert_eq!(
            xff(&["fd00::/8"], "[fd00::1]:443", &["[2001:db8::9]"]),
            addr("[2001:db8::9]:0")
        );
        // An IPv4 peer on a dual-stack socket, and the client it forwards.
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "[::ffff:10.0.0.1]:443",
                &["::ffff:198.51.100.20"]
            ),
            addr("198.51.100.20:0")
        );
    }

    #[test]
    fn garbage_where_a_hop_is_needed_gives_the_last_trusted_address() {
        for garbage in [
            "unknown",
            "6.6.6.6 7.7.7.7",
            "\"6.6.6.6\"",
            "fe80::1%eth0",
            "[::1",
        ] {
            assert_eq!(
                xff(
                    &["10.0.0.0/8"],
                    "10.0.0.1:1234",
                    &[&format!("6.6.6.6, {garbage}")]
                ),
                addr("10.0.0.1:1234"),
                "{garbage}"
            );
        }
        // Behind two proxies, the one that wrote garbage is the last trusted.
        assert_eq!(
            xff(
                &["10.0.0.0/8"],
                "10.0.0.1:1234",
                &["6.6.6.6, nonsense, 10.0.0.9"]
            ),
            addr("10.0.0.9:0")
        );
        // A hop that is not UTF-8 spoils only itself.
        assert_eq!(
            xff(&["10.0.0.0/8"], "10.0.0.1:1234", &["\u{e9}, 198.51.100.20"]),
            addr("198.51.100.20:0")
        );
        // No header, or only trusted hops: the last trusted address.
        assert_eq!(
            xff(&["10.0.0.0/8"], "10.0.0.1:1234", &[]),
            addr("10.0.0.1:1234")
        );
        assert_eq!(
            xff(&["10.0.0.0/8"], "10.0.0.1:1234", &["10.9.9.9, 10.0.0.2"]),
            addr("10.9.9.9:0")
        );
    }

    #[test]
    fn forwarded_gives_the_port_and_is_walked_the_same_way() {
        let fwd = |peer: &str, values: &[&str]| {
            walk(ForwardedHeader::Forwarded, &["10.0.0.0/8"], peer, values)
        };
        assert_eq!(
            fwd(
                "10.0.0.1:1",
                &["for=6.6.6.6:1, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1"]
            ),
            addr("[2001:db8:cafe::17]:4711")
        );
        assert_eq!(
            fwd(
                "10.0.0.1:1",
                &["For=\"198.51.100.20:50123\"", "for=10.0.0.3"]
            ),
            addr("198.51.100.20:50123")
        );
        assert_eq!(
            fwd("10.0.0.1:1", &["for=198.51.100.20"]),
            addr("198.51.100.20:0")
        );
        assert_eq!(
            fwd("10.0.0.1:1", &["for=\"198.51.100.20:_abc\""]),
            addr("198.51.100.20:0")
        );
        for garbage in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=198.51.100.20;for=6.6.6.6",
            "for=\"[2001:db8::1]:99999\"",
            "for=\"198.51.100.20",
            "for=2001:db8::1",
        ] {
            assert_eq!(
                fwd("10.0.0.1:1", &[garbage]),
                addr("10.0.0.1:1"),
                "{garbage}"
            );
        }
        // In this mode X-Forwarded-For is the client's own text, and ignored.
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, "6.6.6.6".parse().unwrap());
        let f = Forwarding::new(&nets(&["10.0.0.0/8"]), ForwardedHeader::Forwarded);
        assert_eq!(f.client(&headers, addr("10.0.0.1:1")), addr("10.0.0.1:1"));
    }

    #[test]
    fn in_x_forwarded_for_mode_a_forwarded_header_is_the_clients_own_text() {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, "for=6.6.6.6".parse().unwrap());
        headers.insert(X_FORWARDED_FOR, "198.51.100.20".parse().unwrap());
        let f = Forwarding::new(&nets(&["10.0.0.0/8"]), ForwardedHeader::XForwardedFor);
        assert_eq!(
            f.client(&headers, addr("10.0.0.1:1")),
            addr("198.51.100.20:0")
        );
    }
}
