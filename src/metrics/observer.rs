//! How a part reports to the registry without being kept alive by it.

use std::sync::Arc;
use std::time::Duration;

use super::{Collector, Outstanding, Settings};

/// A part that can be registered with a [`Registry`](super::Registry).
///
/// Every part of tidegate implements it; implement it for your own parts to have them rendered with the rest.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::{Arc, Weak};
/// use tidegate::metrics::{Collector, Family, Observe, Observer, Registry};
///
/// const SESSIONS: Family = Family::gauge("example_sessions", "Open sessions.");
///
/// struct Sessions(Arc<AtomicU64>);
/// struct SessionsObserver(Weak<AtomicU64>);
///
/// impl Observe for Sessions {
///     fn observer(&self) -> Arc<dyn Observer> {
///         Arc::new(SessionsObserver(Arc::downgrade(&self.0)))
///     }
/// }
///
/// impl Observer for SessionsObserver {
///     fn collect(&self, out: &mut Collector<'_>) -> bool {
///         let Some(count) = self.0.upgrade() else { return false };
///         out.gauge(&SESSIONS, count.load(Ordering::Relaxed) as f64);
///         true
///     }
/// }
///
/// let registry = Registry::new();
/// let sessions = Sessions(Arc::new(AtomicU64::new(3)));
/// registry.register("api", &sessions)?;
/// assert!(registry.render_prometheus().contains("tidegate_example_sessions{name=\"api\"} 3\n"));
/// drop(sessions);
/// assert!(registry.render_prometheus().is_empty());
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
pub trait Observe {
    /// A handle that reads this part's state while it lives, and holds it only weakly: a registry must never keep
    /// a dropped connection's queue alive.
    fn observer(&self) -> Arc<dyn Observer>;
}

/// The registry's weak view of one part.
pub trait Observer: Send + Sync {
    /// Writes the part's series into `out`, or returns `false` (writing nothing) once the part is gone, after
    /// which the registry forgets it.
    fn collect(&self, out: &mut Collector<'_>) -> bool;

    /// The part's live limits, or `None` if it has none that can change at run time (the default) or is gone.
    fn settings(&self) -> Option<Settings> {
        None
    }

    /// Checks proposed settings as a whole, as they would replace [`settings`](Self::settings): every reason they
    /// cannot apply (an unknown or missing key, a value out of range, limits out of order), or `Ok`.
    ///
    /// The default refuses everything: the part has no live limits.
    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let _ = settings;
        Err(vec!["this part has no live limits".to_owned()])
    }

    /// Applies settings that [`check`](Self::check) accepted, in one step: whoever reads the part's limits sees
    /// either all the old values or all the new ones. Returns `false` if the part is gone.
    fn apply(&self, settings: &Settings) -> bool {
        let _ = settings;
        false
    }

    /// What the part holds now, for a [`Registry::leak_report`](super::Registry::leak_report): its totals and,
    /// where it tracks acquisitions, its tracked items at least `older_than` old by site (see
    /// [`Outstanding::with_tracked`]).
    ///
    /// The default reports nothing: the part holds no memory on anyone's behalf, or does not say. Return `None`
    /// too once the part is gone.
    fn leaks(&self, older_than: Duration) -> Option<Outstanding> {
        let _ = older_than;
        None
    }
}
