//! Builder for [`LengthFieldCodec`].

use super::length_layout::Layout;
use super::skip_hook::SkipHook;
use super::{CodecError, LengthFieldCodec, OversizePolicy};

/// Configures a [`LengthFieldCodec`]: where the length field is, how wide, which byte order, how to turn its value
/// into a frame length, what to strip, and the **required** maximum.
///
/// The frame length is `offset + width + field value + adjustment`: the whole frame as it is buffered, header
/// included. `max_frame_length` limits exactly that number.
///
/// | setting | default |
/// |---|---|
/// | [`max_frame_length`](Self::max_frame_length) | none: [`build`](Self::build) fails without it |
/// | [`length_field_offset`](Self::length_field_offset) | 0 |
/// | [`length_field_width`](Self::length_field_width) | 4 |
/// | byte order | big endian ([`big_endian`](Self::big_endian) / [`little_endian`](Self::little_endian)) |
/// | [`length_adjustment`](Self::length_adjustment) | 0 |
/// | [`strip`](Self::strip) | the header: `offset + width` |
/// | [`oversize_policy`](Self::oversize_policy) | [`OversizePolicy::Fail`] |
/// | [`skip_hook`](Self::skip_hook) | none |
///
/// # Examples
///
/// A 2-byte type tag, then a 3-byte little-endian length that counts the whole frame; frames keep their tag.
///
/// ```
/// use bytes::BytesMut;
/// use tidegate::codec::LengthFieldCodec;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LengthFieldCodec::builder()
///     .max_frame_length(4096)
///     .length_field_offset(2)
///     .length_field_width(3)
///     .little_endian()
///     .length_adjustment(-5) // the field counts the 5 header bytes too
///     .strip(0)
///     .build()?;
/// let mut buf = BytesMut::from(&b"\x01\x02\x07\x00\x00hi"[..]);
/// assert_eq!(codec.decode(&mut buf)?.unwrap(), &b"\x01\x02\x07\x00\x00hi"[..]);
/// # Ok::<(), tidegate::codec::CodecError>(())
/// ```
///
#[doc = include_str!("length_conversions.md")]
#[derive(Debug, Clone)]
pub struct LengthFieldCodecBuilder {
    max: Option<usize>,
    offset: usize,
    width: usize,
    big_endian: bool,
    adjustment: i64,
    strip: Option<usize>,
    policy: OversizePolicy,
    on_skip: SkipHook,
    stats: Option<super::CodecStats>,
}

impl Default for LengthFieldCodecBuilder {
    fn default() -> Self {
        LengthFieldCodecBuilder {
            max: None,
            offset: 0,
            width: 4,
            big_endian: true,
            adjustment: 0,
            strip: None,
            policy: OversizePolicy::Fail,
            on_skip: SkipHook::default(),
            stats: None,
        }
    }
}

