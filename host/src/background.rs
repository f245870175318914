//! Background loops with one shape. A loop is a future that runs until its [`Stop`] fires; a
//! host starts each one under a name in its [`Loops`], and stops them all with one call that
//! waits for each up to a deadline (a loop still running then is cut short and named in the
//! log). Adding a loop is one `start` where the host is put together.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells a loop to end.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once the stop is given (at once if it was).
    pub async fn wait(&mut self) {
        // An error means the sender is gone: that stops the loop as well.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }

    /// A stop that is never given: for a loop that lives as long as what it serves.
    pub fn never() -> Self {
        static NEVER: OnceLock<watch::Sender<bool>> = OnceLock::new();
        Self(NEVER.get_or_init(|| watch::channel(false).0).subscribe())
    }
}

/// Gives the stop to a host's loops from elsewhere (the API server's shutdown, say).
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Gives the stop.
    pub fn give(&self) {
        self.0.send_replace(true);
    }
}

/// A host's background loops.
#[derive(Debug)]
pub struct Loops {
    stop: Arc<watch::Sender<bool>>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Loops {
    fn default() -> Self {
        Self::new()
    }
}

impl Loops {
    /// No loops yet.
    pub fn new() -> Self {
        Self {
            stop: Arc::new(watch::channel(false).0),
            running: Vec::new(),
        }
    }

    /// The stop the loops get (for work that must end with them, such as the API server).
    pub fn stop_signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Starts the loop `run` makes, under `name`.
    pub fn start<F>(&mut self, name: &'static str, run: impl FnOnce(Stop) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = tokio::spawn(run(self.stop_signal()));
        tracing::debug!(r#loop = name, "background loop started");
        self.running.push((name, task));
    }

    /// What gives the stop to every loop.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Gives the stop to every loop (they end as soon as they can).
    pub fn signal(&self) {
        self.stop.send_replace(true);
    }

    /// Gives the stop and waits for every loop, each up to `deadline` from now; returns the
    /// names of those cut short.
    pub async fn stop(self, deadline: Duration) -> Vec<&'static str> {
        self.signal();
        let until = tokio::time::Instant::now() + deadline;
        let mut cut = Vec::new();
        for (name, mut task) in self.running {
            match tokio::time::timeout_at(until, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_panic() => {
                    tracing::error!(r#loop = name, "background loop panicked");
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    task.abort();
                    tracing::warn!(
                        r#loop = name,
                        "background loop did not stop in time; cut short"
                    );
                    cut.push(name);
                }
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_loop_stops_and_one_that_will_not_is_cut_and_named() {
        let mut loops = Loops::new();
        loops.start("polite", |mut stop| async move { stop.wait().await });
        loops.start("deaf", |_stop| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let cut = loops.stop(Duration::from_millis(100)).await;
        assert_eq!(cut, vec!["deaf"]);
    }

    #[tokio::test]
    async fn a_never_stop_is_never_given() {
        let mut never = Stop::never();
        let waited = tokio::time::timeout(Duration::from_millis(20), never.wait()).await;
        assert!(waited.is_err());
    }
}
