//! Runs one test body against an endpoint: a MariaDB directly, or the proxy in front of it.
//!
//! A body gets a [`Target`]: where to connect (the endpoint under test) and the
//! backend server for setup and checks done directly. The same body validates
//! against the server alone and acceptance-tests the proxy.

use crate::client::Endpoint;
use crate::mariadb::MariaDb;
use crate::proxy::Proxy;

/// What a test body runs against.
pub struct Target<'a> {
    /// Where the client under test connects.
    pub endpoint: Endpoint,
    /// The server behind it (the endpoint itself when run directly).
    pub backend: &'a MariaDb,
    /// The proxy, when the endpoint is one.
    pub proxy: Option<&'a Proxy>,
}

impl Target<'_> {
    /// `"direct"` or `"proxy"`, for messages.
    pub fn label(&self) -> &'static str {
        if self.proxy.is_some() {
            "proxy"
        } else {
            "direct"
        }
    }
}

/// Runs `body` against a fresh MariaDB, connecting to it directly.
pub fn direct(body: impl FnOnce(&Target<'_>)) {
    let backend = MariaDb::start();
    body(&Target {
        endpoint: backend.endpoint(),
        backend: &backend,
        proxy: None,
    });
}

/// Runs `body` against `mysql-proxy --plugins=proxy` in front of a fresh MariaDB.
pub fn through_proxy(body: impl FnOnce(&Target<'_>)) {
    let backend = MariaDb::start();
    let proxy = Proxy::builder()
        .backend(backend.addr())
        .start()
        .unwrap_or_else(|e| panic!("starting mysql-proxy: {e}"));
    body(&Target {
        endpoint: proxy.endpoint(),
        backend: &backend,
        proxy: Some(&proxy),
    });
}
