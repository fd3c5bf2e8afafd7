//! FrameReaders on a shared budget: none waits forever, what a decoder allocates is charged, a budget too small for
//! a frame fails at once.

use std::time::Duration;

use futures_util::StreamExt;
use tidegate::codec::{CodecError, FrameReader, LengthFieldCodec};
use tidegate::{BudgetError, MemoryBudget};
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, Instant};
use tokio_util::codec::LengthDelimitedCodec;

/// The documented default wait; the tests below rely on it without setting it, and the paused clock makes it free.
const BOUND: Duration = Duration::from_secs(10);

/// The next item must be a refusal of a buffer over the budget's limit, and the stream must end after it.
async fn expect_budget_refusal_then_end<S, F>(frames: &mut S)
where
    S: futures_util::Stream<Item = Result<F, std::io::Error>> + Unpin,
    F: std::fmt::Debug,
{
    let err = timeout(BOUND, frames.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            CodecError::from(err),
            CodecError::Budget(BudgetError::ExceedsLimit { .. })
        ),
        "expected a budget error"
    );
    assert!(timeout(BOUND, frames.next()).await.unwrap().is_none());
}

fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = (len as u32).to_be_bytes().to_vec();
    f.resize(4 + len, fill);
    f
}

#[test]
fn the_default_budget_wait_is_documented() {
    assert_eq!(tidegate::codec::DEFAULT_BUDGET_WAIT, BOUND);
    let frames = FrameReader::new(&b""[..], LengthFieldCodec::new(8));
    assert_eq!(frames.budget_wait(), BOUND);
}

