use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::builder::ExecutorBuilder;
use super::error::SpawnError;
use super::handle::TaskHandle;
use super::limits::ExecLimits;
use super::metrics::ExecMetrics;
use super::shared::{Admission, Refusal, Shared};
use super::shared_ref::SharedRef;
use super::task::{Body, Guard, Plain, Task};

/// Runs futures on tokio with a bound on how many run at once (`max_concurrency`) and on how many wait
/// (`max_pending`); beyond that, submissions are refused with the future handed back, or wait.
///
/// Cloning is cheap and every clone drives the same executor. Dropping every clone without
/// [`shutdown`](BoundedExecutor::shutdown) is safe: admitted tasks still run to completion and release
/// their slots.
///
/// See the [module docs](super) for an overview.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tidegate::exec::BoundedExecutor;
///
/// let exec = BoundedExecutor::new(1, 1);
/// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
/// let first = exec.try_spawn(async move { rx.await.ok(); 1 }).unwrap(); // runs
/// let second = exec.try_spawn(async { 2 }).unwrap(); // waits for a slot
/// let third = exec.try_spawn(async { 3 }); // no room: refused, the future comes back
/// assert!(third.is_err());
/// tx.send(()).unwrap();
/// assert_eq!(first.await.unwrap() + second.await.unwrap(), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct BoundedExecutor {
    pub(crate) shared: Arc<Shared>,
}

impl BoundedExecutor {
    /// An executor on the current runtime with the given limits and the other defaults of
    /// [`ExecutorBuilder`].
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime, or with both limits zero; [`ExecutorBuilder::build`] returns these
    /// as errors instead.
    pub fn new(max_concurrency: usize, max_pending: usize) -> Self {
        match ExecutorBuilder::new()
            .max_concurrency(max_concurrency)
            .max_pending(max_pending)
            .build()
        {
            Ok(exec) => exec,
            Err(err) => panic!("BoundedExecutor::new: {err}"),
        }
    }

