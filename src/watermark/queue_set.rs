//! Many queues as one: one set of live limits, one aggregate in the metrics.

use std::fmt;
use std::sync::Arc;

use super::set_core::SetCore;
use super::{Limits, QueueSetMetrics, Sender};

/// Queues that share their marks and report as one: the write queues of every connection a listener accepts,
/// say.
///
/// * **One configuration.** Every member reads the set's [`Limits`]: [`set_limits`](Self::set_limits) is one
///   store that all of them see at once (a queue never reads a mix of old and new marks), after which each member
///   re-decides its writability; a queue that joins later gets the current marks. A member's own
///   [`Sender::set_limits`] changes the set's marks, for every member.
/// * **One aggregate.** Registered with a [`Registry`](crate::metrics::Registry), a set renders a fixed number of
///   series however many members it has: queued bytes summed, unwritable members counted, the fullest member,
///   and counters (evictions, refusals, bytes sent, ...) that keep the counts of members that are gone. 10,000
///   connections make one aggregate, not 10,000 series.
///
/// The set holds its members weakly: it keeps no queue alive, and a dropped queue leaves it, folding its final
/// counts into the set. A queue belongs to one set at most. `QueueSet` is a cheap [`Clone`] (an `Arc`).
///
/// # Examples
///
/// ```
/// use tidegate::metrics::Registry;
/// use tidegate::watermark::{self, Config, Limits, QueueSet};
///
/// let set = QueueSet::new(Limits::new(1024, 4096, 16384));
/// let registry = Registry::new();
/// registry.register("outbound", &set)?;
/// let (tx, _rx) = watermark::channel::<Vec<u8>>(Config::default());
/// assert!(set.add(&tx));
/// assert_eq!(tx.limits().high(), 4096); // the set's marks
///
/// set.set_limits(Limits::new(100, 200, 16384)); // every member at once
/// tx.try_send(vec![0; 300]).unwrap();
/// assert!(!tx.is_writable());
/// assert!(registry.render_prometheus().contains("tidegate_queue_unwritable{name=\"outbound\"} 1\n"));
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct QueueSet {
    pub(crate) core: Arc<SetCore>,
}

impl QueueSet {
    /// An empty set whose members will use `limits`.
    pub fn new(limits: Limits) -> Self {
        QueueSet {
            core: Arc::new(SetCore::new(limits)),
        }
    }

    /// Makes `queue` a member: from now on it uses the set's marks (its writability is re-decided at once) and
    /// counts in the set's aggregate. Returns `false`, changing nothing, if the queue already belongs to a set
    /// (this one or another).
    pub fn add<T: Send + 'static>(&self, queue: &Sender<T>) -> bool {
        queue.join(&self.core)
    }

    /// The members' marks.
    pub fn limits(&self) -> Limits {
        self.core.limits.get()
    }

    /// Changes the marks of every member in one step, and of every queue that joins later. Writability is
    /// re-decided at once; items already queued above a lowered hard cap stay queued.
    pub fn set_limits(&self, limits: Limits) {
        self.core.set_limits(limits);
    }

    /// Live members now.
    pub fn len(&self) -> usize {
        self.core.members()
    }

    /// No live members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members added up; see [`QueueSetMetrics`].
    pub fn metrics(&self) -> QueueSetMetrics {
        self.core.metrics()
    }

    /// Refuses (in the registry's [`check`](crate::metrics::Observer::check)) marks whose `hard - high` is below
    /// `bytes`: a connection needs room for one frame and one batch above its high mark.
    pub(crate) fn require_headroom(&self, bytes: usize) {
        self.core.require_headroom(bytes);
    }
}

impl Default for QueueSet {
    /// A set with [`Limits::default()`].
    fn default() -> Self {
        QueueSet::new(Limits::default())
    }
}

impl fmt::Debug for QueueSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSet")
            .field("limits", &self.limits())
            .field("members", &self.len())
            .finish()
    }
}
