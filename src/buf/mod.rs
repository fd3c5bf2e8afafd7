//! Pooled, reference-counted buffers with caps on retained and outstanding memory.
//!
//! A [`BufPool`] keeps idle storage in size classes (512 B, 4 KiB, 16 KiB and 64 KiB by default) and hands it out as
//! [`PooledBuf`]s. A `PooledBuf` is a fixed-capacity [`bytes::BufMut`]; [`PooledBuf::freeze`] turns it into a
//! [`bytes::Bytes`] without copying, and the storage goes back to the pool when the last clone or slice of that
//! `Bytes` is dropped, on whatever thread that happens.
//!
//! Two caps keep the pool bounded:
//!
//! * `max_retained_bytes` bounds idle memory: storage returned beyond it is freed.
//! * an optional [`MemoryBudget`](crate::budget::MemoryBudget) is charged for every outstanding buffer, so the pool refuses
//!   (or, with [`BufPool::acquire`], waits) instead of growing past it.
//!
//! [`BufPool::leak_report`] lists the buffers that have been out for too long and where they were acquired.
//!
//! # Examples
//!
//! ```
//! use bytes::BufMut;
//! use tidegate::budget::MemoryBudget;
//! use tidegate::buf::BufPool;
//!
//! let budget = MemoryBudget::new(8 * 1024);
//! let pool = BufPool::builder().budget(Some(budget.clone())).build()?;
//!
//! let mut a = pool.try_acquire(4096).unwrap();
//! a.put_slice(b"ping");
//! let b = pool.try_acquire(4096).unwrap();
//! assert_eq!(budget.used(), 8192);
//! assert!(pool.try_acquire(1).is_err()); // the budget says no; nothing was allocated
//!
//! let frame = a.freeze();
//! drop(b);
//! assert_eq!(&frame[..], b"ping");
//! drop(frame);
//! assert_eq!(budget.used(), 0);
//! # Ok::<(), tidegate::PoolError>(())
//! ```

mod block;
mod builder;
mod cache_slot;
mod class;
mod error;
mod inner;
mod leak;
#[cfg(not(all(test, tidegate_loom)))]
mod leak_observe;
mod metrics;
#[cfg(not(all(test, tidegate_loom)))]
mod observe;
mod pool;
mod pool_ref;
mod pooled;
mod shared;
mod thread_cache;
mod unpooled;

pub use builder::{
    BufPoolBuilder, DEFAULT_MAX_RETAINED_BYTES, DEFAULT_SIZE_CLASSES, DEFAULT_THREAD_CACHE_BYTES,
};
pub use error::PoolError;
pub use leak::{LeakReport, LeakTracking, LeakedBuf};
pub use metrics::{ClassMetrics, PoolMetrics, PoolTotals};
pub use pool::BufPool;
pub use pooled::PooledBuf;
