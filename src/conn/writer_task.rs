//! The one task of a connection: its watermark writer, with a deadline once reading has stopped.

use std::future::pending;
use std::pin::pin;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::oneshot;

use super::shutdown::Tracked;
use crate::watermark::{WatermarkWriter, WriterReport};

/// How the writer task ended.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    /// The writer stopped by itself: the queue was closed and drained, or it failed (eviction, an error).
    Finished(WriterReport),
    /// Reading had stopped and the drain timeout passed first: the writer and its queue were dropped.
    Cut,
}

/// Runs `writer` until it stops; once the read side has ended (`read_done` dropped) or the shutdown was
/// triggered, for at most `drain` more. The connection closes the queue when its read side ends, so a writer
/// that can drain finishes well before the deadline.
pub(crate) async fn run<W: AsyncWrite + Unpin + Send>(
    writer: WatermarkWriter<W>,
    read_done: oneshot::Receiver<()>,
    tracked: Option<Tracked>,
    drain: Duration,
) -> WriterEnd {
    let mut writer = pin!(writer.run());
    let token = tracked.as_ref().map(|t| t.token().clone());
    let triggered = async {
        match &token {
            Some(token) => token.cancelled().await,
            None => pending().await,
        }
    };
    let end = tokio::select! {
        biased;
        report = &mut writer => Some(report),
        _ = read_done => None,
        () = triggered => None,
    };
    let end = match end {
        Some(report) => WriterEnd::Finished(report),
        None => match tokio::time::timeout(drain, writer).await {
            Ok(report) => WriterEnd::Finished(report),
            Err(_elapsed) => WriterEnd::Cut,
        },
    };
    if let (Some(tracked), WriterEnd::Finished(report)) = (tracked, &end) {
        if report.reason.is_graceful() {
            tracked.drained();
        }
    }
    end
}
