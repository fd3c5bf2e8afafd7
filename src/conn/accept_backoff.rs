//! What to do when `accept` fails: skip a connection's own error, back off when the process is out of resources.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The first wait after a resource error.
pub(super) const FIRST_DELAY: Duration = Duration::from_millis(1);
/// The longest wait: a listener out of descriptors retries about once a second.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(1);
/// Skipped errors in a row after which the listener pauses [`FIRST_DELAY`] once. Each skipped error normally
/// consumes one failed connection, so a run of them is progress, and a peer able to cause them must not be able to
/// slow accepting by much: the pause does not grow. It bounds what an error that repeats without end (a
/// misclassified failure of the listener itself) costs: `SKIP_BURST` system calls per millisecond, not a spin.
pub(super) const SKIP_BURST: u32 = 64;

/// How an `accept` error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptErrorKind {
    /// The error belongs to one connection, which the kernel has dropped: accept the next one.
    Skip,
    /// The process or system is out of descriptors or memory: the connection stays in the backlog, so retrying at
    /// once would fail again. Wait, then retry.
    Resource,
    /// The listening socket itself is broken: give the error to the caller.
    Fatal,
}

/// Sorts an `accept` error by `accept(2)`: the errors Linux says to treat like `EAGAIN` (pending network errors of
/// the new connection), plus `ECONNABORTED`, `ECONNRESET`, `EPERM` (a firewall refused that connection) and `EINTR`,
/// are skipped; `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` mean out of resources; anything else is fatal.
pub(super) fn classify(err: &io::Error) -> AcceptErrorKind {
    #[cfg(unix)]
    if let Some(code) = err.raw_os_error() {
        return classify_errno(code);
    }
    match err.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::PermissionDenied => AcceptErrorKind::Skip,
        io::ErrorKind::OutOfMemory => AcceptErrorKind::Resource,
        _ => AcceptErrorKind::Fatal,
    }
}

#[cfg(unix)]
fn classify_errno(code: i32) -> AcceptErrorKind {
    match code {
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => AcceptErrorKind::Resource,
        libc::ECONNABORTED
        | libc::ECONNRESET
        | libc::EPROTO
        | libc::EPERM
        | libc::EINTR
        | libc::EAGAIN
        | libc::ENETDOWN
        | libc::ENOPROTOOPT
        | libc::EHOSTDOWN
        | libc::EHOSTUNREACH
        | libc::EOPNOTSUPP
        | libc::ENETUNREACH => AcceptErrorKind::Skip,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::ENONET => AcceptErrorKind::Skip,
        _ => AcceptErrorKind::Fatal,
    }
}

/// The growing wait between accept attempts while out of resources: 1 ms, doubling to 1 s, back to 1 ms after a
/// successful accept. Atomics, because `accept` takes `&self` and may run in several tasks at once.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    next_delay_nanos: AtomicU64,
    skips_in_a_row: AtomicU32,
}

impl AcceptBackoff {
    pub(super) fn new() -> Self {
        AcceptBackoff {
            next_delay_nanos: AtomicU64::new(nanos(FIRST_DELAY)),
            skips_in_a_row: AtomicU32::new(0),
        }
    }

    /// The wait before the next attempt after a resource error; the one after it is twice as long, up to
    /// [`MAX_DELAY`].
    pub(super) fn next_delay(&self) -> Duration {
        let max = nanos(MAX_DELAY);
        let prev = self
            .next_delay_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                Some(d.saturating_mul(2).min(max))
            })
            .unwrap_or(max);
        Duration::from_nanos(prev)
    }

    /// Records a skipped error; returns the pause due once every [`SKIP_BURST`] of them in a row.
    pub(super) fn after_skip(&self) -> Option<Duration> {
        let in_a_row = self
            .skips_in_a_row
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        (in_a_row % SKIP_BURST == 0).then_some(FIRST_DELAY)
    }

    /// A connection was accepted: the next resource error waits [`FIRST_DELAY`] again.
    pub(super) fn reset(&self) {
        // Loads first so the common case (no error since the last accept) writes nothing.
        if self.next_delay_nanos.load(Ordering::Acquire) != nanos(FIRST_DELAY) {
            self.next_delay_nanos
                .store(nanos(FIRST_DELAY), Ordering::Release);
        }
        if self.skips_in_a_row.load(Ordering::Acquire) != 0 {
            self.skips_in_a_row.store(0, Ordering::Release);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// The errno lists are Linux's.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn resource_errors_back_off_connection_errors_are_skipped_the_rest_is_fatal() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(
                classify(&os(code)),
                AcceptErrorKind::Resource,
                "errno {code}"
            );
        }
        for code in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EPROTO,
            libc::EPERM,
            libc::EINTR,
            libc::ENETDOWN,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::ENONET,
        ] {
            assert_eq!(classify(&os(code)), AcceptErrorKind::Skip, "errno {code}");
        }
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK, libc::EFAULT] {
            assert_eq!(classify(&os(code)), AcceptErrorKind::Fatal, "errno {code}");
        }
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&aborted), AcceptErrorKind::Skip);
        assert_eq!(classify(&io::Error::other("boom")), AcceptErrorKind::Fatal);
    }

    #[test]
    fn delay_doubles_from_1ms_to_a_1s_cap_and_resets_after_a_success() {
        let backoff = AcceptBackoff::new();
        let delays: Vec<u64> = (0..13)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), FIRST_DELAY);
        assert_eq!(backoff.next_delay(), 2 * FIRST_DELAY);
    }

    #[test]
    fn every_64th_skipped_error_in_a_row_pauses_1ms_until_a_success() {
        let backoff = AcceptBackoff::new();
        let pauses: Vec<(u32, Duration)> = (1..=3 * SKIP_BURST)
            .filter_map(|n| backoff.after_skip().map(|d| (n, d)))
            .collect();
        assert_eq!(
            pauses,
            [1, 2, 3].map(|k| (k * SKIP_BURST, FIRST_DELAY)),
            "a fixed pause per burst, not a growing one"
        );
        for _ in 1..SKIP_BURST {
            backoff.after_skip();
        }
        backoff.reset();
        assert_eq!(
            backoff.after_skip(),
            None,
            "the run restarts after a success"
        );
        // Resource errors keep their own growing delay.
        assert_eq!(backoff.next_delay(), FIRST_DELAY);
    }
}
