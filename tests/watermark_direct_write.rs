//! Senders writing for a spawned writer while it is idle: the frames, their order and the accounting are the same as
//! the writer's own, a stream that pends goes back to the writer (whose waker it then holds), and an error a sender
//! meets stops the writer with it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use proptest::prelude::*;
use tidegate::watermark::{CloseReason, Limits, SendError, Sender, WatermarkWriter, WriterReport};
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

/// A stream that takes bytes only while it has allowance, in writes of at most `chunk` bytes, and otherwise waits
/// (keeping the waker of the last poll, as a socket does) until [`open`](Valve::open) adds allowance.
#[derive(Clone)]
struct Valve(Arc<Mutex<ValveState>>);

struct ValveState {
    written: Vec<u8>,
    allowance: usize,
    chunk: usize,
    vectored: bool,
    /// Writes still to fail, from the first.
    failures: usize,
    waker: Option<Waker>,
    writes: usize,
}

impl Valve {
    fn new(allowance: usize, chunk: usize, vectored: bool) -> Self {
        Valve(Arc::new(Mutex::new(ValveState {
            written: Vec::new(),
            allowance,
            chunk,
            vectored,
            failures: 0,
            waker: None,
            writes: 0,
        })))
    }

    fn open(&self, bytes: usize) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.allowance = state.allowance.saturating_add(bytes);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn written(&self) -> Vec<u8> {
        self.0.lock().unwrap().written.clone()
    }

    fn written_len(&self) -> usize {
        self.0.lock().unwrap().written.len()
    }

