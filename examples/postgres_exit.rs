//! Shows why `db::postgres_process_setup` runs before the first PostgreSQL
//! connection: a process that exits while other threads open connections
//! can crash in OpenSSL's clean-up at exit, unless OpenSSL was initialised
//! without it.
//!
//!     cargo run --example postgres_exit -- [runs] [postgres-url]
//!
//! Runs itself `runs` times (default 50) with the set-up and as many times
//! without, each run exiting while four threads connect to PostgreSQL over
//! TLS, and prints how many runs of each kind ended with a signal. The URL
//! defaults to `postgres://postgres@127.0.0.1:5432/postgres`; the server
//! must offer TLS for the difference to show.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use diesel::{Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let set_up = args.get(2).map(String::as_str) == Some("set-up");
        child(
            args.get(3).map(String::as_str).unwrap_or(DEFAULT_URL),
            set_up,
        );
        return;
    }
    let runs: usize = args
        .get(1)
        .map_or(50, |n| n.parse().expect("runs: a number"));
    let url = args.get(2).map(String::as_str).unwrap_or(DEFAULT_URL);
    for mode in ["set-up", "no-set-up"] {
        let crashed = (0..runs)
            .filter(|_| {
                let status = Command::new(&args[0])
                    .args(["--child", mode, url])
                    .status()
                    .expect("running the example again");
                if status.code().is_some_and(|c| c != 0) {
                    panic!("a run failed without a signal: {status}");
                }
                status.signal().is_some()
            })
            .count();
        println!("{mode}: {crashed} of {runs} runs ended with a signal");
    }
}

/// One connection on the main thread, then four threads that connect and
/// disconnect without end while the main thread returns.
fn child(url: &str, set_up: bool) {
    if set_up {
        leadhook::db::postgres_process_setup();
    }
    let url = url.to_string();
    drop(PgConnection::establish(&url).expect("PostgreSQL at the given URL"));
    for _ in 0..4 {
        let url = url.clone();
        std::thread::spawn(move || loop {
            drop(PgConnection::establish(&url));
        });
    }
    std::thread::sleep(Duration::from_millis(300));
}
