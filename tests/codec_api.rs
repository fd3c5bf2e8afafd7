//! The codec module's API conventions: one way to set each limit, builders, accessors, error matching, auto traits.

mod codec_support;

use std::error::Error;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tidegate::budget::MemoryBudget;
use tidegate::codec::{
    Capped, CappedBuilder, CodecError, DelimiterCodec, DelimiterCodecBuilder, FrameReader,
    LengthFieldCodec, LengthFieldCodecBuilder, LineCodec, LineCodecBuilder, OversizePolicy,
};
use tokio_util::codec::{AnyDelimiterCodec, Decoder, FramedWrite, LinesCodec};

use codec_support::feed;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn readers_codecs_builders_and_errors_are_send_and_sync() {
    assert_send_sync::<FrameReader<tokio::net::TcpStream, LengthFieldCodec>>();
    assert_send_sync::<FrameReader<&'static [u8], Capped<LinesCodec>>>();
    assert_send_sync::<LengthFieldCodec>();
    assert_send_sync::<LineCodec>();
    assert_send_sync::<DelimiterCodec>();
    assert_send_sync::<Capped<LinesCodec>>();
    assert_send_sync::<LengthFieldCodecBuilder>();
    assert_send_sync::<LineCodecBuilder>();
    assert_send_sync::<DelimiterCodecBuilder>();
    assert_send_sync::<CappedBuilder<LinesCodec>>();
    assert_send_sync::<CodecError>();
}

#[tokio::test(start_paused = true)]
async fn a_frame_reader_is_sync_while_it_waits_for_budget() {
    // The boxed wait is the part that was only `Send`: hold a reader mid-wait and share it across threads.
    let budget = MemoryBudget::new(16);
    let _other = budget.try_reserve(16).unwrap();
    let mut frames = FrameReader::new(&b"x"[..], LineCodec::new(8))
        .with_budget(budget)
        .with_read_size(8);
    let waited = tokio::time::timeout(std::time::Duration::from_secs(1), frames.next()).await;
    assert!(waited.is_err(), "the reader must be waiting for budget");
    let shared = Arc::new(frames);
    let seen = std::thread::scope(|s| s.spawn(|| shared.buffered_bytes()).join().unwrap());
    assert_eq!(seen, 0);
}

#[test]
fn every_codec_sets_its_maximum_and_policy_the_same_way() {
    let mut length = LengthFieldCodec::new(16);
    let mut line = LineCodec::new(16);
    let mut delim = DelimiterCodec::new([";"], 16).unwrap();
    let mut capped = Capped::new(LinesCodec::new(), 16);
    let results: [Result<(), CodecError>; 4] = [
        length.set_max_frame_length(6),
        line.set_max_frame_length(2),
        delim.set_max_frame_length(2),
        capped.set_max_frame_length(3),
    ];
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        [
            length.max_frame_length(),
            line.max_frame_length(),
            delim.max_frame_length(),
            capped.max_frame_length()
        ],
        [6, 2, 2, 3]
    );
    // A LengthFieldCodec refuses a maximum below its header, and keeps the old one.
    assert!(matches!(
        length.set_max_frame_length(3),
        Err(CodecError::MaxBelowHeader {
            max: 3,
            header_len: 4
        })
    ));
    assert_eq!(length.max_frame_length(), 6);

    length.set_oversize_policy(OversizePolicy::Skip);
    line.set_oversize_policy(OversizePolicy::Skip);
    delim.set_oversize_policy(OversizePolicy::Skip);
    capped.set_oversize_policy(OversizePolicy::Skip);
    assert_eq!(
        [
            length.oversize_policy(),
            line.oversize_policy(),
            delim.oversize_policy(),
            capped.oversize_policy()
        ],
        [OversizePolicy::Skip; 4]
    );
    // The new maximum and policy are what the codecs apply.
    let out = feed(&mut length, &[b"\x00\x00\x00\x03abc\x00\x00\x00\x02ok"]);
    assert_eq!(
        (out.frames, out.error.is_none()),
        (vec![Bytes::from("ok")], true)
    );
    let out = feed(&mut line, &[b"abc\nok\n"]);
    assert_eq!(
        (out.frames, out.error.is_none()),
        (vec![Bytes::from("ok")], true)
    );
    let out = feed(&mut delim, &[b"abc;ok;"]);
    assert_eq!(
        (out.frames, out.error.is_none()),
        (vec![Bytes::from("ok")], true)
    );
    let mut buf = BytesMut::from("abcd\nok\n");
    assert_eq!(capped.decode(&mut buf).unwrap().unwrap(), "ok");
    assert_eq!(capped.metrics().too_long, 1);
}

