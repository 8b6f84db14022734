//! The plain-Rust side of the contract: the traits plugin authors implement,
//! and the adapters that expose them over the FFI with every panic caught.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    nonexhaustive_enum::{GetEnumInfo, NonExhaustive},
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RSlice, RStr, RString, RVec},
};

use crate::ffi::{
    HookResult, HooksBox, HooksFfi, HooksFfi_TO, PluginBox, PluginFfi, PluginFfi_TO, PluginModule,
    PluginModuleRef,
};
use crate::host::HostHandle;
use crate::options::{OptionSpec, OptionValue, PluginOptions};
use crate::session::{
    AuthDecision, AuthDecision_NE, AuthResultDecision, AuthResultDecision_NE, ConnectDecision,
    ConnectDecision_NE, HandshakeDecision, HandshakeDecision_NE, InjectedResult, Injection,
    ListenerBox, ListenerFfi_TO, ListenerSpec, QueryDecision, QueryDecision_NE, ResultDecision,
    ResultDecision_NE, Session, SqlError,
};

/// A plugin's static description and constructor.
pub trait PluginDefinition: Plugin + Sized {
    /// The plugin's name (the `NAME` in `lib<NAME>.so`).
    const NAME: &'static str;
    /// The plugin's version.
    const VERSION: &'static str;

    /// The options the plugin understands.
    fn options() -> Vec<OptionSpec>;

    /// Creates the plugin. `options` holds the values given on the command
    /// line or in the config file (options not given are absent). An `Err`
    /// is a one-line message that stops start-up, e.g.
    /// `--admin-username needs to be set`.
    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String>;
}

/// A running plugin.
pub trait Plugin: Send + Sync + 'static {
    /// The per-connection hook object type.
    type Hooks: Hooks;

    /// The addresses to listen on; connections accepted there belong to
    /// this plugin.
    fn listeners(&self) -> Vec<ListenerSpec>;

    /// Creates the hooks for a new client connection.
    fn new_session(&self, session: &Session<'_>) -> Self::Hooks;

    /// The host is shutting down.
    fn stop(&self) {}
}

/// The per-connection hooks, in the order they fire. Every hook has a
/// default that does what a plain relay does; an `Err` is sent to the client
/// as an ERR packet (in the connect and auth phases the connection is closed
/// afterwards; in the command phase it continues).
pub trait Hooks: Send + 'static {
    /// A client connected; no backend has been chosen yet.
    /// Default: [`ConnectDecision::Default`] (the host picks a backend).
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        let _ = session;
        Ok(ConnectDecision::Default)
    }

    /// The server's handshake arrived (the capabilities the proxy does not
    /// relay, such as CLIENT_SSL and CLIENT_COMPRESS, already removed).
    /// Default: forward it.
    fn read_handshake(
        &mut self,
        session: &mut Session<'_>,
        handshake: &[u8],
    ) -> Result<HandshakeDecision, SqlError> {
        let _ = (session, handshake);
        Ok(HandshakeDecision::Forward)
    }

    /// The client's auth response arrived (`session.username()`,
    /// `default_db()`, `client_capabilities()` are filled in). Default: forward it
    /// to the server; with no server the host answers OK, so a plugin that
    /// answers clients itself must check credentials here.
    fn read_auth(
        &mut self,
        session: &mut Session<'_>,
        auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        let _ = (session, auth);
        Ok(AuthDecision::Forward)
    }

    /// The server answered the auth (`result` is its payload: 0x00 OK,
    /// 0xff ERR, 0xfe auth switch, 0x01 more data). Default: forward it.
    fn read_auth_result(
        &mut self,
        session: &mut Session<'_>,
        result: &[u8],
    ) -> Result<AuthResultDecision, SqlError> {
        let _ = (session, result);
        Ok(AuthResultDecision::Forward)
    }

    /// A complete client command arrived (`packet[0]` is the COM_* code;
    /// commands over 16 MiB are joined). `queue` is empty on entry; push
    /// injections and return [`QueryDecision::SendQueue`] to run them.
    /// Default: forward the command.
    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        let _ = (session, packet, queue);
        Ok(QueryDecision::Forward)
    }

    /// The response to an injected query is complete (buffered) or was
    /// streamed. `queue` holds the injections still to run: add, remove or
    /// clear entries. Default: forward the result.
    fn read_query_result(
        &mut self,
        session: &mut Session<'_>,
        result: &InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> Result<ResultDecision, SqlError> {
        let _ = (session, result, queue);
        Ok(ResultDecision::Forward)
    }

    /// The connection is being torn down (client quit, error, shutdown).
    fn disconnect_client(&mut self, session: &mut Session<'_>) {
        let _ = session;
    }
}

