//! `Sender` as a `futures_sink::Sink`.

use std::pin::Pin;
use std::task::{Context, Poll};

use super::{SendError, Sender, Weight};

/// `poll_ready` waits for writability (or closure); `start_send` is [`Sender::try_send`], so a closed queue or an
/// item over the hard cap is reported with the item inside the error (and counted in
/// [`WatermarkMetrics::refused`](super::WatermarkMetrics::refused)). Writability does not promise room: an item
/// heavier than `hard - high`, or one that meets racing producers, can still be refused as
/// [`SendError::Full`]; nothing is lost, the item is in the error. [`FramedSender`](super::FramedSender) waits for
/// room instead. `poll_flush` and `poll_close` complete at
/// once: delivery is the receiver's job, and one clone closing the queue for all would surprise; call
/// [`Sender::close`] for that.
impl<T: Weight> futures_sink::Sink<T> for Sender<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_writable(cx).map(Ok)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        self.try_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}
