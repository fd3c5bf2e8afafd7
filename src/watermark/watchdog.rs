//! What a writer watches while an I/O operation is pending: an abort, eviction, a stall.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::shared::Shared;
use super::CloseReason;

pub(crate) struct Watchdog {
    pub(crate) evict_after: Option<Duration>,
    pub(crate) stall_timeout: Option<Duration>,
}

/// Runs one I/O operation while watching for an abort, eviction and a stall.
pub(crate) async fn guard<T, S, F>(
    dog: &mut Watchdog,
    shared: &Shared<S>,
    op: F,
) -> Result<T, CloseReason>
where
    F: Future<Output = io::Result<T>>,
{
    let mut op = pin!(op);
    let stall_at = dog.stall_timeout.map(|t| Instant::now() + t);
    // Only with eviction does a flip matter (it moves the deadline); without it the writer is not woken on flips.
    let evicts = dog.evict_after.is_some();
    loop {
        // Registered before the state is read, so a close or a flip right after the read still wakes this loop.
        let mut closing = pin!(shared.closing.notified());
        let mut flipped = pin!(shared.flipped.notified());
        closing.as_mut().enable();
        if evicts {
            flipped.as_mut().enable();
        }
        let aborted = shared.is_aborted();
        let evict_at = dog
            .evict_after
            .and_then(|after| Some(shared.unwritable_since()? + after));
        tokio::select! {
            biased;
            done = &mut op => return done.map_err(|err| CloseReason::Io(Arc::new(err))),
            () = std::future::ready(()), if aborted => return Err(CloseReason::Aborted),
            () = &mut closing => {
                if shared.is_aborted() {
                    return Err(CloseReason::Aborted);
                }
            }
            // A flip moves the eviction deadline: go round and recompute it.
            () = &mut flipped, if evicts => {}
            // One timer for both deadlines: each `Sleep` is held in every writer task's future, busy or idle.
            () = sleep_until_some(earliest(evict_at, stall_at)) => {
                // Eviction wins a tie, as it always has.
                if evict_at.is_some_and(|at| stall_at.is_none_or(|stall| at <= stall)) {
                    return Err(CloseReason::Evicted { after: dog.evict_after.unwrap_or_default() });
                }
                return Err(CloseReason::Stalled { timeout: dog.stall_timeout.unwrap_or_default() });
            }
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
