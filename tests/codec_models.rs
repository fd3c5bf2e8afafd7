//! Every decoder against a tiny reference model that sees the whole input at once: random (often hostile) bytes,
//! random chunkings, both oversize policies, `decode_eof` at the end. Frames, the error that ends the stream and the
//! counters must be what the model says, whatever the chunking.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{chunk, feed_bounded};
use proptest::prelude::*;
use tidegate::codec::{
    Capped, CodecError, CodecMetrics, DelimiterCodec, LengthFieldCodec, LineCodec, OversizePolicy,
};
use tokio_util::codec::Decoder;

/// What the model says a stream gives: frames, the error ending it, and the counters.
#[derive(Debug, Default, PartialEq)]
struct Model {
    frames: Vec<Vec<u8>>,
    /// The error, as `(kind, exact length if the decoder must know it)`.
    error: Option<Expected>,
    frames_count: u64,
    bytes: u64,
    too_long: u64,
    discarded: u64,
    malformed: u64,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Expected {
    /// `len` is the whole frame's length; a decoder may report a lower bound above `max` before it has seen all.
    TooLong {
        len: u64,
        max: usize,
        exact: bool,
    },
    ShorterThanHeader,
    Overflow,
    Eof {
        buffered: usize,
    },
}

impl Model {
    fn emit(&mut self, frame: &[u8]) {
        self.frames.push(frame.to_vec());
        self.frames_count += 1;
        self.bytes += frame.len() as u64;
    }

