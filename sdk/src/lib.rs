//! Write ScheduleZero job handlers as plain Rust.
//!
//! A handler is a type that holds whatever state it wants to keep between calls (it lives as long
//! as the host keeps its instance hot) and a set of methods. Each method takes a [`JobContext`]
//! and a params type that implements [`serde::Deserialize`] and [`schemars::JsonSchema`], and
//! returns any [`serde::Serialize`] value or a [`HandlerError`]. The SDK turns JSON into your
//! types and back, answers `describe()` from the methods you register (with a JSON Schema of each
//! method's params) and exports the component for you: you never touch WIT or `wit-bindgen`.
//!
//! A handler crate is a `cdylib` that depends on this crate and on serde:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! schedulezero-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! It needs no `schemars` of its own: import the SDK's (`schemars::{self, JsonSchema}`), which
//! the derive finds by that name.
//!
//! ```
//! use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods, export_handler};
//! use schedulezero_sdk::schemars::{self, JsonSchema};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default)]
//! struct Greeter {
//!     greeted: u64,
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct GreetParams {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Greeting {
//!     text: String,
//!     greeted_so_far: u64,
//! }
//!
//! impl Greeter {
//!     fn greet(&mut self, _ctx: &JobContext, p: GreetParams) -> Result<Greeting, HandlerError> {
//!         if p.name.is_empty() {
//!             return Err(HandlerError::invalid_params("name must not be empty"));
//!         }
//!         self.greeted += 1;
//!         Ok(Greeting { text: format!("hello, {}", p.name), greeted_so_far: self.greeted })
//!     }
//! }
//!
//! impl Handler for Greeter {
//!     const NAME: &'static str = "greeter";
//!     const VERSION: &'static str = "1.0.0";
//!     const DESCRIPTION: &'static str = "Greets people.";
//!
//!     fn methods(m: &mut Methods<Self>) {
//!         m.method("greet", "Greets someone by name.", Self::greet);
//!     }
//! }
//!
//! export_handler!(Greeter);
//! # fn main() {}
//! ```
//!
//! Build the crate as a `cdylib` for the `wasm32-wasip2` target and drop the resulting
//! `<name>.wasm` into the host's plugins folder.

#![warn(missing_docs)]

// The bindings name the SDK by its crate path, which must also resolve inside the SDK itself.
extern crate self as schedulezero_sdk;

mod context;
mod error;
mod methods;

pub mod capabilities;
pub mod config;
pub mod dirs;
pub mod fleet;
pub mod http;
pub mod log;

pub use context::JobContext;
pub use error::HandlerError;
pub use methods::{Handler, HandlerInfo, MethodInfo, Methods};

/// Re-exported so that handlers derive [`schemars::JsonSchema`] with the version the SDK uses.
pub use schemars;
/// Re-exported so that handlers can take or return free-form JSON ([`serde_json::Value`]).
pub use serde_json;

/// Bindings generated from the contract in `wit/`. Not part of the SDK's API: use
/// [`export_handler!`] instead.
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "plugin",
        // A copy of the contract in wit/ (a test holds them equal): the package carries it, so
        // the SDK builds outside this repository.
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "schedulezero_sdk::__bindings",
        runtime_path: "schedulezero_sdk::__private::wit_bindgen::rt",
    });
}

