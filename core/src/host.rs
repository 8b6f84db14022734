//! The host object plugins receive: logging and the backend registry.

use std::sync::Arc;

use mysql_proxy_plugin_abi::{
    abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{RErr, ROk, RResult, RStr, RString, RVec},
    },
    BackendInfo, BackendState, BackendType, HostFfi, HostFfi_TO, HostHandle, LogLevel,
};

use crate::backend::BackendRegistry;
use crate::logging;

/// Implements [`HostFfi`] over the engine's registry and logger.
#[derive(Clone)]
pub struct CoreHost {
    pub registry: Arc<BackendRegistry>,
    pub logger: slog::Logger,
}

impl CoreHost {
    pub fn handle(&self) -> HostHandle {
        HostFfi_TO::from_ptr(
            mysql_proxy_plugin_abi::abi_stable::std_types::RArc::new(self.clone()),
            TD_Opaque,
        )
    }
}

impl HostFfi for CoreHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        logging::log(&self.logger, level, message.as_str());
    }

    fn backends(&self) -> RVec<BackendInfo> {
        self.registry.snapshot().into()
    }

    fn add_backend(&self, address: RStr<'_>, backend_type: BackendType) -> RResult<u32, RString> {
        match self.registry.add(address.as_str(), backend_type) {
            Ok(ndx) => ROk(ndx),
            Err(message) => RErr(message.into()),
        }
    }

    fn set_backend_state(
        &self,
        ndx: u32,
        state: BackendState,
        reason: RStr<'_>,
    ) -> RResult<(), RString> {
        match self.registry.get(ndx) {
            Some(backend) => {
                backend.set_state(state, reason.as_str());
                ROk(())
            }
            None => RErr(format!("no backend with index {ndx}").into()),
        }
    }
}
