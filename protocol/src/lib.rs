//! MySQL wire protocol: framing codec and typed packets, with no I/O.
//!
//! Two layers (see STYLE.md point 4):
//! - [`codec`] frames the byte stream into logical [`codec::Packet`]s;
//! - [`packets`] parses and builds individual messages over `Bytes`,
//!   keeping slices of the original payload instead of copying.
//!
//! [`tracker`] is the proxy's hot path: it decides when a server response is
//! complete by looking only at packet lengths and a short payload prefix.
//! [`auth`] holds the password-scramble helpers.

// Bytes from clients and servers are untrusted: code here never panics on
// them (an unwrap, an expect or an out-of-range index would end a session
// at best). Tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod auth;
pub mod codec;
pub mod constants;
pub mod lenenc;
pub mod packets;
pub mod tracker;

pub use codec::{FrameError, Packet, PacketCodec};
pub use constants::{CapabilityFlags, ColumnFlags, ColumnType, Command, StatusFlags};
pub use lenenc::{DecodeError, Reader};
pub use tracker::{ResponseTracker, Step, TRACKER_PREFIX_LEN};
