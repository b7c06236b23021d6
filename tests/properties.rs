//! Property tests for hostile input ("Hostile input"): the signature check,
//! the webhook body parser and the ingest write path must hold up against
//! anything an attacker, a broken relay or an at-least-once delivery order can
//! send.
//!
//! Case counts: each property has a default small enough for CI in debug on
//! a 2-core machine; `PROPTEST_CASES=N` overrides every property's count
//! (for a longer campaign, ideally with `--release`). Failures are never
//! persisted to files: a failing case is printed, shrunk (for at most 30 s
//! unless `PROPTEST_MAX_SHRINK_TIME` is set), in the test output.

#[path = "properties/ingest.rs"]
mod ingest;
#[path = "properties/json.rs"]
mod json;
#[path = "properties/payload.rs"]
mod payload;
#[path = "properties/signature.rs"]
mod signature;

use proptest::test_runner::Config;

/// The configuration of every property: `default_cases` cases unless
/// `PROPTEST_CASES` says otherwise, and no failure persistence (nothing is
/// written into the repository).
///
/// `Config::default()` already reads `PROPTEST_CASES`, but `with_cases`
/// overrides it, so the variable is read here explicitly.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default_cases);
    let defaults = Config::default();
    Config {
        cases,
        failure_persistence: None,
        // Shrinking a failing database case replays it hundreds of times:
        // bound it (unless `PROPTEST_MAX_SHRINK_TIME` says otherwise) so a
        // failure costs CI seconds, not minutes.
        max_shrink_time: match defaults.max_shrink_time {
            0 => 30_000,
            set => set,
        },
        ..defaults
    }
}
