//! The operator's view: one registry of every part, the Prometheus exposition, snapshots and their diffs.
//!
//! When memory rises the first question is "which queue?". Register each part under a name and one scrape of
//! [`Registry::render_prometheus`] answers it: every budget, pool, codec, queue, executor, limiter, listener and
//! group reports its bytes and counts under a `tidegate_` name with a `name="…"` label.
//!
//! The registry holds parts weakly and reads them only when collecting, so it costs nothing on hot paths and a
//! dropped part leaves it.
//!
//! Register a [`ProcessMetrics`] too, for the gauges a leak hunt starts from: the process' resident memory, its
//! open file descriptors and the tokio runtime's live tasks.

mod collector;
mod error;
mod exposition;
mod family;
mod labels;
mod observer;
mod process;
mod registry;
mod settings;

pub use collector::{Collector, Sample};
pub use error::RegistryError;
pub use exposition::PREFIX;
pub use family::{Family, MetricKind};
pub use labels::{Labels, NAME_LABEL};
pub use observer::{Observe, Observer};
pub use process::ProcessMetrics;
pub use registry::Registry;
pub use settings::Settings;