/// Glue used by [`export_handler!`]. Not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::__bindings::schedulezero::handler::types as wit;
    use crate::{Handler, HandlerError, JobContext, Methods};

    /// The state of one instance: the handler value, its method table, and its description
    /// once built (the host asks again to check that a hot plugin answers: the schemas are
    /// generated once per instance, not at every ask).
    pub struct Instance<H: Handler> {
        handler: H,
        methods: Methods<H>,
        described: std::cell::OnceCell<wit::HandlerInfo>,
    }

    impl<H: Handler> Default for Instance<H> {
        fn default() -> Self {
            Self {
                handler: H::default(),
                methods: Methods::collect(),
                described: std::cell::OnceCell::new(),
            }
        }
    }

    impl<H: Handler> Instance<H> {
        pub fn describe(&self) -> wit::HandlerInfo {
            self.described
                .get_or_init(|| {
                    let info = self.methods.info();
                    wit::HandlerInfo {
                        name: info.name,
                        version: info.version,
                        description: info.description,
                        methods: info
                            .methods
                            .into_iter()
                            .map(|m| wit::MethodInfo {
                                name: m.name,
                                description: m.description,
                                params_schema: m.params_schema,
                            })
                            .collect(),
                    }
                })
                .clone()
        }

        pub fn invoke(
            &mut self,
            ctx: wit::JobContext,
            method: &str,
            params: &str,
        ) -> Result<String, wit::HandlerError> {
            let ctx = JobContext::from_wit(ctx);
            self.methods
                .invoke(&mut self.handler, &ctx, method, params)
                .map_err(to_wit_error)
        }
    }

    fn to_wit_error(e: HandlerError) -> wit::HandlerError {
        match e {
            HandlerError::InvalidParams(m) => wit::HandlerError::InvalidParams(m),
            HandlerError::UnknownMethod(m) => wit::HandlerError::UnknownMethod(m),
            HandlerError::Failed(m) => wit::HandlerError::Failed(m),
            HandlerError::Retryable(m) => wit::HandlerError::Retryable(m),
            HandlerError::Denied(m) => wit::HandlerError::Denied(m),
        }
    }
}

/// Exports a [`Handler`] type as the component's implementation of the contract.
///
/// Call it once per plugin crate, at the top level, with the handler type. The type must
/// implement [`Handler`] (and so [`Default`]): the host creates one value per instance.
///
/// ```
/// # use schedulezero_sdk::{Handler, Methods, export_handler};
/// #[derive(Default)]
/// struct Noop;
///
/// impl Handler for Noop {
///     const NAME: &'static str = "noop";
///     const VERSION: &'static str = "0.1.0";
///     const DESCRIPTION: &'static str = "Does nothing.";
///     fn methods(_: &mut Methods<Self>) {}
/// }
///
/// export_handler!(Noop);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        const _: () = {
            use $crate::__bindings::exports::schedulezero::handler::handler as __sz_export;
            use $crate::__bindings::schedulezero::handler::types as __sz_types;

            ::std::thread_local! {
                static __SZ_INSTANCE: ::core::cell::RefCell<$crate::__private::Instance<$handler>> =
                    ::core::cell::RefCell::new(::core::default::Default::default());
            }

            struct __SzComponent;

            /// What the component is: the handler's name, version and description, and the
            /// crate's authors, license and repository.
            const __SZ_PACKAGE: $crate::capabilities::Package = $crate::capabilities::Package {
                name: <$handler as $crate::Handler>::NAME,
                version: <$handler as $crate::Handler>::VERSION,
                description: <$handler as $crate::Handler>::DESCRIPTION,
                vendor: ::core::env!("CARGO_PKG_AUTHORS"),
                license: ::core::env!("CARGO_PKG_LICENSE"),
                source: ::core::env!("CARGO_PKG_REPOSITORY"),
            };
            /// The handler's manifest (what it is and what it asks for), in the custom section
            /// the host reads.
            const __SZ_MANIFEST_LEN: usize = $crate::capabilities::render::<0>(
                &<$handler as $crate::Handler>::CAPABILITIES,
                &__SZ_PACKAGE,
            )
            .1;
            #[cfg_attr(target_family = "wasm", unsafe(link_section = "schedulezero-manifest"))]
            #[used]
            static __SZ_MANIFEST: [u8; __SZ_MANIFEST_LEN] =
                $crate::capabilities::render::<__SZ_MANIFEST_LEN>(
                    &<$handler as $crate::Handler>::CAPABILITIES,
                    &__SZ_PACKAGE,
                )
                .0;

            impl __sz_export::Guest for __SzComponent {
                fn describe() -> __sz_types::HandlerInfo {
                    __SZ_INSTANCE.with(|i| i.borrow().describe())
                }

                fn invoke(
                    ctx: __sz_types::JobContext,
                    method: ::std::string::String,
                    params: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, __sz_types::HandlerError>
                {
                    __SZ_INSTANCE.with(|i| i.borrow_mut().invoke(ctx, &method, &params))
                }
            }

    $crate::__bindings::__export_plugin!(__SzComponent with_types_in $crate::__bindings);
        };
    };
}
