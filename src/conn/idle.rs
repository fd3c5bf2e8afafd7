//! [`IdleTimeout`]: fails a stream whose peer stops sending, or stops taking what we write.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::idle_wait::Wait;
use super::{IdleError, IdleTimeoutBuilder};

pin_project! {
    /// Wraps an `AsyncRead + AsyncWrite` stream and fails it with a typed timeout when the peer goes quiet.
    ///
    /// Built by [`IdleTimeout::builder`]; every timeout is off unless set there.
    ///
    /// * **Read idle**: a read fails with [`IdleError::ReadIdle`] once the reader has waited `read_idle` and no
    ///   byte arrived. The wait starts at the first read that finds nothing to read (the inner stream returns
    ///   `Pending`) and ends at the next read that returns; time the application spends not reading (handling a
    ///   request, say) is not counted against the peer, and bytes that are ready always win over an elapsed
    ///   deadline. A pending read is woken by the timer, so a task awaiting a read sees the error on time.
    /// * **Write idle**: a write, flush or shutdown fails with [`IdleError::WriteIdle`] once it has stayed pending
    ///   for `write_idle` with the stream taking nothing (the peer stopped reading and the buffers filled). The
    ///   timer runs only while a write is pending, never while there is simply nothing to write.
    /// * **Slow start** (the slowloris defence): with [`first_bytes_deadline`](IdleTimeoutBuilder::first_bytes_deadline),
    ///   the first `bytes` bytes must have been read within `within` of the wrapper's creation, else reads fail
    ///   with [`IdleError::SlowStart`]. Checked when a read finds nothing to read, and woken by the same timer.
    ///
    /// # Errors
    ///
    /// A timeout is an [`io::Error`] of kind [`TimedOut`](io::ErrorKind::TimedOut) carrying the [`IdleError`];
    /// get it back with [`IdleError::find`]. After a timeout the wrapper stays failed: every later read, write,
    /// flush and shutdown returns the same error without touching the inner stream, so both halves of a split
    /// stream close. To send a last word anyway (a `408`, a close frame), write to [`get_mut`](Self::get_mut).
    /// Errors of the inner stream pass through unchanged and do not fail the wrapper.
    ///
    /// # Cost
    ///
    /// A read or write that returns costs one store: the clock is read only when the inner stream returns
    /// `Pending`. Each direction with a timeout owns one [`tokio::time::Sleep`], allocated (boxed) at its first wait
    /// and reused for the wrapper's life; a direction without a timeout never holds one. A timer armed for an
    /// earlier wait is re-armed when it fires instead of being reset at every wait, which costs at most one
    /// spurious wake-up per idle period. Building needs no runtime; polling with a timeout set needs a tokio
    /// runtime with time enabled, as any tokio timer does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::conn::{IdleError, IdleTimeout};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ours, mut peer) = tokio::io::duplex(1024);
    /// let mut conn = IdleTimeout::builder()
    ///     .read_idle(Some(Duration::from_secs(30)))
    ///     .build(ours);
    ///
    /// peer.write_all(b"ping").await.unwrap();
    /// let mut buf = [0; 16];
    /// assert_eq!(conn.read(&mut buf).await.unwrap(), 4);
    ///
    /// // The peer goes quiet: 30 s later the read fails (the clock is paused here, so this is instant).
    /// let start = tokio::time::Instant::now();
    /// let err = conn.read(&mut buf).await.unwrap_err();
    /// assert_eq!(start.elapsed(), Duration::from_secs(30));
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// assert!(matches!(IdleError::find(&err), Some(IdleError::ReadIdle { .. })));
    /// # }
    /// ```
    pub struct IdleTimeout<S> {
        #[pin]
        inner: S,
        read: Wait,
        write: Wait,
        // `None` when not configured and once satisfied: the hot path then pays one branch.
        slow_start: Option<SlowStart>,
        failed: Option<IdleError>,
    }
}

struct SlowStart {
    got: usize,
    wanted: usize,
    within: Duration,
    deadline: Instant,
}

