//! The scheduler service: steps the claim pass on a clock and starts the runs it claims, each in
//! its own task, within each schedule's overlap limit (`max_running`). A run that cannot start
//! because the limit is reached is recorded as skipped, never dropped silently. Shutting down
//! stops stepping and lets running calls finish up to a deadline; at start, [`Scheduler::recover`]
//! picks up runs a stopped (or killed) host left unfinished.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::claim::{DueRun, claim_due};
use super::policy::jittered;
use crate::dispatch::Dispatcher;
use crate::schedule::Outcome;
use crate::schedule::{ExecutionStatus, RunStatus};
use crate::store::{Announcement, Store, StoreError};

/// Where the scheduler reads the time: the system clock in a host, a hand-set one in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Runs started.
    pub started: usize,
    /// Runs recorded as skipped (overlap limit reached).
    pub skipped: usize,
    /// Fire times recorded as missed.
    pub missed: usize,
}

/// What [`Scheduler::recover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Attempts that were running when the previous host stopped.
    pub interrupted: u64,
    /// Runs resumed with their next attempt.
    pub resumed: usize,
    /// Runs ended as errors (no attempts left, or their schedule is gone).
    pub ended: usize,
}

/// Schedules claimed runs and keeps count of those in progress.
pub struct Scheduler {
    store: Store,
    dispatcher: Dispatcher,
    running: Arc<Mutex<InFlight>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    batch: u32,
    /// Signalled when schedules change, so the loop looks again before its tick.
    wake: tokio::sync::Notify,
    /// When the loop plans to look next (microseconds since the epoch); `i64::MIN` while it is
    /// looking.
    next_look_us: AtomicI64,
    /// The soonest fire time announced by [`Scheduler::wake_for`] while the loop was looking.
    announced_us: AtomicI64,
    /// While set, the loop claims nothing (free space is below the floor); runs in progress
    /// finish and due fire times wait, for the misfire policy to judge once it is cleared.
    held: std::sync::atomic::AtomicBool,
    /// The handlers this host can run, when it claims only those (several hosts on one store,
    /// with different plugins); `None`: it claims every due schedule.
    runnable: Option<Runnable>,
    /// Whether changes are announced to the other hosts on the store.
    announces: bool,
    /// Signalled when another host let runs go.
    rescue_soon: tokio::sync::Notify,
}

/// Waits for a run another host works on to end, and sends its outcome; gives up when nobody
/// waits for it any more.
async fn follow(store: Store, run_id: String, mut outcome: tokio::sync::oneshot::Sender<Outcome>) {
    const EVERY: Duration = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = outcome.closed() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let Ok(Some(run)) = store.run(&run_id).await else {
            continue;
        };
        if matches!(run.status, RunStatus::Pending | RunStatus::Running) {
            continue;
        }
        let attempts = store
            .executions(&crate::store::ExecutionQuery {
                run_id: Some(run_id.clone()),
                limit: 1,
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|mut e| e.pop());
        let error = attempts.as_ref().and_then(|e| {
            e.error_code.clone().map(|code| crate::schedule::Failure {
                code,
                message: e.error.clone().unwrap_or_default(),
            })
        });
        let _ = outcome.send(Outcome {
            status: run.status,
            attempts: attempts.map_or(0, |e| e.attempt),
            error: error.filter(|_| run.status == RunStatus::Error),
        });
        return;
    }
}

/// Logs why a run's records stop: another host took it over (its lease ran out while this
/// host was paused or cut off: what this host says of it now is refused, as it should be), or
/// the store failed (the run's lease then runs out and a host takes it over).
fn unrecorded(due: &DueRun, e: &StoreError) {
    if matches!(e, StoreError::LeaseLost(_)) {
        tracing::warn!(schedule = %due.schedule.id, run_id = %due.run.id, "late result refused: another host took this run over");
    } else {
        tracing::error!(schedule = %due.schedule.id, run_id = %due.run.id, error = %e, "cannot record a run; it is taken over once its lease runs out");
    }
}

/// The most runs one recovery or rescue takes over.
const RESCUE_BATCH: u32 = 1000;

