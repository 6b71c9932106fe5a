//! A gateway started inside the drill's (or the demo's) own process, on a free
//! loopback port, and stopped gracefully when the run is over.

use super::DrillError;
use crate::config::Config;
use crate::pipeline::Gateway;
use crate::server;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A gateway serving on `127.0.0.1:PORT` in this process.
#[derive(Debug)]
pub struct LocalGateway {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LocalGateway {
    /// Builds the gateway for `config` and serves it on a port the OS picks
    /// (the config's `listen` is ignored).
    pub async fn start(config: Config) -> Result<Self, DrillError> {
        let grace = config.server.shutdown_grace;
        let gateway = Gateway::new(config).map_err(|e| {
            DrillError::Failed(format!("cannot build the upstream HTTP client: {e}"))
        })?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DrillError::Failed(format!("cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DrillError::Failed(format!("cannot read the listening address: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            Arc::new(gateway),
            listener,
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        Ok(Self {
            url: format!("http://{addr}"),
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting, lets in-flight requests finish (bounded by the config's grace) and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
