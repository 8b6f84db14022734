//! The command phase's work: one client command decided by `read_query`,
//! then forwarded (its response relayed), answered, or replaced by injected
//! queries; and the session state kept in step with what the server did.

use mysql_proxy_plugin_abi::{
    abi_stable::std_types::RVec, Injection, QueryDecision, Response, ResultKind, SqlError,
};
use mysql_proxy_protocol::codec::HEADER_LEN;
use mysql_proxy_protocol::constants::{CapabilityFlags, Command};
use mysql_proxy_protocol::tracker::ResponseTracker;

use super::relay::{self, Sink};
use super::reply;
use super::state::{client_error, known, text, ClientStage, Session};
use crate::backend::server::MULTI_STATEMENTS_ON;
use crate::backend::BackendCounters;
use crate::error::SessionError;
use crate::net::RawPacket;

impl Session {
    /// One client command: `read_query` decides, then the command is
    /// forwarded, answered, or replaced by injected queries.
    ///
    /// Injections are boxed: a command's future is as large as its largest
    /// branch, and plain forwarding, the usual branch, needs half as much.
    pub(super) async fn execute(&mut self, packet: &RawPacket) -> Result<(), SessionError> {
        let mut queue: RVec<Injection> = RVec::new();
        let decision = known(self.call_hook(|hooks, session| {
            hooks.read_query(session, packet.payload.as_ref().into(), &mut queue)
        }));
        match decision {
            Err(error) => self.send_response(&Response::Error(error)).await,
            Ok(Some(QueryDecision::Forward)) => self.forward(packet).await,
            Ok(Some(QueryDecision::SendQueue)) if queue.is_empty() => self.forward(packet).await,
            Ok(Some(QueryDecision::SendQueue)) => Box::pin(self.run_injections(queue, false)).await,
            Ok(Some(QueryDecision::Reply(response))) => {
                self.send_response(&response).await?;
                if queue.is_empty() {
                    Ok(())
                } else {
                    Box::pin(self.run_injections(queue, true)).await
                }
            }
            Ok(Some(QueryDecision::Discard)) => {
                let command = packet.first_byte().unwrap_or(0);
                if ResponseTracker::expects_response(command) {
                    // The client would wait for ever.
                    let error = SqlError::new(
                        1105,
                        "HY000",
                        "(proxy) the plugin discarded a command that needs an answer",
                    );
                    self.send_response(&Response::Error(error)).await
                } else {
                    Ok(())
                }
            }
            Ok(_) => Err(SessionError::UnknownDecision),
        }
    }

    /// Sends the client's command to the server and streams the response.
    async fn forward(&mut self, packet: &RawPacket) -> Result<(), SessionError> {
        let command = packet.first_byte().unwrap_or(0);
        let Some(server) = self.server.as_mut() else {
            // A client leaving a backend-less session needs no backend.
            if command == Command::Quit as u8 {
                return Ok(());
            }
            return Err(SessionError::NoServerConnection);
        };
        if let Err(error) = server.conn.write_all(&packet.raw).await {
            return Err(server.error(error));
        }
        let counters = &server.lease.backend().counters;
        BackendCounters::add(&counters.queries, 1);
        BackendCounters::add(&counters.bytes, packet.raw.len() as u64);
        if !ResponseTracker::expects_response(command) {
            return Ok(());
        }
        let tracker = ResponseTracker::new(command, self.capabilities);
        let summary = relay::relay_response(self, tracker, Sink::Client).await?;
        self.bytes_out += summary.bytes;
        if let Some(server) = &self.server {
            BackendCounters::add(&server.lease.backend().counters.bytes, summary.bytes);
        }
        self.after_response(&packet.payload, &summary);
        Ok(())
    }