#[test]
fn builders_require_a_maximum_and_the_delimiter_builder_a_delimiter() {
    assert!(matches!(
        LineCodec::builder().build(),
        Err(CodecError::MissingMaxFrameLength)
    ));
    assert!(matches!(
        DelimiterCodec::builder().delimiters([";"]).build(),
        Err(CodecError::MissingMaxFrameLength)
    ));
    assert!(matches!(
        DelimiterCodec::builder().max_frame_length(4).build(),
        Err(CodecError::EmptyDelimiter)
    ));
    assert!(matches!(
        Capped::builder(LinesCodec::new()).build(),
        Err(CodecError::MissingMaxFrameLength)
    ));
    // Defaults: Fail.
    let line = LineCodec::builder().max_frame_length(4).build().unwrap();
    assert_eq!(line.oversize_policy(), OversizePolicy::Fail);
    let capped = Capped::builder(LinesCodec::new())
        .max_frame_length(4)
        .build()
        .unwrap();
    assert_eq!(capped.oversize_policy(), OversizePolicy::Fail);
}

type Log = Arc<Mutex<Vec<u64>>>;

fn hook(log: &Log) -> impl Fn(&CodecError) + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |err| {
        if let CodecError::FrameTooLong { len, .. } = err {
            log.lock().unwrap().push(*len);
        }
    }
}

#[test]
fn every_builder_takes_the_policy_and_the_skip_hook() {
    let log = Log::default();
    let mut length = LengthFieldCodec::builder()
        .max_frame_length(6)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook(&log))
        .build()
        .unwrap();
    let out = feed(&mut length, &[b"\x00\x00\x00\x03abc\x00\x00\x00\x02ok"]);
    assert_eq!(out.frames, [Bytes::from("ok")]);
    assert_eq!(log.lock().unwrap()[..], [7]);

    let log = Log::default();
    let mut line = LineCodec::builder()
        .max_frame_length(2)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook(&log))
        .build()
        .unwrap();
    assert_eq!(feed(&mut line, &[b"abc\nok\n"]).frames, [Bytes::from("ok")]);
    assert_eq!(log.lock().unwrap()[..], [3]);

    let log = Log::default();
    let mut delim = DelimiterCodec::builder()
        .delimiters(["||", ";"])
        .max_frame_length(2)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook(&log))
        .build()
        .unwrap();
    assert_eq!(feed(&mut delim, &[b"abc||ok;"]).frames, [Bytes::from("ok")]);
    assert_eq!(log.lock().unwrap()[..], [3]);

    let log = Log::default();
    let mut capped = Capped::builder(AnyDelimiterCodec::new(b";".to_vec(), vec![]))
        .max_frame_length(3)
        .oversize_policy(OversizePolicy::Skip)
        .skip_hook(hook(&log))
        .build()
        .unwrap();
    let mut buf = BytesMut::from("abcd;ok;");
    assert_eq!(capped.decode(&mut buf).unwrap().unwrap(), "ok");
    assert_eq!(log.lock().unwrap()[..], [5]);
}

#[tokio::test]
async fn framed_write_send_and_flush_infer_the_item_type() {
    let mut out = FramedWrite::new(Vec::new(), LengthFieldCodec::new(64));
    out.send(Bytes::from_static(b"ab")).await.unwrap();
    out.flush().await.unwrap();
    assert_eq!(out.get_ref()[..], b"\x00\x00\x00\x02ab"[..]);

    let mut out = FramedWrite::new(Vec::new(), LineCodec::new(64));
    out.send(Bytes::from_static(b"ab")).await.unwrap();
    out.flush().await.unwrap();
    assert_eq!(out.get_ref()[..], b"ab\n"[..]);

    let mut out = FramedWrite::new(Vec::new(), DelimiterCodec::new([";"], 64).unwrap());
    out.send(Bytes::from_static(b"ab")).await.unwrap();
    out.flush().await.unwrap();
    assert_eq!(out.get_ref()[..], b"ab;"[..]);

    let mut out = FramedWrite::new(Vec::new(), Capped::new(LengthFieldCodec::new(64), 64));
    out.send(Bytes::from_static(b"ab")).await.unwrap();
    out.flush().await.unwrap();
    assert_eq!(out.get_ref()[..], b"\x00\x00\x00\x02ab"[..]);
}

