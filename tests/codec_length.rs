//! LengthFieldCodec over byte vectors: layouts, limits, policies, malformed headers, encoder refusals.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{assert_all_splits, feed, whole};
use tidegate::codec::{CodecError, LengthFieldCodec, OversizePolicy};
use tokio_util::codec::{Decoder, Encoder};

fn be4(max: usize) -> LengthFieldCodec {
    LengthFieldCodec::new(max)
}

fn skip4(max: usize) -> LengthFieldCodec {
    LengthFieldCodec::builder()
        .max_frame_length(max)
        .oversize_policy(OversizePolicy::Skip)
        .build()
        .unwrap()
}

#[test]
fn frames_split_at_every_byte_position() {
    let wire = b"\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x00\x00\x01z";
    assert_all_splits(|| be4(64), wire, &[b"abc", b"", b"z"]);
}

#[test]
fn many_frames_in_one_read() {
    let mut wire = Vec::new();
    for i in 0..100u32 {
        wire.extend_from_slice(&(i % 7).to_be_bytes());
        wire.extend(std::iter::repeat_n(b'x', (i % 7) as usize));
    }
    let out = whole(&mut be4(64), &wire);
    assert!(out.error.is_none());
    assert_eq!(out.frames.len(), 100);
    for (i, f) in out.frames.iter().enumerate() {
        assert_eq!(f.len(), i % 7);
    }
}

#[test]
fn zero_length_frames() {
    let out = whole(&mut be4(4), &[0u8; 12]);
    assert!(out.error.is_none());
    assert_eq!(out.frames, vec![Bytes::new(); 3]);
}

#[test]
fn every_field_width_in_both_byte_orders() {
    for width in [1usize, 2, 3, 4, 8] {
        for big in [true, false] {
            let make = || {
                let mut b = LengthFieldCodec::builder();
                b.max_frame_length(width + 5).length_field_width(width);
                if big {
                    b.big_endian();
                } else {
                    b.little_endian();
                }
                b.build().unwrap()
            };
            let mut field = vec![0u8; width];
            if big {
                field[width - 1] = 5;
            } else {
                field[0] = 5;
            }
            let mut wire = field.clone();
            wire.extend_from_slice(b"hello");
            assert_all_splits(make, &wire, &[b"hello"]);
            // The encoder writes exactly that header.
            let mut dst = BytesMut::new();
            make()
                .encode(Bytes::from_static(b"hello"), &mut dst)
                .unwrap();
            assert_eq!(&dst[..], &wire[..], "width {width} big {big}");
        }
    }
}

#[test]
fn offset_adjustment_and_strip_in_both_byte_orders() {
    for big in [true, false] {
        let make = || {
            let mut b = LengthFieldCodec::builder();
            b.max_frame_length(64)
                .length_field_offset(2)
                .length_field_width(2)
                .length_adjustment(-4) // the field counts the whole frame
                .strip(1);
            if big {
                b.big_endian();
            } else {
                b.little_endian();
            }
            b.build().unwrap()
        };
        let len: [u8; 2] = if big { [0, 7] } else { [7, 0] };
        let mut wire = vec![0xAA, 0xBB];
        wire.extend_from_slice(&len);
        wire.extend_from_slice(b"xyz");
        let mut expected = vec![0xBB];
        expected.extend_from_slice(&len);
        expected.extend_from_slice(b"xyz");
        assert_all_splits(make, &wire, &[&expected]);
    }
}

#[test]
fn positive_adjustment_counts_toward_the_limit() {
    // The field leaves out a 2-byte trailer; the frame is 4 + 4 + 2 = 10 bytes.
    let make = |max| {
        LengthFieldCodec::builder()
            .max_frame_length(max)
            .length_adjustment(2)
            .build()
            .unwrap()
    };
    let wire = b"\x00\x00\x00\x04abcd!!";
    assert_eq!(
        whole(&mut make(10), wire).frames,
        vec![Bytes::from_static(b"abcd!!")]
    );
    let err = whole(&mut make(9), wire).error.unwrap();
    assert!(
        matches!(err, CodecError::FrameTooLong { len: 10, max: 9 }),
        "{err}"
    );
}

#[test]
fn max_exactly_at_and_one_past() {
    let wire = b"\x00\x00\x00\x04abcd";
    let out = whole(&mut be4(8), wire);
    assert_eq!((out.frames.len(), out.error.is_none()), (1, true));
    let mut codec = be4(7);
    let err = whole(&mut codec, wire).error.unwrap();
    assert!(
        matches!(err, CodecError::FrameTooLong { len: 8, max: 7 }),
        "{err}"
    );
    assert_eq!(codec.metrics().too_long, 1);
}

