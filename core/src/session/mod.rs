//! Client sessions: the actor that owns one client connection, and the
//! connection life cycle it walks (charted in `core/LIFECYCLE.md`).
//!
//! The session owns both sockets of its connection, the client's and (once
//! chosen) the backend's, and relays between them itself: a query and its
//! result cost no message hop between actors, and no copy beyond the kernel's.

mod command;
mod compression;
mod context;
mod ending;
mod lifecycle;
mod pooled_login;
mod relay;
mod reply;
mod state;
mod swap;

pub use context::ListenerContext;

use std::sync::Arc;

use actix::prelude::*;
use mysql_proxy_plugin_abi::{abi_stable::sabi_trait::TD_Opaque, SessionFfi_TO};
use mysql_proxy_protocol::constants::CapabilityFlags;

use crate::net::{Conn, Stream};
use crate::sessions::Seat;

/// The actor owning one client connection. It runs the life cycle as one
/// future and stops when the connection is closed.
pub struct ClientSession {
    /// Boxed: actors must be `Unpin`, and the plugin's hook object is not.
    lifecycle: Option<Box<state::Session>>,
}

impl ClientSession {
    /// Prepares a session for an accepted connection; the stream must belong
    /// to the runtime of the arbiter the actor is started on.
    /// `seat` is its place under `--max-connections` (none for an
    /// administrative listener), held until the session ends.
    pub fn new(
        context: Arc<ListenerContext>,
        connection_id: u64,
        stream: Stream,
        peer: String,
        local: String,
        seat: Option<Seat>,
    ) -> Self {
        let mut state = state::SessionState {
            connection_id,
            listener_ndx: context.listener_ndx,
            client_address: peer.into(),
            local_address: local.into(),
            ..state::SessionState::default()
        };
        let hooks = {
            let (mut server, mut login) = (None, None);
            let mut view = state::HookView {
                state: &mut state,
                server: &mut server,
                login: &mut login,
                context: &context,
                capabilities: CapabilityFlags(0),
                at_rest: true,
                logger: &context.logger,
            };
            let session = SessionFfi_TO::from_ptr(&mut view, TD_Opaque);
            let hooks = context.plugin.new_session(&session);
            drop(session);
            hooks
        };
        let client = Conn::new(stream, context.limits);
        Self {
            lifecycle: Some(Box::new(state::Session::new(
                context, hooks, state, client, seat,
            ))),
        }
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    /// The life cycle runs as the context's wait future: every wake-up of
    /// the session then goes straight to it, where a spawned future would
    /// be reached only after the mailbox had been polled (the session
    /// receives no messages) and the context's bookkeeping done.
    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(session) = self.lifecycle.take() {
            ctx.wait(
                actix::fut::wrap_future::<_, Self>(session.run())
                    .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
            );
        }
    }
}

/// Turns away a client before any session starts (`--max-connections`
/// reached): the ERR it reads instead of a greeting, as a server that is
/// full sends it, then the connection is closed.
pub async fn turn_away(stream: Stream, limits: crate::net::Limits) {
    let error = mysql_proxy_plugin_abi::SqlError::new(1040, "08004", "Too many connections");
    let mut client = Conn::new(stream, limits);
    let _ = client
        .send_payloads(0, &[reply::error_payload(&error, false)])
        .await;
}