/// Builds the root module of a plugin; call it from the plugin's
/// `#[abi_stable::export_root_module]` function.
pub fn root_module<P: PluginDefinition>() -> PluginModuleRef {
    PluginModule {
        name: plugin_name::<P>,
        version: plugin_version::<P>,
        options: plugin_options::<P>,
        init: plugin_init::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn plugin_name<P: PluginDefinition>() -> RStr<'static> {
    RStr::from_str(P::NAME)
}

extern "C" fn plugin_version<P: PluginDefinition>() -> RStr<'static> {
    RStr::from_str(P::VERSION)
}

extern "C" fn plugin_options<P: PluginDefinition>() -> RVec<OptionSpec> {
    catch_unwind(P::options).map(RVec::from).unwrap_or_default()
}

extern "C" fn plugin_init<P: PluginDefinition>(
    values: RVec<OptionValue>,
    host: HostHandle,
) -> RResult<PluginBox, RString> {
    let options = PluginOptions::from_values(&values);
    match catch_unwind(AssertUnwindSafe(|| P::init(&options, host))) {
        Ok(Ok(plugin)) => ROk(PluginFfi_TO::from_value(
            PluginAdapter::<P> { plugin },
            TD_Opaque,
        )),
        Ok(Err(message)) => RErr(message.into()),
        Err(panic) => RErr(format!("init panicked: {}", panic_message(&*panic)).into()),
    }
}

/// Exposes a [`Plugin`] as a [`PluginFfi`] object.
struct PluginAdapter<P: PluginDefinition> {
    plugin: P,
}

impl<P: PluginDefinition> PluginFfi for PluginAdapter<P> {
    fn listeners(&self) -> RVec<ListenerBox> {
        catch_unwind(AssertUnwindSafe(|| self.plugin.listeners()))
            .unwrap_or_default()
            .into_iter()
            .map(|spec| ListenerFfi_TO::from_value(spec, TD_Opaque))
            .collect()
    }

    fn new_session(&self, session: &Session<'_>) -> HooksBox {
        let hooks = catch_unwind(AssertUnwindSafe(|| self.plugin.new_session(session)))
            .map_err(|panic| panic_message(&*panic));
        boxed_hooks(hooks, P::NAME)
    }

    fn stop(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.plugin.stop()));
    }
}

/// `hooks` as an FFI hook object, every panic caught (`owner` names the
/// library in the error a panic becomes): how a library other than a
/// plugin, such as the script engine (crate::script), hands out hooks.
pub fn hooks_box<H: Hooks>(hooks: H, owner: &'static str) -> HooksBox {
    boxed_hooks(Ok(hooks), owner)
}

fn boxed_hooks<H: Hooks>(hooks: Result<H, String>, plugin_name: &'static str) -> HooksBox {
    HooksFfi_TO::from_value(HooksAdapter { hooks, plugin_name }, TD_Opaque)
}

/// Exposes a [`Hooks`] object over the FFI. Once a hook panics the object is
/// poisoned: that hook and every later one report an error and ask the host to
/// close the connection, since the plugin's state can no longer be trusted.
struct HooksAdapter<H: Hooks> {
    /// The hooks, or the panic message of a failed construction or hook.
    hooks: Result<H, String>,
    plugin_name: &'static str,
}

