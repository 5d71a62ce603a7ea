//! What the driver suites (`pop3_drivers.rs`, `smtp_drivers.rs`) and the
//! parity check share: the runtime the async driver is driven on, a bare
//! non-blocking stream for running it with no runtime at all, the macro
//! that runs one scenario against both drivers, and a token source.

#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use pop3_client::{Error, Secret, TokenSource};

/// One tokio runtime for every async session of a test binary. `block_on`
/// polls the future on the calling thread (so a thread-local tracing
/// subscriber sees its events); the workers drive the I/O and timers.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// What an async session's calls are driven by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exec {
    /// `runtime().block_on`: tokio's TcpStream (through compat) needs it.
    Tokio,
    /// `futures_executor::block_on`, no runtime at all: the client's timer
    /// is runtime-independent, and [`Polled`] needs no reactor.
    Bare,
}

impl Exec {
    pub(crate) fn run<F: Future>(self, future: F) -> F::Output {
        match self {
            Self::Tokio => runtime().block_on(future),
            Self::Bare => futures_executor::block_on(future),
        }
    }
}

/// A non-blocking std TcpStream polled by busy-waking: crude, but enough to
/// show the async client needs no runtime.
pub(crate) struct Polled(pub(crate) TcpStream);

impl Polled {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        tcp.set_nonblocking(true).expect("a non-blocking socket");
        Self(tcp)
    }
}

fn ready<T>(cx: &mut Context<'_>, result: std::io::Result<T>) -> Poll<std::io::Result<T>> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        other => Poll::Ready(other),
    }
}

impl AsyncRead for Polled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = self.get_mut().0.read(buf);
        ready(cx, result)
    }
}

impl AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = self.get_mut().0.write(buf);
        ready(cx, result)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = self.get_mut().0.flush();
        ready(cx, result)
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `both!(Blocking, Async; scenario, ...)`: for each scenario (a function
/// generic over the driver), a module of the same name with two tests,
/// `scenario::blocking` and `scenario::async_driver`, so every scenario is
/// written once and the test list shows it run on both drivers.
#[allow(unused_macros)]
macro_rules! both {
    ($Blocking:ident, $Async:ident; $($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn blocking() {
                    super::$scenario::<super::$Blocking>();
                }

                #[test]
                fn async_driver() {
                    super::$scenario::<super::$Async>();
                }
            }
        )+
    };
}

#[allow(unused_imports)]
pub(crate) use both;

/// A token source that hands out its tokens in turn and counts the asks
/// and the invalidations.
pub(crate) struct Tokens {
    queue: Mutex<Vec<&'static str>>,
    current: Mutex<Option<Secret>>,
    pub(crate) invalidated: AtomicUsize,
}

impl Tokens {
    pub(crate) fn new(mut tokens: Vec<&'static str>) -> Arc<Self> {
        tokens.reverse();
        Arc::new(Self {
            queue: Mutex::new(tokens),
            current: Mutex::new(None),
            invalidated: AtomicUsize::new(0),
        })
    }
}

impl TokenSource for Tokens {
    fn access_token(&self, _now: u64) -> Result<Secret, Error> {
        let mut current = self.current.lock().unwrap();
        if current.is_none() {
            let next = self.queue.lock().unwrap().pop().unwrap_or("last");
            *current = Some(Secret::new(next));
        }
        Ok(current.clone().unwrap())
    }
    fn invalidate(&self, token: &Secret) {
        let mut current = self.current.lock().unwrap();
        if current.as_ref() == Some(token) {
            *current = None;
            self.invalidated.fetch_add(1, Ordering::SeqCst);
        }
    }
}
