//! The builder of a [`Connection`].

use std::any::Any;
use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

use super::connection::{ReadSide, BATCH};
use super::held::{Held, Permit};
use super::writer_task::WriterTask;
use super::{Connection, ConnectionBuildError, IdleTimeoutBuilder, MaxFrameLength, Shutdown};
use crate::budget::MemoryBudget;
use crate::codec::{FrameReader, DEFAULT_READ_SIZE};
use crate::watermark::{
    Limits, QueueSet, WatermarkWriter, DEFAULT_HARD, DEFAULT_HIGH, DEFAULT_LOW,
};

/// How long a connection whose reading stopped may take to deliver what it queued, unless
/// [`ConnectionBuilder::drain_timeout`] says otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a peer may keep a connection's write queue unwritable before it is evicted, unless
/// [`ConnectionBuilder::evict_after`] says otherwise.
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(30);

/// How long one write to the peer may make no progress before the connection is closed, unless
/// [`ConnectionBuilder::stall_timeout`] says otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and builds a [`Connection`]; from [`Connection::builder`].
///
/// One builder serves every accepted stream: [`build`](Self::build) takes `&mut self` only to take the
/// [`permit`](Self::permit), which belongs to the one connection built next; every other setting stays.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::codec::LengthFieldCodec;
/// use tidegate::conn::Connection;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tidegate::conn::ConnectionBuildError> {
/// let (stream, _peer) = tokio::io::duplex(1024);
/// let codec = LengthFieldCodec::new(16 * 1024);
/// let conn = Connection::builder()
///     .low_mark(16 * 1024)
///     .high_mark(32 * 1024)
///     .hard_cap(128 * 1024)
///     .evict_after(Some(Duration::from_secs(10)))
///     .build(stream, codec.clone(), codec)?;
/// # drop(conn);
/// # Ok(())
/// # }
/// ```
pub struct ConnectionBuilder {
    low: usize,
    high: usize,
    hard: usize,
    read_size: usize,
    budget: Option<MemoryBudget>,
    evict_after: Option<Duration>,
    stall_timeout: Option<Duration>,
    drain_timeout: Duration,
    idle: IdleTimeoutBuilder,
    shutdown: Option<Shutdown>,
    permit: Option<Permit>,
    queue_set: Option<QueueSet>,
}

impl Default for ConnectionBuilder {
    fn default() -> Self {
        ConnectionBuilder {
            low: DEFAULT_LOW,
            high: DEFAULT_HIGH,
            hard: DEFAULT_HARD,
            read_size: DEFAULT_READ_SIZE,
            budget: None,
            evict_after: Some(DEFAULT_EVICT_AFTER),
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            idle: IdleTimeoutBuilder::default(),
            shutdown: None,
            permit: None,
            queue_set: None,
        }
    }
}

impl ConnectionBuilder {
    /// The write queue turns writable again (and reading resumes) at or below this many queued bytes. Default
    /// [`DEFAULT_LOW`].
    pub fn low_mark(&mut self, bytes: usize) -> &mut Self {
        self.low = bytes;
        self
    }

    /// Above this many queued bytes the write queue turns unwritable: the connection stops reading from the peer
    /// and the handler's [`feed`](Connection::feed) waits. Default [`DEFAULT_HIGH`].
    pub fn high_mark(&mut self, bytes: usize) -> &mut Self {
        self.high = bytes;
        self
    }

    /// The write queue never holds more than this many bytes. Default [`DEFAULT_HARD`].
    pub fn hard_cap(&mut self, bytes: usize) -> &mut Self {
        self.hard = bytes;
        self
    }

    /// Bytes asked of the socket per read. Default [`DEFAULT_READ_SIZE`].
    pub fn read_size(&mut self, bytes: usize) -> &mut Self {
        self.read_size = bytes.max(1);
        self
    }

