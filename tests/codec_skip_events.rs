//! Learning that frames were skipped as it happens, through the decoders' skip hooks, in `FramedRead` and
//! `FrameReader`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tidegate::codec::{
    Capped, CodecError, DelimiterCodec, FrameReader, LengthFieldCodec, LineCodec, OversizePolicy,
};
use tokio_util::codec::{FramedRead, LinesCodec};

type Log = Arc<Mutex<Vec<(u64, usize)>>>;

/// A hook that records `(len, max)` of every skip, and the log it writes to.
fn recorder() -> (Log, impl Fn(&CodecError) + Send + Sync + 'static) {
    let log = Log::default();
    let sink = Arc::clone(&log);
    let hook = move |err: &CodecError| match err {
        CodecError::FrameTooLong { len, max } => sink.lock().unwrap().push((*len, *max)),
        other => panic!("a skip is reported as FrameTooLong, got {other}"),
    };
    (log, hook)
}

#[tokio::test]
async fn framed_read_users_hear_of_every_skip() {
    let (log, hook) = recorder();
    let codec = LengthFieldCodec::builder()
        .max_frame_length(8)
        .length_field_width(2)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook)
        .build()
        .unwrap();
    let wire = b"\x00\x01a\x00\x0a0123456789\x00\x01b\x00\x07xxxxxxx";
    let frames: Vec<_> = FramedRead::new(&wire[..], codec).collect().await;
    let frames: Vec<_> = frames.into_iter().map(Result::unwrap).collect();
    assert_eq!(frames, ["a", "b"]);
    assert_eq!(log.lock().unwrap()[..], [(12, 8), (9, 8)]);
}

#[tokio::test(start_paused = true)]
async fn frame_reader_users_hear_of_every_skip_and_the_stream_goes_on() {
    let (log, hook) = recorder();
    let codec = LineCodec::builder()
        .max_frame_length(4)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook)
        .build()
        .unwrap();
    let (mut tx, rx) = tokio::io::duplex(64);
    let mut lines = FrameReader::new(rx, codec);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        tx.write_all(b"one\nfar too long\ntwo\n").await.unwrap();
    });
    let wait = Duration::from_secs(5);
    let first = tokio::time::timeout(wait, lines.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), "one");
    let second = tokio::time::timeout(wait, lines.next()).await.unwrap();
    assert_eq!(second.unwrap().unwrap(), "two");
    // One report; `len` is what was buffered of the 12-byte line when it was found too long.
    let log = log.lock().unwrap().clone();
    assert!(matches!(log[..], [(5..=12, 4)]), "{log:?}");
    assert!(tokio::time::timeout(wait, lines.next())
        .await
        .unwrap()
        .is_none());
    writer.await.unwrap();
}

#[test]
fn delimiter_and_capped_hooks_fire_once_per_skipped_frame() {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    let (log, hook) = recorder();
    let mut codec = DelimiterCodec::builder()
        .delimiters(["||"])
        .max_frame_length(3)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook)
        .build()
        .unwrap();
    let mut buf = BytesMut::from(&b"toolong||ok||"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    assert_eq!(log.lock().unwrap()[..], [(7, 3)]);

    let (log, hook) = recorder();
    let mut codec = Capped::builder(LinesCodec::new())
        .max_frame_length(4)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook)
        .build()
        .unwrap();
    let mut buf = BytesMut::from(&b"abcdefgh"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"ij\nok\n");
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    // One skipped line, reported once even though it was dropped in two pieces.
    assert_eq!(log.lock().unwrap()[..], [(8, 4)]);
    assert_eq!(codec.metrics().discarded_bytes, 11);

    // Under Fail the hook is not called: the error is the report.
    let (log, hook) = recorder();
    let mut codec = LineCodec::builder()
        .max_frame_length(2)
        .skip_hook(hook)
        .build()
        .unwrap();
    assert!(codec.decode(&mut BytesMut::from(&b"long\n"[..])).is_err());
    assert!(log.lock().unwrap().is_empty());
}
