//! Accepting and serving connections, the part `axum::serve` hides: HTTP/1.1 only (no h2c),
//! a timer so hyper's header-read timeout applies (it also closes idle keep-alive
//! connections), a write timeout for clients that stop reading, a cap on open connections,
//! and graceful shutdown. Also raises the open-files limit at start-up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::config::{DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_WRITE_TIMEOUT};
use crate::web_config::TlsListener;

/// How long shutdown waits for requests in flight before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// File descriptors kept free of connections: the API client's pool, state files, the
/// probe listener, logs.
const RESERVED_FDS: u64 = 256;

/// Per-connection limits (`[server]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Headers must arrive within this after connecting or after the previous response;
    /// idle keep-alive connections are closed after it.
    pub header_read_timeout: Duration,
    /// A response that cannot write anything for this long is cut off.
    pub write_timeout: Duration,
    /// Open connections at most; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns `requested` connections,
/// lowered if needed so that connections cannot use up the descriptors the rest needs.
pub fn fit_connection_cap(requested: usize) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(error) => {
            tracing::warn!(error = %error, "cannot raise the open-files limit");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return requested,
            }
        }
    };
    let available = if soft > 2 * RESERVED_FDS {
        soft - RESERVED_FDS
    } else {
        (soft / 2).max(1)
    };
    let cap = usize::try_from(available).map_or(requested, |available| requested.min(available));
    if cap < requested {
        tracing::warn!(
            open_files_limit = soft,
            requested,
            max_connections = cap,
            "server.max_connections lowered to fit the open-files limit (raise LimitNOFILE / ulimit -n)"
        );
    } else {
        tracing::debug!(
            open_files_limit = soft,
            max_connections = cap,
            "open-files limit"
        );
    }
    cap
}

/// A byte stream the server can speak HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Where connections come from.
pub enum Connections {
    /// Plain TCP; `slots` caps the open connections.
    Plain {
        listener: TcpListener,
        slots: Arc<Semaphore>,
    },
    /// TLS: handshakes are done (and capped) by the listener's own task.
    Tls(TlsListener),
}

impl Connections {
    /// The next connection and its slot under the cap.
    async fn next(&mut self) -> (Box<dyn Io>, SocketAddr, OwnedSemaphorePermit) {
        match self {
            Connections::Plain { listener, slots } => {
                let permit = acquire(slots).await;
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            // Small responses (probes, 401s) should not wait for Nagle.
                            let _ = stream.set_nodelay(true);
                            return (Box::new(stream), peer, permit);
                        }
                        Err(error) => handle_accept_error(&error).await,
                    }
                }
            }
            Connections::Tls(listener) => {
                let (stream, peer, permit) = listener.accept().await;
                (Box::new(stream), peer, permit)
            }
        }
    }
}

/// A slot under the connection cap (the semaphore is never closed).
pub(crate) async fn acquire(slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    match slots.clone().acquire_owned().await {
        Ok(permit) => permit,
        Err(_) => std::future::pending().await,
    }
}

/// Like axum's own listener: per-connection errors are skipped, others (e.g. out of file
/// descriptors) back off for a second instead of spinning.
pub(crate) async fn handle_accept_error(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves `router` over HTTP/1.1 on every connection until `shutdown`, then lets requests
/// in flight finish (at most [`SHUTDOWN_GRACE`]). The peer address reaches handlers as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_connections(
    mut connections: Connections,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer, permit) = tokio::select! {
            accepted = connections.next() => accepted,
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer, error = %error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    // Stop accepting (a TLS listener also abandons handshakes in progress).
    drop(connections);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for
/// `timeout`: a client that stops reading cannot hold its connection (and what the response
/// holds) for ever. Reads are left to hyper's header-read timeout.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    stall: Pin<Box<Sleep>>,
    stalled: bool,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> WriteTimeout<S> {
        WriteTimeout {
            inner,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
            stalled: false,
        }
    }

    /// The inner write is pending: start or check the stall clock.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.stalled {
            self.stalled = true;
            self.stall.as_mut().reset(Instant::now() + self.timeout);
        }
        match self.stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.pending(cx),
            ready @ Poll::Ready(_) => {
                self.stalled = false;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_write_that_makes_no_progress_times_out() {
        // A 1-byte pipe nobody reads: the second byte can never be written.
        let (client, _server_side) = tokio::io::duplex(1);
        let mut stream = WriteTimeout::new(client, Duration::from_millis(200));
        stream.write_all(b"x").await.unwrap();
        let error = stream.write_all(b"y").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn writes_that_progress_never_time_out() {
        let (client, mut server_side) = tokio::io::duplex(1);
        let mut stream = WriteTimeout::new(client, Duration::from_millis(400));
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            let mut byte = [0u8; 1];
            for _ in 0..10 {
                // Each byte within the timeout, all of them together well beyond it: the
                // clock restarts whenever a write makes progress.
                tokio::time::sleep(Duration::from_millis(100)).await;
                tokio::io::AsyncReadExt::read_exact(&mut server_side, &mut byte)
                    .await
                    .unwrap();
                received.push(byte[0]);
            }
            received
        });
        stream.write_all(b"0123456789").await.unwrap();
        assert_eq!(reader.await.unwrap(), b"0123456789");
    }

    #[test]
    fn the_connection_cap_fits_the_open_files_limit() {
        let cap = fit_connection_cap(usize::MAX);
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert!(u64::try_from(cap).unwrap() < soft, "{cap} vs {soft}");
        assert_eq!(fit_connection_cap(3), 3);
    }
}