    /// A memory budget charged for the read buffer and every queued byte. Default: none.
    pub fn budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.budget = budget;
        self
    }

    /// Evict a peer that keeps the write queue unwritable for this long (it sends but does not read); `None`
    /// never evicts. Default `Some(`[`DEFAULT_EVICT_AFTER`]`)`.
    pub fn evict_after(&mut self, after: Option<Duration>) -> &mut Self {
        self.evict_after = after;
        self
    }

    /// Close the connection when one write makes no progress for this long; `None` waits forever. Default
    /// `Some(`[`DEFAULT_STALL_TIMEOUT`]`)`.
    pub fn stall_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.stall_timeout = timeout;
        self
    }

    /// Once reading has stopped (the peer closed, the connection closed or a shutdown began), how long the
    /// writer may take to deliver what is queued before it is cut. Default [`DEFAULT_DRAIN_TIMEOUT`].
    pub fn drain_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.drain_timeout = timeout;
        self
    }

    /// Idle timeouts for the socket (read idle, write idle, slow start; see [`IdleTimeout`](super::IdleTimeout)). One that passes
    /// ends the connection with [`ConnClose::Idle`](super::ConnClose::Idle), both halves. Default: none.
    ///
    /// Reading is not polled while the write queue is unwritable, so a paused connection is not read-idle; a
    /// peer that does not read is caught by the write idle timeout or [`evict_after`](Self::evict_after).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::conn::{Connection, IdleTimeout};
    ///
    /// let mut builder = Connection::builder();
    /// builder.idle(IdleTimeout::builder().read_idle(Some(Duration::from_secs(60))));
    /// ```
    pub fn idle(&mut self, idle: &IdleTimeoutBuilder) -> &mut Self {
        self.idle = *idle;
        self
    }

    /// Ends the connections built from now on gracefully when `shutdown` is triggered, and counts them in its
    /// report. Default: none.
    pub fn shutdown(&mut self, shutdown: &Shutdown) -> &mut Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// Makes the write queue of every connection built from now on a member of `set`: the queues use the set's
    /// marks instead of [`low_mark`](Self::low_mark), [`high_mark`](Self::high_mark) and
    /// [`hard_cap`](Self::hard_cap) (and follow every change of them, live), and they report as one aggregate
    /// when the set is registered with a [`Registry`](crate::metrics::Registry). Default: none.
    ///
    /// [`build`](Self::build) checks the set's marks as it would the builder's, and the set remembers what its
    /// connections need above the high mark (the largest frame and a batch): the registry's
    /// [`check`](crate::metrics::Observer::check) of the set refuses marks that leave less.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidegate::codec::LengthFieldCodec;
    /// use tidegate::conn::Connection;
    /// use tidegate::watermark::{Limits, QueueSet};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tidegate::conn::ConnectionBuildError> {
    /// let set = QueueSet::new(Limits::new(16 << 10, 32 << 10, 128 << 10));
    /// let mut builder = Connection::builder();
    /// builder.queue_set(Some(&set));
    /// let codec = LengthFieldCodec::new(16 * 1024);
    /// let (stream, _peer) = tokio::io::duplex(1024);
    /// let conn = builder.build(stream, codec.clone(), codec)?;
    /// assert_eq!(set.len(), 1);
    /// set.set_limits(Limits::new(8 << 10, 16 << 10, 128 << 10));
    /// assert_eq!(conn.sender().limits().high(), 16 << 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue_set(&mut self, set: Option<&QueueSet>) -> &mut Self {
        self.queue_set = set.cloned();
        self
    }

    /// Holds `permit` (a `ConnectionPermit`, any drop guard) until the socket of the next connection built is
    /// closed: after both reading and writing have ended, whichever ends last. [`build`](Self::build) takes it.
    pub fn permit(&mut self, permit: impl Any + Send + Sync) -> &mut Self {
        self.permit = Some(Box::new(permit));
        self
    }

    /// Splits `stream`, spawns its writer task (the connection's one task) and returns the connection, which
    /// decodes frames with `decoder` and encodes messages with `encoder`.
    ///
    /// # Errors
    ///
    /// A [`ConnectionBuildError`] with the numbers when the limits cannot work with the decoder's
    /// [`max_frame_length`](MaxFrameLength::max_frame_length). The permit is dropped then.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns the writer task).
    pub fn build<S, D, E, M>(
        &mut self,
        stream: S,
        decoder: D,
        encoder: E,
    ) -> Result<Connection<D, E, M>, ConnectionBuildError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
        D: Decoder + MaxFrameLength,
        D::Error: Into<io::Error>,
        E: Encoder<M>,
    {
        let permit = self.permit.take();
        let max_frame = decoder.max_frame_length();
        let limits = self.check(max_frame)?;
        if let Some(set) = &self.queue_set {
            // A later change of the set's marks must leave this connection room for a frame above its high mark.
            set.require_headroom(max_frame.saturating_add(BATCH));
        }
        // Without timeouts the wrapper would only cost memory: ~200 bytes per connection, for its whole life.
        Ok(if self.idle == IdleTimeoutBuilder::default() {
            self.start(Held::new(stream, permit), limits, decoder, encoder)
        } else {
            let stream = self.idle.build(stream);
            self.start(Held::new(stream, permit), limits, decoder, encoder)
        })
    }

    fn start<T, D, E, M>(
        &self,
        stream: T,
        limits: Limits,
        decoder: D,
        encoder: E,
    ) -> Connection<D, E, M>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
        D: Decoder,
        D::Error: Into<io::Error>,
        E: Encoder<M>,
    {
        let (read, write) = tokio::io::split(stream);
        let mut frames =
            FrameReader::new(Box::new(read) as ReadSide, decoder).with_read_size(self.read_size);
        if let Some(budget) = &self.budget {
            frames = frames.with_budget(budget.clone());
        }
        let (tx, writer) = WatermarkWriter::builder()
            .limits(limits)
            .budget(self.budget.clone())
            .evict_after(self.evict_after)
            .stall_timeout(self.stall_timeout)
            .build(write);
        if let Some(set) = &self.queue_set {
            set.add(&tx);
        }
        let tracked = self.shutdown.as_ref().map(Shutdown::track);
        let shutdown = tracked.as_ref().map(|t| t.token().clone());
        let task = tokio::spawn(WriterTask::new(
            writer.with_direct_writes().run(),
            tx.clone(),
            tracked,
            self.drain_timeout,
        ));
        Connection::new(frames, tx, encoder, task, shutdown)
    }

    fn check(&self, max_frame: usize) -> Result<Limits, ConnectionBuildError> {
        let limits = match &self.queue_set {
            Some(set) => set.limits(),
            None => Limits::try_new(self.low, self.high, self.hard)?,
        };
        let needed = limits
            .high()
            .saturating_add(max_frame)
            .saturating_add(BATCH);
        if limits.hard() < needed {
            return Err(ConnectionBuildError::HardCapTooSmall {
                hard: limits.hard(),
                high: limits.high(),
                max_frame,
                needed,
            });
        }
        if let Some(budget) = &self.budget {
            let read = max_frame
                .saturating_add(max_frame / 2)
                .saturating_add(self.read_size);
            let needed = read.max(max_frame.saturating_add(BATCH));
            if budget.limit() < needed {
                return Err(ConnectionBuildError::BudgetTooSmall {
                    limit: budget.limit(),
                    max_frame,
                    needed,
                });
            }
        }
        Ok(limits)
    }
}

impl fmt::Debug for ConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionBuilder")
            .field("low", &self.low)
            .field("high", &self.high)
            .field("hard", &self.hard)
            .field("read_size", &self.read_size)
            .field("budget", &self.budget)
            .field("evict_after", &self.evict_after)
            .field("stall_timeout", &self.stall_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("idle", &self.idle)
            .field("shutdown", &self.shutdown.is_some())
            .field("permit", &self.permit.is_some())
            .field("queue_set", &self.queue_set)
            .finish()
    }
}
