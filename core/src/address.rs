//! MySQL Proxy's address syntax for listeners and backends.
//!
//! `host:port`, `:port` (IPv4 wildcard), `[ipv6]:port`, `[ipv6]`, a bare
//! `host` (port 3306), and a Unix domain socket path (starting with `/`).
//! Host names are resolved once, when parsed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The port used when an address names none.
pub const DEFAULT_PORT: u16 = 3306;

/// The longest Unix socket path (`sun_path` less its terminating NUL, as
/// MySQL Proxy counts it).
const MAX_UNIX_PATH: usize = 106;

/// Where a listener or a backend is: a TCP address or a Unix domain socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Address {
    /// The normalized display name: `a.b.c.d:port`, `[v6]:port` or the path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Parses an address: a Unix socket path, or a TCP address as [`parse`]
/// reads it.
pub fn parse_address(text: &str) -> Result<Address, AddressError> {
    let text = text.trim();
    if text.starts_with('/') {
        if text.len() > MAX_UNIX_PATH {
            return Err(AddressError::UnixPathTooLong(text.to_string()));
        }
        return Ok(Address::Unix(PathBuf::from(text)));
    }
    parse(text).map(Address::Tcp)
}

/// Why an address could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("'{0}': empty address")]
    Empty(String),
    #[error("'{0}': invalid port")]
    InvalidPort(String),
    #[error("'{0}': a unix socket path can be at most 106 bytes long")]
    UnixPathTooLong(String),
    #[error("'{0}': cannot resolve host name: {1}")]
    Unresolvable(String, String),
}

/// Parses and resolves a TCP address.
fn parse(text: &str) -> Result<SocketAddr, AddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddressError::Empty(text.to_string()));
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

/// `ip:port` as `SocketAddr`'s `Display` writes it, for the names of the
/// sessions' peers: IPv4 is written digit by digit, an order of magnitude
/// cheaper than the formatting machinery (a new connection's peer name is on
/// the connect path).
pub fn socket_addr_text(addr: &SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut text = String::with_capacity("255.255.255.255:65535".len());
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(&mut text, u16::from(octet));
    }
    text.push(':');
    push_decimal(&mut text, v4.port());
    text
}

fn push_decimal(text: &mut String, value: u16) {
    // Least significant first; a u16 has at most five digits.
    let mut digits = [0u8; 5];
    let mut count = 0;
    let mut rest = value;
    for slot in &mut digits {
        // A remainder of 10 is below 10: the digit fits in a u8.
        *slot = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in digits.iter().take(count).rev() {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addr_text_writes_what_display_writes() {
        let samples = [
            "0.0.0.0:0",
            "127.0.0.1:4040",
            "10.20.30.40:65535",
            "255.255.255.255:9",
            "192.168.100.7:33060",
            "[::1]:4040",
            "[fe80::1]:3306",
        ];
        for sample in samples {
            let Ok(addr) = sample.parse::<SocketAddr>() else {
                panic!("{sample} is not an address");
            };
            assert_eq!(socket_addr_text(&addr), addr.to_string());
        }
    }

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
    fn rejects_bad_ports() {
        assert!(matches!(
            parse("127.0.0.1:"),
            Err(AddressError::InvalidPort(_))
        ));
        assert!(matches!(
            parse("127.0.0.1:70000"),
            Err(AddressError::InvalidPort(_))
        ));
        assert!(matches!(parse("[::1"), Err(AddressError::InvalidPort(_))));
        assert!(matches!(parse(""), Err(AddressError::Empty(_))));
    }

    #[test]
    fn unix_socket_paths() {
        assert_eq!(
            parse_address("/run/mysqld/mysqld.sock"),
            Ok(Address::Unix(PathBuf::from("/run/mysqld/mysqld.sock")))
        );
        assert_eq!(
            parse_address("/run/mysqld/mysqld.sock").map(|a| a.to_string()),
            Ok("/run/mysqld/mysqld.sock".into())
        );
        assert_eq!(
            parse_address("127.0.0.1").map(|a| a.to_string()),
            Ok("127.0.0.1:3306".into())
        );
        let long = format!("/{}", "x".repeat(106));
        assert!(matches!(
            parse_address(&long),
            Err(AddressError::UnixPathTooLong(_))
        ));
    }
}
