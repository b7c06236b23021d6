//! `leadhook loadtest`: load a running leadhook with realistic, uniquely
//! identified, correctly signed WhatsApp webhooks, report throughput and
//! latency, and check through the admin API that every `200` stored exactly
//! one message. `leadhook seed` (in [`seed`]) fills a database for admin-API
//! benchmarks.
//!
//! How it keeps its own cost out of the figures (on a 2-core machine the
//! generator and the server share the CPU):
//! - requests are built and signed before the clock starts ([`body`]), in
//!   one buffer, on all cores while the server is idle;
//! - a minimal HTTP/1.1 keep-alive client writes each pre-built request with
//!   one call and parses only the framing of the answer ([`http`]);
//! - the client runs on one OS thread (tokio's current-thread runtime), so
//!   the server keeps the other core ([`driver`]);
//! - latencies are appended to a vector and summarised after the run
//!   ([`stats`]).
//!
//! `--rate` switches from closed loop to open-loop pacing with latency
//! measured from each request's due time ([`pacing`]). `--ceiling` first
//! measures a bare in-process actix-web signature checker with the same
//! client settings ([`ceiling`]), to show what this machine allows at all.

pub mod body;
pub mod ceiling;
pub mod content;
pub mod cpu;
pub mod driver;
pub mod http;
pub mod pacing;
pub mod report;
pub mod seed;
pub mod stats;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use body::{Phase, Pool, RequestFactory};
use ceiling::Ceiling;
use driver::{PhaseOutcome, PhaseSpec};
use pacing::Schedule;
use report::{Comparison, Out, RunReport, Summary, WarmupReport};
use stats::thousands;
use verify::Stats;

/// Where the webhook lives on the server.
const WEBHOOK_PATH: &str = "/api/webhook/whatsapp";
/// Secret of the ceiling server when `--ceiling-only` runs without one.
const CEILING_ONLY_SECRET: &str = "leadhook-loadtest-ceiling";

#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of the running leadhook server (plain http://)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// App secret to sign with: the server's WHATSAPP_APP_SECRET
    #[arg(long, env = "WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Admin token, to check stored messages against 200 answers
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Keep-alive connections held open at once
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Seconds to measure
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    /// Seconds of unmeasured warm-up before measuring (0 for none); its
    /// requests still count in the verification
    #[arg(long, default_value_t = 1.0, value_parser = non_negative_secs)]
    pub warmup: f64,
    /// Fixed overall rate in requests/s (open loop; latency from each
    /// request's due time). Without it: closed loop, as fast as answered
    #[arg(long, value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Distinct people sending messages
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=body::MAX_SENDERS))]
    pub senders: u64,
    /// Seconds to wait for an answer before giving up on a request
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    pub timeout: f64,
    /// Also measure a bare in-process signature-checking actix-web server
    /// first, and compare
    #[arg(long)]
    pub ceiling: bool,
    /// Measure only that bare server (no leadhook needed)
    #[arg(long)]
    pub ceiling_only: bool,
    /// Worker threads of the ceiling server (default: CPUs, as leadhook's
    /// HTTP_WORKERS)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub ceiling_workers: Option<u32>,
    /// Print a machine-readable JSON summary on stdout (the human-readable
    /// lines then go to stderr)
    #[arg(long)]
    pub json: bool,
    /// Skip the admin-API check of stored messages
    #[arg(long)]
    pub no_verify: bool,
    /// Most requests built ahead of the clock (about 1 KB each); beyond it
    /// requests are built during the run
    #[arg(long, default_value_t = 2_000_000)]
    pub max_prebuilt: usize,
}

fn parse_f64(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .map_err(|_| format!("'{raw}' is not a number"))
}

fn positive_secs(raw: &str) -> Result<f64, String> {
    let v = parse_f64(raw)?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!(
            "'{raw}' is not a number of seconds above 0 (at most 86400)"
        ))
    }
}

fn non_negative_secs(raw: &str) -> Result<f64, String> {
    let v = parse_f64(raw)?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "'{raw}' is not a number of seconds from 0 to 86400"
        ))
    }
}

