//! One way to stop a run. Ctrl-C and SIGTERM (what a scheduler sends on `scancel` or at its
//! time limit) both trigger the same token; every long-running unit (an export, a batch of
//! groups) ends with `AppError::Interrupted` (exit 130) when it fires. Work committed to disk
//! is safe, and the same command resumes it, so stopping needs no cleanup beyond dropping the
//! work in flight.

use crate::error::AppError;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Cancel(CancellationToken);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }

    /// Run `work` until it ends or the token fires, whichever comes first.
    pub async fn guard<T>(
        &self,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        if self.is_cancelled() {
            return Err(AppError::Interrupted);
        }
        tokio::select! {
            result = work => result,
            () = self.cancelled() => Err(AppError::Interrupted),
        }
    }

    /// Fire the token on Ctrl-C or SIGTERM. Without signal support nothing ever fires it.
    pub fn on_signals(&self) {
        let token = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            token.cancel();
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let int = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = term => (),
        () = int => (),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
