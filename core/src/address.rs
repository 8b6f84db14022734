//! MySQL Proxy's address syntax for listeners and backends.
//!
//! `host:port`, `:port` (IPv4 wildcard), `[ipv6]:port`, `[ipv6]` and a bare
//! `host` (port 3306). Host names are resolved once, when parsed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// The port used when an address names none.
pub const DEFAULT_PORT: u16 = 3306;

/// Why an address could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("'{0}': empty address")]
    Empty(String),
    #[error("'{0}': invalid port")]
    InvalidPort(String),
    #[error("'{0}': unix socket addresses are not supported")]
    UnixSocket(String),
    #[error("'{0}': cannot resolve host name: {1}")]
    Unresolvable(String, String),
}

/// Parses and resolves an address.
pub fn parse(text: &str) -> Result<SocketAddr, AddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddressError::Empty(text.to_string()));
    }
    if text.starts_with('/') {
        return Err(AddressError::UnixSocket(text.to_string()));
    }
    let (host, port) = split_host_port(text)?;
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| AddressError::Unresolvable(text.to_string(), e.to_string()))?;
    resolved
        .next()
        .ok_or_else(|| AddressError::Unresolvable(text.to_string(), "no address".to_string()))
}

/// Splits `host:port` forms into the host (brackets removed) and the port.
fn split_host_port(text: &str) -> Result<(&str, u16), AddressError> {
    let invalid_port = || AddressError::InvalidPort(text.to_string());
    let parse_port = |port: &str| port.parse::<u16>().map_err(|_| invalid_port());
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid_port)?;
        return match after {
            "" => Ok((host, DEFAULT_PORT)),
            _ => Ok((
                host,
                parse_port(after.strip_prefix(':').ok_or_else(invalid_port)?)?,
            )),
        };
    }
    match text.rsplit_once(':') {
        None => Ok((text, DEFAULT_PORT)),
        Some((host, port)) => Ok((host, parse_port(port)?)),
    }
}

/// The normalized display name: `a.b.c.d:port` or `[v6]:port`.
pub fn display_name(addr: &SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse("127.0.0.1:3307").map(|a| a.to_string()),
            Ok("127.0.0.1:3307".into())
        );
        assert_eq!(
            parse(":4040").map(|a| a.to_string()),
            Ok("0.0.0.0:4040".into())
        );
        assert_eq!(
            parse("127.0.0.1").map(|a| a.to_string()),
            Ok("127.0.0.1:3306".into())
        );
        assert_eq!(
            parse("[::1]:4040").map(|a| a.to_string()),
            Ok("[::1]:4040".into())
        );
        assert_eq!(
            parse("[::1]").map(|a| a.to_string()),
            Ok("[::1]:3306".into())
        );
        assert_eq!(parse("localhost:1").map(|a| a.port()), Ok(1));
    }

    #[test]
    fn rejects_bad_ports_and_sockets() {
        assert!(matches!(
            parse("127.0.0.1:"),
            Err(AddressError::InvalidPort(_))
        ));
        assert!(matches!(
            parse("127.0.0.1:70000"),
            Err(AddressError::InvalidPort(_))
        ));
        assert!(matches!(parse("[::1"), Err(AddressError::InvalidPort(_))));
        assert!(matches!(
            parse("/tmp/sock"),
            Err(AddressError::UnixSocket(_))
        ));
        assert!(matches!(parse(""), Err(AddressError::Empty(_))));
    }
}
