//! The schedule service: create, update, delete, pause, resume and run-now of schedules, and
//! calls made at once (ScheduleZero's run-now). Every one checks that there is room for new
//! work (free space above the floor), validates (id, handler, method, params against the
//! method's schema, trigger, policy), writes, and wakes the scheduler when a fire time may have
//! moved earlier.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::dispatch::Immediate;
use crate::handler::Handlers;
use crate::schedule::policy::SchedulePolicy;
use crate::schedule::{ConflictPolicy, Outcome, Run, Schedule, TriggerError, TriggerSpec};
use crate::scheduler::policy::resume_from;
use crate::scheduler::service::{RunNowError, Scheduler};
use crate::storage::Storage;
use crate::store::{Inserted, Store, StoreError};

/// How far in the past a date may be and still count as "now" (a client's clock and latency).
const PAST_DATE_SLACK: TimeDelta = TimeDelta::seconds(5);

/// The longest schedule id, in characters.
pub const MAX_ID_CHARS: usize = 200;

/// Why a schedule write was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Free space is below `server.min_free_space`.
    #[error(
        "{free} bytes free on the data directory's volume, below server.min_free_space ({floor} bytes)"
    )]
    StorageFull {
        /// Bytes free.
        free: u64,
        /// The floor.
        floor: u64,
    },
    /// The id is empty, too long, or has `/` or control characters.
    #[error("a schedule id has 1 to {MAX_ID_CHARS} characters, without `/` or control characters")]
    InvalidId,
    /// No handler has this id.
    #[error("no handler `{0}`")]
    UnknownHandler(String),
    /// The handler has no such method.
    #[error("handler `{handler}` has no method `{method}` (it has: {})", known.join(", "))]
    UnknownMethod {
        /// The handler.
        handler: String,
        /// The method asked for.
        method: String,
        /// The methods it has.
        known: Vec<String>,
    },
    /// The params do not match the method's JSON Schema.
    #[error("{0}")]
    InvalidParams(String),
    /// The trigger cannot be used.
    #[error(transparent)]
    InvalidTrigger(#[from] TriggerError),
    /// A date trigger in the past, not allowed by the request.
    #[error(
        "run_date {} is in the past; set \"allow_past_date\": true to schedule it anyway (it is then due at once, and misfire_grace_time decides whether it runs)",
        .0.to_rfc3339()
    )]
    PastDate(DateTime<Utc>),
    /// The policy cannot be read, or a value is out of range.
    #[error("{0}")]
    InvalidPolicy(String),
    /// No schedule has this id.
    #[error("no schedule `{0}`")]
    NotFound(String),
    /// A schedule with this id exists and the conflict policy is `error`.
    #[error(
        "a schedule with id `{0}` already exists (send conflict_policy `replace` or `do_nothing` to change that)"
    )]
    Exists(String),
    /// The schedule has `max_running` runs in progress; the run is recorded as skipped.
    #[error(
        "schedule `{0}` already has max_running runs in progress; this run is recorded as skipped"
    )]
    OverlapLimit(String),
    /// The schedule already has a run at this very instant.
    #[error("schedule `{0}` already has a run at this instant; try again")]
    RunExists(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ScheduleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(id) => Self::Exists(id),
            e => Self::Store(e),
        }
    }
}

impl From<RunNowError> for ScheduleError {
    fn from(e: RunNowError) -> Self {
        match e {
            RunNowError::OverlapLimit(id) => Self::OverlapLimit(id),
            RunNowError::Duplicate(id) => Self::RunExists(id),
            RunNowError::Store(e) => e.into(),
        }
    }
}

/// A trigger as a request writes it.
#[derive(Debug, Clone, Copy)]
pub enum TriggerText<'a> {
    /// `/api/v1`'s trigger object (`{"type": "cron", ...}`).
    V1(&'a Value),
    /// ScheduleZero's trigger object.
    Compat(&'a Value),
}

impl TriggerText<'_> {
    fn read(
        self,
        now: DateTime<Utc>,
    ) -> Result<(TriggerSpec, crate::schedule::Trigger), TriggerError> {
        match self {
            Self::V1(v) => TriggerSpec::read_json(v, now),
            Self::Compat(v) => TriggerSpec::read_compat(v, now),
        }
    }
}