impl IdleTimeout<()> {
    /// A builder with every timeout off; see [`IdleTimeoutBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::conn::IdleTimeout;
    ///
    /// let conn = IdleTimeout::builder()
    ///     .read_idle(Some(Duration::from_secs(60)))
    ///     .write_idle(Some(Duration::from_secs(30)))
    ///     .first_bytes_deadline(1024, Duration::from_secs(10))
    ///     .build(tokio::io::empty());
    /// assert!(conn.failure().is_none());
    /// ```
    pub fn builder() -> IdleTimeoutBuilder {
        IdleTimeoutBuilder::default()
    }
}

impl<S> IdleTimeout<S> {
    pub(super) fn from_builder(
        inner: S,
        read_idle: Option<Duration>,
        write_idle: Option<Duration>,
        first_bytes: Option<(usize, Duration)>,
    ) -> Self {
        let slow_start = first_bytes.and_then(|(wanted, within)| {
            Some(SlowStart {
                got: 0,
                wanted,
                within,
                deadline: Instant::now().checked_add(within)?,
            })
        });
        IdleTimeout {
            inner,
            read: Wait::new(read_idle),
            write: Wait::new(write_idle),
            slow_start,
            failed: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream. Reading or writing through it bypasses the timeouts, also after a failure.
    ///
    /// # Examples
    ///
    /// A last word to a peer that was too slow, written past the failed wrapper:
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::conn::IdleTimeout;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ours, mut peer) = tokio::io::duplex(1024);
    /// let mut conn = IdleTimeout::builder()
    ///     .first_bytes_deadline(16, Duration::from_secs(10))
    ///     .build(ours);
    /// assert!(conn.read(&mut [0; 16]).await.is_err()); // nothing came within 10 s
    /// assert!(conn.write_all(b"bye").await.is_err()); // the wrapper stays failed
    /// conn.get_mut().write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n").await.unwrap();
    /// let mut reply = [0; 12];
    /// peer.read_exact(&mut reply).await.unwrap();
    /// assert_eq!(&reply, b"HTTP/1.1 408");
    /// # }
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream, pinned. Reading or writing through it bypasses the timeouts.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().inner
    }

    /// Unwraps the stream; its timers are dropped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The timeout that failed this stream, if one did.
    pub fn failure(&self) -> Option<IdleError> {
        self.failed
    }

    /// When the current read wait began (the first read since the last returned one that found nothing to read),
    /// or `None` if no read is waiting. The read-idle deadline is this plus the read-idle timeout. Always `None`
    /// without a read-idle timeout or a pending slow-start deadline: the clock is not read then.
    pub fn read_waiting_since(&self) -> Option<Instant> {
        self.read.since()
    }

    /// When the current pending write, flush or shutdown began waiting, or `None` if none is pending. The
    /// write-idle deadline is this plus the write-idle timeout. Always `None` without a write-idle timeout.
    pub fn write_waiting_since(&self) -> Option<Instant> {
        self.write.since()
    }

    /// Whether each direction holds its timer: `(read, write)`. Timers are allocated at a direction's first wait
    /// that needs one; a direction without a timeout never holds one.
    #[cfg(test)]
    pub(super) fn timers(&self) -> (bool, bool) {
        (self.read.has_timer(), self.write.has_timer())
    }
}

/// The inner reader returned `Pending`: `Some` if a read deadline has passed (the wrapper then fails).
fn read_pending(
    read: &mut Wait,
    slow_start: &Option<SlowStart>,
    cx: &mut Context<'_>,
) -> Option<IdleError> {
    if read.idle().is_none() && slow_start.is_none() {
        return None;
    }
    let now = Instant::now();
    let idle = read.pending(now).map(|due| {
        let after = read.idle().unwrap_or_default();
        (due, IdleError::ReadIdle { after })
    });
    let start = slow_start.as_ref().map(|s| {
        let err = IdleError::SlowStart {
            got: s.got,
            wanted: s.wanted,
            within: s.within,
        };
        (s.deadline, err)
    });
    // On a tie the slow start is named: it is the more specific complaint.
    let (due, err) = match (start, idle) {
        (Some(s), Some(i)) if i.0 < s.0 => i,
        (Some(s), _) => s,
        (None, Some(i)) => i,
        (None, None) => return None,
    };
    read.poll_due(due, now, cx).is_ready().then_some(err)
}

