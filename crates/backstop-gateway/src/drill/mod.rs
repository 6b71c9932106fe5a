//! `backstop drill`: rehearse a failover before production does it for you.
//!
//! A resilience layer earns trust only when its failover has been seen to work, and
//! to work fast. A drill drives a steady open-loop load of chat requests through a
//! gateway, makes one target fail through the admin API for a window (the gateway
//! answers for it as if it had failed, without calling it), clears the fault, and
//! reports what the clients saw: how long until another target served, how long
//! until the faulted target served again, the success rate, upstream calls per
//! request and latency percentiles before, during and after.
//!
//! The drill speaks to the gateway only over HTTP (model requests and `/admin/*`),
//! so it works the same on a gateway it starts in-process from `--config` and on
//! one already running (`--url`). The pieces ([`load`], [`report`], [`local`]) are
//! shared with `backstop demo`.

pub mod admin;
pub mod args;
pub mod load;
pub mod local;
pub mod report;
pub mod sender;
pub mod target;
pub mod text;

pub use args::{DrillArgs, DrillPlan};
pub use report::Report;

use crate::config::{self, ConfigError};
use admin::AdminClient;
use load::SampleLog;
use local::LocalGateway;
use report::{millis, Scenario};
use sender::ChatSender;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

/// Why a drill could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A flag is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file is wrong (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else: the gateway, the admin API, the network (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl DrillError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) | Self::Config(_) => ExitCode::from(crate::console::EXIT_CONFIG),
            Self::Failed(_) => ExitCode::FAILURE,
        }
    }
}

/// Runs `backstop drill` and prints its report: exit 0 if the drill ran.
pub async fn run(args: DrillArgs) -> ExitCode {
    match execute(&args).await {
        Ok(report) => {
            let text = if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => json + "\n",
                    Err(error) => {
                        eprintln!("backstop drill: cannot encode the report: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                text::render(&report)
            };
            crate::console::emit(&text, "backstop drill")
        }
        Err(error) => {
            eprintln!("backstop drill: {error}");
            error.exit_code()
        }
    }
}

async fn execute(args: &DrillArgs) -> Result<Report, DrillError> {
    let config = args.config.as_deref().map(config::load).transpose()?;
    let mut plan = args.plan(config.as_ref())?;
    if plan.model.is_none() {
        plan.model = config
            .as_ref()
            .and_then(|c| args::model_for(c, &plan.target));
    }
    match (&args.url, config) {
        (Some(url), _) => drill(url, &plan).await,
        (None, Some(config)) => {
            let gateway = LocalGateway::start(config).await?;
            let result = drill(gateway.url(), &plan).await;
            gateway.stop().await;
            result
        }
        (None, None) => Err(DrillError::Usage(
            "pass --config FILE (to start a gateway in-process) or --url URL (to drill a running one)".into(),
        )),
    }
}

/// Runs the drill `plan` against the gateway at `base_url` and returns its report.
pub async fn drill(base_url: &str, plan: &DrillPlan) -> Result<Report, DrillError> {
    let admin = AdminClient::new(base_url, plan.admin_key.clone())?;
    let listed = admin.targets().await?;
    let labels = fault_labels(plan, &listed)?;
    let model = match &plan.model {
        Some(model) => model.clone(),
        None => listed
            .iter()
            .filter(|t| plan.target.matches(&t.target))
            .find_map(|t| t.models.first().cloned())
            .ok_or_else(|| {
                DrillError::Usage(format!(
                    "no public model routes to {}: pass --model NAME",
                    plan.target
                ))
            })?,
    };
    let timeout = plan.duration.max(Duration::from_secs(60));
    let sender = ChatSender::new(
        base_url,
        &model,
        plan.client_key.clone(),
        timeout,
        plan.stream,
    )
    .map_err(|e| DrillError::Failed(format!("cannot build an HTTP client: {e}")))?;
    let log = SampleLog::new(Instant::now());
    let load = tokio::spawn(load::drive(
        plan.rate,
        plan.duration,
        log.clone(),
        move || sender.send(),
    ));

    tokio::time::sleep_until(log.start() + plan.fault_at).await;
    for label in &labels {
        if let Err(error) = admin.inject(label, plan.fault, plan.fault_for).await {
            load.abort();
            return Err(error);
        }
    }
    // The fault is surely in force from here: requests sent later belong to "during".
    let fault_start = log.elapsed();
    tokio::time::sleep_until(log.start() + plan.fault_at + plan.fault_for).await;
    for label in &labels {
        if let Err(error) = admin.clear(label).await {
            eprintln!("backstop drill: warning: could not clear the fault on {label}: {error}");
        }
    }
    // Cleared (or expired on its own) by now: recovery is measured from here.
    let fault_end = log.elapsed();
    load.await
        .map_err(|e| DrillError::Failed(format!("the load generator stopped: {e}")))?;

    let scenario = Scenario {
        targets: labels,
        model,
        fault: plan.fault.to_string(),
        rate: plan.rate,
        duration_ms: millis(plan.duration),
        fault_start_ms: millis(fault_start),
        fault_end_ms: millis(fault_end),
    };
    let mut report = Report::compute(
        scenario,
        std::slice::from_ref(&plan.target),
        &log.snapshot(),
    );
    report.breakers = admin.targets().await.unwrap_or_default();
    Ok(report)
}

/// The `provider/model` labels to fault: the one named, or every listed target of the provider.
fn fault_labels(
    plan: &DrillPlan,
    listed: &[admin::TargetState],
) -> Result<Vec<String>, DrillError> {
    if let Some(model) = &plan.target.model {
        let label = format!("{}/{model}", plan.target.provider);
        if !listed.is_empty() && !listed.iter().any(|t| t.target == label) {
            eprintln!("backstop drill: warning: {label} is not among the gateway's targets yet (GET /admin/targets)");
        }
        return Ok(vec![label]);
    }
    let labels: Vec<String> = listed
        .iter()
        .filter(|t| plan.target.matches(&t.target))
        .map(|t| t.target.clone())
        .collect();
    if labels.is_empty() {
        let known: Vec<&str> = listed.iter().map(|t| t.target.as_str()).collect();
        return Err(DrillError::Usage(format!(
            "the gateway has no target of provider `{}` (known: {}); pass --target PROVIDER/MODEL",
            plan.target.provider,
            known.join(", ")
        )));
    }
    Ok(labels)
}
