//! Builder for [`IdleTimeout`].

use std::time::Duration;

use super::IdleTimeout;

/// Configures an [`IdleTimeout`]; obtained from [`IdleTimeout::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`read_idle`](Self::read_idle) | `None`: reads wait as long as the stream does |
/// | [`write_idle`](Self::write_idle) | `None`: writes wait as long as the stream does |
/// | [`first_bytes_deadline`](Self::first_bytes_deadline) | off |
///
/// The builder is `Copy` and [`build`](Self::build) takes `&self`, so one builder can wrap every accepted
/// connection. Every combination is valid, so building cannot fail: a zero timeout fails the first wait at once,
/// and a timeout too long to add to the current [`Instant`](tokio::time::Instant) never fires.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tidegate::conn::IdleTimeout;
///
/// let mut builder = IdleTimeout::builder();
/// builder.read_idle(Some(Duration::from_secs(60)));
/// let first = builder.build(tokio::io::empty());
/// let second = builder.build(tokio::io::empty());
/// # drop((first, second));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdleTimeoutBuilder {
    read_idle: Option<Duration>,
    write_idle: Option<Duration>,
    first_bytes: Option<(usize, Duration)>,
}

impl IdleTimeoutBuilder {
    /// With `Some(idle)`, a read fails with [`IdleError::ReadIdle`](super::IdleError::ReadIdle) once the reader has
    /// waited `idle` and no byte arrived (see [`IdleTimeout`] for when a wait starts). `None` never times reads
    /// out. Default: `None`.
    pub fn read_idle(&mut self, idle: Option<Duration>) -> &mut Self {
        self.read_idle = idle;
        self
    }

    /// With `Some(idle)`, a write, flush or shutdown fails with
    /// [`IdleError::WriteIdle`](super::IdleError::WriteIdle) once it has been pending for `idle` with the stream
    /// taking nothing. `None` never times writes out. Default: `None`.
    pub fn write_idle(&mut self, idle: Option<Duration>) -> &mut Self {
        self.write_idle = idle;
        self
    }

    /// Requires the first `bytes` bytes to have been read within `within` of [`build`](Self::build), else reads
    /// fail with [`IdleError::SlowStart`](super::IdleError::SlowStart): the defence against a client that opens a
    /// connection and trickles its request in a byte at a time, each byte early enough to beat a read-idle
    /// timeout. After those bytes it no longer applies. `bytes == 0` turns it off. Default: off.
    pub fn first_bytes_deadline(&mut self, bytes: usize, within: Duration) -> &mut Self {
        self.first_bytes = (bytes > 0).then_some((bytes, within));
        self
    }

    /// Wraps `stream`. The slow-start deadline counts from now.
    pub fn build<S>(&self, stream: S) -> IdleTimeout<S> {
        IdleTimeout::from_builder(stream, self.read_idle, self.write_idle, self.first_bytes)
    }
}
