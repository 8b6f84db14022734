//! The FFI-level contract: the root module every plugin exports and the
//! trait objects that cross the boundary. Plugin authors normally use the
//! plain traits of [`crate::adapter`] instead of implementing these directly.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::host::HostHandle;
use crate::options::{OptionSpec, OptionValue};
use crate::session::{
    AuthDecision_NE, AuthResultDecision_NE, ConnectDecision_NE, HandshakeDecision_NE,
    InjectedResult, Injection, ListenerBox, QueryDecision_NE, ResultDecision_NE, Session, SqlError,
};

/// The root module of a plugin library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The plugin's name, e.g. `proxy` (the `NAME` of `lib<NAME>.so`).
    pub name: extern "C" fn() -> RStr<'static>,
    /// The plugin's version, e.g. `0.1.0`.
    pub version: extern "C" fn() -> RStr<'static>,
    /// The options the plugin understands (for `--help-all`, command-line
    /// parsing and config-file validation).
    pub options: extern "C" fn() -> RVec<OptionSpec>,
    /// Creates the plugin from the option values given. An `Err` is a
    /// one-line message; the host stops start-up with it.
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn(RVec<OptionValue>, HostHandle) -> RResult<PluginBox, RString>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "mysql_proxy_plugin";
    const NAME: &'static str = "mysql_proxy_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A plugin instance, created by `init`.
#[sabi_trait]
pub trait PluginFfi: Send + Sync + 'static {
    /// The addresses this plugin wants the host to listen on.
    fn listeners(&self) -> RVec<ListenerBox>;

    /// A client connected to listener `session.listener_ndx()`: returns the
    /// hook object that will see this connection's whole life cycle.
    fn new_session(&self, session: &Session<'_>) -> HooksBox;

    /// The host is shutting down; no more sessions will be created.
    #[sabi(last_prefix_field)]
    fn stop(&self);
}

/// An owned plugin instance.
pub type PluginBox = PluginFfi_TO<RBox<()>>;

/// Result of a hook: a decision, or an error the host sends to the client.
pub type HookResult<D> = RResult<D, SqlError>;

/// The per-connection hooks, in the order they fire. See
/// [`crate::adapter::Hooks`] for each hook's contract.
#[sabi_trait]
pub trait HooksFfi: Send + 'static {
    fn connect_server(&mut self, session: Session<'_>) -> HookResult<ConnectDecision_NE>;

    fn read_handshake(
        &mut self,
        session: Session<'_>,
        handshake: RSlice<'_, u8>,
    ) -> HookResult<HandshakeDecision_NE>;

    fn read_auth(
        &mut self,
        session: Session<'_>,
        auth: RSlice<'_, u8>,
    ) -> HookResult<AuthDecision_NE>;

    fn read_auth_result(
        &mut self,
        session: Session<'_>,
        result: RSlice<'_, u8>,
    ) -> HookResult<AuthResultDecision_NE>;

    fn read_query(
        &mut self,
        session: Session<'_>,
        packet: RSlice<'_, u8>,
        queue: &mut RVec<Injection>,
    ) -> HookResult<QueryDecision_NE>;

    fn read_query_result(
        &mut self,
        session: Session<'_>,
        result: InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> HookResult<ResultDecision_NE>;

    #[sabi(last_prefix_field)]
    fn disconnect_client(&mut self, session: Session<'_>);
}

/// An owned per-connection hook object.
pub type HooksBox = HooksFfi_TO<RBox<()>>;
