//! Counters every decoder keeps.

/// A snapshot of a decoder's counters since it was created.
///
/// Counters only grow. The decoder owns them (a decoder is used through `&mut`), so reading them costs nothing on
/// the hot path; a `FramedRead` exposes them through `framed.decoder().metrics()`.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use tidegate::codec::LineCodec;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LineCodec::new(64);
/// let mut buf = BytesMut::from(&b"one\ntwo\n"[..]);
/// while codec.decode(&mut buf).unwrap().is_some() {}
/// let m = codec.metrics();
/// assert_eq!((m.frames, m.bytes), (2, 6));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CodecMetrics {
    /// Frames decoded and handed out.
    pub frames: u64,
    /// Bytes in the frames handed out (after stripping headers or delimiters).
    pub bytes: u64,
    /// Frames found longer than the maximum, under either policy.
    pub too_long: u64,
    /// Bytes thrown away while skipping oversize frames (headers and delimiters included).
    pub discarded_bytes: u64,
    /// Malformed headers seen (each one is fatal).
    pub malformed: u64,
    /// Frames copied out of the read buffer instead of sharing it, so that a small frame does not keep a large
    /// buffer alive.
    pub copied_frames: u64,
}
