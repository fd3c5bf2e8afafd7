#![no_main]
//! LineCodec with a max chosen by the input, both policies, any chunking.

mod common;

use libfuzzer_sys::fuzz_target;
use tidegate::codec::{LineCodec, OversizePolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&[a], rest)) = data.split_first_chunk::<1>() else {
        return;
    };
    let max = usize::from(a & 0x7f);
    let policy = if a & 0x80 != 0 { OversizePolicy::Skip } else { OversizePolicy::Fail };
    let Ok(mut codec) = LineCodec::builder().max_frame_length(max).oversize_policy(policy).build() else {
        unreachable!("the maximum is set");
    };
    // A line of `max` bytes plus a '\r' that may start "\r\n".
    common::run(&mut codec, rest, max, max + 1);
});
