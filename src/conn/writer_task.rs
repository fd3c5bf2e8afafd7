//! The one task of a connection: its watermark writer, with a deadline once reading has stopped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::shutdown::Tracked;
use crate::watermark::WriterReport;

/// How the writer task ended.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    /// The writer stopped by itself: the queue was closed and drained, or it failed (eviction, an error).
    Finished(WriterReport),
    /// Reading had stopped and the drain timeout passed first: the writer and its queue were dropped.
    Cut,
}

pin_project! {
    /// Runs a writer until it stops; once the read side has ended (`read_done` dropped) or the shutdown was
    /// triggered, for at most `drain` more. The connection closes the queue when its read side ends, so a writer
    /// that can drain finishes well before the deadline.
    ///
    /// Written by hand, not as an `async fn`: the task's allocation is the size of this future for the whole life
    /// of the connection, and a `select!` with a timeout around the writer cost about 500 bytes more per idle
    /// connection. The timer is allocated only once draining starts.
    pub(crate) struct WriterTask<F> {
        #[pin]
        writer: F,
        read_done: Option<oneshot::Receiver<()>>,
        triggered: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        tracked: Option<Tracked>,
        drain: Duration,
        deadline: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> WriterTask<F> {
    pub(crate) fn new(
        writer: F,
        read_done: oneshot::Receiver<()>,
        tracked: Option<Tracked>,
        drain: Duration,
    ) -> Self {
        let triggered = tracked
            .as_ref()
            .map(|t| Box::pin(t.token().clone().cancelled_owned()));
        WriterTask {
            writer,
            read_done: Some(read_done),
            triggered,
            tracked,
            drain,
            deadline: None,
        }
    }
}

impl<F: Future<Output = WriterReport>> Future for WriterTask<F> {
    type Output = WriterEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WriterEnd> {
        let this = self.project();
        if let Poll::Ready(report) = this.writer.poll(cx) {
            if let Some(tracked) = this.tracked.take() {
                if report.reason.is_graceful() {
                    tracked.drained();
                }
            }
            return Poll::Ready(WriterEnd::Finished(report));
        }
        if this.deadline.is_none() {
            let read_done = this
                .read_done
                .as_mut()
                .is_some_and(|rx| Pin::new(rx).poll(cx).is_ready());
            let triggered = this
                .triggered
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready());
            if !(read_done || triggered) {
                return Poll::Pending;
            }
            *this.read_done = None;
            *this.triggered = None;
            *this.deadline = Some(Box::pin(tokio::time::sleep(*this.drain)));
        }
        match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            // Cut: the tracker counts it as such when dropped; the writer is dropped with this future.
            Some(Poll::Ready(())) => {
                this.tracked.take();
                Poll::Ready(WriterEnd::Cut)
            }
            _ => Poll::Pending,
        }
    }
}
#[cfg(test)]
mod size_probe {
    #[tokio::test]
    async fn probe() {
        use crate::watermark::WatermarkWriter;
        let (tx, w) = WatermarkWriter::new(tokio::io::sink());
        eprintln!("writer {}", std::mem::size_of_val(&w));
        eprintln!("sleep {}", std::mem::size_of::<tokio::time::Sleep>());
        let (_wt, mut wr) = tokio::sync::watch::channel(false);
        eprintln!("changed {}", std::mem::size_of_val(&wr.changed()));
        let n = tokio::sync::Notify::new();
        eprintln!("notified {}", std::mem::size_of_val(&n.notified()));
        let run = w.run();
        eprintln!("writer.run {}", std::mem::size_of_val(&run));
        drop(run);
        let (tx2, w) = WatermarkWriter::new(tokio::io::sink());
        let (_d, rx) = tokio::sync::oneshot::channel();
        let f = super::WriterTask::new(w.run(), rx, None, std::time::Duration::from_secs(1));
        eprintln!("task future {}", std::mem::size_of_val(&f));
        drop((tx, tx2));
        let (s, _c) = tokio::io::duplex(64);
        let codec = crate::codec::LengthFieldCodec::new(1024);
        let mut conn: crate::conn::Connection<_> = crate::conn::Connection::builder()
            .build(s, codec.clone(), codec)
            .unwrap();
        eprintln!("connection {}", std::mem::size_of_val(&conn));
        eprintln!(
            "codec {} reader {} framed {} close {} sender {} idle {} watch {}",
            std::mem::size_of::<crate::codec::LengthFieldCodec>(),
            std::mem::size_of::<
                crate::codec::FrameReader<
                    crate::conn::connection::ReadSide,
                    crate::codec::LengthFieldCodec,
                >,
            >(),
            std::mem::size_of::<
                crate::watermark::FramedSender<bytes::Bytes, crate::codec::LengthFieldCodec>,
            >(),
            std::mem::size_of::<crate::conn::ConnClose>(),
            std::mem::size_of::<crate::watermark::Sender<bytes::Bytes>>(),
            std::mem::size_of::<crate::conn::IdleTimeout<tokio::net::TcpStream>>(),
            std::mem::size_of::<tokio::sync::watch::Sender<bool>>()
        );
        let n = conn.next();
        eprintln!("next {}", std::mem::size_of_val(&n));
        drop(n);
        let f = conn.feed(bytes::Bytes::new());
        eprintln!("feed {}", std::mem::size_of_val(&f));
    }
}