#[tokio::test(start_paused = true)]
async fn readers_holding_partial_frames_on_one_budget_never_wait_forever() {
    const READERS: usize = 4;
    const READ: usize = 64;
    const PAYLOAD: usize = 200;
    // The peers trickle their frames 16 bytes at a time, so every reader holds part of its frame at once.
    const PIPE: usize = 16;
    // Buffers grow 64 -> 112 -> 160 -> 216 for a 204-byte frame read 16 bytes at a time: three growths, each
    // waiting at most BOUND.
    const GROWTHS: u32 = 3;
    // Every reader fits one read, no two fit their next growth: each holds part of a frame and waits for the
    // others.
    let budget = MemoryBudget::new(READERS * READ + READ / 2);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..READERS {
        let (mut tx, rx) = tokio::io::duplex(PIPE);
        // The peer's write fails once its reader has given up; that is not what is tested.
        tokio::spawn(async move { tx.write_all(&frame(PAYLOAD, i as u8)).await });
        let mut frames = FrameReader::new(rx, LengthFieldCodec::new(1024))
            .with_budget(budget.clone())
            .with_read_size(READ);
        tasks.push(tokio::spawn(async move {
            let outcome = timeout((GROWTHS + 2) * BOUND, frames.next()).await;
            (outcome, start.elapsed())
        }));
    }
    let mut finished = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let (outcome, elapsed) = timeout((GROWTHS + 3) * BOUND, task).await.unwrap().unwrap();
        let outcome =
            outcome.unwrap_or_else(|_| panic!("reader {i} still waiting after {elapsed:?}"));
        match outcome {
            Some(Ok(frame)) => {
                assert_eq!(&frame[..], &[i as u8; PAYLOAD][..]);
                finished += 1;
            }
            Some(Err(CodecError::Budget(BudgetError::Exhausted { used, limit, .. }))) => {
                assert_eq!(limit, budget.limit());
                assert!(used > 0);
            }
            other => panic!("reader {i}: {other:?}"),
        }
        // Timer wheel granularity: a millisecond per wait at most.
        assert!(
            elapsed <= GROWTHS * (BOUND + Duration::from_millis(1)),
            "reader {i} took {elapsed:?}"
        );
    }
    assert!(finished >= 1, "the last reader standing always fits");
    assert!(
        finished < READERS,
        "the budget cannot fit every partial frame at once"
    );
    assert_eq!(budget.used(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reader_holding_nothing_waits_without_a_bound_and_holds_nothing() {
    let budget = MemoryBudget::new(100);
    let hog = budget.try_reserve(90).unwrap();
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(&frame(3, b'x')).await.unwrap();
    let mut frames = FrameReader::new(rx, LengthFieldCodec::new(64))
        .with_budget(budget.clone())
        .with_read_size(16);
    let stalled = timeout(BOUND * 3, frames.next()).await;
    assert!(stalled.is_err(), "read past an exhausted budget");
    assert_eq!((frames.reserved_bytes(), budget.used()), (0, 90));
    let granted = budget.metrics().granted;
    drop(hog);
    let frame = timeout(BOUND, frames.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&frame[..], b"xxx");
    // The one grant it waited for became its buffer; it was not given back and asked for again.
    assert_eq!(budget.metrics().granted, granted + 1);
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_outgrows_the_limit_fails_at_once_instead_of_waiting_on_itself() {
    let budget = MemoryBudget::new(100);
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(&frame(80, b'y')).await.unwrap();
    let mut frames = FrameReader::new(rx, LengthFieldCodec::new(1024))
        .with_budget(budget.clone())
        .with_read_size(64);
    // 64 bytes are buffered; the next read needs a 128-byte buffer, which a 100-byte budget can never grant.
    let err = timeout(Duration::from_millis(1), frames.next())
        .await
        .expect("waited on its own reservation")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Budget(BudgetError::ExceedsLimit {
                requested: 128,
                limit: 100
            })
        ),
        "{err}"
    );
    assert!(frames.next().await.is_none());
    assert_eq!(budget.used(), 0);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn what_a_decoder_reserves_itself_is_charged() {
    // tokio-util's LengthDelimitedCodec reserves the claimed length as soon as the header arrives (with a byte of
    // payload, so the buffer is not empty and the reader keeps it).
    let claim = [&100_000u32.to_be_bytes()[..], b"p"].concat();
    let budget = MemoryBudget::unlimited();
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(&claim).await.unwrap();
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(1 << 20)
        .new_codec();
    let mut frames = FrameReader::new(rx, codec).with_budget(budget.clone());
    assert!(timeout(BOUND, frames.next()).await.is_err());
    assert!(budget.used() >= 100_000, "charged {}", budget.used());
    assert_eq!(budget.used(), frames.reserved_bytes());
    drop(frames);
    assert_eq!(budget.used(), 0);

    // A budget that cannot cover it ends the stream with a typed error instead of holding it uncharged.
    let budget = MemoryBudget::new(64 * 1024);
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(&claim).await.unwrap();
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(1 << 20)
        .new_codec();
    let mut frames = FrameReader::new(rx, codec).with_budget(budget.clone());
    expect_budget_refusal_then_end(&mut frames).await;
    assert_eq!(budget.used(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_reader_that_waits_for_budget_gives_everything_back() {
    let budget = MemoryBudget::new(200);
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(&frame(150, b'z')).await.unwrap();
    let mut frames = FrameReader::new(rx, LengthFieldCodec::new(1024))
        .with_budget(budget.clone())
        .with_read_size(64);
    let hog = budget.try_reserve(100).unwrap();
    assert!(timeout(BOUND / 2, frames.next()).await.is_err());
    assert_eq!(frames.buffered_bytes(), 64);
    assert_eq!(budget.used(), 100 + frames.reserved_bytes());
    drop(frames);
    assert_eq!(budget.used(), 100);
    drop(hog);
    assert_eq!(budget.used(), 0);
}

/// Yields one byte per frame and, like tokio-util's `LengthDelimitedCodec` after a frame, reserves ahead.
struct ReservesAfterAFrame;

impl tokio_util::codec::Decoder for ReservesAfterAFrame {
    type Item = bytes::Bytes;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut bytes::BytesMut) -> std::io::Result<Option<bytes::Bytes>> {
        if src.is_empty() {
            return Ok(None);
        }
        let frame = src.split_to(1).freeze();
        src.reserve(100_000);
        Ok(Some(frame))
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_decoded_beside_an_uncovered_reservation_is_delivered_before_the_error() {
    let budget = MemoryBudget::new(64 * 1024);
    let mut frames = FrameReader::new(&b"ab"[..], ReservesAfterAFrame).with_budget(budget.clone());
    let frame = timeout(BOUND, frames.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&frame[..], b"a");
    assert_eq!(budget.used(), 0, "nothing held once it failed");
    expect_budget_refusal_then_end(&mut frames).await;
}
