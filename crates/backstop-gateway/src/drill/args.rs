//! `backstop drill` flags, and their validation into a [`DrillPlan`].

use super::target::{FaultSpec, TargetRef};
use super::DrillError;
use crate::config::{parse_duration, Config};
use backstop_core::duration::format_duration;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The flags of `backstop drill`.
#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    /// Configuration file: the gateway to start in-process (without --url), or only used to
    /// find the public model that routes to --target (with --url).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The target to fault: PROVIDER/MODEL, or PROVIDER for every target of that provider.
    #[arg(long)]
    pub target: String,
    /// Public model to send the load to (default: the first model that routes to --target).
    #[arg(long)]
    pub model: Option<String>,
    /// Requests per second (open loop: sent on schedule whatever the answers do).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long the load runs.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// When the fault begins, after the start of the load (default: a quarter of --duration).
    #[arg(long)]
    pub fault_at: Option<String>,
    /// How long the fault lasts (default: half of --duration).
    #[arg(long)]
    pub fault_for: Option<String>,
    /// The fault: status:CODE (e.g. status:503), timeout (silent past first_byte) or reset.
    #[arg(long, default_value = "status:503")]
    pub fault: String,
    /// A running gateway to drill (e.g. http://127.0.0.1:8080) instead of starting one from --config.
    #[arg(long)]
    pub url: Option<String>,
    /// The gateway's admin key (default: `auth.admin_key` of --config).
    #[arg(long, env = "BACKSTOP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// A client key for the load (default: the first `auth.client_keys` of --config).
    #[arg(long, env = "BACKSTOP_CLIENT_KEY", hide_env_values = true)]
    pub client_key: Option<String>,
    /// Send streaming requests: one succeeds only when its stream ends with `[DONE]`.
    #[arg(long)]
    pub stream: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A validated drill: what to fault, how, and the load around it.
#[derive(Debug, Clone)]
pub struct DrillPlan {
    /// The target(s) to fault.
    pub target: TargetRef,
    /// The public model for the load; `None`: found from the config or `/admin/targets`.
    pub model: Option<String>,
    /// Requests per second.
    pub rate: f64,
    /// Length of the load.
    pub duration: Duration,
    /// Start of the fault.
    pub fault_at: Duration,
    /// Length of the fault.
    pub fault_for: Duration,
    /// The fault.
    pub fault: FaultSpec,
    /// Admin key for `/admin/*`.
    pub admin_key: Option<String>,
    /// Client key for the load.
    pub client_key: Option<String>,
    /// Streaming requests rather than plain ones.
    pub stream: bool,
}

impl DrillArgs {
    /// Checks the flags and builds the plan; keys missing from the flags come from `config`.
    pub fn plan(&self, config: Option<&Config>) -> Result<DrillPlan, DrillError> {
        let duration = flag_duration("--duration", &self.duration)?;
        // Without a window, the fault starts a quarter in and lasts half: a quarter is left to see recovery.
        let fault_at = match &self.fault_at {
            Some(text) => flag_duration("--fault-at", text)?,
            None => duration / 4,
        };
        let fault_for = match &self.fault_for {
            Some(text) => flag_duration("--fault-for", text)?,
            None => duration / 2,
        };
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(DrillError::Usage(format!(
                "--rate {} must be between 0 and 10000 requests per second",
                self.rate
            )));
        }
        if fault_for.is_zero() || fault_at + fault_for > duration {
            return Err(DrillError::Usage(format!(
                "the fault (--fault-at {} + --fault-for {}) must be longer than zero and end within --duration {} \
                 (leave time after it to see recovery)",
                window_flag(self.fault_at.as_deref(), fault_at, "a quarter of --duration"),
                window_flag(self.fault_for.as_deref(), fault_for, "half of --duration"),
                self.duration
            )));
        }
        let auth = config.and_then(|c| c.auth.as_ref());
        Ok(DrillPlan {
            target: TargetRef::parse(&self.target)?,
            model: self.model.clone(),
            rate: self.rate,
            duration,
            fault_at,
            fault_for,
            fault: FaultSpec::parse(&self.fault)?,
            admin_key: self.admin_key.clone().or_else(|| {
                auth.and_then(|a| a.admin_key.as_ref())
                    .map(|k| k.expose().to_string())
            }),
            client_key: self.client_key.clone().or_else(|| {
                auth.and_then(|a| a.client_keys.first())
                    .map(|k| k.expose().to_string())
            }),
            stream: self.stream,
        })
    }
}

