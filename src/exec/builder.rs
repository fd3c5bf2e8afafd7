use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::error::BuildError;
use super::executor::BoundedExecutor;
use super::shared::Shared;

/// Default for [`ExecutorBuilder::max_concurrency`]: tasks running at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 256;
/// Default for [`ExecutorBuilder::max_pending`]: admitted tasks waiting beyond the running ones.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Configures a [`BoundedExecutor`]; obtained from [`BoundedExecutor::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`max_concurrency`](ExecutorBuilder::max_concurrency) | [`DEFAULT_MAX_CONCURRENCY`] (256) |
/// | [`max_pending`](ExecutorBuilder::max_pending) | [`DEFAULT_MAX_PENDING`] (1024) |
/// | [`shed_after`](ExecutorBuilder::shed_after) | `None` (off) |
/// | [`handle`](ExecutorBuilder::handle) | the runtime current when [`build`](ExecutorBuilder::build) is called |
/// | [`name`](ExecutorBuilder::name) | none |
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
///     .shed_after(Some(Duration::from_millis(200)))
///     .name("handlers")
///     .build()
///     .unwrap();
/// assert_eq!(exec.metrics().name.as_deref(), Some("handlers"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ExecutorBuilder {
    max_concurrency: usize,
    max_pending: usize,
    shed_after: Option<Duration>,
    handle: Option<Handle>,
    name: Option<String>,
}

impl Default for ExecutorBuilder {
    fn default() -> Self {
        ExecutorBuilder {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_pending: DEFAULT_MAX_PENDING,
            shed_after: None,
            handle: None,
            name: None,
        }
    }
}

impl ExecutorBuilder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        ExecutorBuilder::default()
    }

    /// Tasks that may run at once; default [`DEFAULT_MAX_CONCURRENCY`] (256). Zero is allowed (with a
    /// non-zero `max_pending`) and pauses the executor: tasks are admitted up to `max_pending` but none starts
    /// until the limit is raised. Limits above 2^30 - 1 (about a billion) run at most 2^30 - 1 tasks at once.
    pub fn max_concurrency(&mut self, max: usize) -> &mut Self {
        self.max_concurrency = max;
        self
    }

    /// Admitted tasks beyond `max_concurrency`: the backlog; default [`DEFAULT_MAX_PENDING`] (1024). At most
    /// `max_concurrency + max_pending` tasks are in flight; the next submission is refused (`try_` forms) or
    /// waits (awaiting forms). Zero means no backlog: admit only what can run now. Whatever the limits, at
    /// most 2^31 - 1 tasks (about two billion) are in flight.
    pub fn max_pending(&mut self, max: usize) -> &mut Self {
        self.max_pending = max;
        self
    }

    /// Load shedding; default `None` (off). With `Some(limit)`, refuse new tasks with
    /// [`SpawnError::Overloaded`](super::SpawnError::Overloaded) while the oldest task waiting for a run slot
    /// has waited longer than `limit`, even if the backlog has room. A backlog that drains slowly is latency the
    /// caller would rather turn away early. Applies to every submission form, awaiting ones included (they
    /// return the error instead of waiting).
    pub fn shed_after(&mut self, limit: Option<Duration>) -> &mut Self {
        self.shed_after = limit;
        self
    }

    /// The runtime the tasks run on; default: the runtime current when [`build`](ExecutorBuilder::build) is
    /// called.
    pub fn handle(&mut self, handle: Handle) -> &mut Self {
        self.handle = Some(handle);
        self
    }

    /// A name reported in [`ExecMetrics::name`](super::ExecMetrics::name); default none.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Builds the executor.
    ///
    /// # Errors
    ///
    /// [`BuildError::NoCapacity`] if `max_concurrency` and `max_pending` are both zero (nothing could ever be
    /// admitted); [`BuildError::NoRuntime`] if no [`handle`](ExecutorBuilder::handle) was given and this is
    /// called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::exec::{BoundedExecutor, BuildError};
    ///
    /// let outside_a_runtime = BoundedExecutor::builder().build();
    /// assert!(matches!(outside_a_runtime, Err(BuildError::NoRuntime(_))));
    /// ```
    pub fn build(&self) -> Result<BoundedExecutor, BuildError> {
        if self.max_concurrency == 0 && self.max_pending == 0 {
            return Err(BuildError::NoCapacity);
        }
        let handle = match &self.handle {
            Some(handle) => handle.clone(),
            None => Handle::try_current().map_err(BuildError::NoRuntime)?,
        };
        let name = self.name.as_deref().map(Arc::<str>::from);
        Ok(BoundedExecutor::from_shared(Shared::new(
            self.max_concurrency,
            self.max_pending,
            self.shed_after,
            handle,
            name,
        )))
    }
}