#[test]
fn too_long_then_valid_under_fail_stays_failed() {
    let wire = b"\x00\x00\x00\x09123456789\x00\x00\x00\x02ok";
    let mut codec = be4(8);
    let mut buf = BytesMut::from(&wire[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLong { len: 13, max: 8 })
    ));
    assert!(matches!(codec.decode(&mut buf), Err(CodecError::Failed)));
    assert!(codec.is_failed());
}

#[test]
fn too_long_then_valid_under_skip_continues_at_every_split() {
    let wire = b"\x00\x00\x00\x09123456789\x00\x00\x00\x02ok";
    assert_all_splits(|| skip4(8), wire, &[b"ok"]);
    let mut codec = skip4(8);
    let out = whole(&mut codec, wire);
    assert_eq!(out.frames, vec![Bytes::from_static(b"ok")]);
    let m = codec.metrics();
    assert_eq!(
        (m.too_long, m.discarded_bytes, m.frames, m.bytes),
        (1, 13, 1, 2)
    );
}

#[test]
fn skip_discards_as_bytes_arrive_without_buffering() {
    let mut codec = skip4(16);
    let mut buf = BytesMut::from(&b"\x00\x10\x00\x00"[..]); // claims 1 MiB
    assert!(codec.decode(&mut buf).unwrap().is_none());
    for _ in 0..100 {
        buf.extend_from_slice(&[7u8; 1000]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty(), "discarded bytes must not stay buffered");
    }
    assert_eq!(codec.metrics().discarded_bytes, 100_004);
}

#[test]
fn malformed_lengths_are_typed_errors() {
    // The field counts the whole frame, so a value below the 4-byte header is malformed.
    let mut codec = LengthFieldCodec::builder()
        .max_frame_length(64)
        .length_adjustment(-4)
        .build()
        .unwrap();
    let err = whole(&mut codec, b"\x00\x00\x00\x02ab").error.unwrap();
    assert!(
        matches!(
            err,
            CodecError::FrameShorterThanHeader {
                value: 2,
                adjustment: -4,
                frame_len: 2,
                header_len: 4
            }
        ),
        "{err}"
    );
    assert_eq!(codec.metrics().malformed, 1);
    assert!(matches!(
        codec.decode(&mut BytesMut::new()),
        Err(CodecError::Failed)
    ));
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn eight_byte_field_beyond_usize_is_fatal_under_every_policy() {
    let make = |adjustment, policy| {
        LengthFieldCodec::builder()
            .max_frame_length(1024)
            .length_field_width(8)
            .length_adjustment(adjustment)
            .oversize_policy(policy)
            .build()
            .unwrap()
    };
    for policy in [OversizePolicy::Fail, OversizePolicy::Skip] {
        // 8 + u64::MAX + 100 bytes: no machine holds that frame, and skipping it would swallow the stream.
        let mut codec = make(100, policy);
        let out = whole(
            &mut codec,
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00",
        );
        let err = out.error.unwrap();
        let expected = 8 + i128::from(u64::MAX) + 100;
        assert!(
            matches!(
                err,
                CodecError::FrameLengthOverflow { value: u64::MAX, adjustment: 100, frame_len } if frame_len == expected
            ),
            "{policy:?}: {err}"
        );
        assert!(codec.is_failed());
        let m = codec.metrics();
        assert_eq!((m.malformed, m.too_long, m.discarded_bytes), (1, 0, 0));
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::InvalidData
        );
    }
    // Just inside u64: an ordinary oversize frame, with its exact length.
    let err = whole(&mut make(-100, OversizePolicy::Fail), &[0xFF; 8])
        .error
        .unwrap();
    assert!(
        matches!(err, CodecError::FrameTooLong { len, max: 1024 } if len == u64::MAX - 92),
        "{err}"
    );
}

#[test]
fn truncated_frame_at_eof_is_an_error() {
    let err = whole(&mut be4(64), b"\x00\x00\x00\x05abc").error.unwrap();
    assert!(
        matches!(err, CodecError::UnexpectedEof { buffered: 7 }),
        "{err}"
    );
}