impl LengthFieldCodecBuilder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest frame accepted, header included, after the adjustment. Required.
    pub fn max_frame_length(&mut self, max: usize) -> &mut Self {
        self.max = Some(max);
        self
    }

    /// Bytes before the length field.
    pub fn length_field_offset(&mut self, offset: usize) -> &mut Self {
        self.offset = offset;
        self
    }

    /// Width of the length field in bytes: 1, 2, 3, 4 or 8.
    pub fn length_field_width(&mut self, width: usize) -> &mut Self {
        self.width = width;
        self
    }

    /// Reads and writes the length field most significant byte first (the default).
    pub fn big_endian(&mut self) -> &mut Self {
        self.big_endian = true;
        self
    }

    /// Reads and writes the length field least significant byte first.
    pub fn little_endian(&mut self) -> &mut Self {
        self.big_endian = false;
        self
    }

    /// Added to the field value to get the bytes that follow the header: negative when the field counts the
    /// header, positive when it leaves out a fixed trailer.
    pub fn length_adjustment(&mut self, adjustment: i64) -> &mut Self {
        self.adjustment = adjustment;
        self
    }

    /// Bytes dropped from the front of each decoded frame. Defaults to the header (`offset + width`), so frames are
    /// payloads; `0` keeps the whole frame.
    pub fn strip(&mut self, strip: usize) -> &mut Self {
        self.strip = Some(strip);
        self
    }

    /// What to do with a frame longer than the maximum.
    pub fn oversize_policy(&mut self, policy: OversizePolicy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Calls `hook` each time [`OversizePolicy::Skip`] starts discarding a frame, with the
    /// [`CodecError::FrameTooLong`] that [`OversizePolicy::Fail`] would have returned. Default: none.
    ///
    /// This is how a `FramedRead` or [`FrameReader`](super::FrameReader) user learns of skipped frames as they
    /// happen: the stream itself only carries frames, and an error would end it. The hook runs inside `decode` and
    /// should be quick (a log line, a counter, a `try_send`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use futures_util::StreamExt;
    /// use tidegate::codec::{CodecError, LengthFieldCodec, OversizePolicy};
    /// use tokio_util::codec::FramedRead;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), CodecError> {
    /// let skipped = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&skipped);
    /// let codec = LengthFieldCodec::builder()
    ///     .max_frame_length(8)
    ///     .length_field_width(2)
    ///     .oversize_policy(OversizePolicy::Skip)
    ///     .skip_hook(move |err| log.lock().unwrap().push(err.to_string()))
    ///     .build()?;
    /// let mut frames = FramedRead::new(&b"\x00\x10sixteen-bytes!!!\x00\x02ok"[..], codec);
    /// assert_eq!(frames.next().await.unwrap()?, "ok");
    /// assert_eq!(
    ///     skipped.lock().unwrap()[..],
    ///     ["frame of 18 bytes is longer than the maximum of 8 bytes"]
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn skip_hook(&mut self, hook: impl Fn(&CodecError) + Send + Sync + 'static) -> &mut Self {
        self.on_skip = SkipHook::new(hook);
        self
    }

    /// Attaches shared counters, and their live maximum, to every codec this builder builds: see
    /// [`CodecStats`](super::CodecStats). Default: none.
    pub fn stats(&mut self, stats: &super::CodecStats) -> &mut Self {
        self.stats = Some(stats.clone());
        self
    }

    /// Builds the codec, refusing configurations that could never work.
    ///
    /// # Errors
    ///
    /// * [`CodecError::MissingMaxFrameLength`] if no maximum was set;
    /// * [`CodecError::InvalidFieldWidth`] for a width other than 1, 2, 3, 4 or 8;
    /// * [`CodecError::MaxBelowHeader`] if no frame could fit in the maximum;
    /// * [`CodecError::AdjustmentOutOfRange`] if the adjustment makes every frame shorter than its header or
    ///   longer than the maximum;
    /// * [`CodecError::FieldTooNarrow`] if the field cannot express a frame as long as the maximum;
    /// * [`CodecError::StripTooLarge`] if the strip count exceeds the shortest possible frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::codec::{CodecError, LengthFieldCodec};
    ///
    /// let err = LengthFieldCodec::builder().build().unwrap_err();
    /// assert!(matches!(err, CodecError::MissingMaxFrameLength));
    /// let err = LengthFieldCodec::builder().max_frame_length(1 << 20).length_field_width(2).build().unwrap_err();
    /// assert!(matches!(err, CodecError::FieldTooNarrow { width: 2, .. }));
    /// ```
    pub fn build(&self) -> Result<LengthFieldCodec, CodecError> {
        let max = self.max.ok_or(CodecError::MissingMaxFrameLength)?;
        let layout = Layout::new(
            self.offset,
            self.width,
            self.big_endian,
            self.adjustment,
            self.strip,
            max,
        )?;
        let mut codec = LengthFieldCodec::from_layout(layout, self.policy, self.on_skip.clone());
        codec.set_stats(self.stats.as_ref());
        Ok(codec)
    }
}
