//! One direction's idle clock for [`IdleTimeout`](super::IdleTimeout): when the current wait began, and the one
//! timer that watches it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// A wait is the time from the first `Pending` the inner stream returned in a direction to the next `Ready`.
///
/// Progress is one store (`since = None`): no clock read and no timer touched on the hot path. The clock is read
/// only when the inner stream returns `Pending`, and the timer is created at the first wait that needs one (never
/// without a timeout) and then reused: when it fires for a wait that has since been replaced by a later one, it is
/// re-armed to the later deadline instead of being reset at every wait, so a busy stream touches the timer at most
/// once per idle period.
pub(super) struct Wait {
    idle: Option<Duration>,
    since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Wait {
    pub(super) fn new(idle: Option<Duration>) -> Self {
        Wait {
            idle,
            since: None,
            sleep: None,
        }
    }

    pub(super) fn idle(&self) -> Option<Duration> {
        self.idle
    }

    pub(super) fn since(&self) -> Option<Instant> {
        self.since
    }

    #[cfg(test)]
    pub(super) fn has_timer(&self) -> bool {
        self.sleep.is_some()
    }

    /// The inner stream returned `Ready`: the wait, if one was running, is over.
    #[inline]
    pub(super) fn progressed(&mut self) {
        self.since = None;
    }

    /// The inner stream returned `Pending` at `now`: starts a wait unless one is running, and returns its idle
    /// deadline (`None` without a timeout, or when the timeout is too long to be represented).
    pub(super) fn pending(&mut self, now: Instant) -> Option<Instant> {
        let since = *self.since.get_or_insert(now);
        since.checked_add(self.idle?)
    }

    /// `Ready` once `due` has passed; otherwise arranges for `cx` to be woken when it does.
    ///
    /// Deadlines of one stream never move earlier (a wait starts later than the one before it, a slow-start deadline
    /// is fixed), so a timer that fires before `due` belongs to an older wait: re-arm it and keep waiting.
    pub(super) fn poll_due(
        &mut self,
        due: Instant,
        now: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if now >= due {
            return Poll::Ready(());
        }
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(sleep_until(due)));
        loop {
            if sleep.deadline() > due {
                sleep.as_mut().reset(due);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if sleep.deadline() >= due {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(due);
        }
    }
}