#[test]
fn impossible_configurations_are_refused() {
    let b = || {
        let mut b = LengthFieldCodec::builder();
        b.max_frame_length(1024);
        b
    };
    assert!(matches!(
        LengthFieldCodec::builder().build(),
        Err(CodecError::MissingMaxFrameLength)
    ));
    assert!(matches!(
        b().length_field_width(5).build(),
        Err(CodecError::InvalidFieldWidth { width: 5 })
    ));
    assert!(matches!(
        b().length_field_width(1).build(),
        Err(CodecError::FieldTooNarrow {
            width: 1,
            reachable: 256,
            max: 1024
        })
    ));
    assert!(matches!(
        b().length_field_offset(2000).build(),
        Err(CodecError::MaxBelowHeader {
            max: 1024,
            header_len: 2004
        })
    ));
    assert!(matches!(
        b().length_adjustment(2000).build(),
        Err(CodecError::AdjustmentOutOfRange { .. })
    ));
    assert!(matches!(
        b().length_field_width(1)
            .length_adjustment(-300)
            .max_frame_length(8)
            .build(),
        Err(CodecError::AdjustmentOutOfRange { .. })
    ));
    assert!(matches!(
        b().strip(5).build(),
        Err(CodecError::StripTooLarge {
            strip: 5,
            min_frame: 4
        })
    ));
    // A positive adjustment makes every frame longer, so more can be stripped.
    assert!(b().length_adjustment(2).strip(6).build().is_ok());
    assert!(b()
        .length_field_width(2)
        .max_frame_length(65537)
        .build()
        .is_ok());
    assert!(b()
        .length_field_width(2)
        .max_frame_length(65538)
        .build()
        .is_err());
    let mut codec = be4(64);
    assert!(codec.set_max_frame_length(3).is_err());
    assert_eq!(codec.max_frame_length(), 64);
}

#[test]
fn encoder_refuses_too_long_and_unrepresentable_frames_without_writing() {
    let mut dst = BytesMut::new();
    let mut codec = be4(8);
    assert!(matches!(
        codec.encode(Bytes::from_static(b"12345"), &mut dst),
        Err(CodecError::ItemTooLong { len: 9, max: 8 })
    ));
    let mut codec = LengthFieldCodec::builder()
        .max_frame_length(64)
        .length_adjustment(2)
        .build()
        .unwrap();
    assert!(matches!(
        codec.encode(Bytes::from_static(b"a"), &mut dst),
        Err(CodecError::LengthNotRepresentable {
            len: 1,
            value: -1,
            width: 4
        })
    ));
    assert!(dst.is_empty());
    codec.encode(Bytes::from_static(b"abc"), &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x00\x00\x00\x01abc");
}

#[test]
fn decoding_claimed_length_does_not_reserve_it() {
    let mut codec = be4(1 << 30);
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(b"\x3f\xff\xff\xfb");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() < 1024, "capacity grew to {}", buf.capacity());
}

#[test]
fn small_frame_from_a_large_buffer_is_copied_out() {
    let mut codec = be4(1 << 20);
    let mut buf = BytesMut::with_capacity(1 << 20);
    buf.extend_from_slice(b"\x00\x00\x00\x02hi\x00\x00\x00\x01!");
    let a = codec.decode(&mut buf).unwrap().unwrap();
    let b = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!((&a[..], &b[..]), (&b"hi"[..], &b"!"[..]));
    assert_eq!(codec.metrics().copied_frames, 2);
    // In a small buffer frames share the allocation.
    let mut codec = be4(1 << 20);
    let out = feed(&mut codec, &[b"\x00\x00\x00\x02hi"]);
    assert_eq!(out.frames.len(), 1);
    assert_eq!(codec.metrics().copied_frames, 0);
}