/// Says which handlers a host can run.
pub type Runnable = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Why a run could not start now.
#[derive(Debug, thiserror::Error)]
pub enum RunNowError {
    /// The schedule has `max_running` runs in progress; the run is recorded as skipped.
    #[error("schedule `{0}` already has as many runs in progress as its max_running allows")]
    OverlapLimit(String),
    /// The schedule already has a run at this very instant.
    #[error("schedule `{0}` already has a run at this instant; try again")]
    Duplicate(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The runs this host is working on: how many per schedule (for overlap limits) and which
/// (the leases its heartbeat renews: a run it no longer works on, say one whose records could
/// not be written, is left to run out its lease and be taken over).
#[derive(Debug, Default)]
struct InFlight {
    per_schedule: HashMap<String, u32>,
    runs: std::collections::HashSet<String>,
}

/// Takes a schedule's place among the running while its run is in progress.
struct RunningGuard {
    running: Arc<Mutex<InFlight>>,
    schedule_id: String,
    run_id: String,
}

impl RunningGuard {
    /// Takes the place (over the overlap limit when `limit` is `None`).
    fn take(running: &Arc<Mutex<InFlight>>, due: &DueRun, limit: Option<u32>) -> Option<Self> {
        let mut in_flight = running.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight
            .per_schedule
            .entry(due.schedule.id.clone())
            .or_default();
        if limit.is_some_and(|limit| *n >= limit) {
            return None;
        }
        *n += 1;
        in_flight.runs.insert(due.run.id.clone());
        Some(Self {
            running: running.clone(),
            schedule_id: due.schedule.id.clone(),
            run_id: due.run.id.clone(),
        })
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut in_flight = self.running.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.runs.remove(&self.run_id);
        if let Some(n) = in_flight.per_schedule.get_mut(&self.schedule_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.per_schedule.remove(&self.schedule_id);
            }
        }
    }
}

impl Scheduler {
    /// The dispatcher runs go to (run-now of the ScheduleZero routes calls through it too).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// A scheduler that claims up to `batch` due schedules per step.
    pub fn new(store: Store, dispatcher: Dispatcher, batch: u32) -> Self {
        Self {
            store,
            dispatcher,
            running: Arc::default(),
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
            batch,
            wake: tokio::sync::Notify::new(),
            next_look_us: AtomicI64::new(i64::MIN),
            announced_us: AtomicI64::new(i64::MAX),
            held: std::sync::atomic::AtomicBool::new(false),
            runnable: None,
            announces: false,
            rescue_soon: tokio::sync::Notify::new(),
        }
    }

    /// Announces schedule changes to the other hosts on the store (LISTEN/NOTIFY).
    pub fn announcing(mut self) -> Self {
        self.announces = true;
        self
    }

    /// A schedule changed (edited or resumed) and fires next at `next`: looks at once, and
    /// tells the other hosts.
    pub fn changed(&self, next: Option<DateTime<Utc>>) {
        self.wake();
        self.tell_others(Announcement::Due(next));
    }

    /// What another host announced.
    pub fn heard(&self, what: Announcement) {
        match what {
            Announcement::Due(Some(next)) => self.look_by(next.timestamp_micros()),
            Announcement::Due(None) | Announcement::Look => self.wake(),
            Announcement::Orphans => self.rescue_soon.notify_one(),
        }
    }

    /// Resolves when another host let runs go for others to take (the heartbeat then takes
    /// them over at once instead of at its next beat).
    pub async fn orphans_announced(&self) {
        self.rescue_soon.notified().await;
    }

    fn tell_others(&self, what: Announcement) {
        if self.announces {
            let store = self.store.clone();
            tokio::spawn(async move { store.announce(what).await });
        }
    }

    /// Claims only schedules of the handlers `runnable` names (asked at every pass).
    pub fn claiming_only(mut self, runnable: Runnable) -> Self {
        self.runnable = Some(runnable);
        self
    }

    /// Holds the loop (no new claims) or lets it go again, looking at once.
    pub fn hold(&self, held: bool) {
        let was = self.held.swap(held, AtomicOrdering::AcqRel);
        if was && !held {
            self.wake();
        }
    }