impl<H: Hooks> HooksAdapter<H> {
    /// Runs one hook, converting a panic (or an earlier one) into an error
    /// that closes the connection.
    fn guarded<D, N>(
        &mut self,
        mut session: Session<'_>,
        wrap: impl FnOnce(D) -> N,
        hook: impl FnOnce(&mut H, &mut Session<'_>) -> Result<D, SqlError>,
    ) -> HookResult<N> {
        let outcome = match &mut self.hooks {
            Ok(hooks) => catch_unwind(AssertUnwindSafe(|| hook(hooks, &mut session)))
                .map_err(|panic| panic_message(&*panic)),
            Err(message) => Err(message.clone()),
        };
        match outcome {
            Ok(Ok(decision)) => ROk(wrap(decision)),
            Ok(Err(error)) => RErr(error),
            Err(message) => {
                session.set_close_after_reply(true);
                let error = SqlError::new(
                    1105,
                    "HY000",
                    format!("(plugin {}) internal error: {message}", self.plugin_name),
                );
                self.hooks = Err(message);
                RErr(error)
            }
        }
    }
}

impl<H: Hooks> HooksFfi for HooksAdapter<H> {
    fn connect_server(&mut self, session: Session<'_>) -> HookResult<ConnectDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| h.connect_server(s))
    }

    fn read_handshake(
        &mut self,
        session: Session<'_>,
        handshake: RSlice<'_, u8>,
    ) -> HookResult<HandshakeDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| {
            h.read_handshake(s, handshake.as_slice())
        })
    }

    fn read_auth(
        &mut self,
        session: Session<'_>,
        auth: RSlice<'_, u8>,
    ) -> HookResult<AuthDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| {
            h.read_auth(s, auth.as_slice())
        })
    }

    fn read_auth_result(
        &mut self,
        session: Session<'_>,
        result: RSlice<'_, u8>,
    ) -> HookResult<AuthResultDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| {
            h.read_auth_result(s, result.as_slice())
        })
    }

    fn read_query(
        &mut self,
        session: Session<'_>,
        packet: RSlice<'_, u8>,
        queue: &mut RVec<Injection>,
    ) -> HookResult<QueryDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| {
            h.read_query(s, packet.as_slice(), queue)
        })
    }

    fn read_query_result(
        &mut self,
        session: Session<'_>,
        result: InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> HookResult<ResultDecision_NE> {
        self.guarded(session, NonExhaustive::new, |h, s| {
            h.read_query_result(s, &result, queue)
        })
    }

    fn disconnect_client(&mut self, mut session: Session<'_>) {
        if let Ok(hooks) = &mut self.hooks {
            let _ = catch_unwind(AssertUnwindSafe(|| hooks.disconnect_client(&mut session)));
        }
    }
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// An FFI hook object of another library (a script's, from
/// crate::script) serving as a plugin's own hooks.
impl Hooks for HooksBox {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        known(HooksFfi::connect_server(self, session.sabi_reborrow_mut()))
    }

    fn read_handshake(
        &mut self,
        session: &mut Session<'_>,
        handshake: &[u8],
    ) -> Result<HandshakeDecision, SqlError> {
        known(HooksFfi::read_handshake(
            self,
            session.sabi_reborrow_mut(),
            handshake.into(),
        ))
    }

    fn read_auth(
        &mut self,
        session: &mut Session<'_>,
        auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        known(HooksFfi::read_auth(
            self,
            session.sabi_reborrow_mut(),
            auth.into(),
        ))
    }

    fn read_auth_result(
        &mut self,
        session: &mut Session<'_>,
        result: &[u8],
    ) -> Result<AuthResultDecision, SqlError> {
        known(HooksFfi::read_auth_result(
            self,
            session.sabi_reborrow_mut(),
            result.into(),
        ))
    }

    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        known(HooksFfi::read_query(
            self,
            session.sabi_reborrow_mut(),
            packet.into(),
            queue,
        ))
    }

    fn read_query_result(
        &mut self,
        session: &mut Session<'_>,
        result: &InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> Result<ResultDecision, SqlError> {
        known(HooksFfi::read_query_result(
            self,
            session.sabi_reborrow_mut(),
            result.sabi_reborrow(),
            queue,
        ))
    }

    fn disconnect_client(&mut self, session: &mut Session<'_>) {
        HooksFfi::disconnect_client(self, session.sabi_reborrow_mut());
    }
}

/// A decision of another library's hook object; one of a later ABI,
/// unknown here, is an error.
fn known<D: GetEnumInfo, S, I>(
    decision: HookResult<NonExhaustive<D, S, I>>,
) -> Result<D, SqlError> {
    match decision {
        ROk(decision) => decision.into_enum().map_err(|_| {
            SqlError::new(
                1105,
                "HY000",
                "(proxy) a hook returned a decision this version does not know",
            )
        }),
        RErr(error) => Err(error),
    }
}
