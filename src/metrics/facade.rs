//! Forwarding a registry to the `metrics` facade crate (feature `metrics`).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::registry::WeakRegistry;
use super::{MetricKind, Registry, Sample, PREFIX};

/// Publishes a [`Registry`]'s samples to whatever recorder the [`metrics`](::metrics) facade has installed
/// (Prometheus, StatsD, OpenTelemetry exporters...), sampled on an interval, the way `tokio-metrics` publishes a
/// runtime's metrics.
///
/// Each collection sets one facade series per sample: gauges with `gauge!(name, labels).set(value)`, counters with
/// `counter!(name, labels).absolute(value)` (the registry's counters are totals, so the exporter sees the same
/// number a scrape of [`Registry::render_prometheus`] shows). Names carry the `tidegate_` prefix and the labels are
/// the sample's own (the part's `name` and any registration labels). Each family is described once, with its help
/// text, the first time it is seen.
///
/// The forwarder holds the registry weakly: [`run`](Self::run) ends when every handle to the registry has been
/// dropped, or when its cancellation token is cancelled (the process-wide [`Registry::global`] is never dropped).
/// A series whose part was dropped is no longer updated; the recorder keeps its last value, as it does for any
/// series nobody touches. A part registered anew under a dropped part's name and labels starts its counters at
/// zero again, but the facade's own atomic counters keep the largest absolute value they were given, so that
/// series stays flat until the new part's total passes the old one: give a replacement part a new name (or a
/// label such as a generation) when its counters matter.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::metrics::{FacadeForwarder, Registry};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::new();
/// let budget = tidegate::MemoryBudget::new(1 << 20);
/// registry.register("connections", &budget).unwrap();
///
/// // Install an exporter first (e.g. metrics-exporter-prometheus), then:
/// let stop = CancellationToken::new();
/// let task = FacadeForwarder::new(&registry)
///     .interval(Duration::from_secs(15))
///     .spawn(stop.clone());
/// stop.cancel();
/// task.await.unwrap();
/// # }
/// ```
pub struct FacadeForwarder {
    registry: WeakRegistry,
    interval: Duration,
    described: Mutex<HashSet<&'static str>>,
}

impl FacadeForwarder {
    /// How often [`run`](Self::run) forwards unless told otherwise: Prometheus' default scrape interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

    /// A forwarder for `registry`, every [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL).
    pub fn new(registry: &Registry) -> Self {
        FacadeForwarder {
            registry: WeakRegistry::new(registry),
            interval: Self::DEFAULT_INTERVAL,
            described: Mutex::new(HashSet::new()),
        }
    }

    /// Sets how often [`run`](Self::run) forwards.
    ///
    /// # Panics
    ///
    /// If `every` is zero.
    pub fn interval(mut self, every: Duration) -> Self {
        assert!(!every.is_zero(), "a forwarding interval must not be zero");
        self.interval = every;
        self
    }

    /// Collects the registry once and hands every sample to the facade's current recorder.
    ///
    /// Returns how many samples were forwarded, or `None` once the registry is gone.
    pub fn forward_once(&self) -> Option<usize> {
        let samples = self.registry.upgrade()?.collect();
        for sample in &samples {
            self.forward(sample);
        }
        Some(samples.len())
    }

    /// Forwards at once and then on every interval, until the registry is dropped or `stop` is cancelled.
    /// A late tick is delayed rather than made up for, so a busy runtime does not get a burst of collections.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a collection is synchronous, so dropping the future between ticks loses nothing.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    if self.forward_once().is_none() {
                        return;
                    }
                }
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    fn forward(&self, sample: &Sample) {
        let family = sample.family;
        let name = format!("{PREFIX}{}", family.name());
        let first_sight = self.described.lock().insert(family.name());
        let labels: Vec<::metrics::Label> = sample
            .labels
            .iter()
            .map(|(k, v)| ::metrics::Label::new(k.to_owned(), v.to_owned()))
            .collect();
        match family.kind() {
            MetricKind::Counter => {
                if first_sight {
                    ::metrics::describe_counter!(name.clone(), family.help());
                }
                // Counters are integers below 2^53 (see `Sample::value`), so the cast is exact.
                ::metrics::counter!(name, labels).absolute(sample.value as u64);
            }
            MetricKind::Gauge => {
                if first_sight {
                    ::metrics::describe_gauge!(name.clone(), family.help());
                }
                ::metrics::gauge!(name, labels).set(sample.value);
            }
        }
    }
}

impl fmt::Debug for FacadeForwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacadeForwarder")
            .field("interval", &self.interval)
            .field("registry_alive", &self.registry.upgrade().is_some())
            .finish()
    }
}