/// A schedule to create.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// Its id.
    pub id: String,
    /// The handler.
    pub handler: String,
    /// The method.
    pub method: String,
    /// The params.
    pub params: Value,
    /// When it fires.
    pub trigger: TriggerText<'a>,
    /// How it runs (`None`: the defaults), as the request wrote it.
    pub policy: Option<Value>,
    /// Whether it starts paused.
    pub paused: bool,
    /// What to do when the id exists.
    pub conflict: ConflictPolicy,
    /// Whether a date trigger may be in the past.
    pub allow_past_date: bool,
}

/// What a create did, with the schedule as stored.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new schedule.
    New(Schedule),
    /// It replaced one with the same id.
    Replaced(Schedule),
    /// One with the same id exists and was kept (this is it).
    Kept(Schedule),
}

impl Created {
    /// The schedule as stored.
    pub fn schedule(&self) -> &Schedule {
        match self {
            Self::New(s) | Self::Replaced(s) | Self::Kept(s) => s,
        }
    }
}

/// A change to a schedule: only the fields given change.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Another handler.
    pub handler: Option<String>,
    /// Another method.
    pub method: Option<String>,
    /// Other params.
    pub params: Option<Value>,
    /// Another trigger (`/api/v1`'s form).
    pub trigger: Option<Value>,
    /// Policy fields to change.
    pub policy: Option<Map<String, Value>>,
    /// Paused or not.
    pub paused: Option<bool>,
    /// Whether a new date trigger may be in the past.
    pub allow_past_date: bool,
}

/// A schedule resumed.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The schedule as it is now.
    pub schedule: Schedule,
    /// Whether it was paused (resuming an active schedule changes nothing).
    pub was_paused: bool,
}

/// The one path for writes to schedules.
pub struct ScheduleService {
    store: Store,
    scheduler: Arc<Scheduler>,
    storage: Arc<Storage>,
}

impl ScheduleService {
    /// The service over a store, the scheduler it wakes, and the volume whose free space it
    /// checks.
    pub fn new(store: Store, scheduler: Arc<Scheduler>, storage: Arc<Storage>) -> Self {
        Self {
            store,
            scheduler,
            storage,
        }
    }

    fn handlers(&self) -> &Handlers {
        self.scheduler.dispatcher().handlers()
    }

    /// Refuses new work (a schedule to store, a run to start) while free space is below
    /// `server.min_free_space`, before SQLite itself fails.
    pub fn room_for_new_work(&self) -> Result<(), ScheduleError> {
        if self.storage.is_low() {
            let r = self.storage.report();
            return Err(ScheduleError::StorageFull {
                free: r.free_bytes.unwrap_or(0),
                floor: r.floor_bytes,
            });
        }
        Ok(())
    }

    /// Checks that `handler` exists and has `method` and, when `params` are given, that they
    /// match the method's JSON Schema.
    pub async fn check_target(
        &self,
        handler: &str,
        method: &str,
        params: Option<&Value>,
    ) -> Result<(), ScheduleError> {
        let Some(h) = self.handlers().find(handler).await else {
            return self.check_elsewhere(handler, method).await;
        };
        if !h.has_method(method) {
            return Err(ScheduleError::UnknownMethod {
                handler: handler.to_owned(),
                method: method.to_owned(),
                known: h.method_names(),
            });
        }
        match params {
            Some(params) => h
                .check_params(method, params)
                .map_err(ScheduleError::InvalidParams),
            None => Ok(()),
        }
    }

