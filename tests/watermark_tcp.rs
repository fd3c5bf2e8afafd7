//! The watermark writer against a real loopback TCP peer that stops reading.

use std::time::Duration;

use bytes::Bytes;
use tidegate::watermark::{CloseReason, Limits, SendError, WatermarkWriter};
use tidegate::MemoryBudget;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const FRAME: usize = 1024;

/// A connected pair with small kernel buffers, so a peer that stops reading stalls the writer after a few KiB.
async fn small_buffer_pair() -> (TcpStream, TcpStream) {
    let listener = TcpSocket::new_v4().unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = listener.listen(1).unwrap();
    let client = TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(4096).unwrap();
    let (client, accepted) = tokio::join!(
        client.connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    (client.unwrap(), accepted.unwrap().0)
}

fn frame(byte: u8) -> Bytes {
    Bytes::from(vec![byte; FRAME])
}

/// Queues frames until the hard cap refuses one while the writer is stuck on the stalled socket.
async fn fill_until_refused(tx: &tidegate::watermark::Sender<Bytes>) -> usize {
    let mut refusals = 0;
    let mut accepted = 0;
    while refusals < 20 {
        match tx.try_send(frame(1)) {
            Ok(()) => {
                accepted += 1;
                refusals = 0;
            }
            Err(SendError::Full { item, .. }) => {
                assert_eq!(item.len(), FRAME, "the refused frame comes back");
                refusals += 1;
                // Let the writer push what the kernel still takes; stop once refusals are stable.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Eviction may close the queue while we are still probing; the caller checks the reason.
            Err(SendError::Closed { .. }) => break,
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    accepted
}

#[tokio::test]
async fn stalled_peer_stops_the_queue_at_the_hard_cap_and_send_resumes_after_draining_to_low() {
    let (client, mut server) = small_buffer_pair().await;
    let budget = MemoryBudget::new(1 << 20);
    let limits = Limits::new(16 * FRAME, 32 * FRAME, 64 * FRAME);
    let (tx, writer) = WatermarkWriter::builder()
        .limits(limits)
        .budget(Some(budget.clone()))
        .build(client);
    let task = writer.spawn();
    let mut writability = tx.watch_writability();

    let accepted = fill_until_refused(&tx).await;
    let queued = tx.pending_bytes();
    assert!(queued <= limits.hard(), "queue {queued} over the hard cap");
    assert!(
        queued > limits.hard() - FRAME,
        "queue {queued} should be full to within one frame"
    );
    assert_eq!(
        budget.used(),
        queued,
        "the budget is charged exactly the queued bytes"
    );
    assert!(!tx.is_writable());
    assert!(!*writability.borrow_and_update());
    let m = tx.metrics();
    assert_eq!(m.queued_bytes, queued);
    assert_eq!(m.peak_bytes, queued);
    assert!(m.refused >= 20);
    assert!(accepted > 64, "the kernel took some frames before stalling");

    // A send waits while unwritable.
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(frame(2)).await.map_err(|e| e.to_string()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "send must wait while the queue is unwritable"
    );

    // The peer reads again: the queue drains to low, turns writable, and the send goes through.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            match server.read(&mut buf).await.unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    });
    writability.wait_for(|w| *w).await.unwrap();
    // Writable again only at the low mark: the reader keeps draining, so at most the woken send's frame is on top.
    assert!(
        tx.pending_bytes() <= limits.low() + FRAME,
        "turned writable above low"
    );
    waiting.await.unwrap().unwrap();
    assert!(tx.metrics().writability_flips >= 2);
    tx.close();
    let report = task.await.unwrap();
    assert!(report.reason.is_graceful());
    let expected = (accepted + 1) * FRAME;
    assert_eq!(report.metrics.sent_bytes, expected as u64);
    assert_eq!(report.metrics.undelivered_items, 0);
    assert_eq!(reader.await.unwrap(), expected);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn a_peer_that_stays_stalled_is_evicted_and_every_sender_learns_it() {
    let (client, _server_not_reading) = small_buffer_pair().await;
    let budget = MemoryBudget::new(1 << 20);
    let (tx, writer) = WatermarkWriter::builder()
        .limits(Limits::new(4 * FRAME, 8 * FRAME, 16 * FRAME))
        .budget(Some(budget.clone()))
        .evict_after(Some(Duration::from_millis(500)))
        .build(client);
    let task = writer.spawn();
    let senders: Vec<_> = (0..3).map(|_| tx.clone()).collect();
    let watchers: Vec<_> = senders
        .into_iter()
        .map(|tx| tokio::spawn(async move { tx.closed().await }))
        .collect();

    let accepted = fill_until_refused(&tx).await as u64;
    assert!(!tx.is_writable());
    let report = task.await.unwrap();
    assert!(
        matches!(report.reason, CloseReason::Evicted { after } if after == Duration::from_millis(500))
    );
    for watcher in watchers {
        assert!(matches!(
            watcher.await.unwrap(),
            CloseReason::Evicted { .. }
        ));
    }
    let m = report.metrics;
    assert!(m.evicted);
    assert!(m.time_unwritable >= Duration::from_millis(500));
    assert_eq!(m.accepted_items, accepted);
    assert_eq!(
        m.delivered_items + m.undelivered_items,
        accepted,
        "every accepted frame is accounted for"
    );
    assert!(m.undelivered_items > 0);
    assert_eq!(m.undelivered_bytes, m.undelivered_items * FRAME as u64);
    assert_eq!((m.queued_bytes, m.queued_items), (0, 0));
    assert_eq!(budget.used(), 0, "eviction gives the budget back");
    match tx.try_send(frame(3)) {
        Err(SendError::Closed {
            item,
            reason: CloseReason::Evicted { .. },
        }) => assert_eq!(item.len(), FRAME),
        other => panic!("expected Closed(Evicted), got {other:?}"),
    }
}
