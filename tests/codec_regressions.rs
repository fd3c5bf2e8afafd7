//! Regressions from issue #10: results that depended on chunking, caps that could be bypassed, a stray line.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{assert_all_splits, feed, whole};
use tidegate::codec::{
    Capped, CodecError, DelimiterCodec, LengthFieldCodec, LineCodec, OversizePolicy,
};
use tokio_util::codec::{AnyDelimiterCodec, Decoder};

#[test]
fn a_longer_delimiter_starting_earlier_wins_at_every_split() {
    // "\r\n\r\n" starts at byte 1, "\n" at byte 2: the earliest start wins, however the bytes arrive.
    let make = || DelimiterCodec::new([&b"\r\n\r\n"[..], b"\n"], 16).unwrap();
    assert_all_splits(make, b"a\r\n\r\nb\nc\r\nd", &[b"a", b"b", b"c\r", b"d"]);
}

#[test]
fn skip_does_not_discard_a_valid_frame_behind_a_shared_prefix() {
    let make = || {
        DelimiterCodec::builder()
            .delimiters([&b"\r\n\r\n"[..], b"\n"])
            .max_frame_length(3)
            .oversize_policy(OversizePolicy::Skip)
            .build()
            .unwrap()
    };
    // "toolong" ends at the first "\r\n\r\n"; "ok" is a frame of its own.
    let wire = b"toolong\r\n\r\nok\n";
    assert_all_splits(make, wire, &[b"ok"]);
    for at in 0..=wire.len() {
        let mut codec = make();
        feed(&mut codec, &[&wire[..at], &wire[at..]]);
        let m = codec.metrics();
        assert_eq!(
            (m.too_long, m.discarded_bytes, m.frames),
            (1, 11, 1),
            "split at {at}"
        );
    }
}

#[test]
fn capped_never_returns_a_frame_over_its_max() {
    let inner = AnyDelimiterCodec::new(b";".to_vec(), vec![]);
    let mut codec = Capped::new(inner, 4);
    // The whole long frame in one read: the inner decoder returns it at once.
    let mut buf = BytesMut::from(&b"ok;far-too-long;"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    assert!(codec.decode(&mut buf).is_err());
    assert!(codec.is_failed());
    assert_eq!(codec.metrics().too_long, 1);

    let inner = AnyDelimiterCodec::new(b";".to_vec(), vec![]);
    let mut codec = Capped::builder(inner)
        .max_frame_length(4)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap();
    let mut buf = BytesMut::from(&b"far-too-long;ok;"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    let m = codec.metrics();
    assert_eq!((m.too_long, m.discarded_bytes, m.frames), (1, 13, 1));
}

#[test]
fn capped_skip_drops_the_rest_of_the_oversize_frame_at_every_split() {
    let make = || {
        Capped::builder(LineCodec::new(usize::MAX))
            .max_frame_length(4)
            .oversize_policy(OversizePolicy::Skip)
            .build()
            .unwrap()
    };
    assert_all_splits(make, b"a\nfar too long\nok\n", &[b"a", b"ok"]);
}

#[test]
fn lowering_the_max_keeps_the_decision_on_a_header_already_read() {
    let mut codec = LengthFieldCodec::new(64);
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x0512"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    codec.set_max_frame_length(8).unwrap();
    buf.extend_from_slice(b"345\x00\x00\x00\x05abcde");
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "12345");
    // The next header is read under the new maximum.
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLong { len: 9, max: 8 })
    ));
}

#[test]
fn a_lone_cr_at_eof_is_not_a_line() {
    assert_all_splits(|| LineCodec::new(8), b"a\n\r", &[b"a"]);
    assert_all_splits(|| LineCodec::new(8), b"abc\r", &[b"abc"]);
    assert_eq!(whole(&mut LineCodec::new(8), b"\r").frames.len(), 0);
    let mut codec = LineCodec::new(8);
    whole(&mut codec, b"\r");
    assert_eq!(codec.metrics().frames, 0);
}

#[test]
fn encoder_refusals_are_the_callers_fault_decoder_refusals_the_peers() {
    use std::io::{Error, ErrorKind};
    use tokio_util::codec::Encoder;
    let mut dst = BytesMut::new();
    let refused: Vec<CodecError> = vec![
        LengthFieldCodec::new(8)
            .encode(Bytes::from_static(b"12345"), &mut dst)
            .unwrap_err(),
        LineCodec::new(4)
            .encode(Bytes::from_static(b"12345"), &mut dst)
            .unwrap_err(),
        LineCodec::new(4)
            .encode(Bytes::from_static(b"a\nb"), &mut dst)
            .unwrap_err(),
        DelimiterCodec::new([";"], 4)
            .unwrap()
            .encode(Bytes::from_static(b"12345"), &mut dst)
            .unwrap_err(),
        DelimiterCodec::new([";"], 4)
            .unwrap()
            .encode(Bytes::from_static(b"a;"), &mut dst)
            .unwrap_err(),
    ];
    assert!(dst.is_empty());
    for err in refused {
        let text = err.to_string();
        assert_eq!(Error::from(err).kind(), ErrorKind::InvalidInput, "{text}");
    }
    let decoded = [
        whole(&mut LengthFieldCodec::new(8), b"\x00\x00\x00\x05")
            .error
            .unwrap(),
        whole(&mut LineCodec::new(4), b"12345\n").error.unwrap(),
        whole(&mut DelimiterCodec::new([";"], 4).unwrap(), b"12345;")
            .error
            .unwrap(),
    ];
    for err in decoded {
        let text = err.to_string();
        assert_eq!(Error::from(err).kind(), ErrorKind::InvalidData, "{text}");
    }
}
