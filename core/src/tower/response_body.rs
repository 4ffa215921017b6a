//! The response body: passed through, or streamed to the client while the host layer's
//! [`Recorder`] keeps a copy for the replay (B11–B13).
//!
//! Dropped before its record is stored (the client went away mid-body), a recorded body
//! moves to a task of its own that reads the rest for the record, up to the copy's limit,
//! then stores it (omitted past the limit, B12), so a retry replays it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::host::Recorder;

type StoreWrite = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where an unfinished recording goes when its body is dropped (a task, see service.rs).
pub(crate) type Rescue<B> = fn(Box<Recording<B>>);

pin_project! {
    /// A response body being recorded while it streams, or the frames of one recorded
    /// whole (several, or with trailers) before it was handed back. The layer hands it on
    /// inside the service's own body type ([`HttpBody::from_body`](super::HttpBody)).
    pub struct ResponseBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }

    impl<B: Body> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let KindProj::Recording { rec } = this.project().kind.project()
                && let Some(rec) = rec.take()
                && rec.unfinished()
            {
                (rec.rescue)(rec);
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        // `None` only while it is being dropped.
        Recording { rec: Option<Box<Recording<B>>> },
        Collected { frames: VecDeque<Frame<Bytes>> },
    }
}

/// What [`collect_ready`] found.
pub(crate) struct Collected<E> {
    pub(crate) frames: VecDeque<Frame<Bytes>>,
    pub(crate) end: End<E>,
}

pub(crate) enum End<E> {
    /// The body is over: everything is in `frames`.
    Ended,
    /// More is coming (or the rest was left to stream).
    More,
    /// The body failed after `frames`; the key has been released.
    Failed(E),
}

/// Take the frames `body` has ready now, without waiting, until it ends or about the
/// capture limit has been read (so memory stays bounded by what a record may hold).
///
/// Why: a response whose body is already complete (any non-streamed handler answer) is
/// then stored before its head is handed to the server, and the server writes head and
/// body together. Holding back only the body would make the server send the head alone
/// and the body after the store write: two small writes, which Nagle's algorithm and the
/// client's delayed ACK turn into a 40 ms stall on sockets without TCP_NODELAY.
pub(crate) async fn collect_ready<B: Body<Data = Bytes>>(
    rec: &mut Recorder,
    mut body: Pin<&mut B>,
) -> Collected<B::Error> {
    let mut frames = VecDeque::new();
    let mut read = 0usize;
    loop {
        if body.is_end_stream() {
            return Collected { frames, end: End::Ended };
        }
        if read > rec.limit() {
            return Collected { frames, end: End::More };
        }
        let next = std::future::poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match next {
            None => return Collected { frames, end: End::More },
            Some(None) => return Collected { frames, end: End::Ended },
            Some(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                    rec.push(data);
                }
                frames.push_back(frame);
            }
            Some(Some(Err(e))) => {
                rec.fail_in_background();
                return Collected { frames, end: End::Failed(e) };
            }
        }
    }
}

/// A response being streamed and recorded: frames already taken from the body first, then
/// the rest of the body.
pub(crate) struct Recording<B: Body> {
    body: Pin<Box<B>>,
    rec: Recorder,
    early: VecDeque<Frame<Bytes>>,
    error: Option<B::Error>,
    /// The store write, polled before the end of the body is signalled.
    completing: Option<StoreWrite>,
    /// The last frame, held back until the write lands.
    held: Option<Frame<Bytes>>,
    rescue: Rescue<B>,
}

impl<B: Body> Recording<B> {
    /// Whether the record is not stored yet (a drop must hand the rest to a task).
    fn unfinished(&self) -> bool {
        self.rec.is_active() || self.completing.is_some()
    }
}

impl<B: Body<Data = Bytes>> Recording<B> {
    /// Read the rest of the body for the record, nobody waiting for it (the client is
    /// gone): to its end, or only until the copy is over the limit, when the record is
    /// stored without its body. A body that fails releases the key (B11); one that
    /// neither ends nor fails is given up at `max_lease` (the claim is kept until then).
    pub(crate) async fn finish_unattended(mut self: Box<Self>) {
        let bound = self.rec.max_lease();
        let drive = async move {
            loop {
                if self.rec.is_active() && !self.rec.capturing() && self.completing.is_none() {
                    self.rec.omit();
                    if let Some(write) = self.rec.finish() {
                        write.await;
                    }
                    return;
                }
                match std::future::poll_fn(|cx| self.poll_frame(cx)).await {
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => return,
                }
            }
        };
        let _ = tokio::time::timeout(bound, drive).await;
    }

    fn finish(&mut self) {
        self.completing = self.rec.finish().map(|write| Box::pin(write) as StoreWrite);
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.early.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = self.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            if let Some(completing) = self.completing.as_mut() {
                ready!(completing.as_mut().poll(cx));
                self.completing = None;
                return Poll::Ready(self.held.take().map(Ok));
            }
            if !self.rec.is_active() {
                // Completed (or failed) already: whatever is left passes through.
                return self.body.as_mut().poll_frame(cx);
            }
            match ready!(self.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.rec.push(data);
                    }
                    if !self.body.is_end_stream() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame: store the response before the client can see the
                    // end of it, so an immediate retry finds the replay (B11).
                    self.held = Some(frame);
                    self.finish();
                }
                Some(Err(e)) => {
                    self.rec.fail_in_background();
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.finish(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.early.is_empty()
            && self.error.is_none()
            && !self.rec.is_active()
            && self.completing.is_none()
            && self.held.is_none()
            && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let early: u64 = self.early.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + early);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + early);
        }
        hint
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn recording(
        body: Pin<Box<B>>,
        rec: Recorder,
        collected: Collected<B::Error>,
        rescue: Rescue<B>,
    ) -> Self {
        let error = match collected.end {
            End::Failed(e) => Some(e),
            End::Ended | End::More => None,
        };
        let early = collected.frames;
        let rec = Box::new(Recording { body, rec, early, error, completing: None, held: None, rescue });
        ResponseBody { kind: Kind::Recording { rec: Some(rec) } }
    }

    pub(crate) fn collected(frames: VecDeque<Frame<Bytes>>) -> Self {
        ResponseBody { kind: Kind::Collected { frames } }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Collected { frames } => Poll::Ready(frames.pop_front().map(Ok)),
            KindProj::Recording { rec } => match rec {
                Some(rec) => rec.poll_frame(cx),
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Collected { frames } => frames.is_empty(),
            Kind::Recording { rec } => rec.as_ref().is_none_or(|r| r.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Collected { frames } => {
                SizeHint::with_exact(frames.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum())
            }
            Kind::Recording { rec } => rec.as_ref().map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint()),
        }
    }
}
