//! Telling the application, as it happens, that a decoder skipped an oversize frame.

use std::fmt;
use std::sync::Arc;

use super::CodecError;

type Hook = Arc<dyn Fn(&CodecError) + Send + Sync>;

/// The function a decoder calls under [`OversizePolicy::Skip`](super::OversizePolicy::Skip) each time it starts
/// discarding an oversize frame, with the [`CodecError::FrameTooLong`] that `Fail` would have returned.
///
/// A decoder cannot hand a non-fatal event out through `Decoder::decode` (tokio-util's `FramedRead` ends the stream
/// after any error), so the event goes out through this side channel instead: a log line, a counter, a channel.
/// It runs inside `decode`, on the task reading the connection, so it should be quick and must not block.
#[derive(Clone, Default)]
pub(crate) struct SkipHook(Option<Hook>);

impl SkipHook {
    pub(crate) fn new(hook: impl Fn(&CodecError) + Send + Sync + 'static) -> Self {
        SkipHook(Some(Arc::new(hook)))
    }

    /// Reports a skipped frame of (at least) `len` bytes over `max`.
    pub(crate) fn skipped(&self, len: u64, max: usize) {
        if let Some(hook) = &self.0 {
            hook(&CodecError::FrameTooLong { len, max });
        }
    }
}

impl fmt::Debug for SkipHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
