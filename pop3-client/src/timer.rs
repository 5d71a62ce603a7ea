//! Runtime-independent helpers for the async clients: timeouts
//! (futures-timer runs its own timer thread, so no executor's timer is
//! required), and blocking work moved off the executor's threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};

/// Runs `future` for at most `limit`: `None` if the time ran out first.
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    match select(future, futures_timer::Delay::new(limit)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// Blocking work (an OAuth2 refresh: an HTTP exchange of up to its
/// timeout) done on a thread of its own and awaited, so that no runtime's
/// thread waits for it, on any runtime.
pub(crate) struct OffThread<T> {
    shared: Arc<Mutex<(Option<T>, Option<Waker>)>>,
}

impl<T: Send + 'static> OffThread<T> {
    /// A value already at hand.
    pub(crate) fn ready(value: T) -> Self {
        Self {
            shared: Arc::new(Mutex::new((Some(value), None))),
        }
    }

    /// `work` on a new thread (or here, if no thread can be started).
    pub(crate) fn spawn(work: impl FnOnce() -> T + Send + 'static) -> Self {
        let shared = Arc::new(Mutex::new((None::<T>, None::<Waker>)));
        let done = Arc::clone(&shared);
        let finish = move |value: T| {
            let waker = {
                let mut slot = done.lock().unwrap_or_else(PoisonError::into_inner);
                slot.0 = Some(value);
                slot.1.take()
            };
            // Woken with the lock released: an executor may poll at once.
            if let Some(waker) = waker {
                waker.wake();
            }
        };
        let work = Arc::new(Mutex::new(Some((work, finish))));
        let on_thread = Arc::clone(&work);
        let started = std::thread::Builder::new()
            .name("pop3-token".into())
            .spawn(move || {
                let job = on_thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some((work, finish)) = job {
                    finish(work());
                }
            });
        if started.is_err() {
            let job = work.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some((work, finish)) = job {
                finish(work());
            }
        }
        Self { shared }
    }
}

impl<T> Future for OffThread<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Runs `future` to its end on this thread, parked between wakes: a
/// blocking caller of code written once as async (the sync's storage
/// steps, whose futures are ready at once for a blocking store).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn work_off_the_thread_is_awaited_and_a_ready_value_needs_no_thread() {
        let here = std::thread::current().id();
        let there = futures_util::FutureExt::now_or_never(OffThread::ready(1));
        assert_eq!(there, Some(1));
        let id = block_on(OffThread::spawn(|| std::thread::current().id()));
        assert_ne!(id, here);
    }
}
