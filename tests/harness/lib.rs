//! Test harness: private MariaDB servers, the real `mysql-proxy` binary with its
//! plugins, and the real clients that drive them.
//!
//! Every test starts its own servers (fresh datadir copied from a template, free
//! loopback port); children die with the test process; nothing depends on a
//! server already running on the machine.

// A harness reports failure by panicking with context.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod data;
pub mod fixture;
pub mod mariadb;
pub mod net;
pub mod paths;
pub mod plugins;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod sysbench;

pub use client::{
    expect_success, mariadb_admin, mariadb_cli, Endpoint, TEST_DB, TEST_PASSWORD, TEST_USER,
};
pub use fixture::{direct, through_proxy, Target};
pub use mariadb::{MariaDb, MariaDbBuilder};
pub use net::{free_port, port_accepts};
pub use paths::{build_dir, proxy_binary};
pub use plugins::build_fixture_plugin;
pub use proxy::{spawn_expect_exit, Proxy, ProxyBuilder, StartError};
pub use raw::{RawConn, RawError, ServerError, StreamEnd};
pub use sysbench::Sysbench;
