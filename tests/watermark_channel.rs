//! The watermark channel on its own: hysteresis, hard cap, budget, waiting senders, the `Sink`, live limits.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tidegate::watermark::{
    self, CloseReason, Config, Limits, Receiver, SendError, Sender, WatermarkMetrics,
};
use tidegate::{BudgetError, MemoryBudget};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Sender<Bytes>>();
    assert_send_sync::<Receiver<Bytes>>();
    assert_send_sync::<SendError<Bytes>>();
    assert_send_sync::<CloseReason>();
    assert_send_sync::<WatermarkMetrics>();
    assert_send_sync::<watermark::WatermarkWriter<tokio::net::TcpStream>>();
    assert_send_sync::<watermark::FramedSender<Bytes, tokio_util::codec::LengthDelimitedCodec>>();
    assert_send::<watermark::WriterReport>();
}

fn channel(low: usize, high: usize, hard: usize) -> (Sender<Vec<u8>>, Receiver<Vec<u8>>) {
    watermark::channel(
        Config::builder()
            .limits(Limits::new(low, high, hard))
            .build(),
    )
}

#[tokio::test]
async fn writability_has_hysteresis_and_every_flip_is_observed() {
    let (tx, mut rx) = channel(10, 20, 40);
    let mut watch = tx.watch_writability();
    tx.try_send(vec![0; 20]).unwrap();
    assert!(tx.is_writable(), "at the high mark is still writable");
    tx.try_send(vec![0; 5]).unwrap();
    assert!(!tx.is_writable());
    watch.changed().await.unwrap();
    assert!(!*watch.borrow_and_update());
    rx.recv().await.unwrap(); // the 20-byte item: 5 left, at or below low
    assert_eq!(tx.pending_bytes(), 5);
    assert!(tx.is_writable());
    watch.changed().await.unwrap();
    assert!(*watch.borrow_and_update());

    tx.try_send(vec![0; 16]).unwrap(); // 21
    assert!(!tx.is_writable());
    rx.recv().await.unwrap(); // 16 left: between the marks
    assert!(!tx.is_writable(), "still above low");
    rx.recv().await.unwrap();
    assert!(tx.is_writable());
    assert_eq!(tx.metrics().writability_flips, 4);
}

#[tokio::test]
async fn the_hard_cap_refuses_and_returns_the_item() {
    let (tx, _rx) = channel(10, 20, 40);
    tx.try_send(vec![1; 35]).unwrap();
    match tx.try_send(vec![2; 6]) {
        Err(SendError::Full {
            item,
            weight: 6,
            queued: 35,
            hard: 40,
        }) => assert_eq!(item, vec![2; 6]),
        other => panic!("expected Full, got {other:?}"),
    }
    tx.try_send(vec![3; 5]).unwrap(); // exactly hard
    match tx.send(vec![4; 41]).await {
        Err(SendError::TooLarge {
            item,
            weight: 41,
            hard: 40,
        }) => assert_eq!(item.len(), 41),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let m = tx.metrics();
    assert_eq!(
        (m.queued_bytes, m.queued_items, m.peak_bytes, m.refused),
        (40, 2, 40, 2)
    );
}

#[tokio::test]
async fn the_budget_is_charged_for_queued_bytes_and_refusals_return_the_item() {
    let budget = MemoryBudget::new(100);
    let config = Config::builder()
        .limits(Limits::new(1000, 2000, 4000))
        .budget(Some(budget.clone()))
        .build();
    let (tx, mut rx) = watermark::channel::<Vec<u8>>(config);
    tx.try_send(vec![0; 60]).unwrap();
    tx.try_send(vec![0; 30]).unwrap();
    assert_eq!(budget.used(), 90);
    match tx.try_send(vec![9; 20]) {
        Err(SendError::OverBudget {
            item,
            error:
                BudgetError::Exhausted {
                    requested: 20,
                    used: 90,
                    limit: 100,
                },
        }) => {
            assert_eq!(item, vec![9; 20])
        }
        other => panic!("expected OverBudget, got {other:?}"),
    }
    // `send` waits for the budget instead.
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(vec![0; 20]).await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    assert_eq!(rx.recv().await.unwrap().len(), 60);
    assert!(waiting.await.unwrap());
    assert_eq!(budget.used(), 50);
    drop(rx); // undelivered items give their bytes back too
    assert_eq!(budget.used(), 0);
    let m = tx.metrics();
    assert_eq!((m.undelivered_items, m.undelivered_bytes), (2, 50));
}

#[tokio::test]
async fn send_waits_while_unwritable_and_resumes_only_at_the_low_mark() {
    let (tx, mut rx) = channel(10, 20, 100);
    for _ in 0..5 {
        tx.try_send(vec![0; 5]).unwrap(); // 25 > high
    }
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(vec![7; 1]).await.is_ok() }
    });
    for _ in 0..2 {
        rx.recv().await.unwrap(); // 20, then 15: above low
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "send resumed above the low mark");
    }
    rx.recv().await.unwrap(); // 10: at low
    assert!(waiting.await.unwrap());
    assert_eq!(tx.pending_bytes(), 11);
}

