#![no_main]
//! Capped around tokio-util's uncapped AnyDelimiterCodec, both policies, any chunking.

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidegate::codec::{Capped, OversizePolicy};
use tokio_util::codec::{AnyDelimiterCodec, Decoder};

/// Adapts AnyDelimiterCodec's error type to the shared runner (which only needs `Item = Bytes`).
#[derive(Clone)]
struct Inner(AnyDelimiterCodec);

impl Decoder for Inner {
    type Item = Bytes;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut bytes::BytesMut) -> Result<Option<Bytes>, std::io::Error> {
        self.0.decode(src).map_err(std::io::Error::other)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a], rest)) = data.split_first_chunk::<1>() else {
        return;
    };
    let max = usize::from(a & 0x7f);
    let inner = Inner(AnyDelimiterCodec::new(b";\n".to_vec(), vec![]));
    let mut codec = if a & 0x80 != 0 {
        match Capped::builder(inner).max_frame_length(max).oversize_policy(OversizePolicy::Skip).build() {
            Ok(codec) => codec,
            Err(err) => unreachable!("the maximum is set: {err}"),
        }
    } else {
        Capped::new(inner, max)
    };
    // A frame takes at most `max` bytes on the wire (its delimiter included), even when one read brings it whole,
    // and at most `max` bytes of an unfinished one stay buffered.
    common::run(&mut codec, rest, max, max);
});
