//! The server under siege as the reporter sees it, whichever way it was written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidegate::conn::LimitedListener;
use tidegate::exec::BoundedExecutor;
use tidegate::MemoryBudget;
use tokio_util::sync::CancellationToken;

/// What an `S` frame costs to handle, on either server.
pub(crate) const SLOW_HANDLING: Duration = Duration::from_millis(5);

/// What the server side counts; the guarded server takes most figures from tidegate's own metrics instead.
#[derive(Default)]
pub(crate) struct ServerCounters {
    pub(crate) live: AtomicI64,
    pub(crate) queued: AtomicI64,
    pub(crate) too_long: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) idle: AtomicU64,
}

/// The server under siege, as the reporter sees it.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) counters: Arc<ServerCounters>,
    pub(crate) guarded: Option<Guarded>,
    pub(crate) stop: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Guarded {
    pub(crate) listener: Arc<LimitedListener>,
    pub(crate) budget: MemoryBudget,
    pub(crate) exec: BoundedExecutor,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) live: i64,
    pub(crate) queued: i64,
    pub(crate) budget_used: usize,
    pub(crate) too_long: u64,
    pub(crate) evicted: u64,
    pub(crate) idle: u64,
    pub(crate) tasks_refused: u64,
    pub(crate) rejected: u64,
}

impl Server {
    pub(crate) fn sample(&self) -> Sample {
        let c = &self.counters;
        let mut s = Sample {
            live: c.live.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            too_long: c.too_long.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            idle: c.idle.load(Ordering::Relaxed),
            ..Sample::default()
        };
        if let Some(g) = &self.guarded {
            s.live = g.listener.limiter().active() as i64;
            // Every queued byte (and every read buffer) is charged to the budget: the budget is the queue's figure.
            s.budget_used = g.budget.used();
            s.queued = s.budget_used as i64;
            s.tasks_refused = g.exec.metrics().refused;
            s.rejected = g.listener.metrics().rejected;
        }
        s
    }

    pub(crate) fn in_flight_tasks(&self) -> usize {
        self.guarded
            .as_ref()
            .map_or(0, |g| g.exec.metrics().in_flight)
    }
}