    /// Applies the policy to an oversize frame of `len` bytes whose `wire` bytes (framing included) are dropped
    /// under `Skip`. Returns whether the stream goes on.
    fn oversize(
        &mut self,
        policy: OversizePolicy,
        len: u64,
        max: usize,
        wire: u64,
        exact: bool,
    ) -> bool {
        self.too_long += 1;
        match policy {
            OversizePolicy::Fail => {
                self.error = Some(Expected::TooLong { len, max, exact });
                false
            }
            OversizePolicy::Skip => {
                self.discarded += wire;
                true
            }
        }
    }
}

fn check(
    model: &Model,
    frames: &[Bytes],
    error: &Option<CodecError>,
    m: CodecMetrics,
) -> Result<(), TestCaseError> {
    let got: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
    prop_assert_eq!(&got, &model.frames);
    match (error, model.error) {
        (None, None) => {}
        (
            Some(CodecError::FrameTooLong { len, max }),
            Some(Expected::TooLong {
                len: want,
                max: want_max,
                exact,
            }),
        ) => {
            prop_assert_eq!(*max, want_max);
            if exact {
                prop_assert_eq!(*len, want);
            } else {
                prop_assert!(
                    *len > *max as u64 && *len <= want,
                    "len {} for a frame of {}",
                    len,
                    want
                );
            }
        }
        (Some(CodecError::FrameShorterThanHeader { .. }), Some(Expected::ShorterThanHeader)) => {}
        (Some(CodecError::FrameLengthOverflow { .. }), Some(Expected::Overflow)) => {}
        (Some(CodecError::UnexpectedEof { buffered }), Some(Expected::Eof { buffered: want })) => {
            prop_assert_eq!(*buffered, want);
        }
        (got, want) => prop_assert!(false, "error {:?}, model says {:?}", got, want),
    }
    prop_assert_eq!(
        (
            m.frames,
            m.bytes,
            m.too_long,
            m.discarded_bytes,
            m.malformed
        ),
        (
            model.frames_count,
            model.bytes,
            model.too_long,
            model.discarded,
            model.malformed
        )
    );
    Ok(())
}

fn policy() -> impl Strategy<Value = OversizePolicy> {
    prop_oneof![Just(OversizePolicy::Fail), Just(OversizePolicy::Skip)]
}

fn cuts() -> impl Strategy<Value = Vec<prop::sample::Index>> {
    prop::collection::vec(any::<prop::sample::Index>(), 0..12)
}

/// Feeds `wire` cut at `cuts`, checking that no more than `bound` bytes stay buffered between reads.
fn run<D>(
    codec: &mut D,
    wire: &[u8],
    cuts: &[prop::sample::Index],
    bound: usize,
) -> codec_support::Outcome
where
    D: Decoder<Item = Bytes, Error = CodecError>,
{
    let chunks = chunk(wire, cuts);
    let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    feed_bounded(codec, &chunks, bound)
}

// ---------------------------------------------------------------------------------------------------------------
// DelimiterCodec

/// The earliest-starting delimiter ends the frame; between delimiters starting at the same byte, the first listed.
fn find_delimiter(hay: &[u8], delims: &[Vec<u8>]) -> Option<(usize, usize)> {
    (0..hay.len()).find_map(|s| {
        delims
            .iter()
            .find(|d| hay[s..].starts_with(d))
            .map(|d| (s, d.len()))
    })
}

fn delimiter_model(wire: &[u8], delims: &[Vec<u8>], max: usize, policy: OversizePolicy) -> Model {
    let mut model = Model::default();
    let mut rest = wire;
    while !rest.is_empty() {
        let (len, end) =
            find_delimiter(rest, delims).map_or((rest.len(), rest.len()), |(s, d)| (s, s + d));
        if len > max {
            if !model.oversize(policy, len as u64, max, end as u64, false) {
                return model;
            }
        } else {
            model.emit(&rest[..len]);
        }
        rest = &rest[end..];
    }
    model
}

fn delimiters() -> impl Strategy<Value = Vec<Vec<u8>>> {
    // Two symbols so delimiters overlap, share prefixes, contain each other and occur in random input.
    prop::collection::vec(
        prop::collection::vec(prop::sample::select(b"ab".to_vec()), 1..5),
        1..4,
    )
}

/// Decodes `wire` cut at `cuts` and compares the frames, the error and the counters with the model's; at most
/// `max` plus a delimiter's worth of bytes may stay buffered.
fn delimiter_case(
    delims: &[Vec<u8>],
    wire: &[u8],
    max: usize,
    policy: OversizePolicy,
    cuts: &[prop::sample::Index],
) -> Result<(), TestCaseError> {
    let mut codec = DelimiterCodec::builder()
        .delimiters(delims)
        .max_frame_length(max)
        .oversize_policy(policy)
        .build()
        .unwrap();
    let longest = delims.iter().map(Vec::len).max().unwrap();
    let out = run(&mut codec, wire, cuts, max + longest - 1);
    check(
        &delimiter_model(wire, delims, max, policy),
        &out.frames,
        &out.error,
        codec.metrics(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn delimiter_matches_the_model(
        delims in delimiters(),
        wire in prop::collection::vec(prop::sample::select(b"aabbc".to_vec()), 0..80),
        max in 0usize..10,
        policy in policy(),
        cuts in cuts(),
    ) {
        delimiter_case(&delims, &wire, max, policy, &cuts)?;
    }

    #[test]
    fn delimiter_crlf_sets_match_the_model(
        delims in prop::sample::subsequence(vec![b"\r\n\r\n".to_vec(), b"\n".to_vec(), b"\r\n".to_vec(), b"\n\n".to_vec()], 1..4)
            .prop_shuffle(),
        wire in prop::collection::vec(prop::sample::select(b"\r\n\r\nx".to_vec()), 0..60),
        max in 0usize..6,
        policy in policy(),
        cuts in cuts(),
    ) {
        delimiter_case(&delims, &wire, max, policy, &cuts)?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LineCodec

fn line_model(wire: &[u8], max: usize, policy: OversizePolicy) -> Model {
    let mut model = Model::default();
    let mut rest = wire;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A lone '\r' at the end of the stream is an unfinished line ending, not a line.
        let lone_cr = end == rest.len() && rest == b"\r";
        if line.len() > max {
            if !model.oversize(policy, line.len() as u64, max, end as u64, false) {
                return model;
            }
        } else if !lone_cr {
            model.emit(line);
        }
        rest = &rest[end..];
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn line_matches_the_model(
        wire in prop::collection::vec(prop::sample::select(b"ab\r\n\r".to_vec()), 0..60),
        max in 0usize..6,
        policy in policy(),
        cuts in cuts(),
    ) {
        let mut codec = LineCodec::builder().max_frame_length(max).oversize_policy(policy).build().unwrap();
        // A line of `max` bytes and a '\r' that may start "\r\n".
        let out = run(&mut codec, &wire, &cuts, max + 1);
        check(&line_model(&wire, max, policy), &out.frames, &out.error, codec.metrics())?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LengthFieldCodec

#[derive(Debug, Clone, Copy)]
struct Layout {
    offset: usize,
    width: usize,
    big: bool,
    adjustment: i64,
    strip: usize,
    max: usize,
}

impl Layout {
    fn header(&self) -> usize {
        self.offset + self.width
    }

    fn build(&self, policy: OversizePolicy) -> Option<LengthFieldCodec> {
        let mut b = LengthFieldCodec::builder();
        b.max_frame_length(self.max)
            .length_field_offset(self.offset)
            .length_field_width(self.width)
            .length_adjustment(self.adjustment)
            .strip(self.strip)
            .oversize_policy(policy);
        if !self.big {
            b.little_endian();
        }
        b.build().ok()
    }

    fn put(&self, value: u64, wire: &mut Vec<u8>) {
        wire.extend(std::iter::repeat_n(0xEE, self.offset));
        let bytes = value.to_be_bytes();
        let mut field = bytes[8 - self.width..].to_vec();
        if !self.big {
            field.reverse();
        }
        wire.extend_from_slice(&field);
    }

    fn read(&self, header: &[u8]) -> u64 {
        let mut field = header[self.offset..self.header()].to_vec();
        if !self.big {
            field.reverse();
        }
        field.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }
}

fn length_model(wire: &[u8], l: &Layout, policy: OversizePolicy) -> Model {
    let mut model = Model::default();
    let mut rest = wire;
    while !rest.is_empty() {
        if rest.len() < l.header() {
            model.error = Some(Expected::Eof {
                buffered: rest.len(),
            });
            return model;
        }
        let len = l.header() as i128 + i128::from(l.read(rest)) + i128::from(l.adjustment);
        if len < l.header() as i128 {
            model.malformed += 1;
            model.error = Some(Expected::ShorterThanHeader);
            return model;
        }
        if len > usize::MAX as i128 {
            model.malformed += 1;
            model.error = Some(Expected::Overflow);
            return model;
        }
        if len > l.max as i128 {
            let len = len as u64;
            let dropped = len.min(rest.len() as u64);
            if !model.oversize(policy, len, l.max, dropped, true) {
                return model;
            }
            rest = &rest[dropped as usize..];
            continue;
        }
        let len = len as usize;
        if rest.len() < len {
            model.error = Some(Expected::Eof {
                buffered: rest.len(),
            });
            return model;
        }
        model.emit(&rest[l.strip..len]);
        rest = &rest[len..];
    }
    model
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        0usize..3,
        prop::sample::select(vec![1usize, 2, 3, 4, 8]),
        any::<bool>(),
        -6i64..4,
        4usize..24,
        0usize..4,
    )
        .prop_map(|(offset, width, big, adjustment, max, strip)| Layout {
            offset,
            width,
            big,
            adjustment,
            strip,
            max: max + offset + width,
        })
}

/// A wire of headers with small (often oversize or malformed) values and random bytes between them.
fn length_wire(l: Layout) -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::collection::vec(
        prop_oneof![
            4 => (0u64..(l.max as u64 + 8)).prop_map(Ok),
            // Hostile claims: huge, and beyond what any machine holds (with a positive adjustment).
            1 => prop_oneof![any::<u64>(), (u64::MAX - 8)..=u64::MAX].prop_map(Ok),
            4 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Err),
        ],
        0..10,
    );
    pieces.prop_map(move |pieces| {
        let mut wire = Vec::new();
        for piece in pieces {
            match piece {
                Ok(value) => {
                    // Truncated to the field's width: what the field can say.
                    let value = if l.width == 8 {
                        value
                    } else {
                        value & ((1 << (8 * l.width)) - 1)
                    };
                    l.put(value, &mut wire);
                }
                Err(bytes) => wire.extend_from_slice(&bytes),
            }
        }
        wire
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn length_matches_the_model(
        (l, wire) in layout().prop_flat_map(|l| (Just(l), length_wire(l))),
        policy in policy(),
        cuts in cuts(),
    ) {
        let Some(mut codec) = l.build(policy) else { return Ok(()); };
        let out = run(&mut codec, &wire, &cuts, l.max);
        check(&length_model(&wire, &l, policy), &out.frames, &out.error, codec.metrics())?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Capped around a decoder with no limit of its own

/// Frames ended by `;`, no limit, the tail at the end of the stream: the simplest protocol decoder.
#[derive(Debug, Clone, Default)]
struct Semicolons {
    scanned: usize,
}

impl Decoder for Semicolons {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let from = self.scanned.min(src.len());
        match src[from..].iter().position(|&b| b == b';') {
            Some(i) => {
                self.scanned = 0;
                let frame = src.split_to(from + i + 1);
                Ok(Some(frame.freeze().slice(..from + i)))
            }
            None => {
                self.scanned = src.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        self.scanned = 0;
        if src.is_empty() {
            return Ok(None);
        }
        Ok(Some(src.split().freeze()))
    }
}

/// The cap counts a frame's bytes on the wire (its `;` included).
fn capped_model(wire: &[u8], max: usize, policy: OversizePolicy) -> Model {
    let mut model = Model::default();
    let mut rest = wire;
    while !rest.is_empty() {
        let (len, end) = rest
            .iter()
            .position(|&b| b == b';')
            .map_or((rest.len(), rest.len()), |i| (i, i + 1));
        if end > max {
            if !model.oversize(policy, end as u64, max, end as u64, false) {
                break;
            }
        } else {
            model.emit(&rest[..len]);
        }
        rest = &rest[end..];
    }
    model.bytes = 0; // Capped does not see inside the inner decoder's items
    model
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn capped_matches_the_model(
        wire in prop::collection::vec(prop::sample::select(b"ab;".to_vec()), 0..60),
        max in 0usize..8,
        policy in policy(),
        cuts in cuts(),
    ) {
        let mut codec = match policy {
            OversizePolicy::Fail => Capped::new(Semicolons::default(), max),
            _ => Capped::builder(Semicolons::default())
                .max_frame_length(max)
                .oversize_policy(policy)
                .build()
                .unwrap(),
        };
        let out = run(&mut codec, &wire, &cuts, max);
        check(&capped_model(&wire, max, policy), &out.frames, &out.error, codec.metrics())?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What the delimiter encoder accepts decodes back, whatever follows and however it is split.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn delimiter_encoder_output_decodes_back(
        delims in delimiters(),
        frames in prop::collection::vec(prop::collection::vec(prop::sample::select(b"abc".to_vec()), 0..8), 0..8),
        cuts in cuts(),
    ) {
        use tokio_util::codec::Encoder;
        let mut codec = DelimiterCodec::new(&delims, 8).unwrap();
        let mut wire = BytesMut::new();
        let mut accepted = Vec::new();
        for f in frames {
            if codec.encode(Bytes::copy_from_slice(&f[..]), &mut wire).is_ok() {
                accepted.push(f);
            }
        }
        let out = run(&mut DelimiterCodec::new(&delims, 8).unwrap(), &wire, &cuts, usize::MAX);
        prop_assert!(out.error.is_none());
        let got: Vec<Vec<u8>> = out.frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(got, accepted);
    }
}
