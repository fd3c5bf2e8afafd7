//! A frame stream over any `AsyncRead` that charges a memory budget for what it buffers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

use super::CodecError;
use crate::{BudgetError, BufPool, MemoryBudget, PoolError, PooledBuf, Reservation};

/// Bytes asked of the reader per read unless [`FrameReader::with_read_size`] says otherwise; the same as
/// `FramedRead`'s initial buffer.
pub const DEFAULT_READ_SIZE: usize = 8 * 1024;

type Pending<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pin_project! {
    /// A [`Stream`] of frames decoded from an [`AsyncRead`], like tokio-util's `FramedRead`, that can read through a
    /// [`BufPool`] and charge a [`MemoryBudget`] for every byte it buffers.
    ///
    /// * With a budget, the reader holds a reservation for the bytes buffered plus one read; while the budget cannot
    ///   grant the next read, it stops reading (the peer meets TCP back-pressure) and resumes when bytes are released.
    ///   Frames handed out are no longer charged: they are the caller's. Size the budget above the decoder's maximum
    ///   plus one read, or a frame that needs more than the budget can ever give fails with
    ///   [`CodecError::Budget`].
    /// * With a pool, each read lands in a pooled buffer that goes back to the pool as soon as its bytes are copied
    ///   to the decode buffer, and is not held while the reader waits for data: an idle connection holds no read
    ///   buffer. The pool's own budget applies, and a refused buffer is waited for.
    ///
    /// Errors from the decoder, the reader or the budget are fatal: the stream yields the error, then ends.
    /// Non-fatal events (a frame skipped under [`OversizePolicy::Skip`](super::OversizePolicy::Skip)) do not end
    /// the stream: the decoder counts them, and reports each to its skip hook if it was given one
    /// ([`LineCodec::with_skip_hook`](super::LineCodec::with_skip_hook) and the like).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tidegate::codec::{FrameReader, LineCodec};
    /// use tidegate::{BufPool, MemoryBudget};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tidegate::codec::CodecError> {
    /// let budget = MemoryBudget::new(64 * 1024);
    /// let mut frames = FrameReader::new(&b"one\ntwo\n"[..], LineCodec::new(1024))
    ///     .with_budget(budget.clone())
    ///     .with_pool(BufPool::new());
    /// assert_eq!(frames.next().await.unwrap()?, "one");
    /// assert_eq!(frames.next().await.unwrap()?, "two");
    /// assert!(frames.next().await.is_none());
    /// assert_eq!(budget.used(), 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct FrameReader<R, D> {
        #[pin]
        reader: R,
        decoder: D,
        buf: BytesMut,
        read_size: usize,
        pool: Option<BufPool>,
        budget: Option<MemoryBudget>,
        held: Option<Reservation>,
        waiting_budget: Option<Pending<Reservation, BudgetError>>,
        waiting_pool: Option<Pending<PooledBuf, PoolError>>,
        state: State,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Eof,
    Done,
}

impl<R, D> FrameReader<R, D> {
    /// Frames decoded by `decoder` from `reader`, with no pool and no budget.
    pub fn new(reader: R, decoder: D) -> Self {
        FrameReader {
            reader,
            decoder,
            buf: BytesMut::new(),
            read_size: DEFAULT_READ_SIZE,
            pool: None,
            budget: None,
            held: None,
            waiting_budget: None,
            waiting_pool: None,
            state: State::Reading,
        }
    }

    /// Reads through buffers from `pool`.
    pub fn with_pool(mut self, pool: BufPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Charges `budget` for the bytes buffered plus one read, and pauses reading while it is exhausted.
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Asks the reader for at most `bytes` per read (default [`DEFAULT_READ_SIZE`]); at least 1.
    pub fn with_read_size(mut self, bytes: usize) -> Self {
        self.read_size = bytes.max(1);
        self
    }

    /// The decoder, for its `metrics()`.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The decoder, mutably (to change its limits live).
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    /// The reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// Bytes read but not yet decoded into frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes this reader holds reserved from its budget (zero without one).
    pub fn reserved_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, Reservation::bytes)
    }
}

