//! The `backstop` command line: `serve`, `check`, `mock`.

use crate::config::{self, Config, ConfigError};
use crate::console::{emit, EXIT_CONFIG};
use crate::logging::LogFormat;
use crate::pipeline::Gateway;
use crate::server;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Backstop: a resilience gateway for LLM agents.
#[derive(Debug, Parser)]
#[command(name = "backstop", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default ./backstop.toml; without it, zero-config from the environment).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the config's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration and print the routing plan.
    Check {
        /// Configuration file (default ./backstop.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the fault-injecting mock provider.
    Mock {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Fault script (TOML or JSON).
        #[arg(long)]
        script: Option<PathBuf>,
        /// Serve HTTPS with this PEM certificate chain (leaf first).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Over TLS, offer only http/1.1 by ALPN (default: h2 and http/1.1).
        #[arg(long, requires = "tls_cert")]
        http1_only: bool,
    },
    /// Run a failover drill: steady load, a fault on one target for a window, and a report.
    Drill(crate::drill::DrillArgs),
    /// A self-contained showcase with mock providers: no keys, no files, under a minute.
    Demo,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let _flush_logs_on_exit = crate::logging::init(cli.log_format);
    match cli.command {
        Command::Serve { config, listen } => serve(config.as_deref(), listen).await,
        Command::Check { config } => check(config.as_deref()).await,
        Command::Mock {
            listen,
            script,
            tls_cert,
            tls_key,
            http1_only,
        } => {
            let cert_and_key = tls_cert.as_deref().zip(tls_key.as_deref());
            let served = match backstop_mock::MockTls::from_flags(cert_and_key, http1_only) {
                Ok(tls) => backstop_mock::run_with(listen, script, tls).await,
                Err(error) => Err(error),
            };
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("backstop mock: {error}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Drill(args) => crate::drill::run(args).await,
        Command::Demo => crate::demo::run().await,
    }
}

/// The config file in use: `--config`, else `./backstop.toml` if it exists.
fn config_path(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from("backstop.toml")).filter(|p| p.exists()),
    }
}

/// Loads the config file in use or, without one, builds the zero-config one from the
/// environment (so that `check` shows what `serve` would do).
fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match config_path(path) {
        Some(path) => config::load(&path),
        None => Ok(config::zero_config(&|name| std::env::var(name).ok())),
    }
}

async fn check(path: Option<&Path>) -> ExitCode {
    match load_config(path) {
        Ok(config) => {
            let found = match check_state(&config).await {
                Ok(found) => found,
                Err(error) => {
                    eprintln!("config error at `state`: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            emit(
                &format!(
                    "{}\nstate: {found}\nconfiguration OK\n",
                    config::routing_plan(&config)
                ),
                "backstop check",
            )
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Tests the state backend: what it found, an unreachable Redis as a warning line, a bad file as an error.
async fn check_state(config: &Config) -> Result<String, backstop_state::StateError> {
    match crate::store::describe(config).await {
        Ok(found) => Ok(found),
        Err(error) if error.is_config() => Err(error),
        Err(error) => Ok(format!(
            "{} UNREACHABLE ({error}); the gateway would start on local state",
            config.state
        )),
    }
}

async fn serve(path: Option<&Path>, listen: Option<SocketAddr>) -> ExitCode {
    let mut config = match load_config(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Err(mut error) = config::check_exposure(config.listen, config.auth.as_ref()) {
        if listen.is_some() {
            error.path = "--listen".into();
        }
        eprintln!("{error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if config.zero_config && config.providers.is_empty() {
        tracing::warn!(
            "no provider configured: set {}, or pass --config FILE",
            config::key_variables()
        );
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "cannot listen on {}: {error} (choose another address with --listen)",
                config.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let grace = config.server.shutdown_grace;
    let threads = config.server.worker_threads();
    let gateway = match Gateway::with_path(config, config_path(path)) {
        Ok(gateway) => Arc::new(gateway),
        Err(error) => {
            eprintln!("cannot build the upstream HTTP client: {error}");
            return ExitCode::FAILURE;
        }
    };
    match crate::store::open(&gateway.config(), gateway.metrics()).await {
        Ok(state) => gateway.attach_state(state),
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Err(error) = server::reload_on_hangup(gateway.clone()) {
        tracing::warn!("cannot handle SIGHUP, so it cannot reload the configuration: {error}");
    }
    tracing::info!("backstop listening on http://{address}");
    // Only the address goes to stdout; a closed stdout must not stop the gateway.
    let _ = writeln!(std::io::stdout(), "listening on http://{address}");
    let shutdown = server::shutdown_signal();
    match server::serve_on_threads(gateway, listener, threads, shutdown, grace).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("server error: {error}");
            ExitCode::FAILURE
        }
    }
}