#[tokio::test]
async fn a_cancelled_send_queues_nothing_and_a_later_one_still_wakes() {
    let (tx, mut rx) = channel(0, 1, 10);
    tx.try_send(vec![0; 2]).unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(10), tx.send(vec![1; 1])).await;
    assert!(timed_out.is_err());
    assert_eq!(tx.metrics().accepted_items, 1);
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(vec![2; 1]).await.is_ok() }
    });
    tokio::task::yield_now().await;
    rx.recv().await.unwrap();
    assert!(waiting.await.unwrap());
    assert_eq!(rx.recv().await, Some(vec![2]));
}

#[tokio::test]
async fn a_large_item_waits_for_room_under_the_hard_cap() {
    let (tx, mut rx) = channel(10, 20, 30);
    tx.try_send(vec![0; 8]).unwrap();
    tx.try_send(vec![0; 8]).unwrap(); // 16: writable, but 25 more would pass hard
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(vec![1; 25]).await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    rx.recv().await.unwrap(); // 8 + 25 = 33 > 30: still no room
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    rx.recv().await.unwrap();
    assert!(waiting.await.unwrap());
}

#[tokio::test]
async fn raising_the_marks_live_wakes_waiting_senders() {
    let (tx, mut rx) = channel(10, 20, 100);
    tx.try_send(vec![0; 30]).unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(vec![1; 1]).await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    tx.set_limits(Limits::new(40, 50, 100));
    assert!(tx.is_writable());
    assert!(waiting.await.unwrap());
    assert_eq!(tx.limits(), Limits::new(40, 50, 100));
    tx.set_limits(Limits::new(5, 10, 100));
    assert!(!tx.is_writable(), "31 bytes are over the lowered high mark");
    assert_eq!(rx.recv().await.unwrap().len(), 30);
    assert!(tx.is_writable());
}

#[tokio::test]
async fn the_sink_forwards_a_stream_with_backpressure() {
    let (tx, mut rx) =
        watermark::channel::<Bytes>(Config::builder().limits(Limits::new(64, 128, 256)).build());
    let producer = tokio::spawn(async move {
        let mut sink = tx;
        let items = futures_util::stream::iter(
            (0..1000u32).map(|i| Ok(Bytes::from(i.to_be_bytes().to_vec()))),
        );
        sink.send_all(&mut items.boxed())
            .await
            .map_err(|e| e.to_string())
    });
    let mut next = 0u32;
    while let Some(item) = rx.recv().await {
        assert_eq!(item[..], next.to_be_bytes());
        next += 1;
    }
    producer.await.unwrap().unwrap();
    assert_eq!(next, 1000);
    assert!(rx.metrics().peak_bytes <= 256);
}

#[tokio::test]
async fn closing_and_dropping_report_the_reason() {
    let (tx, mut rx) = channel(10, 20, 40);
    tx.try_send(vec![1]).unwrap();
    tx.close();
    assert!(matches!(tx.closed().await, CloseReason::Closed));
    assert!(matches!(
        tx.send(vec![2]).await,
        Err(SendError::Closed {
            reason: CloseReason::Closed,
            ..
        })
    ));
    assert_eq!(
        rx.try_recv().unwrap(),
        Some(vec![1]),
        "queued items are still delivered"
    );
    assert!(matches!(rx.try_recv(), Err(CloseReason::Closed)));
    assert_eq!(rx.recv().await, None);

    let (tx, rx) = channel(10, 20, 40);
    tx.try_send(vec![1; 3]).unwrap();
    drop(rx);
    assert!(matches!(tx.closed().await, CloseReason::ReceiverDropped));
    assert_eq!(tx.metrics().undelivered_bytes, 3);
}

#[tokio::test]
async fn abort_drops_what_the_receiver_holds_too() {
    let (tx, mut rx) = channel(10, 20, 40);
    for i in 0..4 {
        tx.try_send(vec![i; 2]).unwrap();
    }
    assert_eq!(rx.recv().await, Some(vec![0; 2])); // the receiver now holds the other three
    tx.abort();
    assert_eq!(rx.recv().await, None);
    let m = tx.metrics();
    assert_eq!(
        (
            m.delivered_items,
            m.undelivered_items,
            m.undelivered_bytes,
            m.queued_bytes
        ),
        (1, 3, 6, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_deliver_everything_and_end_writable() {
    let (tx, mut rx) = channel(100, 200, 300);
    let producers: Vec<_> = (0..4u8)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..2000u32 {
                    tx.send(vec![p; 1 + (i % 7) as usize]).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut counts = [0u32; 4];
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 16, 64).await > 0 {
        for item in batch.drain(..) {
            counts[item[0] as usize] += 1;
        }
    }
    for p in producers {
        p.await.unwrap();
    }
    assert_eq!(counts, [2000; 4]);
    let m = rx.metrics();
    assert_eq!((m.queued_bytes, m.queued_items), (0, 0));
    assert!(m.writable, "an empty queue is writable");
    assert!(m.peak_bytes <= 300);
}
