//! What a listener does with connections that arrive while its limiter is full.

/// What a [`LimitedListener`](super::LimitedListener) does while its limiter's global limit is reached.
///
/// A connection refused by the per-address limit is always rejected: pausing cannot help while the same address
/// keeps its connections open, and would hold up every other address.
///
/// # Examples
///
/// ```
/// use tidegate::conn::{LimitedListener, OverLimit};
///
/// let mut builder = LimitedListener::builder();
/// builder.over_limit(OverLimit::Reject);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OverLimit {
    /// Stop accepting until a permit is dropped (or the limit is raised). New connections wait in the kernel's
    /// backlog, and past it the kernel drops their handshakes, so clients retry on their own. The default.
    #[default]
    Pause,
    /// Accept and close at once with a reset (`SO_LINGER` 0, so no `TIME_WAIT` is left on the server), counted in
    /// [`ListenerMetrics::rejected`](super::ListenerMetrics::rejected). Clients learn at once that the server is
    /// full.
    Reject,
}
