//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal) as a flag the dev tools check between steps,
//! so a long-running command (`up`, `watch`, `forward`) finishes what it holds before it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A stop flag set by Ctrl-C or SIGTERM, checked between messages.
#[derive(Clone, Default)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Stop {
    /// A flag that Ctrl-C, SIGTERM and SIGHUP set.
    pub fn on_signals() -> Self {
        let stop = Self::default();
        let flag = stop.clone();
        // Registered here, before this returns, so a signal that comes at once is not missed.
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        let hangup = signal(SignalKind::hangup());
        tokio::spawn(async move {
            match (interrupt, terminate, hangup) {
                (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                        _ = hangup.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            flag.requested.store(true, Ordering::SeqCst);
            flag.notify.notify_waiters();
        });
        stop
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is asked for.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.requested() {
            notified.await;
        }
    }
}