    /// On a store shared by several hosts, a handler this host does not have may be another
    /// host's: it is checked against the handlers the hosts recorded (its methods; its params
    /// are checked by the host that runs it).
    async fn check_elsewhere(&self, handler: &str, method: &str) -> Result<(), ScheduleError> {
        let unknown = || ScheduleError::UnknownHandler(handler.to_owned());
        if !self.store.is_shared() {
            return Err(unknown());
        }
        let Some(record) = self
            .store
            .handlers()
            .await?
            .into_iter()
            .find(|r| r.id == handler && r.status != "missing")
        else {
            return Err(unknown());
        };
        if !record.methods.iter().any(|m| m == method) {
            return Err(ScheduleError::UnknownMethod {
                handler: handler.to_owned(),
                method: method.to_owned(),
                known: record.methods,
            });
        }
        Ok(())
    }

    /// Stores a new schedule (or keeps or replaces one with its id, as `draft.conflict` says)
    /// and wakes the scheduler for its first fire time. Committed on return.
    pub async fn create(&self, draft: Draft<'_>) -> Result<Created, ScheduleError> {
        self.room_for_new_work()?;
        check_id(&draft.id)?;
        self.check_target(&draft.handler, &draft.method, Some(&draft.params))
            .await?;
        let now = Utc::now();
        let (trigger, compiled) = draft.trigger.read(now)?;
        refuse_past_date(&trigger, now, draft.allow_past_date)?;
        let policy = match draft.policy {
            Some(p) => policy_from(p)?,
            None => SchedulePolicy::default(),
        };
        let schedule = Schedule {
            id: draft.id,
            handler_id: draft.handler,
            method: draft.method,
            params: draft.params,
            next_fire: compiled.first_fire(now),
            trigger,
            policy,
            paused: draft.paused,
            created_at: now,
            updated_at: now,
        };
        Ok(
            match self
                .store
                .insert_schedule(&schedule, draft.conflict)
                .await?
            {
                Inserted::Created => {
                    self.scheduler.wake_for(schedule.next_fire);
                    Created::New(schedule)
                }
                Inserted::Replaced => {
                    self.scheduler.wake_for(schedule.next_fire);
                    Created::Replaced(schedule)
                }
                Inserted::Kept(existing) => Created::Kept(*existing),
            },
        )
    }

