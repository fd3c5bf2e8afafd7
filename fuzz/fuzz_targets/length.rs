#![no_main]
//! LengthFieldCodec under every layout the first bytes choose, both policies, any chunking.

mod common;

use libfuzzer_sys::fuzz_target;
use tidegate::codec::{LengthFieldCodec, OversizePolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, c], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let width = [1usize, 2, 3, 4, 8][usize::from(a % 5)];
    let offset = usize::from(a >> 5);
    let adjustment = i64::from(b as i8 % 16);
    let max = 16 + usize::from(c) * 4;
    let mut builder = LengthFieldCodec::builder();
    builder
        .max_frame_length(max)
        .length_field_width(width)
        .length_field_offset(offset)
        .length_adjustment(adjustment)
        .oversize_policy(if b & 0x80 != 0 { OversizePolicy::Skip } else { OversizePolicy::Fail });
    if c & 1 == 1 {
        builder.little_endian();
    }
    if b & 0x40 != 0 {
        builder.strip(0);
    }
    let Ok(mut codec) = builder.build() else {
        return; // refused configurations are fine; building must just not panic
    };
    // An incomplete frame is shorter than the max; an incomplete header is shorter than the header.
    common::run(&mut codec, rest, max, max);
});
