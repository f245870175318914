//! Host bindings generated from `wit/handler.wit`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    exports: { default: async },
});

pub use schedulezero::handler::log::Level as LogLevel;
pub use schedulezero::handler::types::{
    HandlerError as WitHandlerError, HandlerInfo as WitHandlerInfo, JobContext as WitJobContext,
    Timestamp as WitTimestamp,
};
