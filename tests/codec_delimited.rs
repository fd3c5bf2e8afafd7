//! DelimiterCodec and LineCodec over byte vectors: splits, limits, policies, `\r\n` vs `\n`, encoder refusals.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{assert_all_splits, feed, whole};
use tidegate::codec::{CodecError, DelimiterCodec, LineCodec, OversizePolicy};
use tokio_util::codec::{Decoder, Encoder};

fn delims(max: usize) -> DelimiterCodec {
    DelimiterCodec::new([&b"\r\n"[..], b"||", b";"], max).unwrap()
}

#[test]
fn delimiters_split_across_reads() {
    let wire = b"ab\r\ncd||;e;;f\r\n";
    assert_all_splits(|| delims(16), wire, &[b"ab", b"cd", b"", b"e", b"", b"f"]);
}

#[test]
fn the_earliest_delimiter_wins_then_the_first_listed() {
    // "|" and "||" both start at byte 1: the one listed first wins.
    let mut codec = DelimiterCodec::new([&b"||"[..], b"|"], 16).unwrap();
    assert_eq!(whole(&mut codec, b"a||b|").frames, [&b"a"[..], b"b"]);
    let mut codec = DelimiterCodec::new([&b"|"[..], b"||"], 16).unwrap();
    assert_eq!(whole(&mut codec, b"a||b|").frames, [&b"a"[..], b"", b"b"]);
    // The shortest frame wins, whichever delimiter is listed first or is longer.
    let mut codec = DelimiterCodec::new([&b"z"[..], b"xyz"], 16).unwrap();
    assert_eq!(whole(&mut codec, b"axyz").frames, [&b"a"[..]]);
}

#[test]
fn delimiter_max_exactly_at_and_one_past() {
    let wire = b"12345678||";
    assert_all_splits(|| delims(8), wire, &[b"12345678"]);
    let err = whole(&mut delims(7), wire).error.unwrap();
    assert!(
        matches!(err, CodecError::FrameTooLong { max: 7, .. }),
        "{err}"
    );
}

#[test]
fn oversize_is_found_before_its_delimiter_arrives() {
    let mut codec = delims(8);
    let mut buf = BytesMut::from(&b"123456789"[..]); // 9 bytes; the last may start "||" or "\r\n"
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"0");
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(err, CodecError::FrameTooLong { len: 9, max: 8 }),
        "{err}"
    );
}

#[test]
fn delimiter_too_long_then_valid_under_each_policy() {
    let wire = b"far-too-long;ok;";
    let out = whole(&mut delims(4), wire);
    assert!(out.frames.is_empty());
    assert!(matches!(out.error, Some(CodecError::FrameTooLong { .. })));
    let skip = || {
        let mut codec = delims(4);
        codec.set_oversize_policy(OversizePolicy::Skip);
        codec
    };
    assert_all_splits(skip, wire, &[b"ok"]);
    let mut codec = skip();
    whole(&mut codec, wire);
    let m = codec.metrics();
    assert_eq!((m.too_long, m.discarded_bytes, m.frames), (1, 13, 1));
}

#[test]
fn skip_keeps_only_a_possible_delimiter_prefix_buffered() {
    let mut codec = delims(4);
    codec.set_oversize_policy(OversizePolicy::Skip);
    let mut buf = BytesMut::new();
    for _ in 0..1000 {
        buf.extend_from_slice(b"xxxxxxxxx|");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.len() <= 1,
            "{} bytes buffered while discarding",
            buf.len()
        );
    }
    buf.extend_from_slice(b"|next;");
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "next");
}

#[test]
fn byte_at_a_time_is_linear() {
    // 64 KiB fed one byte at a time; quadratic rescanning would take billions of steps and minutes.
    let n = 64 * 1024;
    let mut codec = DelimiterCodec::new([&b"\r\n"[..], b"\0"], n).unwrap();
    let mut buf = BytesMut::new();
    for _ in 0..n {
        buf.extend_from_slice(b"a");
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }
    buf.extend_from_slice(b"\0");
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), n);
}

#[test]
fn empty_delimiters_are_refused() {
    assert!(matches!(
        DelimiterCodec::new(Vec::<Vec<u8>>::new(), 8),
        Err(CodecError::EmptyDelimiter)
    ));
    assert!(matches!(
        DelimiterCodec::new([&b";"[..], b""], 8),
        Err(CodecError::EmptyDelimiter)
    ));
}

