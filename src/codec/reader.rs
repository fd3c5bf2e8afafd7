//! A frame stream over any `AsyncRead` that charges a memory budget for the allocation it holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::CodecError;
use crate::budget::{BudgetError, MemoryBudget, Reservation};

/// Bytes asked of the reader per read unless [`FrameReader::with_read_size`] says otherwise; the same as
/// `FramedRead`'s initial buffer.
pub const DEFAULT_READ_SIZE: usize = 8 * 1024;

/// How long a reader that holds part of a frame waits for budget before it fails, unless
/// [`FrameReader::with_budget_wait`] says otherwise.
///
/// Long enough to ride out other connections finishing their frames and handing them on; short enough that readers
/// which each hold part of a frame on an exhausted budget (none can finish, none lets go) free it again well within
/// a typical request timeout.
pub const DEFAULT_BUDGET_WAIT: Duration = Duration::from_secs(10);

/// `Sync` too, so that a reader is `Sync` whenever its reader and decoder are (a `&FrameReader` held across an
/// `.await` in a spawned task needs it).
type Pending<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + Sync>>;

pin_project! {
    /// A [`Stream`] of frames decoded from an [`AsyncRead`], like tokio-util's `FramedRead`, that charges a
    /// [`MemoryBudget`] for the memory it holds.
    ///
    /// # Memory
    ///
    /// The reader holds one allocation, its decode buffer, and with a budget its reservation is exactly that
    /// allocation's size ([`allocated_bytes`](Self::allocated_bytes)) whenever the stream is not inside `poll_next`:
    ///
    /// * It reads at most `read_size` bytes per read ([`with_read_size`](Self::with_read_size)), into the room left
    ///   in its buffer while at least half a read's worth is left. Otherwise it reuses the allocation in place if no
    ///   frame shares it any more, else moves to a new allocation of exactly one read (plus the bytes of a partial
    ///   frame, which are copied over).
    /// * A partial frame larger than one read grows the buffer by half of what is buffered (at least one read), so a
    ///   frame of `n` bytes is copied a bounded number of times and the buffer holds at most about `1.5 × n + read`.
    ///   The budget is charged for a new allocation before it is made; the old one is given back right after the
    ///   copy, in the same poll.
    /// * Frames share the allocation they were cut from. While it is still the reader's buffer they are covered by
    ///   its charge; once the reader moves to another allocation, what the frames keep alive is the caller's.
    /// * A buffer left empty after a frame is given back when it is larger than one read, so a reader between
    ///   frames holds at most one read's worth; and when the reader then has nothing more to give (its read is
    ///   pending), the buffer is given back whatever its size, so an idle reader holds no allocation and no
    ///   reservation. The next burst allocates one read's worth again (one allocation per burst, the price of
    ///   idle connections costing nothing).
    ///
    /// # Budget
    ///
    /// With a budget ([`with_budget`](Self::with_budget)) the reader stops reading (the peer meets TCP
    /// back-pressure) while the budget cannot grant the allocation it needs, and resumes when bytes are released:
    ///
    /// * A reader with nothing buffered gives its buffer back before it waits, so it holds nothing while it waits,
    ///   and waits as long as it takes.
    /// * A reader that holds part of a frame waits at most [`DEFAULT_BUDGET_WAIT`] (or
    ///   [`with_budget_wait`](Self::with_budget_wait)) per growth, then fails with
    ///   [`CodecError::Budget`]`(`[`BudgetError::Exhausted`]`)`. Readers that each hold part of a frame on an
    ///   exhausted budget therefore cannot wait on each other forever.
    /// * An allocation larger than the budget's limit fails at once with
    ///   [`CodecError::Budget`]`(`[`BudgetError::ExceedsLimit`]`)`. Size the budget above
    ///   `1.5 × largest frame + read` for each reader that may hold a partial frame at the same time.
    ///
    /// Errors from the decoder, the reader or the budget are fatal: the stream yields the error, gives back its
    /// buffer and reservation, then ends. Non-fatal events (a frame skipped under
    /// [`OversizePolicy::Skip`](super::OversizePolicy::Skip)) do not end the stream: the decoder counts them, and
    /// reports each to its skip hook if it was given one
    /// ([`LineCodecBuilder::skip_hook`](super::LineCodecBuilder::skip_hook) and the like).
    ///
    /// A decoder that replaces or reserves its buffer itself (tokio-util's `LengthDelimitedCodec` reserves what a
    /// header claims) is charged for the capacity it leaves, and fails the stream if the budget cannot cover it (a
    /// frame decoded in that same call is yielded first).
    ///
    /// # Panics
    ///
    /// The bounded wait uses tokio's timer: a reader that must wait for budget while it holds part of a frame
    /// panics if it is polled outside a tokio runtime with the time driver enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tidegate::codec::{FrameReader, LineCodec};
    /// use tidegate::MemoryBudget;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tidegate::codec::CodecError> {
    /// let budget = MemoryBudget::new(64 * 1024);
    /// let mut frames = FrameReader::new(&b"one\ntwo\n"[..], LineCodec::new(1024))
    ///     .with_budget(budget.clone())
    ///     .with_read_size(512);
    /// assert_eq!(frames.next().await.unwrap()?, "one");
    /// assert_eq!(budget.used(), 512); // the read buffer, which "one" and "two" share
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
        alloc: Alloc,
        read_size: usize,
        budget: Option<MemoryBudget>,
        budget_wait: Duration,
        held: Option<Reservation>,
        waiting: Option<Pending<Reservation, BudgetError>>,
        state: State,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Eof,
    /// The budget refused what the decoder allocated while it produced a frame: the frame goes out, then this.
    Failed(BudgetError),
    Done,
}

