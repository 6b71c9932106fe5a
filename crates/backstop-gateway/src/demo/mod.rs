//! `backstop demo`: the whole idea in half a minute, with no keys and no files.
//!
//! It starts four mock providers and a gateway in this process and plays a short story
//! in two chapters, each a steady load on one public model: another model takes over
//! (healthy, rate limits, an outage of the primary, recovery), then the same model on
//! another channel takes over (Claude on the Anthropic API and on Bedrock; the API goes
//! down and comes back). It prints a line per second: what the clients got, who served
//! them, and the breakers' states as `/admin/targets` reports them, and ends each chapter
//! with the drill report of its outage.
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
use story::{Chapter, Mocks, Timeline};
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
/// view and the final reports to `out`; returns each chapter's report of its outage.
pub async fn play(
    timeline: Timeline,
    out: &mut impl Write,
) -> Result<Vec<(Chapter, Report)>, DrillError> {
    let failed = |what: &str| {
        let what = what.to_string();
        move |error: std::io::Error| DrillError::Failed(format!("{what}: {error}"))
    };
    let mocks = Mocks::start()
        .await
        .map_err(failed("cannot start the mock providers"))?;
    let gateway =
        LocalGateway::start(config::demo_config(&mocks.urls(), timeline.open_for)?).await?;
    let url = gateway.url();
    let mut result = write_line(
        out,
        &format!(
            "Backstop demo: a gateway on {url} and four mock providers.\n  watch it live: {url}/dashboard\n  {} requests per second for {} s; breakers open after 3 failures, for {} ms\n",
            timeline.rate,
            timeline.total().as_secs(),
            timeline.open_for.as_millis()
        ),
    )
    .map(|()| Vec::new());
    for (chapter, part) in timeline.chapters() {
        let Ok(reports) = &mut result else { break };
        match tell(chapter, &part, &mocks, url, out).await {
            Ok(report) => reports.push((chapter, report)),
            Err(error) => result = Err(error),
        }
    }
    gateway.stop().await;
    let received = mocks.received();
    mocks.shutdown().await;
    let reports = result?;
    let reported: u64 = reports.iter().map(|(_, r)| r.upstream_attempts).sum();
    let mut says =
        |line: String| writeln!(out, "{line}").map_err(failed("cannot write the output"));
    says(format!(
        "  upstream requests the mocks received: openai {}, azure {}, anthropic {}, bedrock {} ({} in all; the gateway reported {reported})",
        received[0],
        received[1],
        received[2],
        received[3],
        received.iter().sum::<usize>(),
    ))?;
    says(String::new())?;
    for (chapter, report) in &reports {
        says(summary(*chapter, report))?;
    }
    Ok(reports)
}

/// Writes one line of the view and flushes it.
fn write_line(out: &mut dyn Write, line: &str) -> Result<(), DrillError> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| DrillError::Failed(format!("cannot write the output: {e}")))
}

/// Runs the load and the acts of one chapter, printing the live view; returns its report.
async fn tell(
    chapter: Chapter,
    timeline: &Timeline,
    mocks: &Mocks,
    url: &str,
    out: &mut impl Write,
) -> Result<Report, DrillError> {
    write_line(out, &chapter.intro())?;
    let admin = AdminClient::new(url, None)?;
    let sender = ChatSender::new(url, chapter.model(), None, Duration::from_secs(15), false)
        .map_err(|e| DrillError::Failed(format!("cannot build an HTTP client: {e}")))?;
    let log = SampleLog::new(Instant::now());
    let load = tokio::spawn(load::drive(
        timeline.rate,
        timeline.total(),
        log.clone(),
        move || sender.send(),
    ));

    let (down, back) = chapter.outage();
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
                    if *act == down {
                        window.0 = now;
                    } else if *act == back {
                        window.1 = now;
                    }
                    write_line(out, &format!("-- {}: {}", act.title(), act.caption()))?;
                    act_start += *length;
                }
            }
            _ if next_tick > timeline.total() => break,
            _ => {
                tokio::time::sleep_until(log.start() + next_tick).await;
                let second = log.completed_between(next_tick - Duration::from_secs(1), next_tick);
                let breakers = admin.targets().await.ok().map(|mut targets| {
                    targets.retain(|t| {
                        t.models
                            .iter()
                            .any(|m| chapter.shown().contains(&m.as_str()))
                    });
                    targets
                });
                let act = timeline
                    .act_at(next_tick - Duration::from_millis(1))
                    .unwrap_or(back);
                let line = view::line(
                    next_tick,
                    timeline.total(),
                    act,
                    &second,
                    breakers.as_deref(),
                );
                write_line(out, &line)?;
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
        targets: chapter.faulted().iter().map(|t| t.to_string()).collect(),
        model: chapter.model().to_string(),
        fault: chapter.fault().to_string(),
        rate: timeline.rate,
        duration_ms: millis(timeline.total()),
        fault_start_ms: millis(window.0),
        fault_end_ms: millis(window.1),
    };
    let faulted: Vec<TargetRef> = chapter
        .faulted()
        .iter()
        .map(|t| TargetRef::parse(t))
        .collect::<Result<_, _>>()?;
    let mut report = Report::compute(scenario, &faulted, &log.snapshot());
    report.breakers = admin.targets().await.unwrap_or_default();
    write_line(out, "")?;
    write_line(out, &text::render(&report))?;
    Ok(report)
}

/// The last words of a chapter: who took over, how fast, and whether what went down came
/// back.
pub fn summary(chapter: Chapter, report: &Report) -> String {
    let (went_down, primary) = chapter.names();
    let failover = match (report.failover_ms, &report.failover_target) {
        (Some(ms), Some(target)) => format!(
            "failover: {target} served {} after {went_down}",
            text::duration(ms)
        ),
        (Some(ms), None) => format!("failover after {}", text::duration(ms)),
        (None, _) => "failover: not seen (no other target served during the outage)".to_string(),
    };
    let recovery = match report.recovery_ms {
        Some(ms) => format!(
            "{primary} served again {} after it recovered",
            text::duration(ms)
        ),
        None => format!("{primary} did not serve again before the end"),
    };
    format!(
        "{failover}; {recovery}; {:.2} % of {} client requests succeeded, {:.2} upstream calls each.",
        report.success_rate * 100.0,
        report.requests,
        report.attempts_per_request
    )
}
