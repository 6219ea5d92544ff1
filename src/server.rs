//! The HTTP/1 server loop around the router, with the limits `axum::serve` does not set: a
//! client must send a request's headers within [`Limits::header_read_timeout`] (a slow client
//! cannot hold a connection by sending a byte a second), at most
//! [`Limits::max_connections`] are open at once (more wait in the kernel's backlog until one
//! closes), each request carries its client's address (for rate limits), a body the service
//! answered without reading is drained so the client sees the answer (see [`lingering`]), and
//! on shutdown the open connections finish their requests in flight, up to a deadline.

mod lingering;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What the server loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a request's headers to arrive (also how long an idle keep-alive connection
    /// stays open).
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4_096,
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `stop` completes, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut stop => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to be given back.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(client));
            // A client that asked to be told before it sends its body is not sent a
            // `100 Continue` by draining: refused, it never sends the body at all.
            let expects_continue = request
                .headers()
                .get(hyper::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let request = if expects_continue {
                request.map(axum::body::Body::new)
            } else {
                request.map(|b| axum::body::Body::new(lingering::Lingering::new(b)))
            };
            router.clone().oneshot(request)
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %client, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_deadline) => {
            tracing::warn!("shutdown: requests still in flight after the deadline were cut off");
        }
    }
}

/// The client address of a request served by [`serve`] (tests that call the router directly
/// have none).
pub fn client_of(request: &axum::extract::Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