/// The allocation the decode buffer lives in. `BytesMut` does not tell its allocation's size, but the reader makes
/// every allocation itself, and a buffer is always the tail of its allocation, so the end address names it.
#[derive(Debug, Clone, Copy, Default)]
struct Alloc {
    end: usize,
    size: usize,
}

impl Alloc {
    fn end_of(buf: &BytesMut) -> usize {
        buf.as_ptr() as usize + buf.capacity()
    }

    fn of_new(buf: &BytesMut) -> Self {
        Alloc {
            end: Self::end_of(buf),
            size: buf.capacity(),
        }
    }

    /// Notices a decoder that replaced or reallocated the buffer; the new size is then at least its capacity.
    fn sync(&mut self, buf: &BytesMut) {
        if Self::end_of(buf) != self.end || buf.capacity() > self.size {
            *self = Self::of_new(buf);
        }
    }
}

impl<R, D> FrameReader<R, D> {
    /// Frames decoded by `decoder` from `reader`, with no budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tidegate::codec::{FrameReader, LineCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let frames = FrameReader::new(&b"a\nb\n"[..], LineCodec::new(16));
    /// assert_eq!(frames.map(Result::unwrap).collect::<Vec<_>>().await, ["a", "b"]);
    /// # }
    /// ```
    pub fn new(reader: R, decoder: D) -> Self {
        FrameReader {
            reader,
            decoder,
            buf: BytesMut::new(),
            alloc: Alloc::default(),
            read_size: DEFAULT_READ_SIZE,
            budget: None,
            budget_wait: DEFAULT_BUDGET_WAIT,
            held: None,
            waiting: None,
            state: State::Reading,
        }
    }

    /// Charges `budget` for the decode buffer's allocation, and pauses reading while it cannot grant more.
    ///
    /// See [Budget](Self#budget) for how long the reader waits.
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// How long a reader that holds part of a frame waits for budget to grow its buffer before it fails with
    /// [`CodecError::Budget`] (default [`DEFAULT_BUDGET_WAIT`]). `Duration::MAX` waits forever, which lets readers
    /// that each hold part of a frame on an exhausted budget wait on each other forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidegate::codec::{FrameReader, LineCodec};
    ///
    /// let frames = FrameReader::new(&b""[..], LineCodec::new(16)).with_budget_wait(Duration::from_secs(1));
    /// assert_eq!(frames.budget_wait(), Duration::from_secs(1));
    /// ```
    pub fn with_budget_wait(mut self, wait: Duration) -> Self {
        self.budget_wait = wait;
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

    /// The reader, mutably. Reading from it directly takes bytes the decoder would not see.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The reader, pinned, for a reader that is not `Unpin`. Reading from it directly takes bytes the decoder
    /// would not see.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut R> {
        self.project().reader
    }

    /// Unwraps the reader; bytes read but not yet decoded ([`read_buffer`](Self::read_buffer)) are dropped, and the
    /// budget's reservation with them.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tidegate::codec::{FrameReader, LineCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut frames = FrameReader::new(&b"one\ntw"[..], LineCodec::new(16));
    /// assert_eq!(frames.next().await.unwrap().unwrap(), "one");
    /// assert_eq!(frames.read_buffer()[..], b"tw"[..]); // read with "one\n", not a line yet
    /// assert!(frames.into_inner().is_empty()); // everything was read from the slice
    /// # }
    /// ```
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Bytes read but not yet decoded into frames.
    pub fn read_buffer(&self) -> &BytesMut {
        &self.buf
    }

