//! Deadlines on the network executors' futures (glommio timers).

use futures_lite::FutureExt;
use std::future::Future;
use std::time::Duration;

/// Runs `f` with a deadline; `None` when it expired.
pub(crate) async fn with_deadline<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    async { Some(f.await) }
        .or(async {
            glommio::timer::sleep(d).await;
            None
        })
        .await
}
