//! Shared by the codec test binaries: feeding byte vectors to a decoder the way `FramedRead` does.
#![allow(dead_code)] // each test binary uses a different part

use bytes::{Bytes, BytesMut};
use tidegate::codec::CodecError;
use tokio_util::codec::Decoder;

/// What a decoder made of a stream: the frames, then the error that ended it, if any.
#[derive(Debug)]
pub struct Outcome {
    pub frames: Vec<Bytes>,
    pub error: Option<CodecError>,
}

/// Feeds `chunks` one after another, decoding after each as `FramedRead` does, then signals the end of the stream.
pub fn feed<D>(codec: &mut D, chunks: &[&[u8]]) -> Outcome
where
    D: Decoder<Item = Bytes, Error = CodecError>,
{
    feed_bounded(codec, chunks, usize::MAX)
}

/// [`feed`], also checking that at most `bound` bytes stay buffered whenever the decoder asks for more.
pub fn feed_bounded<D>(codec: &mut D, chunks: &[&[u8]], bound: usize) -> Outcome
where
    D: Decoder<Item = Bytes, Error = CodecError>,
{
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert!(
                        buf.len() <= bound,
                        "{} bytes buffered, bound {bound}",
                        buf.len()
                    );
                    break;
                }
                Err(error) => {
                    return Outcome {
                        frames,
                        error: Some(error),
                    }
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                return Outcome {
                    frames,
                    error: None,
                }
            }
            Err(error) => {
                return Outcome {
                    frames,
                    error: Some(error),
                }
            }
        }
    }
}

/// Cuts `wire` at the given fractions of its length.
pub fn chunk(wire: &[u8], cuts: &[proptest::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain([wire.len()]) {
        chunks.push(wire[from..to].to_vec());
        from = to;
    }
    chunks
}

/// The whole wire in one read.
pub fn whole<D>(codec: &mut D, wire: &[u8]) -> Outcome
where
    D: Decoder<Item = Bytes, Error = CodecError>,
{
    feed(codec, &[wire])
}

/// Checks that every way of splitting `wire` in two, and feeding it one byte at a time, gives `expected`.
pub fn assert_all_splits<D, F>(make: F, wire: &[u8], expected: &[&[u8]])
where
    D: Decoder<Item = Bytes, Error = CodecError>,
    F: Fn() -> D,
{
    for at in 0..=wire.len() {
        let out = feed(&mut make(), &[&wire[..at], &wire[at..]]);
        assert!(out.error.is_none(), "split at {at}: {:?}", out.error);
        assert_eq!(out.frames, expected, "split at {at}");
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    let out = feed(&mut make(), &bytes);
    assert!(out.error.is_none(), "byte at a time: {:?}", out.error);
    assert_eq!(out.frames, expected, "byte at a time");
}