impl<R: AsyncRead, D: Decoder> Stream for FrameReader<R, D> {
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let decoded = match *this.state {
                State::Done => return Poll::Ready(None),
                State::Reading => this.decoder.decode(this.buf),
                State::Eof => this.decoder.decode_eof(this.buf),
            };
            match decoded {
                Ok(Some(frame)) => {
                    settle(this.held, this.buf.len());
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) if *this.state == State::Eof => {
                    finish(this.state, this.held, this.buf);
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(err) => {
                    finish(this.state, this.held, this.buf);
                    return Poll::Ready(Some(Err(err)));
                }
            }
            let want = this.buf.len() + *this.read_size;
            let charged = ready!(poll_charge(
                this.budget,
                this.held,
                this.waiting_budget,
                want,
                cx
            ));
            let read = match charged {
                Ok(()) => ready!(poll_fill(
                    this.reader.as_mut(),
                    this.pool,
                    this.waiting_pool,
                    this.buf,
                    *this.read_size,
                    cx
                )),
                Err(err) => Err(err),
            };
            match read {
                Ok(0) => *this.state = State::Eof,
                Ok(_) => settle(this.held, this.buf.len()),
                Err(err) => {
                    finish(this.state, this.held, this.buf);
                    return Poll::Ready(Some(Err(std::io::Error::from(err).into())));
                }
            }
        }
    }
}

/// Charges the budget for the bytes buffered only, once a read or a frame has settled.
fn settle(held: &mut Option<Reservation>, buffered: usize) {
    if let Some(r) = held {
        r.shrink_to(buffered);
    }
}

/// Ends the stream and releases everything it holds.
fn finish(state: &mut State, held: &mut Option<Reservation>, buf: &mut BytesMut) {
    *state = State::Done;
    *held = None;
    *buf = BytesMut::new();
}

/// Makes sure `want` bytes are reserved, waiting (pending) while the budget is exhausted.
fn poll_charge(
    budget: &Option<MemoryBudget>,
    held: &mut Option<Reservation>,
    waiting: &mut Option<Pending<Reservation, BudgetError>>,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<(), CodecError>> {
    let Some(budget) = budget else {
        return Poll::Ready(Ok(()));
    };
    loop {
        if let Some(fut) = waiting {
            let granted = ready!(fut.as_mut().poll(cx));
            *waiting = None;
            let granted = granted?;
            match held {
                Some(r) => r.merge(granted),
                None => *held = Some(granted),
            }
        }
        let have = held.as_ref().map_or(0, Reservation::bytes);
        if have >= want {
            return Poll::Ready(Ok(()));
        }
        let missing = want - have;
        let tried = match held {
            Some(r) => r.try_grow(missing),
            None => budget.try_reserve(missing).map(|r| *held = Some(r)),
        };
        match tried {
            Ok(()) => return Poll::Ready(Ok(())),
            Err(BudgetError::Exhausted { .. }) => {
                let budget = budget.clone();
                *waiting = Some(Box::pin(async move { budget.reserve(missing).await }));
            }
            Err(err) => return Poll::Ready(Err(err.into())),
        }
    }
}

/// Reads once into `buf`, through a pooled buffer when there is a pool. Returns the bytes read (0 at the end).
fn poll_fill<R: AsyncRead>(
    reader: Pin<&mut R>,
    pool: &Option<BufPool>,
    waiting: &mut Option<Pending<PooledBuf, PoolError>>,
    buf: &mut BytesMut,
    read_size: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<usize, CodecError>> {
    let Some(pool) = pool else {
        buf.reserve(read_size);
        return tokio_util::io::poll_read_buf(reader, cx, buf).map_err(CodecError::from);
    };
    let mut staging = loop {
        if let Some(fut) = waiting {
            let got = ready!(fut.as_mut().poll(cx));
            *waiting = None;
            break got?;
        }
        match pool.try_acquire(read_size) {
            Ok(staging) => break staging,
            Err(PoolError::Budget {
                source: BudgetError::Exhausted { .. },
                ..
            }) => {
                let pool = pool.clone();
                *waiting = Some(Box::pin(async move { pool.acquire(read_size).await }));
            }
            Err(err) => return Poll::Ready(Err(err.into())),
        }
    };
    let room = read_size.min(staging.capacity());
    let mut read_buf = ReadBuf::new(&mut staging.unfilled_mut()[..room]);
    // On `Pending` the staging buffer goes back to the pool here: a reader waiting for data holds none.
    ready!(reader.poll_read(cx, &mut read_buf))?;
    let n = read_buf.filled().len();
    buf.extend_from_slice(read_buf.filled());
    Poll::Ready(Ok(n))
}

impl<R, D> fmt::Debug for FrameReader<R, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .field("read_size", &self.read_size)
            .field("pooled", &self.pool.is_some())
            .field("reserved", &self.reserved_bytes())
            .field("waiting_for_budget", &self.waiting_budget.is_some())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
