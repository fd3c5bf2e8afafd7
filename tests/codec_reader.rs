//! Capped around other decoders, and FrameReader with budgets and scripted I/O.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tidegate::codec::{
    Capped, CodecError, FrameReader, LengthFieldCodec, LineCodec, OversizePolicy,
};
use tidegate::MemoryBudget;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{AnyDelimiterCodec, Decoder, FramedRead, LinesCodec};

#[tokio::test]
async fn capped_fails_an_unbounded_decoder_and_stays_failed() {
    let inner = AnyDelimiterCodec::new(b";".to_vec(), vec![]);
    let mut codec = Capped::new(inner, 4);
    let mut buf = BytesMut::from(&b"abc;toolong"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "abc");
    assert!(codec.decode(&mut buf).is_err());
    assert!(codec.is_failed());
    buf.extend_from_slice(b";ok;");
    assert!(codec.decode(&mut buf).is_err());
    assert_eq!(codec.metrics().too_long, 1);
}

#[tokio::test]
async fn capped_skip_drops_the_buffer_and_goes_on() {
    let inner = LineCodec::new(usize::MAX); // effectively uncapped
    let mut codec = Capped::builder(inner)
        .max_frame_length(4)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap();
    assert_eq!(codec.oversize_policy(), OversizePolicy::Skip);
    let mut buf = BytesMut::from(&b"toolong"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty());
    buf.extend_from_slice(b"\nok\n");
    // The inner decoder restarted clean, finds the line ending at the new buffer's start, and that (empty) rest of
    // the oversize line is dropped with it.
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    let m = codec.metrics();
    assert_eq!((m.too_long, m.discarded_bytes, m.frames), (1, 8, 1));
    assert_eq!(codec.get_ref().max_frame_length(), usize::MAX);
}

#[tokio::test]
async fn capped_in_framed_read_converts_errors() {
    let inner = LinesCodec::new();
    let mut frames = FramedRead::new(&b"fine\nwaytoolong"[..], Capped::new(inner, 6));
    assert_eq!(frames.next().await.unwrap().unwrap(), "fine");
    let err = frames.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("maximum of 6"), "{err}");
    assert!(frames.next().await.is_none());
}

#[tokio::test]
async fn framed_read_skip_keeps_delivering_after_a_discarded_frame() {
    let codec = LengthFieldCodec::builder()
        .max_frame_length(8)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap();
    let wire =
        b"\x00\x00\x00\x01a\x00\x00\x00\x20................................\x00\x00\x00\x01b";
    let frames: Vec<_> = FramedRead::new(&wire[..], codec).collect().await;
    let frames: Vec<_> = frames.into_iter().map(Result::unwrap).collect();
    assert_eq!(frames, ["a", "b"]);
}

#[tokio::test]
async fn frame_reader_with_a_budget_returns_everything() {
    let budget = MemoryBudget::new(1 << 20);
    let (mut tx, rx) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        for i in 0..50u32 {
            tx.write_all(format!("line {i}\r\n").as_bytes())
                .await
                .unwrap();
        }
    });
    let mut frames = FrameReader::new(rx, LineCodec::new(32))
        .with_budget(budget.clone())
        .with_read_size(7);
    let mut n = 0;
    while let Some(line) = frames.next().await {
        assert_eq!(line.unwrap(), format!("line {n}"));
        assert_eq!(budget.used(), frames.allocated_bytes());
        n += 1;
    }
    writer.await.unwrap();
    assert_eq!(n, 50);
    assert_eq!(budget.used(), 0);
    assert_eq!(frames.decoder().metrics().frames, 50);
}

