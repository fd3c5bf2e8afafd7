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
//!
//! Live limits are read as one [`Configuration`] ([`Registry::configuration`]), which has a `name.key = value`
//! text form for files, and swapped in whole with [`Registry::reconfigure`]: checked first for every part, refused
//! with every reason or applied as one step that no reader sees half done.
#![doc = include_str!("serving.md")]

mod collector;
mod config;
mod config_apply;
mod config_diff;
mod config_error;
mod diff;
mod error;
mod exposition;
#[cfg(feature = "metrics")]
mod facade;
mod family;
mod labels;
mod leak_report;
mod observer;
mod outstanding;
mod process;
mod registry;
mod settings;
mod snapshot;

pub use collector::{Collector, Sample};
pub use config::Configuration;
pub use config_apply::Reconfigured;
pub use config_diff::LimitChange;
pub use config_error::{EntryError, ParseError, ParseErrors, ReconfigureError, Refusal};
pub use diff::{Change, Diff};
pub use error::RegistryError;
pub use exposition::PREFIX;
#[cfg(feature = "metrics")]
pub use facade::FacadeForwarder;
pub use family::{Family, MetricKind};
pub use labels::{Labels, NAME_LABEL};
pub use leak_report::{LeakReport, PartLeaks};
pub use observer::{Observe, Observer};
pub use outstanding::{LeakSite, Outstanding};
pub use process::ProcessMetrics;
pub use registry::Registry;
pub use settings::{Settings, SettingsCheck};
pub use snapshot::Snapshot;
