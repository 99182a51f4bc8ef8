//! How long-running tasks stop and retry: the shutdown signal as a task sees it, capped
//! exponential back-off, and draining with a time limit. One implementation each, used by
//! the sources, the analysis worker and the daemon's supervisor.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::watch;

/// A task's view of the stop signal. A dropped sender counts as a stop: nobody is left who
/// could ask, so a task must not outlive the daemon that started it.
#[derive(Clone, Debug)]
pub struct Shutdown(Option<watch::Receiver<bool>>);

impl Shutdown {
    pub fn new(stop: watch::Receiver<bool>) -> Self {
        Shutdown(Some(stop))
    }

    /// For one-off runs (`rapport ingest`, tests): never asks to stop.
    pub fn never() -> Self {
        Shutdown(None)
    }

    pub fn requested(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|stop| *stop.borrow() || stop.has_changed().is_err())
    }

    /// Resolves once a stop is requested; never for [`Shutdown::never`].
    pub async fn wait(&mut self) {
        match &mut self.0 {
            Some(stop) => {
                let _ = stop.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Sleeps for `duration`; true when the stop came first.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = self.wait() => true,
        }
    }
}

/// Capped exponential back-off: `first`, doubling on each failure, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next try; each call doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The wait after `failures` failures in a row (0 → `first`), for supervisors that
    /// count failures themselves.
    pub fn after(&self, failures: u32) -> Duration {
        (self.first * (1u32 << failures.min(16))).min(self.max)
    }
}

/// Waits for `work` to finish, at most `limit`; a SIGTERM or SIGINT while waiting stops
/// the wait at once. True when the wait was cut short (the caller aborts what is left).
pub async fn drain(
    work: impl Future,
    limit: Duration,
    terminate: &mut Signal,
    interrupt: &mut Signal,
) -> bool {
    tokio::select! {
        _ = work => false,
        _ = tokio::time::sleep(limit) => true,
        _ = terminate.recv() => true,
        _ = interrupt.recv() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
        assert_eq!(backoff.after(0), Duration::from_secs(1));
        assert_eq!(backoff.after(2), Duration::from_secs(4));
        assert_eq!(backoff.after(40), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn shutdown_is_seen_when_asked_and_when_the_sender_is_gone() {
        let (tx, rx) = watch::channel(false);
        let mut shutdown = Shutdown::new(rx);
        assert!(!shutdown.requested());
        assert!(!shutdown.sleep(Duration::from_millis(1)).await);
        tx.send(true).unwrap();
        assert!(shutdown.requested());
        assert!(shutdown.sleep(Duration::from_secs(3600)).await);

        let (tx, rx) = watch::channel(false);
        drop(tx);
        assert!(Shutdown::new(rx).requested());
        assert!(!Shutdown::never().requested());
    }
}
