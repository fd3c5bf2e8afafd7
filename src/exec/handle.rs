use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::task::JoinHandle;

use super::error::TaskError;
use super::task::Aborted;

/// A handle to a task admitted by a [`BoundedExecutor`](super::BoundedExecutor): await it for the task's
/// output, or [`abort`](TaskHandle::abort) the task.
///
/// Dropping the handle detaches the task; it still runs and is still counted.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tidegate::exec::{BoundedExecutor, TaskError};
///
/// let exec = BoundedExecutor::new(4, 16);
/// assert_eq!(exec.try_spawn(async { 6 * 7 }).unwrap().await.unwrap(), 42);
///
/// let stuck = exec.try_spawn(std::future::pending::<()>()).unwrap();
/// stuck.abort();
/// assert!(matches!(stuck.await, Err(TaskError::Cancelled)));
/// # }
/// ```
#[must_use = "dropping a TaskHandle detaches the task; await it to get the output"]
pub struct TaskHandle<T> {
    join: JoinHandle<Result<T, Aborted>>,
}

impl<T> TaskHandle<T> {
    #[inline]
    pub(crate) fn new(join: JoinHandle<Result<T, Aborted>>) -> Self {
        TaskHandle { join }
    }

    /// Cancels the task. A task still waiting for a run slot never starts; a running one is dropped at its
    /// next `.await`. A blocking closure that already runs cannot be stopped: it keeps its slot until it
    /// returns, and the handle resolves to [`TaskError::Cancelled`].
    pub fn abort(&self) {
        self.join.abort();
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the wait loses nothing, the task keeps running.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(Pin::new(&mut self.join).poll(cx)) {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(Aborted)) => Err(TaskError::Cancelled),
            Err(err) if err.is_panic() => Err(TaskError::Panicked {
                payload: err.into_panic(),
            }),
            Err(_) => Err(TaskError::Cancelled),
        })
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.join.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
