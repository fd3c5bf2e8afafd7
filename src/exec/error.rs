use std::any::Any;
use std::fmt;
use std::time::Duration;

use tokio::runtime::TryCurrentError;

/// Why [`ExecutorBuilder::build`](super::ExecutorBuilder::build) could not build an executor.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tidegate::exec::{BoundedExecutor, BuildError};
///
/// let err = BoundedExecutor::builder().max_concurrency(0).max_pending(0).build().unwrap_err();
/// assert!(matches!(err, BuildError::NoCapacity));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_concurrency` and `max_pending` are both zero: the executor could never admit a task.
    #[error("max_concurrency and max_pending are both zero: nothing could be admitted")]
    NoCapacity,
    /// No runtime handle was given and the builder was used outside a tokio runtime.
    #[error("no tokio runtime: build inside a runtime or give the builder a handle")]
    NoRuntime(#[source] TryCurrentError),
}

/// Why a [`BoundedExecutor`](super::BoundedExecutor) did not admit a task. The task comes back inside the
/// error, untouched, so the caller can run it elsewhere, retry later or drop it knowingly.
///
/// `T` is the refused future (or, for the blocking forms, the closure).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tidegate::exec::{BoundedExecutor, SpawnError};
///
/// let exec = BoundedExecutor::builder().max_concurrency(1).max_pending(0).build().unwrap();
/// let _busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
/// match exec.try_spawn(async { 42 }) {
///     Err(SpawnError::Full { task, in_flight, limit }) => {
///         assert_eq!((in_flight, limit), (1, 1));
///         assert_eq!(task.await, 42); // the refused future is intact
///     }
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// # }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError<T> {
    /// Admitting the task would exceed `max_concurrency + max_pending` tasks in flight.
    #[error(
        "executor full: {in_flight} tasks in flight, limit {limit} (max_concurrency + max_pending)"
    )]
    Full {
        /// The refused task.
        task: T,
        /// Tasks admitted and not yet finished when the task was refused.
        in_flight: usize,
        /// `max_concurrency + max_pending` at that moment.
        limit: usize,
    },
    /// Load shedding: the oldest task waiting for a run slot had waited longer than the configured
    /// [`shed_after`](super::ExecutorBuilder::shed_after) limit.
    #[error(
        "executor overloaded: oldest pending task has waited {oldest_pending:?}, limit {limit:?}"
    )]
    Overloaded {
        /// The refused task.
        task: T,
        /// How long the oldest pending task had been waiting for a run slot.
        oldest_pending: Duration,
        /// The `shed_after` limit.
        limit: Duration,
    },
    /// A `spawn_timeout` form found no room before its timeout.
    #[error("executor full: no room within {timeout:?}")]
    TimedOut {
        /// The refused task.
        task: T,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The executor is shutting down and admits nothing more.
    #[error("executor is shut down")]
    Closed {
        /// The refused task.
        task: T,
    },
}

impl<T> SpawnError<T> {
    /// Takes the refused task back.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exec = tidegate::exec::BoundedExecutor::builder().max_concurrency(1).max_pending(0).build().unwrap();
    /// let _busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    /// let task = exec.try_spawn(async { "run me elsewhere" }).unwrap_err().into_inner();
    /// assert_eq!(tokio::spawn(task).await.unwrap(), "run me elsewhere");
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SpawnError::Full { task, .. }
            | SpawnError::Overloaded { task, .. }
            | SpawnError::TimedOut { task, .. }
            | SpawnError::Closed { task } => task,
        }
    }
}

impl<T> fmt::Debug for SpawnError<T> {
    // The task is usually an unnameable future: show the numbers, not the task.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Full {
                in_flight, limit, ..
            } => f
                .debug_struct("Full")
                .field("in_flight", in_flight)
                .field("limit", limit)
                .finish_non_exhaustive(),
            SpawnError::Overloaded {
                oldest_pending,
                limit,
                ..
            } => f
                .debug_struct("Overloaded")
                .field("oldest_pending", oldest_pending)
                .field("limit", limit)
                .finish_non_exhaustive(),
            SpawnError::TimedOut { timeout, .. } => f
                .debug_struct("TimedOut")
                .field("timeout", timeout)
                .finish_non_exhaustive(),
            SpawnError::Closed { .. } => f.debug_struct("Closed").finish_non_exhaustive(),
        }
    }
}

impl<T> From<SpawnError<T>> for std::io::Error {
    /// Drops the task; use this only where the task is worthless without admission.
    ///
    /// A refusal is never `WouldBlock`: that kind tells non-blocking I/O code to retry the same call once the
    /// source is ready, and nothing here signals readiness. `Full` and `Overloaded` map to `Other`.
    fn from(err: SpawnError<T>) -> Self {
        let kind = match err {
            SpawnError::Closed { .. } => std::io::ErrorKind::NotConnected,
            SpawnError::TimedOut { .. } => std::io::ErrorKind::TimedOut,
            SpawnError::Full { .. } | SpawnError::Overloaded { .. } => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err.to_string())
    }
}

/// Why a [`TaskHandle`](super::TaskHandle) has no output: the task was cancelled or it panicked.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task was aborted (by [`TaskHandle::abort`](super::TaskHandle::abort), by a shutdown deadline, or by
    /// the runtime shutting down) before it produced its output.
    #[error("task was cancelled")]
    Cancelled,
    /// The task panicked; the executor counted it and released its slot.
    #[error("task panicked: {}", panic_message(&**payload))]
    Panicked {
        /// The panic payload, as given to `std::panic::resume_unwind`.
        payload: Box<dyn Any + Send + 'static>,
    },
}

impl TaskError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked { .. })
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string payload)"
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled => f.write_str("Cancelled"),
            TaskError::Panicked { payload } => f
                .debug_struct("Panicked")
                .field("message", &panic_message(&**payload))
                .finish(),
        }
    }
}

impl From<TaskError> for std::io::Error {
    fn from(err: TaskError) -> Self {
        std::io::Error::other(err.to_string())
    }
}
