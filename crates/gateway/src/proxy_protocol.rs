//! The PROXY protocol header (v2 binary, v1 text) a trusted load balancer writes before
//! the connection's own bytes (TLS or HTTP), so that the gateway knows the real source
//! address and port. Read exactly (nothing past the header), within a size cap; parsed
//! by `ppp`.

use std::net::SocketAddr;

use ppp::{v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature; its first 12 bytes are also enough to tell v1 (`PROXY `) apart.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// Addresses plus TLVs: load balancers send tens of bytes (AWS's VPC endpoint, Azure's
/// link id); a bigger header is refused rather than buffered.
const V2_MAX_PAYLOAD: usize = 1024;
/// The longest v1 line the protocol allows (`PROXY UNKNOWN` with two IPv6 addresses).
const V1_MAX: usize = 107;

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("the PROXY protocol header is longer than {0} bytes")]
    TooLong(usize),
    #[error("the PROXY protocol header is malformed: {0}")]
    Malformed(String),
    #[error("the connection ended inside the PROXY protocol header")]
    Truncated,
}

/// Reads one header. `Some(source)` for a proxied connection; `None` when the balancer
/// speaks for itself (v2 `LOCAL`, e.g. a health check, or an unknown family): the
/// connection's own peer is then the peer.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut start = [0u8; 12];
    read_exact(stream, &mut start).await?;
    if &start == V2_SIGNATURE {
        read_v2(stream, start).await
    } else if start.starts_with(b"PROXY ") {
        read_v1(stream, start).await
    } else {
        Err(ProxyHeaderError::Missing)
    }
}

async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: [u8; 12],
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut header = Vec::with_capacity(V2_FIXED + 64);
    header.extend_from_slice(&start);
    let mut rest = [0u8; V2_FIXED - 12];
    read_exact(stream, &mut rest).await?;
    header.extend_from_slice(&rest);
    let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
    if length > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::TooLong(V2_FIXED + V2_MAX_PAYLOAD));
    }
    header.resize(V2_FIXED + length, 0);
    read_exact(stream, &mut header[V2_FIXED..]).await?;
    let parsed = v2::Header::try_from(header.as_slice())
        .map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if parsed.command == v2::Command::Local {
        return Ok(None);
    }
    Ok(match parsed.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        // The protocol says to ignore what it cannot carry (UNSPEC, Unix sockets).
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    })
}

/// A v1 line is read a byte at a time up to its CRLF, so the bytes after it stay
/// unread for TLS or HTTP; it is short and only trusted balancers send it.
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: [u8; 12],
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut line = start.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::TooLong(V1_MAX));
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        line.push(byte[0]);
    }
    let parsed = v1::Header::try_from(line.as_slice())
        .map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    Ok(match parsed.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    })
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyHeaderError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, Protocol, Version};

    fn v2_header(command: Command, addresses: impl Into<v2::Addresses>) -> Vec<u8> {
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
            .build()
            .unwrap()
    }

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let result = read_header(&mut stream).await;
        (result, stream.to_vec())
    }

    #[tokio::test]
    async fn v2_gives_the_source_and_leaves_the_rest_unread() {
        let mut bytes = v2_header(
            Command::Proxy,
            v2::IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 4711, 443),
        );
        bytes.extend_from_slice(b"\x16\x03\x01rest");
        let (result, rest) = read(&bytes).await;
        assert_eq!(result, Ok(Some("203.0.113.7:4711".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01rest");

        let v6 = v2_header(
            Command::Proxy,
            v2::IPv6::new(
                "2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap(),
                "2001:db8::1".parse().unwrap(),
                4711,
                443,
            ),
        );
        assert_eq!(
            read(&v6).await.0,
            Ok(Some("[2001:db8::7]:4711".parse().unwrap()))
        );
    }

    #[tokio::test]
    async fn v2_local_and_unspecified_keep_the_connections_own_peer() {
        let local = v2_header(
            Command::Local,
            v2::IPv4::new([10, 0, 0, 1], [10, 0, 0, 2], 1, 2),
        );
        assert_eq!(read(&local).await.0, Ok(None));
        let unspec = v2_header(Command::Proxy, v2::Addresses::Unspecified);
        assert_eq!(read(&unspec).await.0, Ok(None));
    }

    #[tokio::test]
    async fn v1_gives_the_source_and_leaves_the_rest_unread() {
        let (result, rest) = read(b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\nGET /").await;
        assert_eq!(result, Ok(Some("203.0.113.7:4711".parse().unwrap())));
        assert_eq!(rest, b"GET /");
        let (result, rest) = read(b"PROXY UNKNOWN\r\nGET").await;
        assert_eq!(result, Ok(None));
        assert_eq!(rest, b"GET");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert_eq!(
            read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.0,
            Err(ProxyHeaderError::Missing)
        );
        assert_eq!(
            read(b"\r\n\r\n\0\r\n").await.0,
            Err(ProxyHeaderError::Truncated)
        );
        // A v2 header announcing more than the cap is refused before it is read.
        let mut big = V2_SIGNATURE.to_vec();
        big.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            read(&big).await.0,
            Err(ProxyHeaderError::TooLong(_))
        ));
        // Announced, not sent.
        let mut short = v2_header(
            Command::Proxy,
            v2::IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 4711, 443),
        );
        short.truncate(20);
        assert_eq!(read(&short).await.0, Err(ProxyHeaderError::Truncated));
        // Bad version or family.
        let mut bad = v2_header(
            Command::Proxy,
            v2::IPv4::new([203, 0, 113, 7], [192, 0, 2, 1], 4711, 443),
        );
        bad[12] = 0x31;
        assert!(matches!(
            read(&bad).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        // A v1 line without its end, or with a bad address.
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert_eq!(
            read(long.as_bytes()).await.0,
            Err(ProxyHeaderError::TooLong(V1_MAX))
        );
        assert!(matches!(
            read(b"PROXY TCP4 203.0.113.999 192.0.2.1 4711 443\r\n")
                .await
                .0,
            Err(ProxyHeaderError::Malformed(_))
        ));
    }
}
