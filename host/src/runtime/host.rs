//! The state a guest's store carries, and what the guest can reach through it: a deny-by-default
//! WASI context (no environment, no sockets; stdout and stderr into the host's log; only the
//! directories granted), `wasi:http` held to the grants ([`super::outbound`]), the `log` and
//! `config` imports of the contract (`fleet` is in [`super::fleet`]), and the memory limiter.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{self, LogLevel};
use super::outbound::{CallNet, Hooks};
use super::output::{Capture, GuestOutput, Stream};
use crate::capability::Effective;

/// Most table elements an instance may have (function references for indirect calls).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The data of one instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Hooks,
    /// What the current call may use (config values, secrets, destinations).
    effective: Arc<Effective>,

    /// The instance's memory cap and usage.
    pub limiter: MemoryLimiter,
    /// Where the instance's output goes.
    pub capture: Arc<Capture>,
    /// When the current call must end; checked at each epoch tick.
    pub deadline: Instant,
}

impl HostState {
    /// A fresh state: nothing but what `effective` grants. The directories are opened here (a
    /// granted directory that cannot be opened is named in the error).
    pub fn new(
        capture: Arc<Capture>,
        effective: Arc<Effective>,
        memory_cap: usize,
    ) -> Result<Self, String> {
        let mut b = WasiCtxBuilder::new();
        b.stdout(GuestOutput::new(capture.clone(), Stream::Stdout))
            .stderr(GuestOutput::new(capture.clone(), Stream::Stderr))
            // The defaults already refuse these; say so, since it is the sandbox's promise.
            // Outbound HTTP goes through `wasi:http` and its checks, never through sockets.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for m in &effective.directories {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&m.path, format!("/{}", m.name), perms)
                .map_err(|e| format!("directory `{}` ({}): {e}", m.name, m.path.display()))?;
        }
        Ok(Self {
            wasi: b.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: Hooks::default(),
            effective,
            limiter: MemoryLimiter::new(memory_cap),
            capture,
            deadline: Instant::now(),
        })
    }

    /// Arms the state for a call: its capabilities and a fresh record of what it uses.
    pub fn begin_call(&mut self, net: Arc<CallNet>) {
        self.effective = net.effective.clone();
        self.hooks.call = Some(net);
    }

    /// Ends a call: requests are refused until the next one.
    pub fn end_call(&mut self) {
        self.hooks.call = None;
    }

    /// The call running now.
    pub(super) fn call(&self) -> Option<Arc<CallNet>> {
        self.hooks.call.clone()
    }

    /// Records a refusal of the current call.
    fn deny(&self, why: String) {
        if let Some(net) = &self.hooks.call {
            net.usage.deny(why);
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::schedulezero::handler::types::Host for HostState {}

impl bindings::schedulezero::handler::outbound::Host for HostState {
    async fn send(
        &mut self,
        request: bindings::schedulezero::handler::outbound::Request,
    ) -> Result<
        bindings::schedulezero::handler::outbound::Response,
        bindings::schedulezero::handler::outbound::OutboundError,
    > {
        match self.call() {
            Some(net) => net.exchange_whole(request).await,
            None => Err(
                bindings::schedulezero::handler::outbound::OutboundError::Failed(
                    "no call is running".into(),
                ),
            ),
        }
    }
}

impl bindings::schedulezero::handler::log::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.capture.log(level, &message);
    }
}

impl bindings::schedulezero::handler::config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        let e = &self.effective;
        if let Some(v) = e.config.get(&key) {
            return Some(v.clone());
        }
        if let Some(reference) = e.secrets.get(&key) {
            return match reference.resolve() {
                Ok(v) => {
                    self.capture.redact(&v);
                    Some(v)
                }
                Err(why) => {
                    tracing::warn!(key = %key, reason = %why, "a granted secret could not be resolved");
                    self.deny(format!("secret `{key}` cannot be read: {why}"));
                    None
                }
            };
        }
        let why = match e.manifest.config_key(&key) {
            Some(c) if c.secret => format!("secret `{key}` is requested but not granted"),
            Some(_) => format!("configuration value `{key}` is requested but not granted"),
            None => format!("`{key}` is not in the component's manifest, so it cannot be granted"),
        };
        self.deny(why);
        None
    }

    fn keys(&mut self) -> Vec<String> {
        self.effective.keys()
    }
}

/// The linker every plugin is instantiated with: WASI 0.2, `wasi:http` (every request checked
/// against the plugin's grants) and the contract's imports.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Caps the linear memory of one instance and keeps track of its use.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    cap: usize,
    current: usize,
    peak: usize,
    hit: bool,
    /// `current` and `peak` before the last growth allowed here, to undo it if wasmtime then
    /// fails the growth for a reason of its own (such as the memory's declared maximum).
    before_growth: Option<(usize, usize)>,
}

impl MemoryLimiter {
    /// A limiter with a cap in bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            current: 0,
            peak: 0,
            hit: false,
            before_growth: None,
        }
    }

    /// Linear memory in use, in bytes.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The most linear memory used, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Whether a growth was refused since the last [`MemoryLimiter::reset_hit`].
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Forgets refused growths (at the start of a call).
    pub fn reset_hit(&mut self) {
        self.hit = false;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.current - current.min(self.current) + desired;
        if total > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.before_growth = Some((self.current, self.peak));
        self.current = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some((current, peak)) = self.before_growth.take() {
            self.current = current;
            self.peak = peak;
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_tracks_and_caps_memory() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(60, 90, None).unwrap());
        assert_eq!((l.current(), l.peak(), l.hit()), (90, 90, false));
        assert!(!l.memory_growing(90, 120, None).unwrap());
        assert!(l.hit());
        assert_eq!(l.current(), 90);
        l.reset_hit();
        assert!(!l.hit());
        // wasmtime may still fail a growth the limiter allowed: it is undone.
        assert!(l.memory_growing(90, 95, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("over the declared maximum"))
            .unwrap();
        assert_eq!((l.current(), l.peak()), (90, 90));
    }
}
