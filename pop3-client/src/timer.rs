//! Runtime-independent timeouts for the async client: futures-timer runs its
//! own timer thread, so no executor's timer is required.

use std::future::Future;
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
