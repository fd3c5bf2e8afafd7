//! The one error type of the codec module.

use std::error::Error;
use std::io;

use tokio_util::codec::{AnyDelimiterCodecError, LinesCodecError};

use crate::budget::BudgetError;

/// Why a codec refused a configuration, a frame or a header.
///
/// Variants named after a configuration are returned by builders and constructors; the others by decoders,
/// encoders and [`FrameReader`](super::FrameReader).
///
/// Every variant that is about a size carries the observed value and the limit, so a log line says what to tune.
/// Decoders and encoders convert it into [`std::io::Error`] where tokio-util needs one, and the kind says whose
/// fault it was:
///
/// | kind | variants | whose input |
/// |---|---|---|
/// | [`InvalidData`](io::ErrorKind::InvalidData) | a decoder's refusals: [`FrameTooLong`](Self::FrameTooLong), [`FrameShorterThanHeader`](Self::FrameShorterThanHeader), [`FrameLengthOverflow`](Self::FrameLengthOverflow), [`Failed`](Self::Failed) | the peer's |
/// | [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) | [`UnexpectedEof`](Self::UnexpectedEof) | the peer's |
/// | [`InvalidInput`](io::ErrorKind::InvalidInput) | an encoder's refusals ([`ItemTooLong`](Self::ItemTooLong), [`DelimiterInFrame`](Self::DelimiterInFrame), [`LengthNotRepresentable`](Self::LengthNotRepresentable)) and refused configurations | the caller's |
/// | [`OutOfMemory`](io::ErrorKind::OutOfMemory) | [`Budget`](Self::Budget) | the process's limits |
/// | the inner error's | [`Io`](Self::Io) | the transport's |
///
/// # Examples
///
/// ```
/// use std::io;
/// use bytes::{Bytes, BytesMut};
/// use tidegate::codec::{CodecError, LineCodec};
/// use tokio_util::codec::Encoder;
///
/// let err = LineCodec::new(4).encode(Bytes::from_static(b"too long"), &mut BytesMut::new()).unwrap_err();
/// assert!(matches!(err, CodecError::ItemTooLong { len: 8, max: 4 }));
/// assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame is longer than the configured maximum.
    #[error("frame of {len} bytes is longer than the maximum of {max} bytes")]
    FrameTooLong {
        /// The frame's length as far as it is known: the whole frame for a length header, at least this many bytes
        /// for a delimited frame whose delimiter has not arrived yet.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A length header claims a frame longer than any this machine can hold (more than `usize::MAX` bytes), so no
    /// policy can deal with it: skipping it would discard the rest of the stream.
    #[error("malformed length header: field value {value} with adjustment {adjustment} gives a frame of {frame_len} bytes, more than this machine can address")]
    FrameLengthOverflow {
        /// The raw value of the length field.
        value: u64,
        /// The configured length adjustment.
        adjustment: i64,
        /// The frame length it gives (header included).
        frame_len: i128,
    },
    /// An encoder was handed an item that would make a frame longer than the maximum.
    #[error(
        "item makes a frame of {len} bytes, longer than the maximum of {max} bytes; not encoded"
    )]
    ItemTooLong {
        /// The frame's length as the encoder counts it against the maximum (the header included for
        /// [`LengthFieldCodec`](super::LengthFieldCodec), the item alone for the delimited codecs).
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A length header gives a frame shorter than the header itself, or a negative length, after the adjustment.
    #[error("malformed length header: field value {value} with adjustment {adjustment} gives a frame of {frame_len} bytes, shorter than its {header_len}-byte header")]
    FrameShorterThanHeader {
        /// The raw value of the length field.
        value: u64,
        /// The configured length adjustment.
        adjustment: i64,
        /// The frame length it gives (header included); may be negative.
        frame_len: i128,
        /// Bytes up to the end of the length field.
        header_len: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended with {buffered} bytes of an incomplete frame buffered")]
    UnexpectedEof {
        /// Bytes of the incomplete frame that were buffered.
        buffered: usize,
    },
    /// An encoder was handed a frame that contains the delimiter it would terminate it with, so a decoder could not
    /// find the frame's end again.
    #[error("frame contains a delimiter at byte {position}; it would not decode as one frame")]
    DelimiterInFrame {
        /// Offset of the first delimiter byte inside the frame.
        position: usize,
    },
    /// The length a frame needs in its header does not fit the field (too large for its width, or negative after
    /// the adjustment).
    #[error("frame of {len} bytes needs length field value {value}, which a {width}-byte field cannot hold")]
    LengthNotRepresentable {
        /// The frame's payload length.
        len: usize,
        /// The value the field would need (payload length minus the adjustment).
        value: i128,
        /// The field width in bytes.
        width: usize,
    },
    /// The decoder failed earlier with a fatal error and refuses to go on; close the connection.
    #[error("decoder failed earlier with a fatal error; the stream cannot be resynchronised")]
    Failed,
    /// `max_frame_length` was never set; there is deliberately no default.
    #[error("invalid codec configuration: max_frame_length is required")]
    MissingMaxFrameLength,
    /// The length field width is not one of 1, 2, 3, 4 or 8 bytes.
    #[error("invalid codec configuration: length field width {width} is not one of 1, 2, 3, 4, 8")]
    InvalidFieldWidth {
        /// The width asked for.
        width: usize,
    },
    /// The maximum is smaller than the header, so no frame could ever be accepted.
    #[error("invalid codec configuration: max_frame_length {max} is smaller than the {header_len}-byte header")]
    MaxBelowHeader {
        /// The configured maximum.
        max: usize,
        /// Bytes up to the end of the length field.
        header_len: usize,
    },
    /// The field cannot express a frame as long as the maximum.
    #[error("invalid codec configuration: a {width}-byte length field reaches frames of at most {reachable} bytes, below max_frame_length {max}")]
    FieldTooNarrow {
        /// The field width in bytes.
        width: usize,
        /// The longest frame the field can describe with this adjustment.
        reachable: i128,
        /// The configured maximum.
        max: usize,
    },
    /// With this adjustment every frame would be shorter than its header or longer than the maximum.
    #[error("invalid codec configuration: length adjustment {adjustment} makes the shortest frame {min_frame} bytes, outside {header_len}..={max}")]
    AdjustmentOutOfRange {
        /// The configured adjustment.
        adjustment: i64,
        /// The frame length a field value of zero gives.
        min_frame: i128,
        /// Bytes up to the end of the length field.
        header_len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// More bytes would be stripped than the shortest possible frame has.
    #[error("invalid codec configuration: strip of {strip} bytes is larger than the shortest possible frame of {min_frame} bytes")]
    StripTooLarge {
        /// The configured number of bytes to strip.
        strip: usize,
        /// The shortest frame the configuration admits.
        min_frame: usize,
    },
    /// No delimiter was given, or one of them is empty.
    #[error(
        "invalid codec configuration: delimiters must be non-empty and there must be at least one"
    )]
    EmptyDelimiter,
    /// A [`CodecStats`](super::CodecStats) maximum outside the range every attached decoder accepts.
    #[error("invalid codec configuration: max_frame_length {max} is outside {min}..={limit}, the range every attached decoder accepts")]
    MaxOutOfRange {
        /// The refused maximum.
        max: usize,
        /// The smallest maximum every attached decoder accepts.
        min: usize,
        /// The largest maximum every attached decoder accepts.
        limit: usize,
    },
    /// The memory budget of a [`FrameReader`](super::FrameReader) can never cover the buffer it needs
    /// ([`BudgetError::ExceedsLimit`]), or did not within the reader's budget wait while it held part of a frame
    /// ([`BudgetError::Exhausted`]). The budget's refusal is the [`source`](Error::source), not repeated in the
    /// message.
    #[error("frame reader: the memory budget refused the decode buffer")]
    Budget(#[from] BudgetError),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(io::Error),
}

impl From<CodecError> for io::Error {
    fn from(err: CodecError) -> Self {
        // Exhaustive on purpose: a new variant must decide whose fault it is.
        let kind = match &err {
            CodecError::Io(inner) => inner.kind(),
            // A decoder's refusals: the peer sent it.
            CodecError::FrameTooLong { .. }
            | CodecError::FrameShorterThanHeader { .. }
            | CodecError::FrameLengthOverflow { .. }
            | CodecError::Failed => io::ErrorKind::InvalidData,
            CodecError::UnexpectedEof { .. } => io::ErrorKind::UnexpectedEof,
            CodecError::Budget(_) => io::ErrorKind::OutOfMemory,
            // An encoder's refusals and refused configurations: the caller's input, not the peer's.
            CodecError::ItemTooLong { .. }
            | CodecError::DelimiterInFrame { .. }
            | CodecError::LengthNotRepresentable { .. }
            | CodecError::MissingMaxFrameLength
            | CodecError::InvalidFieldWidth { .. }
            | CodecError::MaxBelowHeader { .. }
            | CodecError::FieldTooNarrow { .. }
            | CodecError::AdjustmentOutOfRange { .. }
            | CodecError::StripTooLarge { .. }
            | CodecError::EmptyDelimiter
            | CodecError::MaxOutOfRange { .. } => io::ErrorKind::InvalidInput,
        };
        match err {
            CodecError::Io(inner) => inner,
            other => io::Error::new(kind, other),
        }
    }
}

impl From<io::Error> for CodecError {
    /// Unwraps a `CodecError` that travelled inside an `io::Error` (as a `Decoder` error must), so callers match on
    /// the original variant.
    fn from(err: io::Error) -> Self {
        if !err.get_ref().is_some_and(|inner| inner.is::<CodecError>()) {
            return CodecError::Io(err);
        }
        let kind = err.kind();
        match err.into_inner().map(|inner| inner.downcast::<CodecError>()) {
            Some(Ok(inner)) => *inner,
            // Not reached (checked above); rebuilt rather than panicking.
            Some(Err(other)) => CodecError::Io(io::Error::new(kind, other)),
            None => CodecError::Io(kind.into()),
        }
    }
}

impl CodecError {
    /// The `CodecError` inside `err`, however deeply it is wrapped: `err` itself, the error inside an
    /// [`io::Error`] (what a decoder returns through tokio-util), the `io::Error` inside tokio-util's
    /// `LinesCodecError` and `AnyDelimiterCodecError` (which have no `source`), or any of these along the
    /// [`source`](Error::source) chain.
    ///
    /// This is how a caller matches the errors of [`Capped`](super::Capped), which travel inside the wrapped
    /// decoder's error type, without unwrapping each layer.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tidegate::codec::{Capped, CodecError};
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let mut codec = Capped::new(LinesCodec::new(), 4);
    /// let err = codec.decode(&mut BytesMut::from("far too long\n")).unwrap_err(); // a LinesCodecError
    /// assert!(matches!(CodecError::find(&err), Some(CodecError::FrameTooLong { max: 4, .. })));
    /// ```
    pub fn find<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a CodecError> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<CodecError>() {
                return Some(found);
            }
            // Wrappers whose `source` skips the error they carry.
            let carried: Option<&io::Error> = if let Some(io) = err.downcast_ref::<io::Error>() {
                Some(io)
            } else if let Some(LinesCodecError::Io(io)) = err.downcast_ref::<LinesCodecError>() {
                Some(io)
            } else if let Some(AnyDelimiterCodecError::Io(io)) =
                err.downcast_ref::<AnyDelimiterCodecError>()
            {
                Some(io)
            } else {
                None
            };
            if let Some(io) = carried {
                if let Some(found) = io.get_ref().and_then(|inner| CodecError::find(inner)) {
                    return Some(found);
                }
                if err.downcast_ref::<io::Error>().is_none() {
                    next = Some(io);
                    continue;
                }
            }
            next = err.source();
        }
        None
    }
}