/// A write, flush or shutdown of the inner stream returned `Pending`: `Some` once the write-idle deadline passed.
fn write_pending(write: &mut Wait, cx: &mut Context<'_>) -> Option<IdleError> {
    let after = write.idle()?;
    let now = Instant::now();
    let due = write.pending(now)?;
    write
        .poll_due(due, now, cx)
        .is_ready()
        .then_some(IdleError::WriteIdle { after })
}

/// Turns the inner stream's answer into the wrapper's for one write-side operation.
fn on_write<T>(
    polled: Poll<io::Result<T>>,
    write: &mut Wait,
    failed: &mut Option<IdleError>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if polled.is_ready() {
        write.progressed();
        return polled;
    }
    match write_pending(write, cx) {
        Some(err) => {
            *failed = Some(err);
            Poll::Ready(Err(err.into()))
        }
        None => Poll::Pending,
    }
}

impl<S: AsyncRead> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(err) = *this.failed {
            return Poll::Ready(Err(err.into()));
        }
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if polled.is_ready() {
            this.read.progressed();
            if let Some(start) = this.slow_start {
                start.got = start
                    .got
                    .saturating_add(buf.filled().len().saturating_sub(before));
                if start.got >= start.wanted {
                    *this.slow_start = None;
                }
            }
            return polled;
        }
        match read_pending(this.read, this.slow_start, cx) {
            Some(err) => {
                *this.failed = Some(err);
                Poll::Ready(Err(err.into()))
            }
            None => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if let Some(err) = *this.failed {
            return Poll::Ready(Err(err.into()));
        }
        let polled = this.inner.poll_write(cx, buf);
        on_write(polled, this.write, this.failed, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if let Some(err) = *this.failed {
            return Poll::Ready(Err(err.into()));
        }
        let polled = this.inner.poll_write_vectored(cx, bufs);
        on_write(polled, this.write, this.failed, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(err) = *this.failed {
            return Poll::Ready(Err(err.into()));
        }
        let polled = this.inner.poll_flush(cx);
        on_write(polled, this.write, this.failed, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(err) = *this.failed {
            return Poll::Ready(Err(err.into()));
        }
        let polled = this.inner.poll_shutdown(cx);
        on_write(polled, this.write, this.failed, cx)
    }
}

impl<S> fmt::Debug for IdleTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("inner", &std::any::type_name::<S>())
            .field("read_idle", &self.read.idle())
            .field("write_idle", &self.write.idle())
            .field("read_waiting_since", &self.read.since())
            .field("write_waiting_since", &self.write.since())
            .field("slow_start_pending", &self.slow_start.is_some())
            .field("failed", &self.failed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::IdleTimeout;

    async fn is_pending<F: Future>(fut: F) -> bool {
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_direction_without_a_timeout_never_holds_a_timer() {
        let (ours, _peer) = duplex(4);
        let mut conn = IdleTimeout::builder().build(ours);
        conn.write_all(b"full").await.unwrap();
        assert!(is_pending(conn.read(&mut [0; 4])).await);
        assert!(is_pending(conn.write(b"more")).await);
        assert_eq!(conn.timers(), (false, false));
    }

    #[tokio::test(start_paused = true)]
    async fn timers_are_allocated_at_the_first_wait_that_needs_one() {
        let (ours, mut peer) = duplex(4);
        let mut conn = IdleTimeout::builder()
            .read_idle(Some(Duration::from_secs(1)))
            .write_idle(Some(Duration::from_secs(1)))
            .build(ours);
        assert_eq!(conn.timers(), (false, false), "building allocates nothing");
        peer.write_all(b"hi").await.unwrap();
        assert_eq!(conn.read(&mut [0; 4]).await.unwrap(), 2);
        conn.write_all(b"full").await.unwrap();
        assert_eq!(conn.timers(), (false, false), "nothing waited yet");
        assert!(is_pending(conn.read(&mut [0; 4])).await);
        assert_eq!(conn.timers(), (true, false));
        assert!(is_pending(conn.write(b"more")).await);
        assert_eq!(conn.timers(), (true, true));
    }
}