/// The header check compares the field value once against a precomputed range; every value at and around both ends
/// of that range, for each width and an adjustment of each sign, gets the answer the definition gives.
#[test]
fn header_values_at_the_edges_of_the_accepted_range() {
    for width in [1usize, 2, 3, 4, 8] {
        for adjustment in [-(width as i64) - 2, -1, 0, 3] {
            let offset = 2;
            let header = offset + width;
            let max = header + 40;
            let build = || {
                LengthFieldCodec::builder()
                    .max_frame_length(max)
                    .length_field_offset(offset)
                    .length_field_width(width)
                    .length_adjustment(adjustment)
                    .strip(0)
                    .build()
            };
            if build().is_err() {
                continue; // a layout the builder refuses (e.g. every frame shorter than its header)
            }
            // Values from below the smallest valid one to above the largest.
            let lowest = (-adjustment).max(0) as u64;
            let highest = (max as i64 - header as i64 - adjustment) as u64;
            for value in lowest.saturating_sub(2)..=highest + 2 {
                let frame_len = header as i64 + value as i64 + adjustment;
                let mut wire = vec![0xAA; offset];
                wire.extend_from_slice(&value.to_be_bytes()[8 - width..]);
                wire.resize(header.max(frame_len.max(0) as usize), 0x55);
                let got = build().unwrap().decode(&mut BytesMut::from(&wire[..]));
                match got {
                    Ok(Some(frame)) => {
                        assert!(
                            (header as i64..=max as i64).contains(&frame_len),
                            "{width} {adjustment} {value}"
                        );
                        assert_eq!(frame.len() as i64, frame_len);
                    }
                    Err(CodecError::FrameShorterThanHeader { frame_len: l, .. }) => {
                        assert!(frame_len < header as i64, "{width} {adjustment} {value}");
                        assert_eq!(l, i128::from(frame_len));
                    }
                    Err(CodecError::FrameTooLong { len, max: m }) => {
                        assert!(frame_len > max as i64, "{width} {adjustment} {value}");
                        assert_eq!((len, m), (frame_len as u64, max));
                    }
                    other => panic!("{width} {adjustment} {value}: {other:?}"),
                }
            }
        }
    }
}

/// The encoder against a reference model of its checks and its header bytes, over random layouts (including
/// adjustments that make small or large payloads unencodable) and payload lengths around every boundary.
mod encoder_model {
    use super::*;
    use proptest::prelude::*;

    fn field_max(width: usize) -> i128 {
        if width >= 8 {
            i128::from(u64::MAX)
        } else {
            (1i128 << (8 * width)) - 1
        }
    }

    /// What encoding `payload_len` bytes must give: the header bytes, or the error's identity.
    fn model(
        offset: usize,
        width: usize,
        big_endian: bool,
        adjustment: i64,
        max: usize,
        payload_len: usize,
    ) -> Result<Vec<u8>, &'static str> {
        let header_len = offset + width;
        if header_len as u128 + payload_len as u128 > max as u128 {
            return Err("too long");
        }
        let value = payload_len as i128 - i128::from(adjustment);
        if value < 0 || value > field_max(width) {
            return Err("not representable");
        }
        let bytes = (value as u64).to_be_bytes();
        let mut field = bytes[8 - width..].to_vec();
        if !big_endian {
            field.reverse();
        }
        let mut header = vec![0; offset];
        header.extend(field);
        Ok(header)
    }

    proptest! {
        #[test]
        fn header_matches_the_model(
            offset in 0usize..4,
            width in prop::sample::select(vec![1usize, 2, 3, 4, 8]),
            big_endian in any::<bool>(),
            adjustment in -300i64..300,
            max in 0usize..700,
            // Payloads at the edges: around the largest that fits under `max`, around the smallest whose field is
            // not negative, and anywhere.
            edge in 0usize..3,
            delta in -3i64..=3,
            anywhere in 0usize..800,
        ) {
            let payload_len = match edge {
                0 => max as i64 - (offset + width) as i64 + delta,
                1 => adjustment + delta,
                _ => anywhere as i64,
            };
            let Ok(payload_len) = usize::try_from(payload_len) else { return Ok(()); };
            let mut builder = LengthFieldCodec::builder();
            builder
                .max_frame_length(max)
                .length_field_offset(offset)
                .length_field_width(width)
                .length_adjustment(adjustment);
            if !big_endian {
                builder.little_endian();
            }
            // Layouts that cannot decode are refused when built; only the ones that exist are compared.
            let Ok(mut codec) = builder.build() else { return Ok(()); };
            let payload = Bytes::from(vec![9u8; payload_len]);
            let mut dst = BytesMut::new();
            let got = codec.encode(payload.clone(), &mut dst);
            match model(offset, width, big_endian, adjustment, max, payload_len) {
                Ok(header) => {
                    prop_assert!(got.is_ok(), "{got:?}");
                    prop_assert_eq!(&dst[..header.len()], &header[..]);
                    prop_assert_eq!(&dst[header.len()..], &payload[..]);
                }
                Err("too long") => {
                    prop_assert!(matches!(got, Err(CodecError::ItemTooLong { .. })), "{got:?}");
                }
                Err(_) => {
                    prop_assert!(matches!(got, Err(CodecError::LengthNotRepresentable { .. })), "{got:?}");
                }
            }
        }
    }
}
