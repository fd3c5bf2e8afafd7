//! The watermark writer against a scripted `AsyncWrite`: partial and zero-length writes, errors mid-batch, stalls,
//! and close/abort with frames in flight.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tidegate::watermark::{CloseReason, FramedSender, SendError, WatermarkWriter};
use tokio::io::AsyncWrite;
use tokio_util::codec::LengthDelimitedCodec;

/// What the next write call does. Once the script runs out, writes take everything.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Take at most this many bytes.
    Take(usize),
    /// Return `Ok(0)`.
    Zero,
    /// Fail.
    Fail(io::ErrorKind),
    /// Stay pending without ever waking (a stalled peer).
    Stall,
}

#[derive(Debug, Default)]
struct Log {
    written: Vec<u8>,
    calls: usize,
    slices_per_call: Vec<usize>,
    flushes: usize,
    shutdowns: usize,
}

struct Mock {
    script: VecDeque<Step>,
    vectored: bool,
    log: Arc<Mutex<Log>>,
}

impl Mock {
    fn new(script: impl IntoIterator<Item = Step>, vectored: bool) -> (Self, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let mock = Mock {
            script: script.into_iter().collect(),
            vectored,
            log: log.clone(),
        };
        (mock, log)
    }

    fn write(&mut self, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        let step = match self.script.front() {
            Some(Step::Stall) => return Poll::Pending,
            _ => self.script.pop_front(),
        };
        let mut log = self.log.lock().unwrap();
        log.calls += 1;
        log.slices_per_call.push(bufs.len());
        let mut budget = match step {
            None => usize::MAX,
            Some(Step::Take(n)) => n,
            Some(Step::Zero) => return Poll::Ready(Ok(0)),
            Some(Step::Fail(kind)) => return Poll::Ready(Err(kind.into())),
            Some(Step::Stall) => unreachable!(),
        };
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(budget);
            log.written.extend_from_slice(&buf[..take]);
            n += take;
            budget -= take;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Mock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(&[buf])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.write(&bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.log.lock().unwrap().flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.log.lock().unwrap().shutdowns += 1;
        Poll::Ready(Ok(()))
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[tokio::test]
async fn partial_writes_resume_where_they_stopped() {
    let (mock, log) = Mock::new([Step::Take(3), Step::Take(1), Step::Take(4)], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    for frame in ["hello", "world", "!!"] {
        tx.try_send(b(frame)).unwrap();
    }
    tx.close();
    let report = writer.run().await;
    assert!(report.reason.is_graceful());
    let log = log.lock().unwrap();
    assert_eq!(log.written, b"helloworld!!");
    assert_eq!(log.calls, 4, "3 + 1 + 4 bytes, then the rest in one call");
    assert_eq!(
        log.slices_per_call,
        [3, 3, 3, 2],
        "every call carries every unwritten frame"
    );
    assert_eq!((log.flushes, log.shutdowns), (1, 1));
    let m = report.metrics;
    assert_eq!((m.sent_bytes, m.writes, m.delivered_items), (12, 4, 3));
    assert_eq!((m.undelivered_items, m.queued_bytes), (0, 0));
}

#[tokio::test]
async fn a_zero_length_write_fails_with_write_zero_and_reports_exact_losses() {
    let (mock, log) = Mock::new([Step::Take(6), Step::Zero], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    let other = tx.clone();
    for frame in ["aaaa", "bbbb", "cccc"] {
        tx.try_send(b(frame)).unwrap();
    }
    let report = writer.run().await;
    let CloseReason::Io(err) = &report.reason else {
        panic!("expected an I/O reason, got {:?}", report.reason);
    };
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    assert_eq!(log.lock().unwrap().written, b"aaaabb");
    let m = report.metrics;
    assert_eq!(
        (m.delivered_items, m.undelivered_items, m.undelivered_bytes),
        (1, 2, 8)
    );
    assert_eq!(m.sent_bytes, 6);
    assert!(matches!(other.closed().await, CloseReason::Io(_)));
    let refused = other.try_send(b("late")).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_inner(), b("late"));
}

#[tokio::test]
async fn an_error_mid_batch_drops_the_rest_and_counts_it() {
    let (mock, _log) = Mock::new([Step::Take(7), Step::Fail(io::ErrorKind::BrokenPipe)], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    for frame in ["aaaa", "bbbb", "cccc", "dd"] {
        tx.try_send(b(frame)).unwrap();
    }
    let report = writer.run().await;
    assert!(matches!(&report.reason, CloseReason::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));
    let m = report.metrics;
    assert_eq!(
        (m.delivered_items, m.undelivered_items, m.undelivered_bytes),
        (1, 3, 10)
    );
    assert_eq!((m.queued_items, m.queued_bytes), (0, 0));
    assert!(matches!(tx.closed().await, CloseReason::Io(_)));
}

#[tokio::test]
async fn zero_length_frames_are_delivered_without_a_write() {
    let (mock, log) = Mock::new([], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    tx.try_send(Bytes::new()).unwrap();
    tx.try_send(b("x")).unwrap();
    tx.try_send(Bytes::new()).unwrap();
    tx.close();
    let report = writer.run().await;
    assert!(report.reason.is_graceful());
    assert_eq!(report.metrics.delivered_items, 3);
    let log = log.lock().unwrap();
    assert_eq!((log.written.as_slice(), log.calls), (&b"x"[..], 1));
}

#[tokio::test]
async fn abort_with_frames_in_flight_drops_them_all_and_counts_them() {
    let (mock, log) = Mock::new([Step::Take(2), Step::Stall], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    let task = writer.spawn();
    for frame in ["aaaa", "bbbb", "cccc"] {
        tx.try_send(b(frame)).unwrap();
    }
    // Let the writer take the frames, write 2 bytes and stall.
    while log.lock().unwrap().calls == 0 {
        tokio::task::yield_now().await;
    }
    tx.try_send(b("dddd")).unwrap(); // queued behind the stalled batch
    tx.abort();
    let report = task.await.unwrap();
    assert!(matches!(report.reason, CloseReason::Aborted));
    let m = report.metrics;
    assert_eq!((m.accepted_items, m.delivered_items), (4, 0));
    assert_eq!((m.undelivered_items, m.undelivered_bytes), (4, 16));
    assert_eq!((m.queued_items, m.queued_bytes, m.sent_bytes), (0, 0, 2));
    assert_eq!(
        log.lock().unwrap().shutdowns,
        0,
        "an abort does not shut the stream down"
    );
    assert!(matches!(tx.closed().await, CloseReason::Aborted));
}

#[tokio::test]
async fn abort_before_the_writer_runs_drops_the_queue() {
    let (mock, log) = Mock::new([], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    for _ in 0..5 {
        tx.try_send(b("frame")).unwrap();
    }
    tx.abort();
    let report = writer.run().await;
    assert!(matches!(report.reason, CloseReason::Aborted));
    assert_eq!(
        (
            report.metrics.undelivered_items,
            report.metrics.undelivered_bytes
        ),
        (5, 25)
    );
    assert_eq!(log.lock().unwrap().calls, 0);
}

#[tokio::test]
async fn close_waits_for_queued_frames_then_shuts_down() {
    let (mock, log) = Mock::new([Step::Take(1), Step::Take(1)], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    let task = writer.spawn();
    tx.try_send(b("abc")).unwrap();
    tx.try_send(b("def")).unwrap();
    tx.close();
    assert!(matches!(tx.closed().await, CloseReason::Closed));
    let refused = tx.try_send(b("late")).unwrap_err();
    assert!(matches!(
        refused,
        SendError::Closed {
            reason: CloseReason::Closed,
            ..
        }
    ));
    let report = task.await.unwrap();
    assert!(report.reason.is_graceful());
    assert_eq!(report.metrics.delivered_items, 2);
    let log = log.lock().unwrap();
    assert_eq!((log.written.as_slice(), log.shutdowns), (&b"abcdef"[..], 1));
}

#[tokio::test(start_paused = true)]
async fn a_write_that_stalls_past_the_timeout_fails() {
    let (mock, _log) = Mock::new([Step::Stall], true);
    let (tx, writer) = WatermarkWriter::builder()
        .stall_timeout(Some(Duration::from_secs(5)))
        .build(mock);
    tx.try_send(b("stuck")).unwrap();
    let started = tokio::time::Instant::now();
    let report = writer.run().await;
    assert!(
        matches!(report.reason, CloseReason::Stalled { timeout } if timeout == Duration::from_secs(5))
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(report.metrics.undelivered_items, 1);
}

#[tokio::test]
async fn streams_without_vectored_writes_get_small_frames_coalesced() {
    let (mock, log) = Mock::new([], false);
    let (tx, writer) = WatermarkWriter::new(mock);
    for i in 0..100u8 {
        tx.try_send(Bytes::from(vec![i; 10])).unwrap();
    }
    tx.close();
    let report = writer.run().await;
    assert_eq!(report.metrics.sent_bytes, 1000);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls, 1,
        "1000 bytes of small frames fit one coalesced write"
    );
    let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 10]).collect();
    assert_eq!(log.written, expected);
}

#[tokio::test]
async fn framed_sender_encodes_and_batches_messages() {
    let (mock, log) = Mock::new([], true);
    let (tx, writer) = WatermarkWriter::new(mock);
    let task = writer.spawn();
    let mut framed = FramedSender::new(tx, LengthDelimitedCodec::new());
    framed.feed(b("ab")).await.unwrap();
    framed.feed(b("cde")).await.unwrap();
    assert_eq!(framed.buffered_bytes(), 4 + 2 + 4 + 3);
    assert_eq!(
        framed.sender().metrics().accepted_items,
        0,
        "fed frames wait in the buffer"
    );
    framed.flush().await.unwrap();
    assert_eq!(
        framed.sender().metrics().accepted_items,
        1,
        "one queue item for both frames"
    );
    framed.sender().close();
    task.await.unwrap();
    assert_eq!(log.lock().unwrap().written, b"\0\0\0\x02ab\0\0\0\x03cde");
}
