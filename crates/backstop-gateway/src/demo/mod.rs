//! `backstop demo`: the whole idea in half a minute, with no keys and no files.
//!
//! It starts three mock providers and a gateway in this process, sends a steady
//! load to one public model and plays a short story against it (healthy, rate
//! limits, an outage of the primary, recovery) while printing a line per second:
//! what the clients got, who served them, and the breakers' states as
//! `/admin/targets` reports them. It ends with the drill report of the outage.
//!
//! The gateway's own log lines are silenced for the demo (it runs on a thread of
//! its own with no log subscriber), so the live view stays readable.

pub mod config;
pub mod story;
pub mod view;

use crate::drill::admin::AdminClient;
use crate::drill::load::{self, SampleLog};
use crate::drill::local::LocalGateway;
use crate::drill::report::{millis, Report, Scenario};
use crate::drill::sender::ChatSender;
use crate::drill::target::TargetRef;
use crate::drill::{text, DrillError};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use story::{Act, Mocks, Timeline};
use tokio::time::Instant;

/// Runs `backstop demo` and prints its story to stdout: exit 0 if it ran.
pub async fn run() -> ExitCode {
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("backstop-demo".into())
        .spawn(move || {
            let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
            let outcome = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime
                    .block_on(play(Timeline::standard(), &mut std::io::stdout()))
                    .map(drop),
                Err(error) => Err(DrillError::Failed(format!(
                    "cannot start a runtime: {error}"
                ))),
            };
            let _ = done.send(outcome);
        });
    if let Err(error) = spawned {
        eprintln!("backstop demo: cannot start a thread: {error}");
        return ExitCode::FAILURE;
    }
    match result.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("backstop demo: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("backstop demo: the demo thread stopped unexpectedly");
            ExitCode::FAILURE
        }
    }
}

/// Plays `timeline` against fresh mocks and an in-process gateway, writing the live
/// view and the final report to `out`; returns the report of the outage.
pub async fn play(timeline: Timeline, out: &mut impl Write) -> Result<Report, DrillError> {
    let failed = |what: &str| {
        let what = what.to_string();
        move |error: std::io::Error| DrillError::Failed(format!("{what}: {error}"))
    };
    let mocks = Mocks::start()
        .await
        .map_err(failed("cannot start the mock providers"))?;
    let gateway =
        LocalGateway::start(config::demo_config(&mocks.urls(), timeline.open_for)?).await?;
    let result = tell(&timeline, &mocks, gateway.url(), out).await;
    gateway.stop().await;
    let received = mocks.received();
    mocks.shutdown().await;
    let report = result?;
    let mut says =
        |line: String| writeln!(out, "{line}").map_err(failed("cannot write the output"));
    says(format!(
        "  upstream requests the mocks received: openai {}, azure {}, anthropic {} ({} in all; the gateway reported {})",
        received[0],
        received[1],
        received[2],
        received.iter().sum::<usize>(),
        report.upstream_attempts
    ))?;
    says(String::new())?;
    says(summary(&report))?;
    Ok(report)
}

/// Runs the load and the acts, printing the live view; returns the report.
async fn tell(
    timeline: &Timeline,
    mocks: &Mocks,
    url: &str,
    out: &mut impl Write,
) -> Result<Report, DrillError> {
    let write = |out: &mut dyn Write, line: &str| {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| DrillError::Failed(format!("cannot write the output: {e}")))
    };
    write(
        out,
        &format!(
            "Backstop demo: a gateway on {url} and three mock providers.\n  watch it live: {url}/dashboard\n  model `{}` = {} + {} (balanced), fallback `backup` = {}\n  {} requests per second for {} s; breakers open after 3 failures, for {} ms\n",
            config::MODEL,
            config::PRIMARY[0],
            config::PRIMARY[1],
            config::FALLBACK,
            timeline.rate,
            timeline.total().as_secs(),
            timeline.open_for.as_millis()
        ),
    )?;
    let admin = AdminClient::new(url, None)?;
    let sender = ChatSender::new(url, config::MODEL, None, Duration::from_secs(15), false)
        .map_err(|e| DrillError::Failed(format!("cannot build an HTTP client: {e}")))?;
    let log = SampleLog::new(Instant::now());
    let load = tokio::spawn(load::drive(
        timeline.rate,
        timeline.total(),
        log.clone(),
        move || sender.send(),
    ));

    let mut window = (Duration::ZERO, Duration::ZERO);
    let mut acts = timeline.acts.iter().peekable();
    let mut next_tick = Duration::from_secs(1);
    let mut act_start = Duration::ZERO;
    loop {
        let next_act = acts.peek().map(|_| act_start);
        match next_act {
            Some(at) if at < next_tick => {
                tokio::time::sleep_until(log.start() + at).await;
                if let Some((act, length)) = acts.next() {
                    mocks.stage(*act);
                    let now = log.elapsed();
                    match act {
                        Act::Outage => window.0 = now,
                        Act::Recovery => window.1 = now,
                        Act::Healthy | Act::RateLimits => {}
                    }
                    write(out, &format!("-- {}: {}", act.title(), act.caption()))?;
                    act_start += *length;
                }
            }
            _ if next_tick > timeline.total() => break,
            _ => {
                tokio::time::sleep_until(log.start() + next_tick).await;
                let second = log.completed_between(next_tick - Duration::from_secs(1), next_tick);
                let breakers = admin.targets().await.ok();
                let act = timeline
                    .act_at(next_tick - Duration::from_millis(1))
                    .unwrap_or(Act::Recovery);
                let line = view::line(
                    next_tick,
                    timeline.total(),
                    act,
                    &second,
                    breakers.as_deref(),
                );
                write(out, &line)?;
                next_tick += Duration::from_secs(1);
            }
        }
    }
    load.await
        .map_err(|e| DrillError::Failed(format!("the load generator stopped: {e}")))?;
    if window.1 < window.0 {
        window.1 = timeline.total();
    }
    let scenario = Scenario {
        targets: config::PRIMARY.iter().map(|t| t.to_string()).collect(),
        model: config::MODEL.to_string(),
        fault: "status:503 from both channels (mock outage)".to_string(),
        rate: timeline.rate,
        duration_ms: millis(timeline.total()),
        fault_start_ms: millis(window.0),
        fault_end_ms: millis(window.1),
    };
    let faulted: Vec<TargetRef> = config::PRIMARY
        .iter()
        .map(|t| TargetRef::parse(t))
        .collect::<Result<_, _>>()?;
    let mut report = Report::compute(scenario, &faulted, &log.snapshot());
    report.breakers = admin.targets().await.unwrap_or_default();
    write(out, "")?;
    write(out, &text::render(&report))?;
    Ok(report)
}

/// The last words: who took over, how fast, and whether the primary came back.
pub fn summary(report: &Report) -> String {
    let failover = match (report.failover_ms, &report.failover_target) {
        (Some(ms), Some(target)) => format!(
            "failover: {target} served {} after the primary outage began",
            text::duration(ms)
        ),
        (Some(ms), None) => format!("failover after {}", text::duration(ms)),
        (None, _) => "failover: not seen (no other target served during the outage)".to_string(),
    };
    let recovery = match report.recovery_ms {
        Some(ms) => format!(
            "the primary served again {} after it recovered",
            text::duration(ms)
        ),
        None => "the primary did not serve again before the end".to_string(),
    };
    format!(
        "{failover}; {recovery}; {:.2} % of {} client requests succeeded, {:.2} upstream calls each.",
        report.success_rate * 100.0,
        report.requests,
        report.attempts_per_request
    )
}