fn positive_rate(raw: &str) -> Result<f64, String> {
    let v = parse_f64(raw)?;
    if v.is_finite() && v > 0.0 && v <= 10_000_000.0 {
        Ok(v)
    } else {
        Err(format!("'{raw}' is not a rate above 0 requests/s"))
    }
}

/// The settings every measured target shares.
struct Plan {
    connections: usize,
    duration: Duration,
    warmup: Duration,
    schedule: Option<Schedule>,
    timeout: Duration,
    max_prebuilt: usize,
}

impl Plan {
    fn spec(&self, phase: Phase) -> PhaseSpec {
        PhaseSpec {
            phase,
            connections: self.connections,
            duration: match phase {
                Phase::Warmup => self.warmup,
                Phase::Measure => self.duration,
            },
            schedule: self.schedule,
            timeout: self.timeout,
        }
    }

    /// How many requests to build ahead of the measured phase.
    fn prebuild_target(&self, warmup: Option<&PhaseOutcome>) -> usize {
        let wanted = match (self.schedule, warmup) {
            (Some(schedule), _) => {
                schedule.due_before(self.duration) as f64 + self.connections as f64
            }
            // Closed loop: what the warm-up achieved, with headroom.
            (None, Some(w)) if w.elapsed > Duration::ZERO && w.answered() > 0 => {
                let rate = w.answered() as f64 / w.elapsed.as_secs_f64();
                rate * self.duration.as_secs_f64() * 1.3 + 1_000.0
            }
            (None, _) => 20_000.0 * self.duration.as_secs_f64(),
        };
        (wanted.ceil() as usize).min(self.max_prebuilt)
    }
}

/// What one target's run produced.
struct Measured {
    report: RunReport,
    /// Warm-up and measured phase together, for the verification.
    answered_200: u64,
    answered_other: u64,
    unanswered: u64,
}

/// Warm-up, pre-build, measure.
async fn measure(
    name: &str,
    addr: SocketAddr,
    plan: &Plan,
    factory: &Arc<RequestFactory>,
    pool: &mut Pool,
    out: Out,
) -> anyhow::Result<Measured> {
    let warmup = if plan.warmup > Duration::ZERO {
        let w = driver::run(
            addr,
            plan.spec(Phase::Warmup),
            factory.clone(),
            Arc::new(Pool::default()),
        )
        .await?;
        let report = WarmupReport::of(plan.warmup.as_secs_f64(), &w);
        out.line(format!(
            "  warm-up    {} answered in {:.1} s ({:.0} req/s)   [{}]",
            thousands(w.answered()),
            plan.warmup.as_secs_f64(),
            report.requests_per_sec,
            report::status_list(&report.statuses)
        ));
        if w.statuses.get(200) == 0 {
            let hint = if w.statuses.get(401) > 0 {
                "the signature was refused: --secret must be the server's WHATSAPP_APP_SECRET"
            } else if w.statuses.get(503) > 0 {
                "the server answers 503: is WHATSAPP_APP_SECRET set where it runs, and its database up?"
            } else if w.statuses.get(404) > 0 || w.statuses.get(405) > 0 {
                "no webhook there: is --url the base address of a leadhook server?"
            } else {
                "no answers at all: see the server's log"
            };
            bail!(
                "{name}: no 200 during the warm-up ({}; {} without answer): {hint}",
                report::status_list(&report.statuses),
                w.failures.total()
            );
        }
        Some((w, report))
    } else {
        None
    };

    let target = plan.prebuild_target(warmup.as_ref().map(|(w, _)| w));
    if target > pool.len() {
        let began = Instant::now();
        pool.fill_to(factory, target);
        out.line(format!(
            "  pre-built  {} signed requests ({:.0} MiB) in {:.1} s",
            thousands(pool.len() as u64),
            pool.size() as f64 / (1024.0 * 1024.0),
            began.elapsed().as_secs_f64()
        ));
    }
    let prebuilt = pool.len();
    let shared = Arc::new(std::mem::take(pool));
    let result = driver::run(
        addr,
        plan.spec(Phase::Measure),
        factory.clone(),
        shared.clone(),
    )
    .await;
    // The phase's thread has finished: the pool is ours again.
    *pool = Arc::try_unwrap(shared).unwrap_or_default();
    let outcome = result?;

    let (mut answered_200, mut answered_other, mut unanswered) = (0, 0, 0);
    for o in warmup
        .iter()
        .map(|(w, _)| w)
        .chain(std::iter::once(&outcome))
    {
        answered_200 += o.statuses.get(200);
        answered_other += o.answered() - o.statuses.get(200);
        unanswered += o.failures.total();
    }
    let report = RunReport::of(
        name,
        addr.to_string(),
        warmup.map(|(_, r)| r),
        prebuilt,
        outcome,
    );
    report.print(out);
    Ok(Measured {
        report,
        answered_200,
        answered_other,
        unanswered,
    })
}

pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    // The ceiling server's start/stop lines would interleave with the
    // report; RUST_LOG still shows them when asked for.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let out = Out {
        to_stderr: args.json,
    };
    let ceiling_only = args.ceiling_only;
    let with_ceiling = args.ceiling || ceiling_only;
    let target = http::parse_target(&args.url, WEBHOOK_PATH)?;
    let secret = match args.secret.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ if ceiling_only => CEILING_ONLY_SECRET.to_owned(),
        _ => bail!("no app secret: set WHATSAPP_APP_SECRET or pass --secret (the server's value)"),
    };
    let stats = if ceiling_only || args.no_verify {
        None
    } else {
        let token = match args.admin_token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => bail!(
                "no admin token: set ADMIN_TOKEN or pass --admin-token (to check stored messages \
                 against 200 answers), or pass --no-verify"
            ),
        };
        Some(Stats::new(&target.base, &token)?)
    };
    let plan = Plan {
        connections: args.connections as usize,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        schedule: args.rate.and_then(Schedule::new),
        timeout: Duration::from_secs_f64(args.timeout),
        max_prebuilt: args.max_prebuilt,
    };
    let ceiling_workers = args.ceiling_workers.map(|w| w as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });

    out.line(format!(
        "leadhook loadtest: {} connections, {} s measured after {} s warm-up, {}, {} senders, client on 1 thread",
        plan.connections,
        args.duration,
        args.warmup,
        match args.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => "closed loop".to_owned(),
        },
        thousands(args.senders)
    ));
    // Fail fast on a wrong token or an unreachable server.
    if let Some(stats) = &stats {
        stats.messages_total().await?;
    }

    let factory = Arc::new(RequestFactory::new(
        secret.as_bytes(),
        &target.host_header,
        &target.webhook_path,
        args.senders,
    ));
    let mut pool = Pool::default();

    let ceiling = if with_ceiling {
        let server = Ceiling::start(secret.as_bytes(), &target.webhook_path, ceiling_workers)
            .context("cannot start the ceiling server")?;
        out.line(format!(
            "== ceiling: bare actix-web, signature check only, {} workers, {}",
            server.workers, server.addr
        ));
        let measured = measure("ceiling", server.addr, &plan, &factory, &mut pool, out).await;
        server.stop().await;
        Some(measured?.report)
    } else {
        None
    };

    let mut verdict = None;
    let server = if ceiling_only {
        None
    } else {
        // Measured requests reuse the ceiling's pre-built ones: the ceiling
        // stored nothing, so their message ids are still new to the server.
        let before = match &stats {
            Some(s) => Some(s.messages_total().await?),
            None => None,
        };
        out.line(format!("== server: {}", target.base));
        let measured = measure("server", target.addr, &plan, &factory, &mut pool, out).await?;
        if let (Some(stats), Some(before)) = (&stats, before) {
            // Unanswered requests may still be committing: wait until the
            // count stops moving.
            let after = if measured.unanswered > 0 {
                stats
                    .settled_total(Duration::from_secs(1), Duration::from_secs(30))
                    .await?
            } else {
                stats.messages_total().await?
            };
            let v = verify::account(
                before,
                after,
                measured.answered_200,
                measured.unanswered,
                measured.answered_other,
            );
            verdict = Some(v);
        }
        Some(measured.report)
    };

    let comparison = match (&ceiling, &server) {
        (Some(c), Some(s)) => {
            let cmp = Comparison::of(c, s);
            cmp.print(c, s, out);
            Some(cmp)
        }
        _ => None,
    };
    if let Some(v) = &verdict {
        report::print_verdict(v, out);
    } else if !ceiling_only {
        out.line("== verification skipped (--no-verify)");
    }
    let passed = verdict.is_none_or(|v| v.passed());
    if args.json {
        let summary = Summary {
            url: target.base.clone(),
            connections: plan.connections,
            duration_secs: args.duration,
            warmup_secs: args.warmup,
            rate: args.rate,
            senders: args.senders,
            timeout_secs: args.timeout,
            client: "1 OS thread, tokio current-thread runtime, minimal HTTP/1.1 keep-alive client",
            ceiling_workers: with_ceiling.then_some(ceiling_workers),
            ceiling,
            server,
            server_vs_ceiling: comparison,
            verification: verdict,
            passed,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if let Some(v) = verdict.filter(|v| !v.passed()) {
        bail!(
            "verification failed: lost {}, duplicated {}",
            v.lost,
            v.duplicated
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn command_line_defaults_and_checks() {
        let a = Cli::try_parse_from(["loadtest"]).unwrap().args;
        assert_eq!(a.url, "http://127.0.0.1:8080");
        assert_eq!(a.connections, 64);
        assert_eq!(a.duration, 10.0);
        assert_eq!(a.senders, 10_000);
        assert!(a.rate.is_none() && !a.ceiling && !a.json);
        for bad in [
            &["loadtest", "--connections", "0"][..],
            &["loadtest", "--duration", "0"],
            &["loadtest", "--duration", "abc"],
            &["loadtest", "--rate", "-5"],
            &["loadtest", "--warmup", "-1"],
            &["loadtest", "--senders", "0"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let a = Cli::try_parse_from(["loadtest", "--rate", "5000", "--duration", "0.5"])
            .unwrap()
            .args;
        assert_eq!(a.rate, Some(5000.0));
        assert_eq!(a.duration, 0.5);
    }

    #[test]
    fn prebuild_sizes() {
        let mut plan = Plan {
            connections: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            schedule: Schedule::new(5000.0),
            timeout: Duration::from_secs(10),
            max_prebuilt: 2_000_000,
        };
        assert_eq!(plan.prebuild_target(None), 50_064);
        plan.schedule = None;
        let mut w = PhaseOutcome {
            elapsed: Duration::from_secs(1),
            ..Default::default()
        };
        for _ in 0..10_000 {
            w.statuses.bump(200);
        }
        assert_eq!(plan.prebuild_target(Some(&w)), 131_000);
        assert_eq!(plan.prebuild_target(None), 200_000);
        plan.max_prebuilt = 1000;
        assert_eq!(plan.prebuild_target(Some(&w)), 1000);
    }

    /// The whole tool against the ceiling server alone, briefly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ceiling_only_run() {
        let a = Cli::try_parse_from([
            "loadtest",
            "--ceiling-only",
            "--connections",
            "4",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
            "--ceiling-workers",
            "1",
        ])
        .unwrap()
        .args;
        run(a).await.unwrap();
    }

    /// Open-loop pacing sends what is due and no more. How many of the due
    /// requests go out before the phase ends depends on how busy the machine
    /// is (a request due in the last milliseconds is dropped if every
    /// connection wakes after the end), so only the upper bound and the
    /// bookkeeping are exact; a closed loop against this server would send
    /// thousands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_phase_sends_what_is_due() {
        let server = Ceiling::start(b"k", WEBHOOK_PATH, 1).unwrap();
        let factory = Arc::new(RequestFactory::new(
            b"k",
            &server.addr.to_string(),
            WEBHOOK_PATH,
            100,
        ));
        let spec = PhaseSpec {
            phase: Phase::Measure,
            connections: 8,
            duration: Duration::from_millis(500),
            schedule: Schedule::new(400.0),
            timeout: Duration::from_secs(5),
        };
        let o = driver::run(server.addr, spec, factory, Arc::new(Pool::default()))
            .await
            .unwrap();
        server.stop().await;
        assert_eq!(o.due, Some(200));
        assert!(o.sent > 0 && o.sent <= 200, "sent {}", o.sent);
        assert_eq!(o.statuses.get(200), o.sent);
        assert_eq!(o.latencies_us.len() as u64, o.sent);
        assert_eq!(o.service_us.len() as u64, o.sent);
        assert_eq!(o.built_during_phase, o.sent);
    }
}