    /// Makes the loop look at the store now (a schedule was created, changed or resumed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Tells the loop a schedule now fires at `next`: it looks earlier than planned only when
    /// that is sooner than its next look (creating schedules that fire later costs no extra pass).
    pub fn wake_for(&self, next: Option<DateTime<Utc>>) {
        self.tell_others(Announcement::Due(next));
        let Some(next) = next.map(|t| t.timestamp_micros()) else {
            return;
        };
        self.look_by(next);
    }

    /// Looks by `next` (microseconds since the epoch) at the latest.
    fn look_by(&self, next: i64) {
        // While the loop is looking, it may have read the next fire time before this schedule
        // was committed: leave the time where it reads it before it sleeps.
        self.announced_us.fetch_min(next, AtomicOrdering::AcqRel);
        let planned = self.next_look_us.load(AtomicOrdering::Acquire);
        if planned != i64::MIN && next < planned {
            self.wake();
        }
    }

    /// Starts a run of `schedule` now, outside its trigger, within its overlap limit. Returns the
    /// run and a receiver for its outcome.
    pub async fn run_now(
        &self,
        schedule: crate::schedule::Schedule,
        now: DateTime<Utc>,
    ) -> Result<
        (
            crate::schedule::Run,
            tokio::sync::oneshot::Receiver<crate::schedule::Outcome>,
        ),
        RunNowError,
    > {
        let run = self
            .store
            .insert_run(&schedule.id, now, now)
            .await?
            .ok_or_else(|| RunNowError::Duplicate(schedule.id.clone()))?;
        if let Some(runnable) = &self.runnable
            && !runnable().contains(&schedule.handler_id)
            && self
                .dispatcher
                .handlers()
                .find(&schedule.handler_id)
                .await
                .is_none()
            && self.another_host_has(&schedule.handler_id).await?
        {
            // Another host's handler: the run is let go at once for a host that can run it,
            // and followed in the store.
            self.store.release_run(&run.id).await?;
            self.tell_others(Announcement::Orphans);
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(follow(self.store.clone(), run.id.clone(), tx));
            return Ok((run, rx));
        }
        let due = DueRun {
            run: run.clone(),
            schedule,
        };
        let Some(guard) = self.take_slot(&due) else {
            self.record_skipped(std::slice::from_ref(&due), now).await?;
            return Err(RunNowError::OverlapLimit(due.schedule.id));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dispatcher = self.dispatcher.clone();
        self.tasks.lock().await.spawn(async move {
            let _guard = guard;
            match dispatcher.run(&due).await {
                Ok(outcome) => {
                    let _ = tx.send(outcome);
                }
                Err(e) => unrecorded(&due, &e),
            }
        });
        Ok((run, rx))
    }

    /// Whether another live host on the store has the plugin `handler` (a run of it is
    /// handed over; when none has, it runs here and fails as on a host alone).
    async fn another_host_has(&self, handler: &str) -> Result<bool, StoreError> {
        let me = self.store.node().id();
        Ok(self
            .store
            .nodes(self.store.node().lease())
            .await?
            .iter()
            .any(|n| {
                n.id != me
                    && n.state == crate::store::NodeState::Live
                    && n.plugins.iter().any(|p| p == handler)
            }))
    }

    /// Runs of a schedule in progress now.
    pub fn running(&self, schedule_id: &str) -> u32 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.per_schedule.get(schedule_id).copied().unwrap_or(0)
    }

    /// One step at `now`: claims what is due and starts it, or records it as skipped when the
    /// schedule already has `max_running` runs in progress.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<Step, StoreError> {
        let began = std::time::Instant::now();
        let only = self.runnable.as_ref().map(|runnable| runnable());
        let running = |id: &str| self.running(id);
        let pass = claim_due(&self.store, now, self.batch, only.as_deref(), &running).await?;
        let claimed = began.elapsed();
        let mut step = Step {
            missed: pass.missed,
            ..Step::default()
        };
        let mut skipped = pass.skipped;
        for due in pass.due {
            match self.take_slot(&due) {
                Some(guard) => {
                    self.start(due, guard, now).await;
                    step.started += 1;
                }
                None => skipped.push(due),
            }
        }
        step.skipped = skipped.len();
        if !skipped.is_empty() {
            self.record_skipped(&skipped, now).await?;
        }
        if step != Step::default() {
            tracing::debug!(
                ?step,
                claim_ms = claimed.as_secs_f64() * 1e3,
                step_ms = began.elapsed().as_secs_f64() * 1e3,
                "scheduler pass"
            );
        }
        Ok(step)
    }