    /// How long a reader holding part of a frame waits for budget; see [`with_budget_wait`](Self::with_budget_wait).
    pub fn budget_wait(&self) -> Duration {
        self.budget_wait
    }

    /// Bytes read but not yet decoded into frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The size of the decode buffer's allocation (zero when the reader holds none): what it charges its budget.
    pub fn allocated_bytes(&self) -> usize {
        self.alloc.size
    }

    /// Bytes this reader holds reserved from its budget (zero without one); equal to
    /// [`allocated_bytes`](Self::allocated_bytes) between polls.
    pub fn reserved_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, Reservation::bytes)
    }
}

impl<R: AsyncRead, D: Decoder> Stream for FrameReader<R, D> {
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let mut room = Room {
            buf: this.buf,
            alloc: this.alloc,
            held: this.held,
            read_size: *this.read_size,
        };
        loop {
            let decoded = match *this.state {
                State::Done => return Poll::Ready(None),
                State::Failed(err) => {
                    *this.state = State::Done;
                    return Poll::Ready(Some(Err(CodecError::from(err).into_decoder_error::<D>())));
                }
                State::Reading => this.decoder.decode(room.buf),
                State::Eof => this.decoder.decode_eof(room.buf),
            };
            let settled = room.after_decode(this.budget.as_ref());
            let fatal = match (decoded, settled) {
                (Err(err), _) => Some(err),
                (Ok(Some(frame)), Err(err)) => {
                    room.finish(this.state, this.waiting);
                    *this.state = State::Failed(err);
                    return Poll::Ready(Some(Ok(frame)));
                }
                (Ok(None), Err(err)) => Some(CodecError::from(err).into_decoder_error::<D>()),
                (Ok(Some(frame)), Ok(())) => return Poll::Ready(Some(Ok(frame))),
                (Ok(None), Ok(())) if *this.state == State::Eof => {
                    room.finish(this.state, this.waiting);
                    return Poll::Ready(None);
                }
                (Ok(None), Ok(())) => None,
            };
            if let Some(err) = fatal {
                room.finish(this.state, this.waiting);
                return Poll::Ready(Some(Err(err)));
            }
            let read = match ready!(room.poll_make_room(
                this.budget.as_ref(),
                *this.budget_wait,
                this.waiting,
                cx
            )) {
                Ok(()) => match room.poll_read(this.reader.as_mut(), cx) {
                    Poll::Ready(read) => read,
                    Poll::Pending => {
                        room.release_if_idle();
                        return Poll::Pending;
                    }
                },
                Err(err) => Err(err),
            };
            match read {
                Ok(0) => *this.state = State::Eof,
                Ok(_) => {}
                Err(err) => {
                    room.finish(this.state, this.waiting);
                    return Poll::Ready(Some(Err(err.into_decoder_error::<D>())));
                }
            }
        }
    }
}

impl CodecError {
    /// Travels through `io::Error`, which every decoder error converts from, so a caller unwraps the original.
    fn into_decoder_error<D: Decoder>(self) -> D::Error {
        std::io::Error::from(self).into()
    }
}

/// The decode buffer, its allocation and its charge, borrowed from the projected reader.
struct Room<'a> {
    buf: &'a mut BytesMut,
    alloc: &'a mut Alloc,
    held: &'a mut Option<Reservation>,
    read_size: usize,
}

