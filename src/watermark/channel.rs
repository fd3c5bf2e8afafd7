//! Creating a watermark channel.

use std::sync::Arc;

use super::shared::Shared;
use super::{Config, Receiver, Sender, Weight};

/// Creates a byte-weighted multi-producer, single-consumer channel bounded by `config`'s marks and budget.
///
/// The queue turns unwritable above the high mark and writable again at or below the low mark; an item that
/// would take it over the hard cap is refused with the item handed back. See [`Config`] for the defaults.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tidegate::watermark::{self, Config, Limits};
/// use tidegate::MemoryBudget;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let budget = MemoryBudget::new(1 << 20);
/// let config = Config::builder()
///     .limits(Limits::new(1024, 4096, 8192))
///     .budget(Some(budget.clone()))
///     .build();
/// let (tx, mut rx) = watermark::channel(config);
/// tx.send(Bytes::from(vec![0u8; 5000])).await.unwrap();
/// assert!(!tx.is_writable());
/// assert_eq!(budget.used(), 5000);
/// let frame = rx.recv().await.unwrap();
/// assert_eq!((frame.len(), budget.used()), (5000, 0));
/// assert!(tx.is_writable());
/// # }
/// ```
pub fn channel<T: Weight>(config: Config) -> (Sender<T>, Receiver<T>) {
    let (limits, budget) = config.into_parts();
    let shared = Arc::new(Shared::new(limits, budget));
    (Sender::new(shared.clone()), Receiver::new(shared))
}