    /// The schedule with this id.
    pub async fn get(&self, id: &str) -> Result<Schedule, ScheduleError> {
        self.store
            .schedule(id)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(id.to_owned()))
    }

    /// Changes the fields `change` gives, checks the result as a create would, stores it and
    /// wakes the scheduler.
    pub async fn update(&self, id: &str, change: Change) -> Result<Schedule, ScheduleError> {
        self.room_for_new_work()?;
        let mut s = self.get(id).await?;
        let now = Utc::now();
        let retargeted =
            change.handler.is_some() || change.method.is_some() || change.params.is_some();
        if let Some(h) = change.handler {
            s.handler_id = h;
        }
        if let Some(m) = change.method {
            s.method = m;
        }
        if let Some(params) = change.params {
            s.params = params;
        }
        if retargeted {
            self.check_target(&s.handler_id, &s.method, Some(&s.params))
                .await?;
        }
        if let Some(patch) = change.policy {
            let mut merged = serde_json::to_value(&s.policy)
                .map_err(|e| ScheduleError::InvalidPolicy(e.to_string()))?;
            if let Value::Object(current) = &mut merged {
                current.extend(patch);
            }
            s.policy = policy_from(merged)?;
        }
        if let Some(trigger) = &change.trigger {
            let (spec, compiled) = TriggerSpec::read_json(trigger, now)?;
            refuse_past_date(&spec, now, change.allow_past_date)?;
            s.trigger = spec;
            s.next_fire = compiled.first_fire(now);
        }
        if let Some(paused) = change.paused {
            s.paused = paused;
        }
        s.updated_at = now;
        self.store
            .insert_schedule(&s, ConflictPolicy::Replace)
            .await?;
        self.scheduler.changed(s.next_fire);
        Ok(s)
    }

    /// Deletes a schedule (its runs and records stay in the log).
    pub async fn delete(&self, id: &str) -> Result<(), ScheduleError> {
        if self.store.delete_schedule(id).await? {
            Ok(())
        } else {
            Err(ScheduleError::NotFound(id.to_owned()))
        }
    }

    /// Pauses a schedule: it fires no more until resumed.
    pub async fn pause(&self, id: &str) -> Result<Schedule, ScheduleError> {
        let mut s = self.get(id).await?;
        let now = Utc::now();
        if !self.store.set_paused(id, true, s.next_fire, now).await? {
            return Err(ScheduleError::NotFound(id.to_owned()));
        }
        s.paused = true;
        s.updated_at = now;
        Ok(s)
    }

    /// Resumes a schedule from now, or (`catch_up`) from the fire times missed while paused,
    /// by its coalesce policy.
    pub async fn resume(&self, id: &str, catch_up: bool) -> Result<Resumed, ScheduleError> {
        let mut s = self.get(id).await?;
        let was_paused = s.paused;
        let now = Utc::now();
        let trigger = s.trigger.compile()?;
        let next = resume_from(&trigger, s.next_fire, now, catch_up);
        if !self.store.set_paused(id, false, next, now).await? {
            return Err(ScheduleError::NotFound(id.to_owned()));
        }
        self.scheduler.changed(next);
        s.paused = false;
        s.next_fire = next;
        s.updated_at = now;
        Ok(Resumed {
            schedule: s,
            was_paused,
        })
    }

    /// Starts a run of a schedule now, outside its trigger, within its overlap limit; the
    /// receiver gets its outcome.
    pub async fn run_now(
        &self,
        id: &str,
    ) -> Result<(Run, oneshot::Receiver<Outcome>), ScheduleError> {
        self.room_for_new_work()?;
        let s = self.get(id).await?;
        // The handler may have changed since the schedule was made (a new version, a new
        // schema); a handler gone is the run's failure to record, not a refusal.
        if let Err(e @ ScheduleError::InvalidParams(_)) = self
            .check_target(&s.handler_id, &s.method, Some(&s.params))
            .await
        {
            return Err(e);
        }
        Ok(self.scheduler.run_now(s, Utc::now()).await?)
    }

    /// Calls `method` of `handler` at once, outside any schedule, and records the call in the
    /// execution log (ScheduleZero's run-now). The caller has checked the target.
    pub async fn call_now(
        &self,
        handler: &str,
        method: &str,
        params: &Value,
    ) -> Result<Immediate, ScheduleError> {
        self.room_for_new_work()?;
        Ok(self
            .scheduler
            .dispatcher()
            .call_now(handler, method, params)
            .await?)
    }
}

/// A schedule id: 1 to 200 characters, no `/`, no control characters.
fn check_id(id: &str) -> Result<(), ScheduleError> {
    if id.is_empty()
        || id.chars().count() > MAX_ID_CHARS
        || id.contains('/')
        || id.chars().any(char::is_control)
    {
        return Err(ScheduleError::InvalidId);
    }
    Ok(())
}

/// Refuses a date trigger in the past unless the caller allowed it: a one-shot job meant for a
/// time that is gone is more likely a mistake (a wrong year, a local time read as UTC) than a
/// wish to run it now.
pub fn refuse_past_date(
    trigger: &TriggerSpec,
    now: DateTime<Utc>,
    allowed: bool,
) -> Result<(), ScheduleError> {
    match trigger {
        TriggerSpec::Date { run_date } if !allowed && *run_date < now - PAST_DATE_SLACK => {
            Err(ScheduleError::PastDate(*run_date))
        }
        _ => Ok(()),
    }
}

/// Reads a policy and checks its values.
fn policy_from(value: Value) -> Result<SchedulePolicy, ScheduleError> {
    let policy: SchedulePolicy = crate::json::read(value)
        .map_err(|e| ScheduleError::InvalidPolicy(format!("invalid policy: {e}")))?;
    policy.check().map_err(ScheduleError::InvalidPolicy)?;
    Ok(policy)
}