#[tokio::test(start_paused = true)]
async fn frame_reader_pauses_while_the_budget_is_exhausted() {
    let budget = MemoryBudget::new(64);
    let hog = budget.try_reserve(60).unwrap();
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(b"\x00\x00\x00\x02hi").await.unwrap();
    let codec = LengthFieldCodec::new(16);
    let mut frames = FrameReader::new(rx, codec)
        .with_budget(budget.clone())
        .with_read_size(16);
    // Buffered (0) plus one read (16) does not fit beside the hog: no read happens.
    let stalled = tokio::time::timeout(Duration::from_secs(1), frames.next()).await;
    assert!(stalled.is_err(), "read past an exhausted budget");
    assert_eq!(frames.buffered_bytes(), 0);
    drop(hog);
    assert_eq!(frames.next().await.unwrap().unwrap(), "hi");
    assert!(budget.used() <= 16);
    drop(tx);
    assert!(frames.next().await.is_none());
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn frame_reader_charges_what_it_buffers() {
    let budget = MemoryBudget::new(1 << 20);
    let (mut tx, rx) = tokio::io::duplex(1024);
    tx.write_all(b"\x00\x00\x00\x0aabc").await.unwrap(); // 7 bytes of a 14-byte frame
    let mut frames = FrameReader::new(rx, LengthFieldCodec::new(64)).with_budget(budget.clone());
    let pending = tokio::time::timeout(Duration::from_millis(10), frames.next()).await;
    assert!(pending.is_err());
    assert_eq!(frames.buffered_bytes(), 7);
    // One read's buffer holds the partial frame: that allocation is what is charged.
    assert_eq!(frames.reserved_bytes(), tidegate::codec::DEFAULT_READ_SIZE);
    assert_eq!(frames.allocated_bytes(), tidegate::codec::DEFAULT_READ_SIZE);
    tx.write_all(b"defghij").await.unwrap();
    assert_eq!(frames.next().await.unwrap().unwrap(), "abcdefghij");
    // Between frames the reader keeps that one read's buffer, still charged; dropping it gives everything back.
    assert_eq!(budget.used(), tidegate::codec::DEFAULT_READ_SIZE);
    drop(frames);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn frame_reader_budget_that_can_never_fit_is_fatal() {
    let budget = MemoryBudget::new(100);
    let mut frames = FrameReader::new(&b"x\n"[..], LineCodec::new(8)).with_budget(budget);
    let err = frames.next().await.unwrap().unwrap_err();
    assert!(matches!(err, CodecError::Budget(_)), "{err}");
    assert!(frames.next().await.is_none());
}

#[tokio::test]
async fn frame_reader_skip_is_not_fatal_but_decode_errors_are() {
    let codec = LineCodec::builder()
        .max_frame_length(3)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap();
    let frames: Vec<_> = FrameReader::new(&b"a\ntoolong\nb\n"[..], codec)
        .collect()
        .await;
    let frames: Vec<_> = frames.into_iter().map(Result::unwrap).collect();
    assert_eq!(frames, ["a", "b"]);

    let mut frames = FrameReader::new(&b"a\ntoolong\nb\n"[..], LineCodec::new(3));
    assert_eq!(frames.next().await.unwrap().unwrap(), "a");
    assert!(matches!(
        frames.next().await.unwrap(),
        Err(CodecError::FrameTooLong { .. })
    ));
    assert!(frames.next().await.is_none());
}

struct Broken;

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
    }
}

#[tokio::test]
async fn frame_reader_io_errors_end_the_stream_and_release_the_budget() {
    let budget = MemoryBudget::new(1 << 20);
    let mut frames = FrameReader::new(Broken, LineCodec::new(8)).with_budget(budget.clone());
    let err = frames.next().await.unwrap().unwrap_err();
    assert!(matches!(&err, CodecError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset));
    assert!(frames.next().await.is_none());
    assert_eq!(budget.used(), 0);
}

#[test]
fn public_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<LengthFieldCodec>();
    send_sync::<tidegate::codec::DelimiterCodec>();
    send_sync::<LineCodec>();
    send_sync::<Capped<LineCodec>>();
    send_sync::<CodecError>();
    send::<FrameReader<tokio::io::DuplexStream, LineCodec>>();
}
