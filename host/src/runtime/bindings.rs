//! Host bindings generated from `wit/handler.wit`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: {
        // The fleet view answers from the host's handlers, store and remote peers: every one of
        // its functions may wait.
        "schedulezero:handler/fleet.handlers": async,
        "schedulezero:handler/fleet.ping": async,
        "schedulezero:handler/fleet.ping-many": async,
        "schedulezero:handler/fleet.remote-metrics": async,
        "schedulezero:handler/fleet.host": async,
        "schedulezero:handler/fleet.executions": async,
        "schedulezero:handler/fleet.nodes": async,
        "schedulezero:handler/fleet.last-result": async,
        // A whole HTTP exchange.
        "schedulezero:handler/outbound.send": async,
    },
    exports: { default: async },
});

pub use schedulezero::handler::log::Level as LogLevel;
pub use schedulezero::handler::types::{
    HandlerError as WitHandlerError, HandlerInfo as WitHandlerInfo, JobContext as WitJobContext,
    Timestamp as WitTimestamp,
};
