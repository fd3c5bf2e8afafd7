//! A cap on the bytes any decoder may buffer without producing a frame.

use std::fmt;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{CodecError, CodecMetrics, OversizePolicy};

/// A decoder's initial state and how to copy it.
type Restart<D> = (D, fn(&D) -> D);

/// Wraps any [`Decoder`] and limits the bytes it may have buffered without producing a frame.
///
/// This is how a frame-size limit is put on a protocol decoder that has none. When the buffer holds more than
/// `max` bytes and the inner decoder still needs more, the frame is oversize:
///
/// * [`OversizePolicy::Fail`] returns [`CodecError::FrameTooLong`] (inside the inner error type, through `io::Error`) and every
///   later call fails with [`CodecError::Failed`].
/// * [`OversizePolicy::Skip`] ([`Capped::new_skipping`]) drops what is buffered, counts it, resets the inner decoder
///   to a copy of its initial state (so no offset it kept into the old buffer survives), and hands it the following
///   bytes. A generic decoder cannot say where the oversize frame ends, so this suits protocols that find their own
///   way back (a delimiter, a sync marker): the rest of the oversize frame reaches the inner decoder.
///
/// The check runs after the inner decoder returns, so `Capped` bounds what stays buffered between reads; it cannot
/// stop an inner decoder that itself reserves memory from a header (tokio-util's `LengthDelimitedCodec` does; use
/// [`LengthFieldCodec`](super::LengthFieldCodec) instead). Encoding passes through to the inner codec.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tidegate::codec::Capped;
/// use tokio_util::codec::{AnyDelimiterCodec, FramedRead};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let inner = AnyDelimiterCodec::new(b";".to_vec(), vec![]); // no limit of its own
/// let mut frames = FramedRead::new(&b"ok;this-one-is-far-too-long"[..], Capped::new(inner, 8));
/// assert_eq!(frames.next().await.unwrap().unwrap(), "ok");
/// let err = frames.next().await.unwrap().unwrap_err();
/// assert!(err.to_string().contains("longer than the maximum of 8 bytes"));
/// # }
/// ```
#[derive(Clone)]
pub struct Capped<D> {
    inner: D,
    max: usize,
    /// The inner decoder as it was built and its `clone`, to restart from after a skip; `None` under `Fail`. A
    /// function pointer keeps `D: Clone` off the `Decoder` impl.
    pristine: Option<Restart<D>>,
    failed: bool,
    metrics: CodecMetrics,
}

impl<D> Capped<D> {
    /// Caps `inner` at `max` buffered bytes without a frame, with [`OversizePolicy::Fail`].
    pub fn new(inner: D, max: usize) -> Self {
        Capped {
            inner,
            max,
            pristine: None,
            failed: false,
            metrics: CodecMetrics::default(),
        }
    }

    /// Caps `inner` at `max` buffered bytes without a frame, with [`OversizePolicy::Skip`]: after a skip the inner
    /// decoder restarts from a clone of `inner` as given here.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use tidegate::codec::Capped;
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let mut codec = Capped::new_skipping(LinesCodec::new(), 4);
    /// let mut buf = BytesMut::from("far too long");
    /// assert!(codec.decode(&mut buf).unwrap().is_none()); // discarded, not an error
    /// buf.extend_from_slice(b"\nok\n");
    /// assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), ""); // the tail of the skipped line
    /// assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ok");
    /// assert_eq!(codec.metrics().discarded_bytes, 12);
    /// ```
    pub fn new_skipping(inner: D, max: usize) -> Self
    where
        D: Clone,
    {
        Capped {
            pristine: Some((inner.clone(), D::clone)),
            ..Capped::new(inner, max)
        }
    }

    /// The oversize policy, chosen by the constructor.
    pub fn policy(&self) -> OversizePolicy {
        match self.pristine {
            Some(_) => OversizePolicy::Skip,
            None => OversizePolicy::Fail,
        }
    }

    /// The cap in bytes.
    pub fn max_buffered(&self) -> usize {
        self.max
    }

    /// Changes the cap; it applies from the next call.
    pub fn set_max_buffered(&mut self, max: usize) {
        self.max = max;
    }

    /// Whether the cap failed the stream; every later `decode` fails.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// A snapshot of the counters. `bytes` is not tracked here (the inner item type is opaque); `frames` counts
    /// items the inner decoder produced.
    pub fn metrics(&self) -> CodecMetrics {
        self.metrics
    }

    /// The wrapped decoder.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped decoder, mutably.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the inner decoder.
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn check(&mut self, src: &mut BytesMut) -> Result<(), CodecError> {
        let len = src.len();
        if len <= self.max {
            return Ok(());
        }
        self.metrics.too_long += 1;
        match &self.pristine {
            None => {
                self.failed = true;
                Err(CodecError::FrameTooLong {
                    len: len as u64,
                    max: self.max,
                })
            }
            Some((pristine, clone)) => {
                self.inner = clone(pristine);
                src.advance(len);
                self.metrics.discarded_bytes += len as u64;
                Ok(())
            }
        }
    }
}

/// Every decoder error converts from `io::Error`, so the cap's own errors travel inside the inner error type.
fn lift<E: From<std::io::Error>>(err: CodecError) -> E {
    E::from(err.into())
}

impl<D: Decoder> Decoder for Capped<D> {
    type Item = D::Item;
    type Error = D::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<D::Item>, D::Error> {
        if self.failed {
            return Err(lift(CodecError::Failed));
        }
        match self.inner.decode(src)? {
            Some(item) => {
                self.metrics.frames += 1;
                Ok(Some(item))
            }
            None => {
                self.check(src).map_err(lift)?;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<D::Item>, D::Error> {
        if self.failed {
            return Err(lift(CodecError::Failed));
        }
        let item = self.inner.decode_eof(src)?;
        if item.is_some() {
            self.metrics.frames += 1;
        }
        Ok(item)
    }
}

impl<D: Encoder<I>, I> Encoder<I> for Capped<D> {
    type Error = D::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> Result<(), D::Error> {
        self.inner.encode(item, dst)
    }
}

impl<D> fmt::Debug for Capped<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capped")
            .field("inner", &std::any::type_name::<D>())
            .field("max", &self.max)
            .field("policy", &self.policy())
            .field("failed", &self.failed)
            .field("metrics", &self.metrics)
            .finish()
    }
}