#[tokio::test]
async fn frame_reader_gives_access_to_its_reader_and_buffer() {
    let mut frames = FrameReader::new(&b"one\ntwo\n"[..], LineCodec::new(16)).with_read_size(5);
    assert_eq!(frames.next().await.unwrap().unwrap(), "one");
    assert_eq!(frames.read_buffer()[..], b"t"[..]);
    assert_eq!(*frames.get_ref(), &b"wo\n"[..]);
    // Replacing what is left to read changes what the decoder sees next.
    *frames.get_mut() = &b"ide\nrest"[..];
    assert_eq!(*Pin::new(&mut frames).get_pin_mut(), &b"ide\nrest"[..]);
    assert_eq!(frames.next().await.unwrap().unwrap(), "tide");
    assert_eq!(frames.into_inner(), &b"rest"[..]);
}

/// An application error that wraps an `io::Error` as its source, as `anyhow` chains and hand-written errors do.
#[derive(Debug)]
struct Wrapped(io::Error);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection failed")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn codec_error_find_reaches_the_cap_through_every_layer() {
    let too_long =
        |err: Option<&CodecError>| matches!(err, Some(CodecError::FrameTooLong { max: 4, .. }));

    // Capped around tokio-util's codecs: the error is the inner codec's type, which has no `source`.
    let err = Capped::new(LinesCodec::new(), 4)
        .decode(&mut BytesMut::from("far too long\n"))
        .unwrap_err();
    assert!(too_long(CodecError::find(&err)));
    let err = Capped::new(AnyDelimiterCodec::new(b";".to_vec(), vec![]), 4)
        .decode(&mut BytesMut::from("far too long;"))
        .unwrap_err();
    assert!(too_long(CodecError::find(&err)));
    // Capped around a tidegate codec: the CodecError itself (after the round trip through io::Error).
    let err = Capped::new(LineCodec::new(64), 4)
        .decode(&mut BytesMut::from("far too long\n"))
        .unwrap_err();
    assert!(too_long(CodecError::find(&err)));
    // Inside an io::Error, and further down a source chain.
    let io_err = io::Error::from(CodecError::FrameTooLong { len: 9, max: 4 });
    assert!(too_long(CodecError::find(&io_err)));
    let wrapped = Wrapped(io::Error::from(CodecError::FrameTooLong { len: 9, max: 4 }));
    assert!(too_long(CodecError::find(&wrapped)));
    // Nothing to find.
    assert!(CodecError::find(&io::Error::other("unrelated")).is_none());
    assert!(CodecError::find(&Wrapped(io::ErrorKind::BrokenPipe.into())).is_none());
}

#[test]
fn the_budget_refusal_is_the_source_not_repeated_in_the_message() {
    let refusal = MemoryBudget::new(4).try_reserve(8).unwrap_err();
    let err = CodecError::from(refusal);
    let source = err.source().expect("the budget's refusal is the source");
    assert!(
        !err.to_string().contains(&source.to_string()),
        "{err} repeats {source}"
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::OutOfMemory);
}

#[test]
fn refusals_never_read_as_would_block() {
    let refusals = [
        CodecError::FrameTooLong { len: 9, max: 4 },
        CodecError::ItemTooLong { len: 9, max: 4 },
        CodecError::UnexpectedEof { buffered: 1 },
        CodecError::DelimiterInFrame { position: 0 },
        CodecError::Failed,
        CodecError::MissingMaxFrameLength,
        CodecError::EmptyDelimiter,
        CodecError::from(MemoryBudget::new(4).try_reserve(8).unwrap_err()),
        CodecError::from({
            let budget = MemoryBudget::new(4);
            let _held = budget.try_reserve(4).unwrap();
            budget.try_reserve(1).unwrap_err()
        }),
    ];
    for err in refusals {
        let text = err.to_string();
        assert_ne!(
            io::Error::from(err).kind(),
            io::ErrorKind::WouldBlock,
            "{text}"
        );
    }
}
