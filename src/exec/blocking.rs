//! Blocking closures, bounded like futures. tokio's blocking pool queues without limit; here a closure is
//! admitted against the same limits, waits for a run slot as an ordinary (cheap) task, and only then takes a
//! blocking-pool thread. The slot travels with the closure, so it stays held until the closure returns even
//! if the handle is aborted.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;

use super::error::SpawnError;
use super::executor::BoundedExecutor;
use super::handle::TaskHandle;
use super::shared::Refusal;
use super::task::{Body, Guard};

pin_project! {
    pub(crate) struct Blocking<F, R> {
        work: Option<F>,
        join: Option<JoinHandle<R>>,
    }
}

impl<F, R> Blocking<F, R> {
    /// `work`, not started: it moves to tokio's blocking pool when the task gets a run slot.
    fn new(work: F) -> Self {
        Blocking {
            work: Some(work),
            join: None,
        }
    }
}

impl<F, R> Body for Blocking<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;

    fn poll_body(self: Pin<&mut Self>, cx: &mut Context<'_>, guard: &mut Guard) -> Poll<R> {
        let this = self.project();
        if let Some(work) = this.work.take() {
            let mut guard = guard.take();
            guard.set_blocking();
            let handle = guard.shared().handle.clone();
            *this.join = Some(handle.spawn_blocking(move || {
                let output = work();
                guard.complete();
                output
            }));
        }
        let Some(join) = this.join.as_mut() else {
            unreachable!("a blocking body is polled only after its slot is granted")
        };
        match ready!(Pin::new(join).poll(cx)) {
            Ok(output) => Poll::Ready(output),
            // Re-raise in this task so the handle reports the panic; the guard already counted it.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutdown cancels a blocking task, and it drops this task too.
            Err(_) => Poll::Pending,
        }
    }
}

impl BoundedExecutor {
    /// Admits a blocking closure now or refuses it now. Once it holds a run slot it runs on the runtime's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// As [`try_spawn`](BoundedExecutor::try_spawn); the closure is inside the error, not called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exec = tidegate::exec::BoundedExecutor::new(2, 4);
    /// let sum = exec.try_spawn_blocking(|| (1..=10u32).sum::<u32>()).unwrap();
    /// assert_eq!(sum.await.unwrap(), 55);
    /// # }
    /// ```
    pub fn try_spawn_blocking<F, R>(&self, work: F) -> Result<TaskHandle<R>, SpawnError<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.shared.try_admit() {
            Ok(admission) => Ok(self.launch(admission, Blocking::new(work), None)),
            Err(refusal) => Err(self.shared.refuse(refusal, work)),
        }
    }

    /// Waits for room in the backlog, then admits a blocking closure.
    ///
    /// # Errors
    ///
    /// As [`spawn`](BoundedExecutor::spawn); the closure is inside the error, not called.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped wait admitted nothing.
    pub async fn spawn_blocking<F, R>(&self, work: F) -> Result<TaskHandle<R>, SpawnError<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // The common case admits at once, without building the waiting future.
        let admitted = match self.shared.try_admit() {
            Err(Refusal::Full { .. }) => self.shared.admit_wait(None).await,
            other => other,
        };
        match admitted {
            Ok(admission) => Ok(self.launch(admission, Blocking::new(work), None)),
            Err(refusal) => Err(self.shared.refuse(refusal, work)),
        }
    }
}
