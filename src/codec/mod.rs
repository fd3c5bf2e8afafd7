//! Frame decoders whose memory follows the bytes a peer sent, never the length it claims.
//!
//! Every decoder here has a **required** maximum, checks it before buffering anything a header claims, and on an
//! oversize frame either fails ([`OversizePolicy::Fail`], the default) or discards the frame as its bytes arrive and
//! goes on with the next one ([`OversizePolicy::Skip`]). Frames are [`bytes::Bytes`]. All of them implement
//! tokio-util's [`Decoder`](tokio_util::codec::Decoder) and [`Encoder`](tokio_util::codec::Encoder), so they drop
//! into `FramedRead`, `FramedWrite` and `Framed`.
//!
//! | type | frames | notes |
//! |---|---|---|
//! | [`LengthFieldCodec`] | a length field: offset, width 1/2/3/4/8, either byte order, signed adjustment, strip | impossible layouts refused by the [builder](LengthFieldCodecBuilder) |
//! | [`DelimiterCodec`] | ended by any of several byte strings | the earliest-starting delimiter wins, however reads split the bytes; linear time |
//! | [`LineCodec`] | ended by `\n` or `\r\n` | the line ending does not count toward the maximum |
//! | [`Capped`] | whatever the wrapped decoder produces | caps the bytes each frame takes, returned whole or still arriving |
//! | [`FrameReader`] | a `Stream` of any decoder's frames | charges an optional [`MemoryBudget`](crate::budget::MemoryBudget) for its buffer |
//!
//! Every codec is configured the same way: `X::builder()` ([`LengthFieldCodecBuilder`], [`LineCodecBuilder`],
//! [`DelimiterCodecBuilder`], [`CappedBuilder`]) with a required `max_frame_length`, `oversize_policy` and
//! `skip_hook`, then `build()`; `X::new(.., max)` is the short form with the defaults; on the codec,
//! `max_frame_length()` / `set_max_frame_length(..)` and `oversize_policy()` / `set_oversize_policy(..)` change
//! the limits live. [`LengthFieldCodecBuilder`] also shows how to carry over a tokio-util `LengthDelimitedCodec`
//! or a Netty `LengthFieldBasedFrameDecoder` configuration. Errors come out as [`CodecError`], or inside the
//! wrapped decoder's error type for [`Capped`]: [`CodecError::find`] reaches them either way.
//!
//! Frames never depend on how the peer's bytes were split between reads: each decoder gives what it would give
//! on the whole stream at once. Memory held by a decoder's buffer is at most its maximum plus one read. A frame
//! shares the read buffer's allocation when that is cheap and small; a small frame cut from a large allocation is
//! copied out instead, so a frame never keeps more than 128 KiB or 8 times its own size alive (counted in
//! [`CodecMetrics::copied_frames`]).
//!
//! Skipped frames are counted in [`CodecMetrics`] and, to hear of them as they happen (a log line, an alert), each
//! decoder's builder takes a skip hook (`skip_hook`, e.g. [`LineCodecBuilder::skip_hook`]), called with the [`CodecError::FrameTooLong`] that
//! [`OversizePolicy::Fail`] would have returned. It works the same inside `FramedRead` and [`FrameReader`].
//!
//! # Examples
//!
//! A server that skips oversize requests and keeps serving the connection:
//!
//! ```
//! use futures_util::StreamExt;
//! use tidegate::codec::{LengthFieldCodec, OversizePolicy};
//! use tokio_util::codec::FramedRead;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tidegate::codec::CodecError> {
//! let codec = LengthFieldCodec::builder()
//!     .max_frame_length(12) // header included
//!     .length_field_width(2)
//!     .oversize_policy(OversizePolicy::Skip)
//!     .build()?;
//! let wire: &[u8] = b"\x00\x10sixteen-bytes!!!\x00\x02ok";
//! let mut frames = FramedRead::new(wire, codec);
//! assert_eq!(frames.next().await.unwrap()?, "ok"); // the 18-byte frame was discarded
//! assert!(frames.next().await.is_none());
//! let m = frames.decoder().metrics();
//! assert_eq!((m.too_long, m.discarded_bytes, m.frames), (1, 18, 1));
//! # Ok(())
//! # }
//! ```

mod capped;
mod capped_builder;
mod delimited;
mod delimiter;
mod delimiter_builder;
mod error;
mod length;
mod length_builder;
mod length_layout;
mod line;
mod line_builder;
mod metrics;
#[cfg(not(all(test, tidegate_loom)))]
mod observe;
mod policy;
mod reader;
mod skip_hook;
mod split;
mod stats;

pub use capped::Capped;
pub use capped_builder::CappedBuilder;
pub use delimiter::DelimiterCodec;
pub use delimiter_builder::DelimiterCodecBuilder;
pub use error::CodecError;
pub use length::LengthFieldCodec;
pub use length_builder::LengthFieldCodecBuilder;
pub use line::LineCodec;
pub use line_builder::LineCodecBuilder;
pub use metrics::CodecMetrics;
pub use policy::OversizePolicy;
pub use reader::{FrameReader, DEFAULT_BUDGET_WAIT, DEFAULT_READ_SIZE};
pub use stats::CodecStats;
