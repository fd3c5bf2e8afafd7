use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::executor::BoundedExecutor;
use super::shared::Shared;

/// Default for [`Builder::max_concurrency`]: tasks running at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 256;
/// Default for [`Builder::max_pending`]: admitted tasks waiting beyond the running ones.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Configures a [`BoundedExecutor`].
///
/// | setting | default |
/// |---|---|
/// | [`max_concurrency`](Builder::max_concurrency) | [`DEFAULT_MAX_CONCURRENCY`] (256) |
/// | [`max_pending`](Builder::max_pending) | [`DEFAULT_MAX_PENDING`] (1024) |
/// | [`shed_after`](Builder::shed_after) | off |
/// | [`handle`](Builder::handle) | the runtime current when [`build`](Builder::build) is called |
/// | [`name`](Builder::name) | none |
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tidegate::exec::BoundedExecutor;
///
/// let exec = BoundedExecutor::builder()
///     .max_concurrency(64)
///     .max_pending(256)
///     .shed_after(Duration::from_millis(200))
///     .name("handlers")
///     .build();
/// assert_eq!(exec.metrics().name.as_deref(), Some("handlers"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    max_concurrency: usize,
    max_pending: usize,
    shed_after: Option<Duration>,
    handle: Option<Handle>,
    name: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_pending: DEFAULT_MAX_PENDING,
            shed_after: None,
            handle: None,
            name: None,
        }
    }
}

impl Builder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Tasks that may run at once. Zero is allowed and pauses the executor: tasks are admitted up to
    /// `max_pending` but none starts until the limit is raised.
    pub fn max_concurrency(&mut self, max: usize) -> &mut Self {
        self.max_concurrency = max;
        self
    }

    /// Admitted tasks beyond `max_concurrency`: the backlog. At most `max_concurrency + max_pending` tasks are
    /// in flight; the next submission is refused (`try_` forms) or waits (awaiting forms). Zero means no
    /// backlog: admit only what can run now.
    pub fn max_pending(&mut self, max: usize) -> &mut Self {
        self.max_pending = max;
        self
    }

    /// Load shedding: refuse new tasks with [`SpawnError::Overloaded`](super::SpawnError::Overloaded) while the
    /// oldest task waiting for a run slot has waited longer than `limit`, even if the backlog has room. A
    /// backlog that drains slowly is latency the caller would rather turn away early. Applies to every
    /// submission form, awaiting ones included (they return the error instead of waiting).
    pub fn shed_after(&mut self, limit: Duration) -> &mut Self {
        self.shed_after = Some(limit);
        self
    }

    /// The runtime the tasks run on.
    pub fn handle(&mut self, handle: Handle) -> &mut Self {
        self.handle = Some(handle);
        self
    }

    /// A name reported in [`ExecMetrics::name`](super::ExecMetrics::name).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Builds the executor.
    ///
    /// # Panics
    ///
    /// If no [`handle`](Builder::handle) was given and this is called outside a tokio runtime.
    pub fn build(&self) -> BoundedExecutor {
        let handle = self.handle.clone().unwrap_or_else(Handle::current);
        let name = self.name.as_deref().map(Arc::<str>::from);
        BoundedExecutor::from_shared(Shared::new(
            self.max_concurrency,
            self.max_pending,
            self.shed_after,
            handle,
            name,
        ))
    }
}
