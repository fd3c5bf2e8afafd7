//! The pool's part of a registry's leak report: what it holds, and where its tracked buffers were acquired.
//!
//! The pool's observer (see `observe.rs`) answers [`Observer::leaks`](crate::metrics::Observer::leaks) with
//! [`PoolInner::outstanding`].

use std::time::Duration;

use crate::metrics::Outstanding;

use super::inner::PoolInner;
use super::leak::{LeakReport, LeakTracking};
use super::metrics::PoolTotals;

impl PoolInner {
    /// The capacity and number of the buffers handed out and not back, and, when the pool tracks them, the tracked
    /// ones held for `older_than` or more by acquisition site.
    pub(super) fn outstanding(&self, older_than: Duration) -> Outstanding {
        let total = self.metrics().total;
        // Every tracked buffer, whatever its age, so that `oldest` covers them all.
        let tracked = self.leaks.report(Duration::ZERO, total.outstanding_buffers);
        outstanding(&total, &tracked, older_than)
    }
}

/// `tracked` lists every tracked buffer (a report for an age of zero).
fn outstanding(total: &PoolTotals, tracked: &LeakReport, older_than: Duration) -> Outstanding {
    let held =
        Outstanding::new(total.outstanding_bytes as u64).with_items(total.outstanding_buffers);
    if tracked.tracking == LeakTracking::Off {
        return held;
    }
    held.with_tracked(
        older_than,
        tracked
            .leaks
            .iter()
            .map(|leak| (leak.location, leak.capacity as u64, leak.age)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::buf::BufPool;
    use crate::metrics::Observe;

    #[test]
    fn outstanding_buffers_are_listed_by_site_until_they_come_back() {
        let pool = BufPool::builder()
            .leak_tracking(LeakTracking::All)
            .build()
            .unwrap();
        let kept = pool.try_acquire(100).unwrap();
        let line = line!() - 1;
        let returned = pool.try_acquire(100).unwrap();
        drop(returned);

        let held = pool.observer().leaks(Duration::ZERO).unwrap();
        assert_eq!(
            (held.bytes, held.items, held.tracking),
            (512, Some(1), true)
        );
        assert_eq!(held.sites.len(), 1, "the returned buffer is not listed");
        assert_eq!(
            (held.sites[0].location.file(), held.sites[0].location.line()),
            (file!(), line)
        );
        assert_eq!((held.sites[0].items, held.sites[0].bytes), (1, 512));
        assert!(held.oldest.is_some());
        assert!(
            pool.observer()
                .leaks(Duration::from_secs(3600))
                .unwrap()
                .sites
                .is_empty(),
            "not held for an hour"
        );

        drop(kept);
        let held = pool.observer().leaks(Duration::ZERO).unwrap();
        assert_eq!((held.bytes, held.items, held.oldest), (0, Some(0), None));
        assert!(held.sites.is_empty());
    }

    #[test]
    fn an_untracked_pool_still_reports_what_it_holds() {
        let pool = BufPool::new();
        let _kept = pool.try_acquire(5000).unwrap();
        let held = pool.observer().leaks(Duration::ZERO).unwrap();
        assert_eq!(
            (held.bytes, held.items, held.tracking),
            (16384, Some(1), false)
        );
        assert!(held.sites.is_empty());
    }
}
