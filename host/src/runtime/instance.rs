//! One live instance of a plugin: its store, its bindings and the slots it holds. An instance runs
//! one call at a time, under the call's limits; [`Instance::call`] turns whatever happened into a
//! result or a typed [`InvokeError`], and says whether the instance may be used again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use std::sync::atomic::Ordering;

use super::InvokeError;
use super::bindings::{self, WitHandlerError, WitHandlerInfo, WitJobContext};
use super::host::HostState;
use super::metrics::{InstanceStats, LiveInstances};
use super::outbound::CallNet;
use super::output::{Capture, panic_message};
use crate::capability::CallUsage;
use crate::capability::Effective;
use crate::config::Limits;

/// Fuel given to a call when the engine meters fuel but this plugin has no budget.
const UNMETERED_FUEL: u64 = u64::MAX / 2;

/// A live instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: bindings::Plugin,
    calls: u64,
    /// Which instance of its plugin this is: 1 for the first created.
    pub(super) serial: u64,
    /// Whether the engine meters fuel (then every call must be given some).
    metered: bool,
    /// The generation of its plugin's grants it was created under.
    pub(super) grants: u64,
    /// Its entry in its plugin's list of live instances, removed when it is dropped.
    pub(super) tracked: Option<Tracked>,
    _plugin_slot: OwnedSemaphorePermit,
    _pool_slot: OwnedSemaphorePermit,
}

/// An instance's counters and the list it is in.
pub(super) struct Tracked {
    pub(super) stats: Arc<InstanceStats>,
    pub(super) live: Arc<LiveInstances>,
}

impl Tracked {
    pub(super) fn new(stats: InstanceStats, live: Arc<LiveInstances>) -> Self {
        let stats = Arc::new(stats);
        live.add(stats.clone());
        Self { stats, live }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.remove(self.stats.serial);
    }
}

/// What the host measured of one call on an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallMeasure {
    /// Time spent in the guest, in nanoseconds.
    pub call_ns: u64,
    /// Fuel burned, when the engine meters fuel.
    pub fuel_used: Option<u64>,
    /// Linear memory of the instance after the call, in bytes.
    pub memory_bytes: usize,
    /// The most linear memory the instance has used, in bytes.
    pub memory_peak_bytes: usize,
    /// Bytes of output (stdout, stderr, log) that reached the log.
    pub output_bytes: usize,
    /// Bytes of output dropped over the budget.
    pub output_dropped_bytes: u64,
    /// Calls this instance has served, this one included.
    pub instance_calls: u64,
    /// Which instance of the plugin ran the call: 1 for the first one created.
    pub instance: u64,
    /// What the call used outside its instance: HTTP requests, hosts, directories (filled in by
    /// the runtime when the call ends).
    #[serde(skip_serializing_if = "CallUsage::is_empty")]
    pub usage: CallUsage,
}

