//! The network's background tasks (protocol accept loops, sync scheduling, gossip validation,
//! announcers): spawned through one tracker so that stopping the network stops and awaits
//! all of them, instead of leaving them to die with the runtime.
//!
//! It owns only task lifetimes; it must not know what the tasks do.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long stopping waits for the tasks to notice (they end at their next await point).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Cheap to clone; clones spawn into the same set.
#[derive(Clone, Debug)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Tasks that end when `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop,
        }
    }

    /// Runs `fut` until it ends or the network stops.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = fut => {}
            }
        });
    }

    /// The token whose cancellation stops every task.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Cancels every task and waits for them to end (bounded by [`STOP_WAIT`]).
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(STOP_WAIT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tracker.len(),
                "network tasks still running after the stop wait"
            );
        }
    }
}
