//! Did every `200` store its message, and nothing else get stored?
//!
//! `200` means "committed" by contract. The admin API's
//! `GET /api/admin/leads/stats` reports `messages_total`; read before and
//! after the run, it must have grown by exactly the number of `200` answers
//! (every request carries a message id no earlier request had).
//!
//! Requests that got *no* answer (client timeout, connection broken after
//! sending) may or may not have been committed, and both are correct
//! behaviour: the server cannot tell the client it committed if the client
//! has gone. Such commits are reported on their own line, never as lost or
//! duplicated. Anything stored beyond `200`s plus unanswered requests is
//! reported as duplicated: a non-`200` answer that was committed anyway
//! (which the contract forbids), or some other client writing to the same
//! server during the run.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

/// The figures and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub messages_before: i64,
    pub messages_after: i64,
    /// `messages_after - messages_before`.
    pub stored: i64,
    pub answered_200: u64,
    /// Written but never answered: outcome unknown.
    pub unanswered: u64,
    /// Answered with another status: must not have been stored.
    pub answered_other: u64,
    /// Stored beyond the `200`s, explained by unanswered requests.
    pub committed_without_answer: u64,
    /// `200`s whose message is not stored.
    pub lost: u64,
    /// Stored beyond `200`s and unanswered requests.
    pub duplicated: u64,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

/// Compares the growth of the message count with the answers received.
pub fn account(
    before: i64,
    after: i64,
    answered_200: u64,
    unanswered: u64,
    answered_other: u64,
) -> Verdict {
    let stored = after - before;
    let extra = i128::from(stored) - i128::from(answered_200);
    let (lost, committed_without_answer, duplicated) = if extra < 0 {
        (u64::try_from(-extra).unwrap_or(u64::MAX), 0, 0)
    } else {
        let extra = u64::try_from(extra).unwrap_or(u64::MAX);
        let explained = extra.min(unanswered);
        (0, explained, extra - explained)
    };
    Verdict {
        messages_before: before,
        messages_after: after,
        stored,
        answered_200,
        unanswered,
        answered_other,
        committed_without_answer,
        lost,
        duplicated,
    }
}

/// Reads `messages_total` from the admin API.
pub struct Stats {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Stats {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Stats> {
        Ok(Stats {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("cannot create the admin API client")?,
            url: format!("{base}/api/admin/leads/stats"),
            token: token.to_owned(),
        })
    }

    pub async fn messages_total(&self) -> anyhow::Result<i64> {
        let response = self
            .client
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            200 => {}
            401 => {
                bail!("the admin API refused --admin-token (401): pass the server's ADMIN_TOKEN")
            }
            503 => bail!("the admin API is disabled or the database is down (503): {text}"),
            _ => bail!("GET {} answered {status}: {text}", self.url),
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).context("the admin API's stats are not JSON")?;
        value["messages_total"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("the admin API's stats have no messages_total: {text}"))
    }

    /// Reads until two reads `interval` apart agree (requests that timed out
    /// on the client may still be committing), for at most `limit`.
    pub async fn settled_total(&self, interval: Duration, limit: Duration) -> anyhow::Result<i64> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = self.messages_total().await?;
        loop {
            if tokio::time::Instant::now() + interval > deadline {
                return Ok(last);
            }
            tokio::time::sleep(interval).await;
            let now = self.messages_total().await?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_passes() {
        let v = account(100, 1100, 1000, 0, 0);
        assert_eq!((v.stored, v.lost, v.duplicated), (1000, 0, 0));
        assert!(v.passed());
    }

    #[test]
    fn fewer_stored_than_200s_is_loss() {
        let v = account(0, 990, 1000, 5, 3);
        assert_eq!(
            (v.lost, v.duplicated, v.committed_without_answer),
            (10, 0, 0)
        );
        assert!(!v.passed());
    }

    #[test]
    fn unanswered_requests_may_have_committed() {
        // 3 requests timed out on the client; 2 of them were committed.
        let v = account(0, 1002, 1000, 3, 0);
        assert_eq!(
            (v.lost, v.duplicated, v.committed_without_answer),
            (0, 0, 2)
        );
        assert!(v.passed());
    }

    #[test]
    fn more_than_unanswered_can_explain_is_duplication() {
        // 7 extra messages, only 3 requests without an answer: 4 stored
        // that no request of this run can account for.
        let v = account(0, 1007, 1000, 3, 10);
        assert_eq!(
            (v.lost, v.duplicated, v.committed_without_answer),
            (0, 4, 3)
        );
        assert!(!v.passed());
    }
}
