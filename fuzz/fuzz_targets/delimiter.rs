#![no_main]
//! DelimiterCodec with delimiters chosen by the input (overlapping sets too), both policies, any chunking.

mod common;

use libfuzzer_sys::fuzz_target;
use tidegate::codec::{DelimiterCodec, OversizePolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    // Overlapping sets ("\n" inside "\r\n" and "\r\n\r\n", "\0" inside "\0\0\0") exercise the look-ahead.
    let all: [&[u8]; 7] = [b"\n", b"\r\n", b"||", b"\0\0\0", b"\r\n\r\n", b"\0", b"|"];
    let delimiters: Vec<&[u8]> = (0..7).filter(|i| a & (1 << i) != 0).map(|i| all[i]).collect();
    let max = usize::from(b);
    let policy = if a & 0x80 != 0 { OversizePolicy::Skip } else { OversizePolicy::Fail };
    let Ok(mut codec) = DelimiterCodec::builder()
        .delimiters(&delimiters)
        .max_frame_length(max)
        .oversize_policy(policy)
        .build()
    else {
        assert!(delimiters.is_empty());
        return;
    };
    // Beyond the max, only a possible delimiter prefix (at most 3 bytes) may stay buffered.
    common::run(&mut codec, rest, max, max + 3);
});
