//! The watermark module's public surface: the receiver as a `Stream`, the builder's optional features, error
//! sources and `io::ErrorKind`s.

use std::error::Error as _;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tidegate::budget::{BudgetError, MemoryBudget};
use tidegate::watermark::{self, CloseReason, Config, SendError, WatermarkWriter};
use tokio::io::AsyncWrite;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_receiver_is_a_stream_that_ends_when_the_queue_closes() {
    let (tx, rx) = watermark::channel::<Bytes>(Config::default());
    let producer = tokio::spawn(async move {
        for i in 0..100u8 {
            tx.send(Bytes::from(vec![i; 3])).await.unwrap();
        }
    });
    let items: Vec<Bytes> = timeout(WAIT, rx.collect()).await.unwrap();
    producer.await.unwrap();
    assert_eq!(items.len(), 100);
    assert!(items.iter().enumerate().all(|(i, b)| b[..] == [i as u8; 3]));
}

#[test]
fn over_budget_exposes_the_budget_refusal_as_its_source_and_does_not_repeat_it() {
    let budget = MemoryBudget::new(10);
    let (tx, _rx) = watermark::channel::<Vec<u8>>(Config::builder().budget(Some(budget)).build());
    let err = tx.try_send(vec![0; 11]).unwrap_err();
    let source = err.source().expect("the budget's refusal is the source");
    let budget_err = source.downcast_ref::<BudgetError>().expect("a BudgetError");
    let shown = err.to_string();
    assert!(
        !shown.contains(&budget_err.to_string()),
        "the cause is printed by the chain, not repeated: {shown}"
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::OutOfMemory);
}

#[test]
fn closed_keeps_the_reason_as_its_source() {
    let (tx, rx) = watermark::channel::<Vec<u8>>(Config::default());
    drop(rx);
    let err = tx.try_send(vec![1]).unwrap_err();
    assert!(matches!(err, SendError::Closed { .. }));
    let reason = err.source().unwrap().downcast_ref::<CloseReason>().unwrap();
    assert!(matches!(reason, CloseReason::ReceiverDropped));
    assert!(!err.to_string().contains(&reason.to_string()));
}

/// Fails every write with the given kind.
struct Failing(io::ErrorKind);

impl AsyncWrite for Failing {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.0.into()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.0.into()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_stream_failing_with_would_block_never_makes_a_refusal_read_would_block() {
    let (tx, writer) = WatermarkWriter::builder()
        .evict_after(None)
        .stall_timeout(None)
        .build(Failing(io::ErrorKind::WouldBlock));
    let task = writer.spawn();
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    let report = timeout(WAIT, task).await.unwrap().unwrap();
    let CloseReason::Io(cause) = &report.reason else {
        panic!("expected an I/O failure, got {:?}", report.reason);
    };
    assert_eq!(
        cause.kind(),
        io::ErrorKind::WouldBlock,
        "the cause is kept as it was"
    );
    assert!(
        report.reason.source().is_some(),
        "the I/O error is the reason's source"
    );
    let refused = tx.try_send(Bytes::from_static(b"y")).unwrap_err();
    assert_ne!(io::Error::from(refused).kind(), io::ErrorKind::WouldBlock);
    assert_ne!(
        io::Error::from(report.reason).kind(),
        io::ErrorKind::WouldBlock
    );
}

#[tokio::test(start_paused = true)]
async fn eviction_is_on_only_with_some_delay() {
    // A stream that never takes a byte keeps the queue unwritable.
    struct Stuck;
    impl AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }
    let limits = watermark::Limits::new(1, 2, 100);
    for (evict, expect_evicted) in [(None, false), (Some(Duration::from_secs(5)), true)] {
        let (tx, writer) = WatermarkWriter::builder()
            .limits(limits)
            .evict_after(evict)
            .build(Stuck);
        let task = writer.spawn();
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        let ended = timeout(Duration::from_secs(60), tx.closed()).await;
        assert_eq!(ended.is_ok(), expect_evicted, "evict_after({evict:?})");
        assert_eq!(tx.metrics().evicted, expect_evicted);
        task.abort();
    }
}

#[test]
fn marks_from_a_configuration_are_refused_with_the_reason_not_a_panic() {
    use tidegate::watermark::{Limits, LimitsError};

    assert_eq!(
        Limits::try_new(64, 32, 128),
        Err(LimitsError::Unordered {
            low: 64,
            high: 32,
            hard: 128
        })
    );
    assert_eq!(
        Limits::try_new(1, 2, 1),
        Err(LimitsError::Unordered {
            low: 1,
            high: 2,
            hard: 1
        })
    );
    assert!(matches!(
        Limits::try_new(0, 0, usize::MAX),
        Err(LimitsError::HardTooLarge {
            hard: usize::MAX,
            ..
        })
    ));
    let limits = Limits::try_new(8, 16, 32).unwrap();
    assert_eq!((limits.low(), limits.high(), limits.hard()), (8, 16, 32));
    let io: std::io::Error = Limits::try_new(2, 1, 3).unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}