    fn take_slot(&self, due: &DueRun) -> Option<RunningGuard> {
        RunningGuard::take(
            &self.running,
            due,
            Some(due.schedule.policy.max_running.max(1)),
        )
    }

    /// The runs this host is working on now (their leases are the ones it renews).
    pub fn runs_in_flight(&self) -> Vec<String> {
        let in_flight = self.running.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.runs.iter().cloned().collect()
    }

    async fn start(&self, due: DueRun, guard: RunningGuard, now: DateTime<Utc>) {
        let dispatcher = self.dispatcher.clone();
        let start_at = jittered(
            due.run.fire_time,
            due.schedule.policy.max_jitter,
            &mut rand::rng(),
        );
        let wait = (start_at - now).to_std().unwrap_or(Duration::ZERO);
        self.tasks.lock().await.spawn(async move {
            let _guard = guard;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if let Err(e) = dispatcher.run(&due).await {
                unrecorded(&due, &e);
            }
        });
    }

    async fn record_skipped(
        &self,
        skipped: &[DueRun],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for due in skipped {
            tracing::info!(schedule = %due.schedule.id, fire_time = %due.run.fire_time, "run skipped: overlap limit reached");
        }
        let runs: Vec<_> = skipped.iter().map(|d| (&d.schedule, &d.run)).collect();
        self.dispatcher
            .log()
            .not_run(&runs, ExecutionStatus::Skipped, now)
            .await
    }

