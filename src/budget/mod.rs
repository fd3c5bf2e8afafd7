//! One byte budget that every part of a process charges.
//!
//! A [`MemoryBudget`] is a cheap-to-clone handle to a limit in bytes. Parts that hold memory on behalf of peers
//! (pooled buffers, decoders, outbound queues) take a [`Reservation`] before they hold it, and the reservation gives
//! the bytes back when it is dropped. [`MemoryBudget::child`] makes a sub-budget (one per connection, say): a
//! reservation in the child also counts against every ancestor, and every limit on the way up must hold.
//!
//! A limit check is one compare-and-swap per level of the tree. A release with nobody waiting costs one atomic
//! subtraction per level, a fence and one load: no lock.
//!
//! # Fairness
//!
//! Callers of [`MemoryBudget::reserve`] that have to wait join one queue per tree (the root and all its
//! descendants), in arrival order. A release (or a raised limit) walks that queue oldest first and *grants* each
//! waiter whose request fits now, at every level from its budget to the root, before waking it: only the tasks let
//! in are woken, and a woken task never has to retry. Waiters that do not fit yet are skipped and keep their place.
//! So the policy is first come, first served among the requests that fit:
//!
//! * a small request may get ahead of an older, larger one that does not fit yet, and a steady stream of small
//!   requests can keep a large one waiting for as long as it lasts (no head-of-line blocking, no starvation
//!   guarantee for large requests);
//! * a waiter on a child budget is served when both its own budget and every ancestor have room, whichever of them
//!   was holding it back, and whichever budget of the tree the bytes came back to;
//! * callers that do not wait ([`MemoryBudget::try_reserve`], [`Reservation::try_grow`], or a `reserve` whose bytes
//!   fit at once) do not queue: bytes that are free when they ask are theirs, even if others are waiting.
//!
//! A release stops walking the queue as soon as the root is full, so letting one waiter in among 10,000 costs a
//! constant amount of work; a release that lets nobody in while the root has room (waiters held back by their own
//! budgets' limits) visits every waiter, under a lock, without waking any.
//!
//! # Examples
//!
//! ```
//! use tidegate::budget::{BudgetError, MemoryBudget};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let budget = MemoryBudget::new(1024);
//! let first = budget.try_reserve(800).unwrap();
//! assert!(matches!(budget.try_reserve(800), Err(BudgetError::Exhausted { .. })));
//!
//! // `reserve` waits until the bytes fit, and errors at once when they never could.
//! let waiter = tokio::spawn({
//!     let budget = budget.clone();
//!     async move { budget.reserve(800).await.map(|r| r.bytes()) }
//! });
//! drop(first);
//! assert_eq!(waiter.await.unwrap(), Ok(800));
//! assert!(matches!(budget.reserve(4096).await, Err(BudgetError::ExceedsLimit { .. })));
//! # }
//! ```

mod error;
mod leak;
mod memory_budget;
mod metrics;
mod node;
#[cfg(not(all(test, tidegate_loom)))]
mod observe;
mod reservation;
mod wait;
mod waiters;

#[cfg(all(test, tidegate_loom))]
mod loom_tests;

pub use error::BudgetError;
pub use memory_budget::MemoryBudget;
pub use metrics::BudgetMetrics;
pub use reservation::Reservation;
