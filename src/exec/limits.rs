//! The executor's three live limits as one value, read and set in one step.

use std::time::Duration;

/// An executor's limits: running tasks, the backlog beyond them and the load-shedding limit.
///
/// [`BoundedExecutor::limits`](super::BoundedExecutor::limits) reads them together and
/// [`BoundedExecutor::set_limits`](super::BoundedExecutor::set_limits) replaces them together, so a reader
/// never pairs an old `max_concurrency` with a new `max_pending`. Admission itself reads one precomputed
/// value and pays nothing for this.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tidegate::exec::{BoundedExecutor, ExecLimits};
///
/// let exec = BoundedExecutor::new(4, 16);
/// exec.set_limits(ExecLimits::new(8, 0, Some(Duration::from_millis(50))));
/// let limits = exec.limits();
/// assert_eq!((limits.max_concurrency, limits.max_pending), (8, 0));
/// assert_eq!(limits.shed_after, Some(Duration::from_millis(50)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecLimits {
    /// Tasks running at once.
    pub max_concurrency: usize,
    /// Admitted tasks beyond `max_concurrency`.
    pub max_pending: usize,
    /// Refuse new tasks while the oldest pending one has waited longer than this; `None` is off.
    pub shed_after: Option<Duration>,
}

impl ExecLimits {
    /// The three limits.
    pub fn new(max_concurrency: usize, max_pending: usize, shed_after: Option<Duration>) -> Self {
        ExecLimits {
            max_concurrency,
            max_pending,
            shed_after,
        }
    }
}
