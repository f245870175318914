//! The wasmtime engine: one per host, configured for components with epoch interruption, an
//! optional fuel meter, and the pooling allocator when the machine allows it. A ticker thread
//! advances the epoch so that running guests reach their deadline checks.

use std::thread;
use std::time::Duration;

use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::RuntimeError;
use crate::config::{Allocator, Config};

/// How often the epoch advances: the granularity of timeouts and of the yields that keep a
/// spinning guest from starving other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The native stack a guest may use (wasm frames); deeper recursion traps with a stack overflow.
const MAX_WASM_STACK: usize = 1024 * 1024;

/// The core instances, memories and tables one component may hold under the pooling allocator.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 200;
/// See [`MAX_CORE_INSTANCES_PER_COMPONENT`].
const MAX_MEMORIES_PER_COMPONENT: u32 = 32;
/// See [`MAX_CORE_INSTANCES_PER_COMPONENT`].
const MAX_TABLES_PER_COMPONENT: u32 = 64;

/// Which allocator the engine ended up with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AllocatorKind {
    /// Pre-reserved slots with copy-on-write memory images.
    Pooling,
    /// Memory mapped for each instance when it is created.
    OnDemand,
}

/// Builds the engine for `config`, probing for the pooling allocator unless told otherwise.
pub fn build(config: &Config) -> Result<(Engine, AllocatorKind), RuntimeError> {
    let base = base_config(config);
    match config.pool.allocator {
        Allocator::OnDemand => Ok((on_demand(base)?, AllocatorKind::OnDemand)),
        Allocator::Pooling => Ok((pooling(base, config)?, AllocatorKind::Pooling)),
        Allocator::Auto => match pooling(base.clone(), config) {
            Ok(engine) => Ok((engine, AllocatorKind::Pooling)),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable, allocating instances on demand");
                Ok((on_demand(base)?, AllocatorKind::OnDemand))
            }
        },
    }
}

fn base_config(config: &Config) -> EngineConfig {
    let mut c = EngineConfig::new();
    c.wasm_component_model(true)
        // Component-model async doubles the cost of a call and no handler uses it.
        .concurrency_support(false)
        .epoch_interruption(true)
        .consume_fuel(config.uses_fuel())
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_init_cow(true)
        .parallel_compilation(true);
    c
}

fn on_demand(mut c: EngineConfig) -> Result<Engine, RuntimeError> {
    c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Engine::new(&c).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

fn pooling(mut c: EngineConfig, config: &Config) -> Result<Engine, RuntimeError> {
    let slots = config.pool.max_instances;
    let max_memory = usize::try_from(config.max_memory_bytes())
        .map_err(|_| RuntimeError::Engine("memory limit does not fit this machine".into()))?;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        // Core instances are only counted (their state is allocated per instance), so no live
        // set of components that fit their own limit runs out of them.
        .total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        // Memories and tables reserve address space per slot: two of each per instance (a Rust
        // component has one of each; componentize-py's and componentize-js's two at most).
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(2))
        .total_stacks(slots)
        // What one component may hold: checked when it loads and reserving nothing. Components
        // built by other toolchains link many modules (componentize-py: libc, libpython, the
        // WASI adapters and shims: 14 core instances), so these are far above what a Rust
        // component needs, and a valid component is not refused for its shape.
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(max_memory)
        // A freed slot's memory is released to the system (madvise), not kept resident: a host
        // whose plugins have cooled down gives their memory back. Instances are kept between
        // calls, so this costs only when one is created.
        .linear_memory_keep_resident(0)
        .table_keep_resident(0)
        // Reuse freed slots (least recently used) before fresh ones, so the slots in use follow
        // the most instances alive at once, not the number of plugins ever run. A plugin's own
        // freed slots (whose memory image is still mapped) come first.
        .max_unused_warm_slots(0);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|e| RuntimeError::Engine(format!("pooling allocator: {e:#}")))
}

/// Starts the thread that advances the engine's epoch; it ends when the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = thread::Builder::new()
        .name("sz-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch thread: timeouts rely on the async timer alone");
    }
}