    /// Keeps the session state in step with what the server did.
    fn after_response(&mut self, command: &[u8], summary: &relay::Summary) {
        self.state.server_status = summary.status_after(self.state.server_status);
        if command.first() == Some(&(Command::ChangeUser as u8)) {
            // Whatever the outcome, the connection is no longer logged in
            // as the login the pool would file it under.
            self.login = None;
        }
        if summary.is_error {
            return;
        }
        match command.split_first() {
            Some((&code, rest)) if code == Command::InitDb as u8 => {
                self.state.default_db = text(rest);
                self.state.server_db = self.state.default_db.clone();
                self.show_identity();
            }
            Some((&code, rest)) if code == Command::ChangeUser as u8 => {
                let user = rest.split(|&b| b == 0).next().unwrap_or_default();
                self.state.username = text(user);
                self.show_identity();
            }
            Some((&code, [low, high, ..])) if code == Command::SetOption as u8 => {
                // The pool must know the connection's multi-statements option.
                let on = u16::from_le_bytes([*low, *high]) == MULTI_STATEMENTS_ON;
                if let Some(login) = self.login.as_mut() {
                    login
                        .capabilities
                        .set(CapabilityFlags::MULTI_STATEMENTS, on);
                }
            }
            _ => {}
        }
    }

    /// Keeps the session state in step with an injected command that
    /// succeeded: a COM_INIT_DB moves the server connection to another
    /// database (a script syncing it before a query, as MySQL Proxy's
    /// rw-splitting did), and the client's too when it is the client's own
    /// command passed on.
    fn after_injection(&mut self, command: &[u8]) {
        let Some((&code, db)) = command.split_first() else {
            return;
        };
        if code != Command::InitDb as u8 {
            return;
        }
        self.state.server_db = text(db);
        if self.command.as_deref() == Some(command) {
            self.state.default_db = self.state.server_db.clone();
            self.show_identity();
        }
    }

    /// Runs queued injections one after the other; `replied` says whether
    /// the client already got its one response for this command.
    async fn run_injections(
        &mut self,
        mut queue: RVec<Injection>,
        mut replied: bool,
    ) -> Result<(), SessionError> {
        while !queue.is_empty() {
            let injection = queue.remove(0);
            let outcome = relay::run_injection(self, &injection, replied).await?;
            if outcome.overflowed {
                // The plugin asked for more than a session may hold: the
                // client is told, and what is still queued is dropped.
                slog::warn!(
                    self.logger,
                    "the result of injected query {} is larger than the buffered-result limit ({} MiB)",
                    injection.id,
                    self.context.buffered_result_limit >> 20
                );
                if !replied {
                    let error = SqlError::new(
                        1105,
                        "HY000",
                        format!(
                            "(proxy) the result of an injected query is larger than the {} MiB a session may buffer (--proxy-buffered-result-limit)",
                            self.context.buffered_result_limit >> 20
                        ),
                    );
                    self.send_response(&Response::Error(error)).await?;
                    replied = true;
                }
                break;
            }
            let Some(result) = outcome.result else {
                // No response is expected for this command: MySQL Proxy goes
                // straight back to the client, dropping what is still queued.
                break;
            };
            replied |= outcome.streamed_to_client;
            // An injected BEGIN or COMMIT changes the session's status too.
            self.state.server_status = result.server_status;
            if result.kind == ResultKind::Ok {
                self.after_injection(&injection.payload);
            }
            let decision = known(self.call_hook(|hooks, session| {
                hooks.read_query_result(session, result.for_hook(), &mut queue)
            }));
            replied =
                relay::apply_result_decision(self, decision, &result, outcome.raw, replied).await?;
        }
        if !replied {
            slog::warn!(
                self.logger,
                "no result was sent to the client for its command; sending an error"
            );
            let error = SqlError::new(
                1105,
                "HY000",
                "(proxy) plugin sent no result for this command",
            );
            self.send_response(&Response::Error(error)).await?;
        }
        Ok(())
    }

    /// Sends a response generated by the proxy or a plugin, continuing the
    /// client's sequence.
    pub(super) async fn send_response(&mut self, response: &Response) -> Result<(), SessionError> {
        let seq = self.next_client_seq();
        let payloads = reply::encode(response, self.capabilities, self.state.server_status);
        self.bytes_out += payloads
            .iter()
            .map(|payload| (payload.len() + HEADER_LEN) as u64)
            .sum::<u64>();
        self.stage = ClientStage::MidResponse;
        self.client
            .send_payloads(seq, &payloads)
            .await
            .map(|_| ())
            .map_err(client_error)
    }

    pub(super) fn next_client_seq(&self) -> u8 {
        match self.stage {
            ClientStage::Expecting(seq) => seq,
            _ => 0,
        }
    }
}
