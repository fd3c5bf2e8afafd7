//! Property: encoding any frame sequence and decoding it under any chunking gives the same frames back.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{chunk, feed};
use proptest::prelude::*;
use tidegate::codec::{CodecError, DelimiterCodec, LengthFieldCodec, LineCodec};
use tokio_util::codec::{Decoder, Encoder};

fn round_trip<C>(
    mut make: impl FnMut() -> C,
    frames: &[Vec<u8>],
    cuts: &[prop::sample::Index],
) -> Result<(), TestCaseError>
where
    C: Decoder<Item = Bytes, Error = CodecError> + Encoder<Bytes, Error = CodecError>,
{
    let mut wire = BytesMut::new();
    let mut encoder = make();
    for f in frames {
        encoder
            .encode(Bytes::copy_from_slice(&f[..]), &mut wire)
            .expect("frames are generated encodable");
    }
    let chunks = chunk(&wire, cuts);
    let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let out = feed(&mut make(), &chunks);
    prop_assert!(out.error.is_none(), "{:?}", out.error);
    prop_assert_eq!(out.frames, frames.to_vec());
    Ok(())
}

fn layout() -> impl Strategy<Value = (usize, usize, bool, i64)> {
    (
        0usize..4,
        prop::sample::select(vec![1usize, 2, 3, 4, 8]),
        any::<bool>(),
        -3i64..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn length_round_trip(
        (offset, width, big, adjustment) in layout(),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 3..40), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let make = || {
            let mut b = LengthFieldCodec::builder();
            b.max_frame_length(64).length_field_offset(offset).length_field_width(width).length_adjustment(adjustment);
            if big { b.big_endian(); } else { b.little_endian(); }
            b.build().unwrap()
        };
        round_trip(make, &frames, &cuts)?;
    }

    #[test]
    fn delimiter_round_trip(
        frames in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab|;\r\n".to_vec()), 0..20), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let delims = [&b"||"[..], b";", b"\r\n"];
        // Frames that would not survive encoding are refused by the encoder; keep the ones it accepts.
        let mut probe = DelimiterCodec::new(delims, 32).unwrap();
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .filter(|f| probe.encode(Bytes::copy_from_slice(&f[..]), &mut BytesMut::new()).is_ok())
            .collect();
        // A trailing empty frame has no bytes of its own after the last delimiter, which is fine: it is encoded
        // with its delimiter, so it still decodes.
        round_trip(|| DelimiterCodec::new(delims, 32).unwrap(), &frames, &cuts)?;
    }

    #[test]
    fn line_round_trip(
        frames in prop::collection::vec("[a-z \r]{0,20}", 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .map(String::into_bytes)
            .filter(|f| f.last() != Some(&b'\r'))
            .collect();
        round_trip(|| LineCodec::new(20), &frames, &cuts)?;
    }

    #[test]
    fn decoders_never_panic_and_stay_bounded(
        wire in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let chunks = chunk(&wire, &cuts);
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        for skip in [false, true] {
            let policy = if skip { tidegate::codec::OversizePolicy::Skip } else { tidegate::codec::OversizePolicy::Fail };
            let out = feed(&mut LengthFieldCodec::builder().max_frame_length(32).length_field_width(2).length_adjustment(-2).oversize_policy(policy).build().unwrap(), &chunks);
            prop_assert!(out.frames.iter().all(|f| f.len() <= 30));
            let out = feed(&mut DelimiterCodec::builder().delimiters([&b"\0\0"[..], b"\n"]).max_frame_length(16).oversize_policy(policy).build().unwrap(), &chunks);
            prop_assert!(out.frames.iter().all(|f| f.len() <= 16));
            let out = feed(&mut LineCodec::builder().max_frame_length(16).oversize_policy(policy).build().unwrap(), &chunks);
            prop_assert!(out.frames.iter().all(|f| f.len() <= 16));
        }
    }
}
