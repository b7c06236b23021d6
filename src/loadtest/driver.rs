//! Runs one timed phase: `connections` keep-alive connections, each a task on
//! a single-threaded tokio runtime in its own OS thread, so the generator
//! uses at most one core and leaves the rest of the machine to the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::body::{Phase, Pool, RequestFactory};
use super::cpu;
use super::http::{Conn, ExchangeError};
use super::pacing::Schedule;
use super::stats::{Failures, StatusCounts};

/// What to run.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub phase: Phase,
    pub connections: usize,
    pub duration: Duration,
    /// `Some` for open-loop pacing (`--rate`), `None` for closed loop.
    pub schedule: Option<Schedule>,
    /// Longest wait for an answer before the connection is dropped.
    pub timeout: Duration,
}

/// What happened in a phase.
#[derive(Debug, Default)]
pub struct PhaseOutcome {
    /// Latency of every answered request, µs, unsorted. Paced: from the due
    /// time (including any wait for a free connection); closed loop: from
    /// the send.
    pub latencies_us: Vec<u32>,
    /// Paced only: time from the actual send to the answer, µs.
    pub service_us: Vec<u32>,
    pub statuses: StatusCounts,
    /// Requests written that got no HTTP answer.
    pub failures: Failures,
    /// Requests written to a connection.
    pub sent: u64,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Paced only: requests due within the phase (`sent` falls short of it
    /// when the server could not keep up with the rate).
    pub due: Option<u64>,
    /// Requests not found pre-built and built during the phase.
    pub built_during_phase: u64,
    /// Requests sent again on a fresh connection because the reused one had
    /// been closed by the server while idle, before it read the request.
    pub stale_retries: u64,
    /// Connections opened during the phase (after a close or a failure).
    pub reconnects: u64,
    /// Attempts to open a connection during the phase that failed (the
    /// request was then not sent).
    pub connect_failures: u64,
    /// CPU seconds the client thread used during the phase.
    pub client_cpu_secs: Option<f64>,
    /// Share of all CPUs' time that was busy during the phase (0 to 1).
    pub machine_busy: Option<f64>,
}

impl PhaseOutcome {
    pub fn answered(&self) -> u64 {
        self.statuses.total()
    }

    fn absorb(&mut self, mut other: PhaseOutcome) {
        if self.latencies_us.is_empty() {
            self.latencies_us = std::mem::take(&mut other.latencies_us);
        } else {
            self.latencies_us.append(&mut other.latencies_us);
        }
        self.service_us.append(&mut other.service_us);
        self.statuses.add(&other.statuses);
        self.failures.add(&other.failures);
        self.sent += other.sent;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.built_during_phase += other.built_during_phase;
        self.stale_retries += other.stale_retries;
        self.reconnects += other.reconnects;
        self.connect_failures += other.connect_failures;
    }
}

struct Ctx {
    addr: SocketAddr,
    spec: PhaseSpec,
    factory: Arc<RequestFactory>,
    pool: Arc<Pool>,
    next: AtomicU64,
    start: Instant,
    end: Instant,
}

/// Runs the phase on a fresh single-threaded runtime in a new OS thread and
/// waits for it (off the caller's runtime).
pub async fn run(
    addr: SocketAddr,
    spec: PhaseSpec,
    factory: Arc<RequestFactory>,
    pool: Arc<Pool>,
) -> anyhow::Result<PhaseOutcome> {
    let thread = std::thread::Builder::new()
        .name("loadtest-client".into())
        .spawn(move || -> anyhow::Result<PhaseOutcome> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the client runtime")?;
            runtime.block_on(run_on_this_thread(addr, spec, factory, pool))
        })
        .context("cannot start the client thread")?;
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("client thread lost")?
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))?
}

async fn run_on_this_thread(
    addr: SocketAddr,
    spec: PhaseSpec,
    factory: Arc<RequestFactory>,
    pool: Arc<Pool>,
) -> anyhow::Result<PhaseOutcome> {
    // Connect before the clock starts.
    let mut conns = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let conn = Conn::connect(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot connect to {addr} ({e}): is the server running there?")
        })?;
        conns.push(conn);
    }
    let cpu_before = cpu::Reading::now();
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        addr,
        end: start + spec.duration,
        spec,
        factory,
        pool,
        next: AtomicU64::new(0),
        start,
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(connection(ctx.clone(), conn)))
        .collect();
    let mut total = PhaseOutcome::default();
    for task in tasks {
        total.absorb(task.await.context("a connection task failed")?);
    }
    let cpu_after = cpu::Reading::now();
    total.client_cpu_secs = cpu_after.thread_secs_since(&cpu_before);
    total.machine_busy = cpu_after.machine_busy_since(&cpu_before);
    if total.sent == 0 {
        total.elapsed = ctx.spec.duration;
    }
    total.due = ctx.spec.schedule.map(|s| s.due_before(ctx.spec.duration));
    Ok(total)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A connection the server closed while idle, before reading the request:
/// sending again on a fresh connection is what every HTTP client does, and
/// it is harmless here because storing is idempotent.
fn is_stale(error: &ExchangeError) -> bool {
    match error {
        ExchangeError::Closed { nothing_received } => *nothing_received,
        ExchangeError::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        ExchangeError::Parse(_) => false,
    }
}

async fn connection(ctx: Arc<Ctx>, conn: Conn) -> PhaseOutcome {
    let mut out = PhaseOutcome::default();
    let mut conn = Some(conn);
    let mut last_answer = ctx.start;
    let timeout = ctx.spec.timeout;
    loop {
        let free = Instant::now();
        if free >= ctx.end {
            break;
        }
        let i = ctx.next.fetch_add(1, Ordering::Relaxed);
        let due = match ctx.spec.schedule {
            Some(schedule) => {
                let due = ctx.start + schedule.due(i);
                if due >= ctx.end {
                    break;
                }
                if due > free {
                    tokio::time::sleep_until(due.into()).await;
                }
                Some(due)
            }
            None => None,
        };
        let built;
        let pooled = match ctx.spec.phase {
            Phase::Measure => ctx.pool.get(i),
            Phase::Warmup => None,
        };
        let request: &[u8] = match pooled {
            Some(r) => r,
            None => {
                built = ctx.factory.request(ctx.spec.phase, i);
                out.built_during_phase += 1;
                &built
            }
        };
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::connect(ctx.addr).await {
                Ok(c) => {
                    out.reconnects += 1;
                    c
                }
                Err(_) => {
                    out.connect_failures += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };

        let sent = Instant::now();
        out.sent += 1;
        let mut result = tokio::time::timeout(timeout, c.exchange(request)).await;
        if matches!(&result, Ok(Err(e)) if is_stale(e) && c.served > 0) {
            if let Ok(fresh) = Conn::connect(ctx.addr).await {
                out.stale_retries += 1;
                out.reconnects += 1;
                c = fresh;
                result = tokio::time::timeout(timeout, c.exchange(request)).await;
            }
        }
        let answered = Instant::now();
        match result {
            Ok(Ok((status, close))) => {
                out.statuses.bump(status);
                last_answer = answered;
                match due {
                    Some(due) => {
                        let o = ctx.start;
                        out.latencies_us.push(micros(Schedule::latency(
                            due - o,
                            free - o,
                            sent - o,
                            answered - o,
                        )));
                        out.service_us.push(micros(answered - sent));
                    }
                    None => out.latencies_us.push(micros(answered - sent)),
                }
                if !close {
                    conn = Some(c);
                }
            }
            Ok(Err(ExchangeError::Parse(_))) => out.failures.protocol += 1,
            Ok(Err(_)) => out.failures.connection += 1,
            Err(_) => out.failures.timeout += 1,
        }
    }
    out.elapsed = last_answer.saturating_duration_since(ctx.start);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A server that reads requests and never answers: every request times
    /// out, is counted as unanswered, and its connection is replaced.
    #[tokio::test]
    async fn silent_server_means_timeouts_not_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        let factory = Arc::new(RequestFactory::new(b"k", &addr.to_string(), "/", 10));
        let spec = PhaseSpec {
            phase: Phase::Warmup,
            connections: 2,
            // Each connection sends at 0 and 300 ms, then stops.
            duration: Duration::from_millis(500),
            schedule: None,
            timeout: Duration::from_millis(300),
        };
        let o = run(addr, spec, factory, Arc::new(Pool::default()))
            .await
            .unwrap();
        // Normally 4 sends; a stalled machine can shift one past the end, so
        // the exact count is not asserted, only what each send implies: a
        // timeout, and a fresh connection for every send after the first two.
        assert_eq!(o.answered(), 0);
        assert!(o.sent >= 2, "{o:?}");
        assert_eq!(o.failures.timeout, o.sent, "{o:?}");
        assert_eq!(o.reconnects, o.sent - 2, "{o:?}");
        assert!(o.latencies_us.is_empty());
    }
}
