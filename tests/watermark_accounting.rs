//! Nothing accepted is lost and the counters count exactly: racing producers, `FramedSender` batches that meet a
//! full queue, refusals counted once, and frames held by a writer or a `FramedSender` when it is dropped.

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tidegate::watermark::{
    self, CloseReason, Config, FramedSender, Limits, Receiver, SendError, Sender, WatermarkWriter,
};
use tidegate::MemoryBudget;
use tokio::time::timeout;
use tokio_util::codec::BytesCodec;

/// Generous: only reached if something hangs.
const DEADLINE: Duration = Duration::from_secs(30);

fn bytes_channel(low: usize, high: usize, hard: usize) -> (Sender<Bytes>, Receiver<Bytes>) {
    watermark::channel(
        Config::builder()
            .limits(Limits::new(low, high, hard))
            .build(),
    )
}

/// The frames a `FramedSender` refusal hands back, if the error carries them.
fn handed_back(err: io::Error) -> Result<SendError<Bytes>, io::Error> {
    match err.get_ref().map(|inner| inner.is::<SendError<Bytes>>()) {
        Some(true) => Ok(*err
            .into_inner()
            .and_then(|inner| inner.downcast().ok())
            .expect("checked above")),
        _ => Err(err),
    }
}

#[tokio::test(start_paused = true)]
async fn a_framed_sink_waits_for_room_instead_of_dropping_its_batch() {
    // 16 queued bytes are at the high mark, so the queue is writable, but a 10-byte batch does not fit under 20.
    let (tx, mut rx) = bytes_channel(0, 16, 20);
    tx.try_send(Bytes::from(vec![0u8; 16])).unwrap();
    let mut framed = FramedSender::new(tx.clone(), BytesCodec::new());
    let frame = Bytes::from_static(b"ten bytes!");
    let early = timeout(Duration::from_millis(50), framed.send(frame.clone())).await;
    assert!(
        early.is_err(),
        "with no room the sink must wait, not fail: {early:?}"
    );
    assert_eq!(framed.buffered_bytes(), 10, "the batch stays with the sink");
    assert_eq!(rx.recv().await.unwrap().len(), 16);
    timeout(DEADLINE, SinkExt::<Bytes>::flush(&mut framed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), frame);
    let m = tx.metrics();
    assert_eq!((m.accepted_items, m.delivered_items, m.refused), (2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_framed_flush_keeps_its_frames() {
    let (tx, mut rx) = bytes_channel(0, 4, 8);
    tx.try_send(Bytes::from(vec![0u8; 8])).unwrap();
    let mut framed = FramedSender::new(tx.clone(), BytesCodec::new());
    let early = timeout(
        Duration::from_millis(50),
        framed.send(Bytes::from_static(b"abc")),
    )
    .await;
    assert!(early.is_err(), "a full queue makes the flush wait");
    assert_eq!(
        framed.buffered_bytes(),
        3,
        "cancelling the wait keeps the frames"
    );
    rx.recv().await.unwrap();
    timeout(DEADLINE, framed.flush()).await.unwrap().unwrap();
    assert_eq!(&rx.recv().await.unwrap()[..], b"abc");
}

#[tokio::test]
async fn framed_refusals_hand_the_frames_back_and_never_say_would_block() {
    let budget = MemoryBudget::new(4);
    let (tx, _rx) = watermark::channel::<Bytes>(
        Config::builder()
            .limits(Limits::new(0, 4, 8))
            .budget(Some(budget))
            .build(),
    );
    // Heavier than the hard cap: InvalidInput, frames back.
    let mut framed = FramedSender::new(tx.clone(), BytesCodec::new());
    let err = framed
        .send(Bytes::from_static(b"nine bytes"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let back = handed_back(err).expect("the refused frames come back");
    assert!(matches!(back, SendError::TooLarge { weight: 10, .. }));
    assert_eq!(&back.into_inner()[..], b"nine bytes");

    // The sink path, refused by the budget: frames back too.
    let err = SinkExt::send(&mut framed, Bytes::from_static(b"12345"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    assert_eq!(
        &handed_back(err).unwrap().into_inner()[..],
        b"12345",
        "the sink hands the batch back"
    );

    // Closed: the reason's kind, frames back.
    tx.close();
    let err = framed.send(Bytes::from_static(b"late")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert!(matches!(
        handed_back(err).unwrap(),
        SendError::Closed {
            reason: CloseReason::Closed,
            ..
        }
    ));
    assert_eq!(
        tx.metrics().refused,
        2,
        "TooLarge and OverBudget, not Closed"
    );

    // A plain conversion of `Full` is a refusal, not "try again later".
    tx.try_send(Bytes::new()).unwrap_err(); // closed
    let (full_tx, _full_rx) = bytes_channel(0, 1, 1);
    full_tx.try_send(Bytes::from_static(b"x")).unwrap();
    let full = full_tx.try_send(Bytes::from_static(b"y")).unwrap_err();
    assert!(matches!(full, SendError::Full { .. }));
    assert_ne!(io::Error::from(full).kind(), io::ErrorKind::WouldBlock);
}

/// Fixed-size messages: producer id, sequence number, padding. Batches are whole messages concatenated.
const MSG: usize = 12;

fn message(producer: u8, seq: u32) -> Bytes {
    let mut m = BytesMut::with_capacity(MSG);
    m.put_u8(producer);
    m.put_u32(seq);
    m.put_bytes(0xAB, MSG - 5);
    m.freeze()
}

/// What a producer saw: messages it knows were queued, and refused bytes handed back to it.
#[derive(Debug, Default)]
struct Seen {
    errors: u64,
    handed_back_bytes: usize,
}

/// Three `FramedSender` clones driven as sinks (1 to 3 messages a batch) and one plain `send` producer race for a
/// 48-byte queue drained by a slow consumer. Every message must arrive exactly once, or come back in an error.
async fn race_framed_producers(rounds: u32) {
    let (tx, mut rx) = bytes_channel(12, 36, 48);
    let mut tasks = Vec::new();
    for p in 0..3u8 {
        let mut framed = FramedSender::new(tx.clone(), BytesCodec::new());
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut seq = 0;
            for round in 0..rounds {
                for _ in 0..1 + round % 3 {
                    SinkExt::feed(&mut framed, message(p, seq)).await.unwrap();
                    seq += 1;
                }
                if let Err(err) = SinkExt::<Bytes>::flush(&mut framed).await {
                    seen.errors += 1;
                    assert_ne!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
                    let back = handed_back(err).expect("a refused batch comes back");
                    seen.handed_back_bytes += back.into_inner().len();
                }
            }
            (seq, seen)
        }));
    }
    let plain = tx.clone();
    tasks.push(tokio::spawn(async move {
        for seq in 0..rounds {
            plain.send(message(3, seq)).await.unwrap();
        }
        (rounds, Seen::default())
    }));
    drop(tx);

    let mut next = [0u32; 4];
    let mut received = 0usize;
    let consumer = async {
        while let Some(batch) = rx.recv().await {
            assert_eq!(batch.len() % MSG, 0, "batches hold whole messages");
            for m in batch.chunks(MSG) {
                let producer = usize::from(m[0]);
                let seq = u32::from_be_bytes(m[1..5].try_into().unwrap());
                assert_eq!(seq, next[producer], "producer {producer}: in order, once");
                next[producer] += 1;
            }
            received += batch.len();
            tokio::task::yield_now().await; // a slow consumer keeps the queue near its cap
        }
    };
    timeout(DEADLINE, consumer).await.unwrap();
    let mut sent = [0u32; 4];
    let mut seen = Seen::default();
    for (p, task) in tasks.into_iter().enumerate() {
        let (count, s) = task.await.unwrap();
        sent[p] = count;
        seen.errors += s.errors;
        seen.handed_back_bytes += s.handed_back_bytes;
    }
    assert_eq!(seen.errors, 0, "a full queue is waited out, never refused");
    assert_eq!(next, sent, "every accepted message was delivered");
    assert_eq!(received, sent.iter().sum::<u32>() as usize * MSG);
    let m = rx.metrics();
    assert_eq!((m.refused, m.undelivered_items, m.queued_bytes), (0, 0, 0));
    assert_eq!(m.accepted_items, m.delivered_items);
}

#[tokio::test]
async fn racing_framed_producers_lose_nothing_on_one_thread() {
    race_framed_producers(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_framed_producers_lose_nothing_on_many_threads() {
    race_framed_producers(2000).await;
}

/// Producers mix `send` and `try_send` of items that fit, items over the hard cap and items over the budget's
/// limit, against a slow consumer. Each counts its own errors; `refused` must equal their sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_counts_exactly_the_refusals_producers_saw() {
    const ROUNDS: usize = 3000;
    let budget = MemoryBudget::new(40);
    let (tx, mut rx) = watermark::channel::<Vec<u8>>(
        Config::builder()
            .limits(Limits::new(8, 24, 48))
            .budget(Some(budget.clone()))
            .build(),
    );
    let producers: Vec<_> = (0..4u8)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut errors, mut accepted_bytes) = (0u64, 0usize);
                for i in 0..ROUNDS {
                    let len = match i % 20 {
                        7 => 50,  // over the hard cap: TooLarge
                        13 => 44, // under the hard cap, over the budget's limit: OverBudget
                        n => 1 + n % 12,
                    };
                    let item = vec![p; len];
                    let result = if i % 5 == 0 {
                        tx.try_send(item)
                    } else {
                        tx.send(item).await
                    };
                    match result {
                        Ok(()) => accepted_bytes += len,
                        Err(err) => {
                            assert!(!err.is_closed());
                            assert_eq!(err.into_inner().len(), len, "the item comes back");
                            errors += 1;
                        }
                    }
                }
                (errors, accepted_bytes)
            })
        })
        .collect();
    drop(tx);
    let mut received = 0usize;
    let consumer = async {
        while let Some(item) = rx.recv().await {
            received += item.len();
            tokio::task::yield_now().await;
        }
    };
    timeout(DEADLINE, consumer).await.unwrap();
    let (mut errors, mut accepted_bytes) = (0u64, 0usize);
    for p in producers {
        let (e, b) = p.await.unwrap();
        errors += e;
        accepted_bytes += b;
    }
    let m = rx.metrics();
    assert!(
        errors >= 2 * 4 * (ROUNDS as u64 / 20),
        "every oversized item is refused"
    );
    assert_eq!(m.refused, errors, "one count per refusal a producer saw");
    assert_eq!(received, accepted_bytes, "received bytes = accepted bytes");
    assert_eq!(m.accepted_items, m.delivered_items);
    assert_eq!((m.queued_bytes, m.undelivered_items), (0, 0));
    assert_eq!(budget.used(), 0);
}

/// Only `send`s of items that always fit, racing each other: waiting for room is never a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_that_wait_out_lost_races_are_not_refusals() {
    const PRODUCERS: u8 = 8;
    const SENDS: u32 = 5000;
    // Items of 8 to 16 bytes under a 24-byte cap: once one is queued, the room is always contested.
    let (tx, mut rx) = bytes_channel(8, 16, 24);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..SENDS {
                    tx.send(Bytes::from(vec![p; 8 + (i % 9) as usize]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut items = 0u64;
    let consumer = async {
        while rx.recv().await.is_some() {
            items += 1;
            tokio::task::yield_now().await;
        }
    };
    timeout(DEADLINE, consumer).await.unwrap();
    for p in producers {
        p.await.unwrap();
    }
    let m = rx.metrics();
    assert_eq!(items, u64::from(PRODUCERS) * u64::from(SENDS));
    assert_eq!((m.refused, m.delivered_items), (0, items));
}

#[tokio::test]
async fn a_send_over_the_budget_limit_is_counted_as_refused() {
    let budget = MemoryBudget::new(10);
    let (tx, _rx) = watermark::channel::<Vec<u8>>(Config::builder().budget(Some(budget)).build());
    let err = tx.send(vec![0; 11]).await.unwrap_err();
    assert!(matches!(err, SendError::OverBudget { .. }));
    assert_eq!(tx.metrics().refused, 1);
}

#[tokio::test]
async fn a_dropped_framed_sender_counts_the_batch_the_queue_refuses() {
    let (tx, mut rx) = bytes_channel(0, 4, 8);
    tx.try_send(Bytes::from(vec![0u8; 8])).unwrap();
    let mut framed = FramedSender::new(tx.clone(), BytesCodec::new());
    framed.feed(Bytes::from_static(b"12345")).await.unwrap();
    drop(framed); // no room: the buffered frames cannot be queued
    let m = tx.metrics();
    assert_eq!(
        (m.accepted_items, m.undelivered_items, m.undelivered_bytes),
        (2, 1, 5)
    );
    assert_eq!(m.refused, 0, "no caller saw a refusal");
    rx.recv().await.unwrap();
    let m = tx.metrics();
    assert_eq!(m.accepted_items, m.delivered_items + m.undelivered_items);
    assert_eq!((m.queued_items, m.queued_bytes), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_writer_dropped_mid_write_counts_its_frames_and_releases_their_bytes() {
    let budget = MemoryBudget::new(1024);
    // The peer never reads: the writer takes the frames, writes 8 bytes and then waits on a full pipe.
    let (client, _server) = tokio::io::duplex(8);
    let (tx, writer) = WatermarkWriter::builder()
        .budget(Some(budget.clone()))
        .build(client);
    for _ in 0..3 {
        tx.try_send(Bytes::from(vec![1u8; 10])).unwrap();
    }
    let task = writer.spawn();
    timeout(DEADLINE, async {
        while tx.metrics().sent_bytes < 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(matches!(
        timeout(DEADLINE, tx.closed()).await.unwrap(),
        CloseReason::ReceiverDropped
    ));
    let m = tx.metrics();
    assert_eq!(
        (m.undelivered_items, m.undelivered_bytes, m.delivered_items),
        (3, 30, 0)
    );
    assert_eq!((m.queued_items, m.queued_bytes), (0, 0));
    assert_eq!(budget.used(), 0, "the frames' budget bytes are released");
}
