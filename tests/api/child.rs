//! The real `leadhook` binary as a child process, for the tests that need a
//! process boundary (startup errors, signals, crashes, logs). Every child runs
//! with a cleared environment in a temporary directory (so no `.env` is read),
//! writes its output to files there, and is killed when its guard is dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{admin_json_at, Endpoint, PostOutcome, ADMIN_TOKEN, APP_SECRET, VERIFY_TOKEN};
use leadhook::whatsapp::signature;

pub const SECRETS: [(&str, &str); 3] = [
    ("WHATSAPP_APP_SECRET", APP_SECRET),
    ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
    ("ADMIN_TOKEN", ADMIN_TOKEN),
];

/// `leadhook` with only `PATH` inherited, run in `dir`.
pub fn leadhook(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadhook"));
    command.env_clear().current_dir(dir).stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Sends `signal` (`TERM`, `KILL`, …) to `pid` with `kill(1)`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A child process, killed when dropped if still running. Its output goes to
/// files, so a chatty child can never block on a full pipe.
pub struct Running {
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Running {
    pub fn spawn(mut command: Command, dir: &Path, label: &str) -> Running {
        let stdout_path = dir.join(format!("{label}.stdout"));
        let stderr_path = dir.join(format!("{label}.stderr"));
        let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = command
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start leadhook");
        Running {
            child,
            stdout_path,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll child")
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.has_exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command that is expected to finish within `limit`; returns its exit
/// status and standard error.
pub async fn run_to_end(
    command: Command,
    dir: &Path,
    label: &str,
    limit: Duration,
) -> (ExitStatus, String) {
    let mut running = Running::spawn(command, dir, label);
    match running.exit_within(limit).await {
        Some(status) => (status, running.stderr()),
        None => panic!(
            "`{label}` still running after {limit:?}; stderr:\n{}",
            running.stderr()
        ),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A client that opens a fresh connection per request: an idle keep-alive
/// connection would hold a gracefully stopping server open.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A `leadhook` server process, ready to serve.
pub struct Server {
    pub process: Running,
    pub port: u16,
    pub base: String,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `leadhook` on `database` (a SQLite path or a PostgreSQL URL)
    /// with `vars` and waits (at most 10 s) until `/healthz` answers.
    pub async fn start(
        dir: &Path,
        database: impl AsRef<OsStr>,
        vars: &[(&str, &str)],
        label: &str,
    ) -> Server {
        let port = free_port();
        let mut command = leadhook(dir);
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATABASE_URL", database)
            .env("HTTP_WORKERS", "2")
            .envs(vars.iter().copied());
        let mut process = Running::spawn(command, dir, label);
        let base = format!("http://127.0.0.1:{port}");
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = process.has_exited() {
                panic!(
                    "leadhook exited with {status} before serving; stderr:\n{}",
                    process.stderr()
                );
            }
            let probe = client
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz did not answer 200 within 10 s; stderr:\n{}",
                process.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server {
            process,
            port,
            base,
            client,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        admin_json_at(&self.client, &self.base, path).await
    }

    /// The server's address as an [`Endpoint`].
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.client.clone(), &self.base)
    }
}

/// Reads one HTTP/1.1 response head; returns the status and Content-Length.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, usize)> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(
                "connection closed inside the response head",
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok((status, length));
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
}

/// The head of a signed webhook POST on a connection of its own.
fn webhook_head(port: u16, body: &[u8], extra: &str) -> String {
    let sig = signature::sign(APP_SECRET.as_bytes(), body);
    format!(
        "POST /api/webhook/whatsapp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Hub-Signature-256: {sig}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
}

/// One webhook POST that the server has demonstrably started to handle: it
/// is sent with `Expect: 100-continue`, and the server's `100 Continue` says
/// the request head was read and handed to the application. Half the body
/// follows, then `ready` is reported; the rest is sent on `go`. Returns the
/// final status.
pub fn in_flight_post(
    port: u16,
    body: Vec<u8>,
    ready: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> Result<u16, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| fail("connect", e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| fail("timeout", e))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| fail("clone", e))?);

    stream
        .write_all(webhook_head(port, &body, "Expect: 100-continue\r\n").as_bytes())
        .map_err(|e| fail("write POST head", e))?;
    let (status, _) = read_head(&mut reader).map_err(|e| fail("100 Continue", e))?;
    if status != 100 {
        return Err(format!("expected 100 Continue, got {status}"));
    }
    let half = body.len() / 2;
    stream
        .write_all(&body[..half])
        .map_err(|e| fail("write first half", e))?;
    stream.flush().map_err(|e| fail("flush", e))?;

    ready.send(()).map_err(|_| "test gave up".to_string())?;
    go.recv_timeout(Duration::from_secs(20))
        .map_err(|_| "no go signal".to_string())?;

    stream
        .write_all(&body[half..])
        .map_err(|e| fail("write second half", e))?;
    stream.flush().map_err(|e| fail("flush", e))?;
    let (status, _) = read_head(&mut reader).map_err(|e| fail("POST response", e))?;
    Ok(status)
}

/// Posts a signed webhook on a fresh connection and says precisely how it
/// ended (blocking; at most ~10 s).
pub fn post_once(port: u16, body: &[u8]) -> PostOutcome {
    let address = ([127, 0, 0, 1], port).into();
    let mut stream = match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return PostOutcome::Refused,
        Err(e) => return PostOutcome::NoResponse(format!("connect: {e}")),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = webhook_head(port, body, "").into_bytes();
    request.extend_from_slice(body);
    if let Err(e) = stream.write_all(&request).and_then(|()| stream.flush()) {
        return PostOutcome::NoResponse(format!("write: {e}"));
    }
    let mut reader = BufReader::new(stream);
    match read_head(&mut reader) {
        Ok((status, _)) => PostOutcome::Answered(status),
        Err(e) => PostOutcome::NoResponse(format!("read: {e}")),
    }
}

/// Polls until connecting to `port` is refused: the server stopped accepting.
pub fn wait_until_refused(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}
