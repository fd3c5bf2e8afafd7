//! The configuration of a watermark channel.

use crate::budget::MemoryBudget;

use super::Limits;

/// How a [`channel`](super::channel) bounds its queue: its [`Limits`] and an optional [`MemoryBudget`].
///
/// Defaults: [`Limits::default()`] (32 KiB / 64 KiB / 256 KiB) and no budget.
///
/// # Examples
///
/// ```
/// use tidegate::watermark::{Config, Limits};
/// use tidegate::MemoryBudget;
///
/// let process = MemoryBudget::new(64 << 20);
/// let config = Config::builder()
///     .limits(Limits::new(16 << 10, 64 << 10, 1 << 20))
///     .budget(Some(process.child(1 << 20)))
///     .build();
/// assert_eq!(config.limits().hard(), 1 << 20);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Config {
    limits: Limits,
    budget: Option<MemoryBudget>,
}

impl Config {
    /// Starts a builder with the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The marks the channel starts with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The budget charged for queued bytes, if any.
    pub fn budget(&self) -> Option<&MemoryBudget> {
        self.budget.as_ref()
    }

    pub(crate) fn into_parts(self) -> (Limits, Option<MemoryBudget>) {
        (self.limits, self.budget)
    }
}

/// Builds a [`Config`]; see its documentation for the defaults.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Sets the low, high and hard marks. Default: [`Limits::default()`].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.config.limits = limits;
        self
    }

    /// Charges `budget` for every queued byte: a send the budget refuses fails with
    /// [`SendError::OverBudget`](super::SendError::OverBudget) (or waits, for [`send`](super::Sender::send)).
    /// Default: none (`None`).
    pub fn budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.config.budget = budget;
        self
    }

    /// The configuration. It cannot fail: every [`Limits`] value is valid by construction (marks read from a
    /// configuration file go through [`Limits::try_new`], which says what is wrong with them), and a budget of any
    /// size is valid.
    pub fn build(&self) -> Config {
        self.config.clone()
    }
}
