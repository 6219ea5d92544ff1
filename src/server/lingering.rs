//! Lingering close: a request the service answers without reading its body (shed with 503,
//! refused with 401 or 429, cut off at a body limit) has its body read and thrown away after
//! the answer, in a task of its own, up to [`LINGER_BYTES`] or [`LINGER_TIME`].
//!
//! Without it the server closes the connection with the client's bytes still unread; the
//! kernel then answers with a reset, and a client still sending its body sees a broken pipe
//! instead of the answer it was sent (nginx's `lingering_close` exists for the same reason).
//! Draining holds no worker and no memory: the bytes are dropped as they arrive.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};

/// The most a refused request's body is read for (a batch body may be 32 MiB; a client
/// sending more than this after being answered is cut off).
pub const LINGER_BYTES: u64 = 40 * 1024 * 1024;
/// The longest a refused request's body is read for.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// A request body that is drained when dropped before its end.
pub struct Lingering {
    inner: Option<Incoming>,
    ended: bool,
}

impl Lingering {
    pub fn new(body: Incoming) -> Self {
        Lingering {
            inner: Some(body),
            ended: false,
        }
    }
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
        if frame.is_none() {
            this.ended = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        // Dropped outside a runtime (a test calling the router by hand): nothing to drain for.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads `body` to its end and drops what it reads, within the limits; dropping it then lets
/// the connection close (or, for a fully drained body, serve its next request).
async fn drain(mut body: Incoming) {
    let read_all = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, read_all).await;
}