impl Instance {
    /// Instantiates `pre` in a fresh store, with its own output capture. `metered`: the engine
    /// counts fuel.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        engine: &Engine,
        pre: &bindings::PluginPre<HostState>,
        capture: Arc<Capture>,
        grants: (u64, Arc<Effective>),
        limits: &Limits,
        deadline: Instant,
        slots: (OwnedSemaphorePermit, OwnedSemaphorePermit),
        metered: bool,
    ) -> Result<Self, InvokeError> {
        let memory_cap = usize::try_from(limits.memory_mib * 1024 * 1024).unwrap_or(usize::MAX);
        let (generation, effective) = grants;
        let state = HostState::new(capture, effective, memory_cap)
            .map_err(InvokeError::CapabilityDenied)?;
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(Trap::Interrupt.into())
            } else {
                // Hand the thread back to tokio at every tick, so a spinning guest never starves
                // the other tasks (or the timer that ends it).
                Ok(UpdateDeadline::Yield(1))
            }
        });
        prepare(&mut store, limits, deadline, metered)?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(classify(e, &mut store, limits)),
        };
        Ok(Self {
            store,
            bindings,
            calls: 0,
            serial: 0,
            metered,
            grants: generation,
            tracked: None,
            _plugin_slot: slots.0,
            _pool_slot: slots.1,
        })
    }

    /// Its linear memory now, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.current()
    }

    /// Calls `describe()`.
    pub async fn describe(
        &mut self,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<WitHandlerInfo, InvokeError> {
        prepare(&mut self.store, limits, deadline, self.metered)?;
        let r = self
            .bindings
            .schedulezero_handler_handler()
            .call_describe(&mut self.store)
            .await;
        r.map_err(|e| classify(e, &mut self.store, limits))
    }

    /// Calls `invoke(ctx, method, params)` with the capabilities in `net`, and checks the
    /// result against the limits. A refusal is named in the error: what was not granted.
    pub async fn call(
        &mut self,
        ctx: &WitJobContext,
        method: &str,
        params: &str,
        limits: &Limits,
        deadline: Instant,
        net: Arc<CallNet>,
    ) -> (Result<String, InvokeError>, CallMeasure) {
        self.store.data_mut().begin_call(net.clone());
        let (result, measure) = self.call_armed(ctx, method, params, limits, deadline).await;
        self.store.data_mut().end_call();
        (explain(result, &net.usage), measure)
    }

    async fn call_armed(
        &mut self,
        ctx: &WitJobContext,
        method: &str,
        params: &str,
        limits: &Limits,
        deadline: Instant,
    ) -> (Result<String, InvokeError>, CallMeasure) {
        let capture = self.store.data().capture.clone();
        capture.begin(&ctx.job_id, &ctx.run_id, limits.max_output_bytes);
        let fuel_before = match prepare(&mut self.store, limits, deadline, self.metered) {
            Ok(f) => f,
            Err(e) => return (Err(e), CallMeasure::default()),
        };
        self.calls += 1;
        if let Some(t) = &self.tracked {
            t.stats.busy.store(true, Ordering::Relaxed);
        }
        let started = Instant::now();
        let raw = self
            .bindings
            .schedulezero_handler_handler()
            .call_invoke(&mut self.store, ctx, method, params)
            .await;
        let call_ns = nanos(started.elapsed());
        let report = capture.finish();
        let fuel_used =
            fuel_before.and_then(|before| self.store.get_fuel().ok().map(|after| before - after));
        let limiter = &self.store.data().limiter;
        let measure = CallMeasure {
            call_ns,
            fuel_used,
            memory_bytes: limiter.current(),
            memory_peak_bytes: limiter.peak(),
            output_bytes: report.bytes,
            output_dropped_bytes: report.dropped,
            instance_calls: self.calls,
            instance: self.serial,
            usage: CallUsage::default(),
        };
        if let Some(t) = &self.tracked {
            t.record(&measure, matches!(raw, Ok(Err(_))));
        }
        let result = match raw {
            Ok(Ok(result)) => check_result(result, limits),
            Ok(Err(e)) => Err(handler_error(e, &capture)),
            Err(e) => {
                let err = classify(e, &mut self.store, limits);
                match (&err, panic_message(&report.stderr_tail)) {
                    (InvokeError::Trap(_), Some(panic)) => {
                        Err(InvokeError::Trap(format!("plugin panicked: {panic}")))
                    }
                    _ => Err(err),
                }
            }
        };
        (result, measure)
    }
}

impl Tracked {
    /// Counts a call that ended (in the guest: errors that discard the instance drop it anyway).
    fn record(&self, m: &CallMeasure, handler_error: bool) {
        let s = &self.stats;
        s.calls.fetch_add(1, Ordering::Relaxed);
        if handler_error {
            s.handler_errors.fetch_add(1, Ordering::Relaxed);
        }
        s.memory_bytes
            .store(m.memory_bytes as u64, Ordering::Relaxed);
        s.memory_peak_bytes
            .store(m.memory_peak_bytes as u64, Ordering::Relaxed);
        s.fuel_used
            .fetch_add(m.fuel_used.unwrap_or(0), Ordering::Relaxed);
        s.busy_ns.fetch_add(m.call_ns, Ordering::Relaxed);
        s.last_used_ms.store(
            chrono::Utc::now().timestamp_millis().max(0) as u64,
            Ordering::Relaxed,
        );
        s.busy.store(false, Ordering::Relaxed);
    }
}