#[test]
fn delimiter_encoder_refuses_frames_that_would_not_decode_back() {
    let mut codec = DelimiterCodec::new([&b"||"[..], b";"], 8).unwrap();
    let mut dst = BytesMut::new();
    assert!(matches!(
        codec.encode(Bytes::from_static(b"a;b"), &mut dst),
        Err(CodecError::DelimiterInFrame { position: 1 })
    ));
    // "a|" followed by "||" contains "||" at byte 1.
    assert!(matches!(
        codec.encode(Bytes::from_static(b"a|"), &mut dst),
        Err(CodecError::DelimiterInFrame { position: 1 })
    ));
    assert!(matches!(
        codec.encode(Bytes::from_static(b"123456789"), &mut dst),
        Err(CodecError::ItemTooLong { len: 9, max: 8 })
    ));
    assert!(dst.is_empty());
    codec.encode(Bytes::from_static(b"ok"), &mut dst).unwrap();
    assert_eq!(&dst[..], b"ok||");
    // A delimiter that could start inside the frame and run past the first one is refused too.
    let mut codec = DelimiterCodec::new([&b"b"[..], b"abc"], 8).unwrap();
    assert!(matches!(
        codec.encode(Bytes::from_static(b"xa"), &mut dst),
        Err(CodecError::DelimiterInFrame { position: 1 })
    ));
}

#[test]
fn delimiter_eof_returns_the_last_unterminated_frame() {
    assert_eq!(
        whole(&mut delims(8), b"a;tail").frames,
        [&b"a"[..], b"tail"]
    );
    let out = whole(&mut delims(3), b"a;tail");
    assert!(matches!(
        out.error,
        Some(CodecError::FrameTooLong { len: 4, max: 3 })
    ));
}

#[test]
fn lines_crlf_and_lf_split_at_every_position() {
    let wire = b"one\r\ntwo\n\r\n\nlone\rcr\n";
    assert_all_splits(
        || LineCodec::new(16),
        wire,
        &[b"one", b"two", b"", b"", b"lone\rcr"],
    );
}

#[test]
fn line_ending_does_not_count_toward_the_max() {
    for wire in [&b"12345678\n"[..], b"12345678\r\n"] {
        assert_all_splits(|| LineCodec::new(8), wire, &[b"12345678"]);
        let err = whole(&mut LineCodec::new(7), wire).error.unwrap();
        assert!(
            matches!(err, CodecError::FrameTooLong { len: 8, max: 7 }),
            "{err}"
        );
    }
    // A trailing '\r' may start "\r\n", so 8 bytes plus '\r' are not yet too long for max 8...
    let mut codec = LineCodec::new(8);
    let mut buf = BytesMut::from(&b"12345678\r"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    // ...but 9 bytes of content are.
    let mut buf = BytesMut::from(&b"123456789"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLong { len: 9, max: 8 })
    ));
}

#[test]
fn line_too_long_then_valid_under_each_policy() {
    let wire = b"this line is too long\r\nok\n";
    let out = whole(&mut LineCodec::new(4), wire);
    assert!(out.frames.is_empty() && out.error.is_some());
    let skip = || {
        LineCodec::builder()
            .max_frame_length(4)
            .oversize_policy(OversizePolicy::Skip)
            .build()
            .unwrap()
    };
    assert_all_splits(skip, wire, &[b"ok"]);
    let mut codec = skip();
    let out = feed(&mut codec, &[&wire[..10], &wire[10..]]);
    assert_eq!(out.frames, [&b"ok"[..]]);
    let m = codec.metrics();
    assert_eq!(
        (m.too_long, m.discarded_bytes, m.frames, m.bytes),
        (1, 23, 1, 2)
    );
    // The codec is not failed: it goes on reading.
    let mut buf = BytesMut::from(
        &b"more
"[..],
    );
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "more");
}

#[test]
fn line_fail_stays_failed() {
    let mut codec = LineCodec::new(2);
    let mut buf = BytesMut::from(&b"long\nok\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLong { .. })
    ));
    assert!(matches!(codec.decode(&mut buf), Err(CodecError::Failed)));
    assert!(codec.is_failed());
}

#[test]
fn line_eof_strips_a_trailing_cr() {
    assert_eq!(
        whole(&mut LineCodec::new(8), b"a\nlast\r").frames,
        [&b"a"[..], b"last"]
    );
}

#[test]
fn line_encoder_refusals() {
    let mut codec = LineCodec::new(4);
    let mut dst = BytesMut::new();
    assert!(matches!(
        codec.encode(Bytes::from_static(b"a\nb"), &mut dst),
        Err(CodecError::DelimiterInFrame { position: 1 })
    ));
    assert!(matches!(
        codec.encode(Bytes::from_static(b"ab\r"), &mut dst),
        Err(CodecError::DelimiterInFrame { position: 2 })
    ));
    assert!(matches!(
        codec.encode(Bytes::from_static(b"abcde"), &mut dst),
        Err(CodecError::ItemTooLong { len: 5, max: 4 })
    ));
    assert!(dst.is_empty());
    codec.encode(Bytes::from_static(b"a\rb"), &mut dst).unwrap();
    assert_eq!(&dst[..], b"a\rb\n");
}
