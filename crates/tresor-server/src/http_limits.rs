//! Connection limits: how many connections the server holds, how long a TLS handshake,
//! a request's headers and an idle connection may take.
//!
//! A client that connects and sends nothing (or finishes the handshake and sends no
//! request, or trickles its headers) must neither hold a connection forever nor keep
//! others out. Each accepted connection takes a slot of [`HttpLimits::max_connections`]
//! for its whole life and is closed when no byte moved either way for
//! [`HttpLimits::idle`]; the handshake and the first request have their own, shorter
//! deadlines (see `lib.rs`, where the acceptor chain is built).

use std::future::{ready, Future, Ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The server's connection limits. The defaults suit a vault server reached by a few
/// hundred agents; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections held at once (TLS handshakes included). Beyond, new connections are
    /// closed at once: a flood cannot make the server run out of file descriptors.
    pub max_connections: usize,
    /// The TLS handshake must end within this.
    pub tls_handshake: Duration,
    /// After the handshake, the first request must arrive within this.
    pub first_request: Duration,
    /// HTTP/1.1: a request's headers must arrive within this from the moment the
    /// server waits for them, which also ends a keep-alive connection left idle.
    pub header_read: Duration,
    /// Any connection on which nothing moved, either way, for this long is closed.
    /// Longer than the agents' long poll (20 s) and than any request handler takes.
    pub idle: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: 512,
            tls_handshake: Duration::from_secs(10),
            first_request: Duration::from_secs(15),
            header_read: Duration::from_secs(15),
            idle: Duration::from_secs(120),
        }
    }
}

/// The first acceptor of the chain (before TLS): takes a connection slot, or closes
/// the connection when none is free; wraps the stream in the idle deadline.
#[derive(Clone)]
pub struct LimitAcceptor {
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl LimitAcceptor {
    pub fn new(limits: &HttpLimits) -> LimitAcceptor {
        LimitAcceptor {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            idle: limits.idle,
        }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            // Logged at debug only: a flood would otherwise flood the log too.
            tracing::debug!("connection refused: every connection slot is taken");
            return ready(Err(io::Error::other("too many connections")));
        };
        ready(Ok((
            Guarded {
                inner: stream,
                _slot: permit,
                idle: self.idle,
                deadline: Box::pin(tokio::time::sleep(self.idle)),
            },
            service,
        )))
    }
}

/// A connection holding its slot, closed (reads and writes fail with `TimedOut`) once
/// nothing moved for the idle time.
pub struct Guarded<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Guarded<T> {
    /// What a write to the client came to: bytes sent count as movement; a client
    /// that stops reading its answer is as idle as one that sends nothing.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// Called when the inner stream has nothing to offer: an error once the deadline
    /// passed, otherwise the deadline's timer wakes the task when it does.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.after_write(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