/// Names in a failed call's error what the host refused it (for `capability_denied`) or the
/// limits it ran into (for other failures), after what the handler said. A call that failed
/// after the host refused it an outbound request fails with `capability_denied`, whatever the
/// handler made of the refusal: a toolchain's own HTTP client (JavaScript's `fetch`) reports one
/// as a network error, which would otherwise hide what the operator has to grant.
fn explain(
    result: Result<String, InvokeError>,
    usage: &super::outbound::Usage,
) -> Result<String, InvokeError> {
    let join = |said: String, mut host: Vec<String>| {
        // What the handler passed on as it was told needs no second mention.
        host.retain(|h| !said.contains(h.as_str()));
        if host.is_empty() {
            said
        } else {
            format!("{said} (host: {})", host.join("; "))
        }
    };
    match result {
        Err(InvokeError::CapabilityDenied(said)) => {
            Err(InvokeError::CapabilityDenied(join(said, usage.denials())))
        }
        Err(InvokeError::Failed(said)) if usage.request_refused().is_some() => {
            Err(InvokeError::CapabilityDenied(join(said, usage.denials())))
        }
        Err(InvokeError::Failed(said)) => Err(InvokeError::Failed(join(said, usage.notes()))),
        Err(InvokeError::Retryable(said)) => Err(InvokeError::Retryable(join(said, usage.notes()))),
        other => other,
    }
}

/// Arms the store for a call: deadline, fuel, limiter. Returns the fuel it was given.
fn prepare(
    store: &mut Store<HostState>,
    limits: &Limits,
    deadline: Instant,
    metered: bool,
) -> Result<Option<u64>, InvokeError> {
    store.data_mut().deadline = deadline;
    store.data_mut().limiter.reset_hit();
    store.set_epoch_deadline(1);
    if metered {
        let fuel = limits.fuel.unwrap_or(UNMETERED_FUEL);
        store
            .set_fuel(fuel)
            .map_err(|e| InvokeError::Internal(format!("set fuel: {e}")))?;
        return Ok(Some(fuel));
    }
    Ok(None)
}

fn check_result(result: String, limits: &Limits) -> Result<String, InvokeError> {
    if result.len() > limits.max_result_bytes {
        return Err(InvokeError::ResultTooLarge {
            size: result.len(),
            limit: limits.max_result_bytes,
        });
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(&result) {
        Ok(_) => Ok(result),
        Err(e) => Err(InvokeError::InvalidResult(e.to_string())),
    }
}

/// A handler's own error, with any secret it was given masked in the message (which reaches the
/// execution log and the API).
fn handler_error(e: WitHandlerError, capture: &Capture) -> InvokeError {
    match e {
        WitHandlerError::InvalidParams(m) => InvokeError::InvalidParams(capture.mask(m)),
        WitHandlerError::UnknownMethod(m) => InvokeError::UnknownMethod(capture.mask(m)),
        WitHandlerError::Failed(m) => InvokeError::Failed(capture.mask(m)),
        WitHandlerError::Retryable(m) => InvokeError::Retryable(capture.mask(m)),
        WitHandlerError::Denied(m) => InvokeError::CapabilityDenied(capture.mask(m)),
    }
}

/// Turns a wasmtime error out of a guest call into a typed error.
fn classify(e: wasmtime::Error, store: &mut Store<HostState>, limits: &Limits) -> InvokeError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout(limits.timeout),
        Some(Trap::OutOfFuel) => InvokeError::FuelExhausted(limits.fuel.unwrap_or(UNMETERED_FUEL)),
        // A refused growth makes a Rust guest abort (an `unreachable`); other languages trap
        // in other ways, so any trap after a refusal is put down to the memory limit.
        _ if store.data().limiter.hit() => InvokeError::MemoryLimit {
            limit_mib: limits.memory_mib,
        },
        Some(Trap::StackOverflow) => {
            InvokeError::Trap("stack overflow (call stack exhausted)".into())
        }
        Some(trap) => InvokeError::Trap(trap.to_string()),
        None => {
            let text = format!("{e:#}");
            tracing::debug!(error = %text, "guest call failed outside a trap");
            InvokeError::Trap(text)
        }
    }
}

/// Whole nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