    /// Picks up what a previous host left unfinished (it stopped, or was killed, mid-run):
    /// attempts still marked running are ended as `interrupted`, and each unfinished run goes on
    /// with its next attempt if it has attempts left, or ends as an error. Call it once, before
    /// the first step. On a store one host has alone (SQLite) that is every unfinished run; on
    /// a shared one, the runs whose holder's lease ran out (the others are still being worked
    /// on), as [`Scheduler::rescue`] takes them.
    pub async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        let shared = self.store.is_shared();
        self.take_over(now, shared).await
    }

    /// Takes over the runs of hosts that died or stopped mid-run (their lease ran out, or they
    /// let go when they stopped), and goes on with them as [`Scheduler::recover`] does. Hosts
    /// on one store call it every little while.
    pub async fn rescue(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        self.take_over(now, true).await
    }

    async fn take_over(
        &self,
        now: DateTime<Utc>,
        expired_only: bool,
    ) -> Result<Recovered, StoreError> {
        let only = self.runnable.as_ref().map(|runnable| runnable());
        let mut recovered = Recovered::default();
        loop {
            let taken = self
                .store
                .take_over(RESCUE_BATCH, expired_only, only.as_deref())
                .await?;
            let all = taken.len() < RESCUE_BATCH as usize;
            let r = self.go_on_with(taken, now).await?;
            recovered.interrupted += r.interrupted;
            recovered.resumed += r.resumed;
            recovered.ended += r.ended;
            if all {
                break;
            }
        }
        if recovered != Recovered::default() {
            tracing::info!(
                ?recovered,
                "picked up what the previous host left unfinished"
            );
        }
        Ok(recovered)
    }

    /// Goes on with runs taken over: each resumed with its next attempt, or ended.
    async fn go_on_with(
        &self,
        taken: Vec<crate::schedule::Run>,
        now: DateTime<Utc>,
    ) -> Result<Recovered, StoreError> {
        // First what becomes of each unfinished run, so that an attempt cut short says `retry`
        // when its run goes on and `error` when it ends there.
        let mut resumed = Vec::new();
        let mut ended = Vec::new();
        for run in taken {
            let Some(schedule) = self.store.schedule(&run.schedule_id).await? else {
                ended.push(run);
                continue;
            };
            let (next_attempt, goes_on) = match self.store.last_attempt_of(&run.id).await? {
                None => (1, true),
                // Cut short by the stop: retried as the policy says of `interrupted`.
                Some((attempt, ExecutionStatus::Running)) => (
                    attempt + 1,
                    schedule.policy.retry("interrupted", attempt).is_ok(),
                ),
                Some((attempt, _)) => (attempt + 1, attempt < schedule.policy.max_attempts),
            };
            if !goes_on {
                ended.push(run);
                continue;
            }
            resumed.push((DueRun { run, schedule }, next_attempt));
        }
        let cut: Vec<(String, bool)> = resumed
            .iter()
            .map(|(due, _)| (due.run.id.clone(), true))
            .chain(ended.iter().map(|run| (run.id.clone(), false)))
            .collect();
        let mut recovered = Recovered {
            interrupted: self.store.interrupt_attempts(now, &cut).await?,
            ..Recovered::default()
        };
        for run in ended {
            self.dispatcher
                .log()
                .run_ended(&run, RunStatus::Error, now)
                .await?;
            recovered.ended += 1;
        }
        for (due, next_attempt) in resumed {
            // A resumed run takes its place among the running regardless of the overlap limit:
            // it was admitted before the restart.
            let Some(guard) = RunningGuard::take(&self.running, &due, None) else {
                continue;
            };
            let dispatcher = self.dispatcher.clone();
            self.tasks.lock().await.spawn(async move {
                let _guard = guard;
                if let Err(e) = dispatcher.run_from(&due, next_attempt).await {
                    unrecorded(&due, &e);
                }
            });
            recovered.resumed += 1;
        }
        Ok(recovered)
    }

    /// Waits for the runs in progress, up to `deadline`; returns how many were cut short.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let mut tasks = self.tasks.lock().await;
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all_done).await.is_ok() {
            return 0;
        }
        let left = tasks.len();
        tasks.abort_all();
        left
    }

    /// Steps until `shutdown` resolves, then drains for up to `drain_deadline`. Between steps it
    /// sleeps until the soonest next fire time, at most `max_tick`, and wakes early on
    /// [`Scheduler::wake`].
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        max_tick: Duration,
        drain_deadline: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let held = self.held.load(AtomicOrdering::Acquire);
            let stepped = if held {
                Ok(Step::default())
            } else {
                self.step(clock.now()).await
            };
            self.reap().await;
            // Announcements from here on are either in the store's answer or seen below.
            self.announced_us.store(i64::MAX, AtomicOrdering::Release);
            let pause = match stepped {
                Err(e) => {
                    tracing::error!(error = %e, "scheduler step failed; retrying at the next tick");
                    Ok(None)
                }
                // Held: due fire times wait; `hold(false)` wakes the loop.
                Ok(_) if held => Ok(None),
                Ok(_) => self.store.next_fire_time().await,
            };
            let pause = match pause {
                Ok(Some(next)) => (next - clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(max_tick),
                Ok(None) => max_tick,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the next fire time");
                    max_tick
                }
            };
            let now = clock.now();
            let look_at = now
                .timestamp_micros()
                .saturating_add(i64::try_from(pause.as_micros()).unwrap_or(i64::MAX));
            self.next_look_us.store(look_at, AtomicOrdering::Release);
            // A schedule announced while the loop was looking, sooner than planned.
            let announced = self.announced_us.load(AtomicOrdering::Acquire);
            let pause = if announced < look_at {
                Duration::from_micros(
                    u64::try_from(announced - now.timestamp_micros()).unwrap_or(0),
                )
            } else {
                pause
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
            self.next_look_us.store(i64::MIN, AtomicOrdering::Release);
        }
        let cut = self.drain(drain_deadline).await;
        if cut > 0 {
            tracing::warn!(
                runs = cut,
                "shutdown cut runs short; they stay marked running in the store"
            );
        }
    }

    /// Forgets finished tasks, so the set does not grow.
    async fn reap(&self) {
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
    }
}
