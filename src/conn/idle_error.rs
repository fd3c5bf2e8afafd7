//! Why an [`IdleTimeout`](super::IdleTimeout) gave up on its stream.

use std::io;
use std::time::Duration;

/// Why an [`IdleTimeout`](super::IdleTimeout) failed its stream.
///
/// The wrapper reports it inside an [`io::Error`] of kind [`TimedOut`](io::ErrorKind::TimedOut), because that is
/// what `AsyncRead`/`AsyncWrite` return; [`IdleError::find`] gets it back out (it is the error's
/// [`get_ref`](io::Error::get_ref)). Once a stream failed, every later read, write, flush and shutdown returns the
/// same error again.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use tidegate::conn::IdleError;
///
/// let err = io::Error::from(IdleError::ReadIdle { after: Duration::from_secs(30) });
/// assert_eq!(err.kind(), io::ErrorKind::TimedOut);
/// assert!(matches!(IdleError::find(&err), Some(IdleError::ReadIdle { .. })));
/// assert_eq!(err.to_string(), "no byte arrived for 30s while the reader waited");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdleError {
    /// The reader waited for `after` and no byte arrived.
    #[error("no byte arrived for {after:?} while the reader waited")]
    ReadIdle {
        /// The configured read-idle timeout.
        after: Duration,
    },
    /// A write, flush or shutdown stayed pending for `after` without the stream taking a byte.
    #[error("a pending write made no progress for {after:?}")]
    WriteIdle {
        /// The configured write-idle timeout.
        after: Duration,
    },
    /// The peer sent fewer than `wanted` bytes in the first `within` of the connection (a slowloris defence).
    #[error("the peer sent {got} of the first {wanted} bytes required within {within:?}")]
    SlowStart {
        /// The bytes read before the deadline passed.
        got: usize,
        /// The bytes required.
        wanted: usize,
        /// The time allowed, counted from the wrapper's creation.
        within: Duration,
    },
}

impl IdleError {
    /// The `IdleError` inside `err`, if an [`IdleTimeout`](super::IdleTimeout) made it; the same as
    /// `err.get_ref().and_then(|e| e.downcast_ref::<IdleError>())`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use tidegate::conn::IdleError;
    ///
    /// assert_eq!(IdleError::find(&io::Error::from(io::ErrorKind::TimedOut)), None);
    /// ```
    pub fn find(err: &io::Error) -> Option<&IdleError> {
        err.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

impl From<IdleError> for io::Error {
    fn from(err: IdleError) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, err)
    }
}