impl Room<'_> {
    /// Gives back a buffer the decoder emptied when it is larger than one read, and brings the charge to the
    /// allocation (cut frames make no difference; a decoder that reallocated does).
    fn after_decode(&mut self, budget: Option<&MemoryBudget>) -> Result<(), BudgetError> {
        self.alloc.sync(self.buf);
        if self.buf.is_empty() && self.alloc.size > self.read_size {
            self.release_buf();
        }
        if self.reserved() < self.alloc.size {
            if let Some(budget) = budget {
                charge(budget, self.held, self.alloc.size)?;
            }
        }
        self.settle();
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.held.as_ref().map_or(0, Reservation::bytes)
    }

    /// Shrinks the reservation to the allocation (a grant larger than what was finally allocated).
    fn settle(&mut self) {
        if let Some(r) = self.held {
            r.shrink_to(self.alloc.size);
        }
    }

    /// Between bursts (nothing buffered, the reader has nothing more): gives back the allocation and its
    /// reservation, so an idle reader holds no memory. The next burst allocates one read's worth again.
    fn release_if_idle(&mut self) {
        if self.buf.is_empty() && self.alloc.size > 0 {
            self.release_buf();
            *self.held = None;
        }
    }

    fn release_buf(&mut self) {
        *self.buf = BytesMut::new();
        *self.alloc = Alloc::default();
        self.settle();
    }

    /// Makes sure at least half a read's worth of room is left in the buffer, reusing the allocation when no frame
    /// shares it any more, else charging and making a new one; waits (pending) while the budget cannot grant it.
    fn poll_make_room(
        &mut self,
        budget: Option<&MemoryBudget>,
        wait: Duration,
        waiting: &mut Option<Pending<Reservation, BudgetError>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), CodecError>> {
        loop {
            if let Some(fut) = waiting {
                let granted = ready!(fut.as_mut().poll(cx));
                *waiting = None;
                match (self.held.as_mut(), granted?) {
                    (Some(r), granted) => r.merge(granted),
                    (None, granted) => *self.held = Some(granted),
                }
            }
            let len = self.buf.len();
            let enough = (self.read_size / 2).max(1);
            // Reclaiming moves the bytes within the same allocation: its size and charge do not change.
            if self.buf.capacity() - len >= enough || self.buf.try_reclaim(enough) {
                self.settle();
                return Poll::Ready(Ok(()));
            }
            if len == 0 && self.alloc.size > 0 {
                // Too small to read into and still shared with frames: the caller's now. Let it go before waiting.
                // (Only an allocation: releasing nothing would also give back a grant that just arrived for it.)
                self.release_buf();
            }
            let target = len.saturating_add(self.read_size.max(len / 2));
            let Some(budget) = budget else {
                self.grow_to(target);
                return Poll::Ready(Ok(()));
            };
            match charge(budget, self.held, target) {
                Ok(()) => {
                    self.grow_to(target);
                    self.settle();
                    return Poll::Ready(Ok(()));
                }
                Err(BudgetError::Exhausted { .. }) if target > budget.limit() => {
                    let limit = budget.limit();
                    return Poll::Ready(Err(BudgetError::ExceedsLimit {
                        requested: target,
                        limit,
                    }
                    .into()));
                }
                Err(BudgetError::Exhausted { .. }) => {
                    let missing = target - self.reserved();
                    let bounded = (len > 0).then_some(wait);
                    *waiting = Some(Box::pin(wait_for(budget.clone(), missing, bounded)));
                }
                Err(err) => return Poll::Ready(Err(err.into())),
            }
        }
    }

    /// Moves the buffered bytes into a new allocation of exactly `target` bytes (already charged).
    fn grow_to(&mut self, target: usize) {
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(self.buf);
        *self.buf = grown;
        *self.alloc = Alloc::of_new(self.buf);
    }

    /// Reads once, at most `read_size` bytes, into the room made by `poll_make_room`. Returns the bytes read (0 at
    /// the end of the stream).
    fn poll_read<R: AsyncRead>(
        &mut self,
        reader: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, CodecError>> {
        // The limit also keeps `BytesMut::chunk_mut` from reserving behind the budget's back: there is room.
        let mut limited = (&mut *self.buf).limit(self.read_size);
        tokio_util::io::poll_read_buf(reader, cx, &mut limited).map_err(CodecError::from)
    }

    /// Ends the stream and gives back everything it holds.
    fn finish(
        &mut self,
        state: &mut State,
        waiting: &mut Option<Pending<Reservation, BudgetError>>,
    ) {
        *state = State::Done;
        *waiting = None;
        self.release_buf();
        *self.held = None;
    }
}

/// Reserves `want` bytes in total in `held`, without waiting.
fn charge(
    budget: &MemoryBudget,
    held: &mut Option<Reservation>,
    want: usize,
) -> Result<(), BudgetError> {
    let have = held.as_ref().map_or(0, Reservation::bytes);
    if have >= want {
        return Ok(());
    }
    match held {
        Some(r) => r.try_grow(want - have),
        None => budget.try_reserve(want).map(|r| *held = Some(r)),
    }
}

/// Waits for `missing` bytes, for at most `bound` if given; the last refusal carries the numbers.
async fn wait_for(
    budget: MemoryBudget,
    missing: usize,
    bound: Option<Duration>,
) -> Result<Reservation, BudgetError> {
    let Some(bound) = bound else {
        return budget.reserve(missing).await;
    };
    match tokio::time::timeout(bound, budget.reserve(missing)).await {
        Ok(granted) => granted,
        Err(_elapsed) => budget.try_reserve(missing),
    }
}

impl<R, D> fmt::Debug for FrameReader<R, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .field("allocated", &self.alloc.size)
            .field("read_size", &self.read_size)
            .field("reserved", &self.reserved_bytes())
            .field("budget_wait", &self.budget_wait)
            .field("waiting_for_budget", &self.waiting.is_some())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