fn flag_duration(flag: &str, text: &str) -> Result<Duration, DrillError> {
    parse_duration(text).map_err(|e| DrillError::Usage(format!("{flag}: {e}")))
}

/// A fault window flag as given, or the value it defaulted to and why (`"5s (a quarter of --duration)"`).
fn window_flag(given: Option<&str>, value: Duration, default: &str) -> String {
    match given {
        Some(text) => text.to_owned(),
        None => format!("{} ({default})", format_duration(value)),
    }
}

/// The first public model (by name) with a target that `target` matches.
pub fn model_for(config: &Config, target: &TargetRef) -> Option<String> {
    config
        .models
        .values()
        .find(|model| model.targets.iter().any(|t| target.matches(&t.label)))
        .map(|model| model.name.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DrillArgs,
    }

    fn args(extra: &[&str]) -> DrillArgs {
        let mut argv = vec!["drill", "--target", "p/m"];
        argv.extend_from_slice(extra);
        Wrapper::parse_from(argv).args
    }

    #[test]
    fn defaults_make_a_thirty_second_drill() {
        let plan = args(&[]).plan(None).unwrap();
        assert_eq!(plan.duration, Duration::from_secs(30));
        assert_eq!(
            (plan.fault_at, plan.fault_for),
            (Duration::from_millis(7500), Duration::from_secs(15))
        );
        assert_eq!(plan.fault, FaultSpec::Status(503));
        assert!((plan.rate - 20.0).abs() < f64::EPSILON);
    }

    #[test]
    fn the_fault_window_follows_the_duration_unless_given() {
        let window = |flags: &[&str]| {
            let plan = args(flags).plan(None).unwrap();
            (plan.duration, plan.fault_at, plan.fault_for)
        };
        let secs = Duration::from_secs;
        assert_eq!(
            window(&["--duration", "10s"]),
            (secs(10), Duration::from_millis(2500), secs(5))
        );
        assert_eq!(
            window(&["--duration", "2m"]),
            (secs(120), secs(30), secs(60))
        );
        assert_eq!(
            window(&["--duration", "10s", "--fault-at", "1s"]),
            (secs(10), secs(1), secs(5))
        );
        assert_eq!(
            window(&["--duration", "10s", "--fault-for", "2s"]),
            (secs(10), Duration::from_millis(2500), secs(2))
        );
        assert_eq!(
            window(&["--duration", "6s", "--fault-at", "1s", "--fault-for", "2s"]),
            (secs(6), secs(1), secs(2))
        );
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let cases: [(&[&str], &str); 7] = [
            (&["--rate", "0"], "--rate"),
            (&["--duration", "soon"], "--duration: `soon` is not a duration"),
            (
                &["--fault-at", "25s", "--fault-for", "10s"],
                "the fault (--fault-at 25s + --fault-for 10s) must be longer than zero and end within --duration 30s",
            ),
            (
                &["--duration", "10s", "--fault-at", "8s"],
                "the fault (--fault-at 8s + --fault-for 5s (half of --duration)) must be longer than zero",
            ),
            (
                &["--duration", "10s", "--fault-for", "9s"],
                "(--fault-at 2500ms (a quarter of --duration) + --fault-for 9s)",
            ),
            (&["--duration", "0s"], "must be longer than zero"),
            (&["--fault", "explode"], "--fault"),
        ];
        for (flags, expected) in cases {
            match args(flags).plan(None) {
                Err(DrillError::Usage(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{flags:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn keys_and_model_come_from_the_config() {
        let text = r#"
state = "memory"
[auth]
client_keys = ["ck"]
admin_key = "ak"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[models.a-first]
targets = [{ provider = "p", model = "other" }]
[models.smart]
targets = [{ provider = "p", model = "m" }]
"#;
        let config = crate::config::parse(text, &|_| None).unwrap();
        let plan = args(&[]).plan(Some(&config)).unwrap();
        assert_eq!(plan.admin_key.as_deref(), Some("ak"));
        assert_eq!(plan.client_key.as_deref(), Some("ck"));
        assert_eq!(model_for(&config, &plan.target).as_deref(), Some("smart"));
        let flagged = args(&["--admin-key", "flag"]).plan(Some(&config)).unwrap();
        assert_eq!(flagged.admin_key.as_deref(), Some("flag"));
        assert_eq!(
            model_for(&config, &TargetRef::parse("p").unwrap()).as_deref(),
            Some("a-first")
        );
    }
}