    fn write(&self, cx: &mut Context<'_>, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        let mut state = self.0.lock().unwrap();
        if state.failures > 0 {
            state.failures -= 1;
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if state.allowance == 0 {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut room = state.allowance.min(state.chunk);
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(room);
            state.written.extend_from_slice(&buf[..take]);
            n += take;
            room -= take;
        }
        state.allowance -= n;
        state.writes += 1;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Valve {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(cx, &[buf])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.write(cx, &bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.lock().unwrap().vectored
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Closes the queue and waits (at most 10 s) for the writer to end gracefully.
async fn close_and_finish(tx: &Sender<Bytes>, task: JoinHandle<WriterReport>) -> WriterReport {
    tx.close();
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the writer finishes")
        .unwrap();
    assert!(report.reason.is_graceful(), "{:?}", report.reason);
    report
}

fn frame(byte: u8, len: usize) -> Bytes {
    Bytes::from(vec![byte; len])
}

/// With the stream taking everything, no send ever waits: each crosses the high mark and writes the queue itself,
/// in order, before the writer task has run once.
#[tokio::test(flavor = "current_thread")]
async fn sends_write_for_an_idle_spawned_writer_and_never_wait() {
    let valve = Valve::new(usize::MAX, usize::MAX, true);
    let (tx, writer) = WatermarkWriter::new(valve.clone());
    let task = writer.spawn();
    let mut expected = Vec::new();
    for i in 0..64u8 {
        let item = frame(i, 4096);
        expected.extend_from_slice(&item);
        let sent = tx.send(item).now_or_never();
        assert!(
            matches!(sent, Some(Ok(()))),
            "send {i} had to wait at {} queued bytes",
            tx.pending_bytes()
        );
    }
    // 256 KiB went through a queue whose high mark is 64 KiB without a single wait: each send that found the queue
    // at its low mark (32 KiB) wrote it, so the queue never passed the high mark.
    assert!(tx.pending_bytes() < 32 * 1024);
    assert_eq!(tx.metrics().writability_flips, 0);
    assert!(tx.metrics().peak_bytes < 64 * 1024);
    let report = close_and_finish(&tx, task).await;
    assert_eq!(valve.written(), expected);
    assert_eq!(report.metrics.delivered_items, 64);
    assert_eq!(report.metrics.sent_bytes, expected.len() as u64);
}

/// A writer run in the caller's own task (not spawned) is never written for: a send past the high mark waits.
#[tokio::test(flavor = "current_thread")]
async fn a_writer_that_is_only_run_is_not_written_for() {
    let valve = Valve::new(usize::MAX, usize::MAX, true);
    let (tx, writer) = WatermarkWriter::new(valve.clone());
    let task = tokio::spawn(writer.run());
    tx.send(frame(1, 70 * 1024)).await.unwrap();
    assert!(!tx.is_writable());
    assert!(tx.send(frame(2, 10)).now_or_never().is_none());
    assert_eq!(valve.written_len(), 0, "nobody wrote before the writer ran");
    close_and_finish(&tx, task).await;
    assert_eq!(valve.written_len(), 70 * 1024);
}

/// A stream that pends while a sender writes is handed back to the writer, which polls it with its own waker: the
/// valve wakes only the waker of the last poll, so a handover that left the sender's waker there would hang here.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stream_that_pends_under_a_sender_goes_back_to_the_writer() {
    let valve = Valve::new(10 * 1024, 3000, true);
    let (tx, writer) = WatermarkWriter::new(valve.clone());
    let task = writer.spawn();
    let frames: Vec<Bytes> = (0..100u8).map(|i| frame(i, 3 * 1024)).collect();
    let total: usize = frames.iter().map(Bytes::len).sum();
    let opener = tokio::spawn({
        let valve = valve.clone();
        async move {
            let mut opened = 10 * 1024;
            while opened < total {
                tokio::time::sleep(Duration::from_millis(1)).await;
                valve.open(7 * 1024);
                opened += 7 * 1024;
            }
        }
    });
    let producer = async {
        for item in frames.iter().cloned() {
            tx.send(item).await.unwrap();
        }
        tx.close();
        task.await.unwrap()
    };
    let report = tokio::time::timeout(Duration::from_secs(60), producer)
        .await
        .expect("every frame is written: the writer was woken by the stream");
    opener.await.unwrap();
    assert!(report.reason.is_graceful());
    assert_eq!(valve.written(), frames.concat());
    assert_eq!(report.metrics.delivered_items, 100);
}

/// An error a sender's write meets is the writer's: it stops with it, the queue closes with it, and every frame is
/// accounted for. The stream fails only that one write: a writer that went on would deliver everything.
#[tokio::test(flavor = "current_thread")]
async fn an_error_in_a_senders_write_stops_the_writer_with_it() {
    let valve = Valve::new(usize::MAX, usize::MAX, true);
    valve.0.lock().unwrap().failures = 1;
    let (tx, writer) = WatermarkWriter::new(valve.clone());
    let task = writer.spawn();
    let mut sent = 0u64;
    let err = loop {
        assert!(sent < 1000, "no send learned of the failure");
        match tokio::time::timeout(Duration::from_secs(10), tx.send(frame(7, 4096)))
            .await
            .expect("the send ends")
        {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
    };
    assert!(sent >= 2, "the first sends were queued ({sent})");
    let SendError::Closed { reason, .. } = err else {
        panic!("expected Closed, got {err:?}");
    };
    assert!(matches!(reason, CloseReason::Io(_)), "{reason:?}");
    let report = task.await.unwrap();
    assert!(
        matches!(report.reason, CloseReason::Io(_)),
        "{:?}",
        report.reason
    );
    let m = report.metrics;
    assert_eq!(m.delivered_items, 0);
    assert_eq!(m.undelivered_items, sent);
    assert_eq!(m.undelivered_bytes, sent * 4096);
    assert_eq!(m.queued_bytes, 0);
    assert_eq!(valve.written_len(), 0);
}

/// One frame on the wire: sender, sequence number, payload length, then the payload (the sender's byte).
fn encode(sender: u8, seq: u16, len: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(7 + len);
    buf.put_u8(sender);
    buf.put_u16(seq);
    buf.put_u32(len as u32);
    buf.put_bytes(sender, len);
    buf.freeze()
}

/// Splits the wire back into frames, checking each payload.
fn decode(mut wire: &[u8]) -> Vec<(u8, u16)> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        assert!(wire.len() >= 7, "a torn header");
        let sender = wire[0];
        let seq = u16::from_be_bytes([wire[1], wire[2]]);
        let len = u32::from_be_bytes([wire[3], wire[4], wire[5], wire[6]]) as usize;
        let payload = &wire[7..7 + len];
        assert!(payload.iter().all(|&b| b == sender), "a torn payload");
        frames.push((sender, seq));
        wire = &wire[7 + len..];
    }
    frames
}

#[derive(Debug, Clone)]
struct Case {
    /// Per sender: payload lengths, and whether an empty frame follows each.
    senders: Vec<Vec<(usize, bool)>>,
    low: usize,
    high: usize,
    chunk: usize,
    first_allowance: usize,
    openings: Vec<usize>,
    vectored: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            prop::collection::vec((0usize..6000, prop::bool::weighted(0.1)), 1..40),
            1..4,
        ),
        1usize..32 * 1024,
        1usize..32 * 1024,
        1usize..20_000,
        0usize..40_000,
        prop::collection::vec(1usize..20_000, 1..16),
        any::<bool>(),
    )
        .prop_map(
            |(senders, low, extra, chunk, first_allowance, openings, vectored)| Case {
                senders,
                low,
                high: low + extra,
                chunk,
                first_allowance,
                openings,
                vectored,
            },
        )
}

/// Runs one case on a two-thread runtime: senders race each other and the writer for the stream, which takes
/// random partial writes and pends until the opener lets more through.
fn run_case(case: &Case) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let valve = Valve::new(case.first_allowance, case.chunk, case.vectored);
        let limits = Limits::new(case.low, case.high, usize::MAX / 2);
        let (tx, writer) = WatermarkWriter::builder()
            .limits(limits)
            .build(valve.clone());
        let task = writer.spawn();
        let total: usize = case.senders.iter().flatten().map(|&(len, _)| 7 + len).sum();
        let opener = tokio::spawn({
            let valve = valve.clone();
            let openings = case.openings.clone();
            async move {
                let mut i = 0;
                while valve.written_len() < total {
                    valve.open(openings[i % openings.len()]);
                    i += 1;
                    tokio::task::yield_now().await;
                }
            }
        });
        let producers: Vec<_> = case
            .senders
            .iter()
            .enumerate()
            .map(|(id, frames)| {
                let tx = tx.clone();
                let frames = frames.clone();
                tokio::spawn(async move {
                    for (seq, (len, then_empty)) in frames.into_iter().enumerate() {
                        tx.send(encode(id as u8, seq as u16, len)).await.unwrap();
                        if then_empty {
                            tx.send(Bytes::new()).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        let finish = async {
            for producer in producers {
                producer.await.unwrap();
            }
            tx.close();
            task.await.unwrap()
        };
        let report = tokio::time::timeout(Duration::from_secs(30), finish)
            .await
            .expect("every frame is written");
        opener.await.unwrap();
        assert!(report.reason.is_graceful(), "{:?}", report.reason);
        let wire = valve.written();
        assert_eq!(wire.len(), total);
        let frames = decode(&wire);
        for (id, sent) in case.senders.iter().enumerate() {
            let seqs: Vec<u16> = frames
                .iter()
                .filter(|(sender, _)| *sender == id as u8)
                .map(|&(_, seq)| seq)
                .collect();
            let expected: Vec<u16> = (0..sent.len() as u16).collect();
            assert_eq!(seqs, expected, "sender {id}'s frames, in order");
        }
        let empties = case.senders.iter().flatten().filter(|f| f.1).count() as u64;
        let m = report.metrics;
        assert_eq!(m.delivered_items, frames.len() as u64 + empties);
        assert_eq!(m.undelivered_items, 0);
        assert_eq!(m.sent_bytes, total as u64);
        assert_eq!(m.queued_bytes, 0);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whoever writes (the writer task or a sender, on either thread), every frame reaches the stream whole, once,
    /// in each sender's order, and is counted once.
    #[test]
    fn senders_and_the_writer_share_the_stream_without_tearing_or_losing_frames(case in cases()) {
        run_case(&case);
    }
}

/// A stream without vectored writes is written for too (its frames coalesced as the writer coalesces them).
#[tokio::test(flavor = "current_thread")]
async fn a_stream_without_vectored_writes_is_written_for_too() {
    let valve = Valve::new(usize::MAX, usize::MAX, false);
    let (tx, writer) = WatermarkWriter::builder()
        .limits(Limits::new(1024, 2048, 8192))
        .build(valve.clone());
    let task = writer.spawn();
    for i in 0..32u8 {
        assert!(matches!(
            tx.send(frame(i, 1500)).now_or_never(),
            Some(Ok(()))
        ));
    }
    close_and_finish(&tx, task).await;
    assert_eq!(valve.written_len(), 32 * 1500);
}

/// A `FramedSender` used as a `Sink` writes for the writer too: a whole stream of frames is sent without a wait.
#[tokio::test(flavor = "current_thread")]
async fn a_framed_sender_sink_writes_for_an_idle_writer() {
    use futures_util::SinkExt;
    use tidegate::watermark::FramedSender;
    use tokio_util::codec::{Decoder, LengthDelimitedCodec};

    let valve = Valve::new(usize::MAX, usize::MAX, true);
    let (tx, writer) = WatermarkWriter::new(valve.clone());
    let task = writer.spawn();
    let mut framed = FramedSender::new(tx, LengthDelimitedCodec::new());
    let frames: Vec<Bytes> = (0..2000u32).map(|i| frame(i as u8, 100)).collect();
    let mut items = futures_util::stream::iter(frames.clone().into_iter().map(Ok));
    // 2000 frames of 104 bytes are three high marks' worth: without writes by the sender, this would wait.
    assert!(matches!(
        framed.send_all(&mut items).now_or_never(),
        Some(Ok(()))
    ));
    close_and_finish(framed.sender(), task).await;
    let mut wire = BytesMut::from(&valve.written()[..]);
    let mut codec = LengthDelimitedCodec::new();
    let mut decoded = Vec::new();
    while let Some(frame) = codec.decode(&mut wire).unwrap() {
        decoded.push(frame.freeze());
    }
    assert_eq!(decoded, frames);
}

/// Bytes a sender wrote into a buffering stream are flushed by the writer once the queue runs dry, without a close.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn bytes_a_sender_wrote_are_flushed_when_the_queue_runs_dry() {
    let valve = Valve::new(usize::MAX, usize::MAX, false);
    let (tx, writer) = WatermarkWriter::builder()
        .limits(Limits::new(2048, 4096, 1 << 20))
        .build(tokio::io::BufWriter::with_capacity(
            64 * 1024,
            valve.clone(),
        ));
    let task = writer.spawn();
    for i in 0..100u8 {
        assert!(matches!(
            tx.send(frame(i, 100)).now_or_never(),
            Some(Ok(()))
        ));
    }
    // The sender wrote the queue into the buffer whenever it reached the low mark; less than that waits.
    assert!(tx.pending_bytes() < 2048, "{}", tx.pending_bytes());
    assert_eq!(valve.written_len(), 0, "still in the buffer");
    tokio::time::timeout(Duration::from_secs(10), async {
        while valve.written_len() < 100 * 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the writer flushes the buffer");
    tx.close();
    assert!(task.await.unwrap().reason.is_graceful());
}