    /// An [`ExecutorBuilder`] with the documented defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exec = tidegate::exec::BoundedExecutor::builder().max_concurrency(8).build().unwrap();
    /// assert_eq!((exec.max_concurrency(), exec.max_pending()), (8, tidegate::exec::DEFAULT_MAX_PENDING));
    /// # }
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::new()
    }

    pub(crate) fn from_shared(shared: Shared) -> Self {
        BoundedExecutor {
            shared: Arc::new(shared),
        }
    }

    /// Admits `future` now or refuses it now; never waits.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Full`] when `max_concurrency + max_pending` tasks are in flight,
    /// [`SpawnError::Overloaded`] when load shedding is on and the backlog is too old, [`SpawnError::Closed`]
    /// after [`shutdown`](BoundedExecutor::shutdown) began. The future is inside the error, not polled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tidegate::exec::{BoundedExecutor, SpawnError};
    ///
    /// let exec = BoundedExecutor::new(1, 0);
    /// let first = exec.try_spawn(async { 1 }).unwrap();
    /// // The first task holds the only slot until it runs, so this one is refused and comes back.
    /// let Err(SpawnError::Full { task, .. }) = exec.try_spawn(async { 2 }) else { panic!() };
    /// assert_eq!(first.await.unwrap(), 1);
    /// assert_eq!(exec.try_spawn(task).unwrap().await.unwrap(), 2);
    /// # }
    /// ```
    pub fn try_spawn<F>(&self, future: F) -> Result<TaskHandle<F::Output>, SpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.shared.try_admit() {
            Ok(admission) => Ok(self.launch(admission, Plain::new(future), None)),
            Err(refusal) => Err(self.shared.refuse(refusal, future)),
        }
    }

    /// Waits for room in the backlog, then admits `future`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Closed`] if the executor is or becomes shut down while waiting; [`SpawnError::Overloaded`]
    /// if load shedding refuses it. Never `Full`: it waits instead.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the returned future is dropped before it completes, nothing was admitted (the task is
    /// dropped with it, unpolled).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exec = tidegate::exec::BoundedExecutor::new(2, 2);
    /// let mut handles = Vec::new();
    /// for i in 0..10 {
    ///     // Never more than four in flight: the loop waits for room instead of queueing without bound.
    ///     handles.push(exec.spawn(async move { i }).await.unwrap());
    /// }
    /// let mut total = 0;
    /// for h in handles {
    ///     total += h.await.unwrap();
    /// }
    /// assert_eq!(total, 45);
    /// # }
    /// ```
    pub async fn spawn<F>(&self, future: F) -> Result<TaskHandle<F::Output>, SpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The common case admits at once, without building the waiting future.
        let admitted = match self.shared.try_admit() {
            Err(Refusal::Full { .. }) => self.shared.admit_wait(None).await,
            other => other,
        };
        match admitted {
            Ok(admission) => Ok(self.launch(admission, Plain::new(future), None)),
            Err(refusal) => Err(self.shared.refuse(refusal, future)),
        }
    }

    /// Like [`spawn`](BoundedExecutor::spawn), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::TimedOut`] with the future inside if no room appeared in time, and the errors of `spawn`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as `spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tidegate::exec::{BoundedExecutor, SpawnError};
    ///
    /// let exec = BoundedExecutor::new(1, 0);
    /// let _busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    /// let refused = exec.spawn_timeout(async {}, Duration::from_millis(50)).await;
    /// assert!(matches!(refused, Err(SpawnError::TimedOut { .. })));
    /// # }
    /// ```
    pub async fn spawn_timeout<F>(
        &self,
        future: F,
        timeout: Duration,
    ) -> Result<TaskHandle<F::Output>, SpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The common case admits at once, without building the waiting future.
        let admitted = match self.shared.try_admit() {
            Err(Refusal::Full { .. }) => self.shared.admit_wait(Some(timeout)).await,
            other => other,
        };
        match admitted {
            Ok(admission) => Ok(self.launch(admission, Plain::new(future), None)),
            Err(refusal) => Err(self.shared.refuse(refusal, future)),
        }
    }

    /// Spawns an admitted task onto the runtime.
    pub(crate) fn launch<B>(
        &self,
        admission: Admission,
        body: B,
        key: Option<u64>,
    ) -> TaskHandle<B::Output>
    where
        B: Body + Send + 'static,
        B::Output: Send + 'static,
    {
        let keyed = key.map(|hash| self.shared.keys.join(hash));
        let guard = Guard::new(SharedRef::new(&self.shared, admission), keyed);
        TaskHandle::new(self.shared.handle.spawn(Task::new(body, guard)))
    }

    /// Changes the number of tasks that may run at once. Raising it starts waiting tasks now; lowering it
    /// never interrupts running tasks, new ones just wait until enough have finished.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exec = tidegate::exec::BoundedExecutor::new(4, 16);
    /// exec.set_max_concurrency(8);
    /// exec.set_max_pending(0);
    /// assert_eq!((exec.max_concurrency(), exec.max_pending()), (8, 0));
    /// # }
    /// ```
    pub fn set_max_concurrency(&self, max: usize) {
        self.shared.set_limits(Some(max), None);
    }

    /// Changes the backlog limit. Lowering it below the current backlog refuses new tasks until it drains;
    /// nothing admitted is dropped.
    pub fn set_max_pending(&self, max: usize) {
        self.shared.set_limits(None, Some(max));
    }

    /// Turns load shedding on (`Some(limit)`) or off (`None`); see [`ExecutorBuilder::shed_after`].
    pub fn set_shed_after(&self, limit: Option<Duration>) {
        self.shared.set_shed_after(limit);
    }

    /// Replaces all three limits in one step: [`limits`](Self::limits) and [`metrics`](Self::metrics) see
    /// either the old ones or the new ones, never a mix. Lowered limits refuse the next submissions that
    /// exceed them; nothing admitted is dropped. Both counts zero would admit nothing, which the builder
    /// refuses; here it is taken as given (the executor refuses everything until the limits are raised).
    ///
    /// # Examples
    ///
    /// See [`ExecLimits`].
    pub fn set_limits(&self, limits: ExecLimits) {
        self.shared.set_all_limits(limits);
    }

    /// The current limits, read together (see [`set_limits`](Self::set_limits)).
    pub fn limits(&self) -> ExecLimits {
        self.shared.limits()
    }

    /// The current limit on running tasks.
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_concurrency()
    }

    /// The current backlog limit.
    pub fn max_pending(&self) -> usize {
        self.shared.max_pending()
    }

    /// The current load-shedding limit, if any.
    pub fn shed_after(&self) -> Option<Duration> {
        self.shared.shed_after()
    }

    /// Whether [`shutdown`](BoundedExecutor::shutdown) has begun.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// See [`ExecMetrics`].
    pub fn metrics(&self) -> ExecMetrics {
        self.shared.metrics()
    }
}

impl fmt::Debug for BoundedExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedExecutor")
            .field("name", &self.shared.name)
            .field("max_concurrency", &self.max_concurrency())
            .field("max_pending", &self.max_pending())
            .field("in_flight", &self.shared.in_flight())
            .field("closed", &self.is_closed())
            .finish()
    }
}
