//! SIGHUP reloads the configuration file, with the rules of `POST /admin/reload`, and
//! logs the outcome. It never stops the process nor the requests and streams in flight.

use crate::admin::{log_reloaded, refused_message};
use crate::pipeline::{Gateway, ReloadError};
use std::sync::Arc;

/// Installs the SIGHUP handler, replacing the default action (exit), then reloads
/// `gateway`'s file on every SIGHUP, off the async workers.
pub fn reload_on_hangup(gateway: Arc<Gateway>) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let gateway = gateway.clone();
                match tokio::task::spawn_blocking(move || gateway.reload()).await {
                    Ok(Ok(reloaded)) => log_reloaded(&reloaded, "SIGHUP"),
                    Ok(Err(ReloadError::NoFile)) => {
                        tracing::warn!(
                            source = "SIGHUP",
                            "no config file (zero-config mode): nothing to reload"
                        );
                    }
                    Ok(Err(error)) => {
                        tracing::error!(source = "SIGHUP", "{}", refused_message(&error));
                    }
                    Err(error) => tracing::error!(source = "SIGHUP", "reload failed: {error}"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(gateway);
    Ok(())
}
