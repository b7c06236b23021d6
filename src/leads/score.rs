//! The engagement score of a lead: a number from 0 to 100, recomputed each
//! time a message is stored, so the lead list can sort by it from an index.
//!
//! | part | points |
//! |---|---|
//! | messages | 4 per message, at most 40 (10 messages) |
//! | replies to interactive prompts (buttons, lists) | 10 each, at most 30 |
//! | source | 20 from a click-to-WhatsApp ad, 10 from another referral (post, …), 0 organic |
//! | live conversation | 10 when the newest message came less than 24 h after the one before it |
//!
//! It is a pure function of the lead's stored fields plus the "live" flag of
//! the message being stored, so the same messages give the same score. It
//! does not decay while a lead stays silent: freshness is what the default
//! sort (last activity) is for.

use chrono::{Duration, NaiveDateTime};

/// Message types that answer an interactive prompt the business sent.
pub const INTERACTIVE_REPLY_TYPES: [&str; 2] = ["interactive", "button"];

/// The inputs of the score.
pub struct Engagement<'a> {
    pub message_count: i64,
    pub interactive_replies: i64,
    pub source_type: Option<&'a str>,
    pub live: bool,
}

pub fn score(e: &Engagement<'_>) -> i64 {
    let messages = 4 * e.message_count.clamp(0, 10);
    let interactive = 10 * e.interactive_replies.clamp(0, 3);
    let source = match e.source_type {
        Some("ad") => 20,
        Some(_) => 10,
        None => 0,
    };
    let live = if e.live { 10 } else { 0 };
    messages + interactive + source + live
}

/// Whether a message at `at` continues a conversation whose previous message
/// was at `previous`.
pub fn is_live(previous: NaiveDateTime, at: NaiveDateTime) -> bool {
    at >= previous && at - previous < Duration::hours(24)
}

pub fn is_interactive_reply(message_type: &str) -> bool {
    INTERACTIVE_REPLY_TYPES.contains(&message_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(message_count: i64, interactive_replies: i64, source: Option<&str>, live: bool) -> i64 {
        score(&Engagement {
            message_count,
            interactive_replies,
            source_type: source,
            live,
        })
    }

    #[test]
    fn parts_add_up_and_are_capped() {
        assert_eq!(e(1, 0, None, false), 4);
        assert_eq!(e(3, 1, Some("post"), true), 12 + 10 + 10 + 10);
        assert_eq!(e(10, 3, Some("ad"), true), 100);
        assert_eq!(e(500, 90, Some("ad"), true), 100);
    }

    #[test]
    fn live_means_within_a_day_after_the_previous_message() {
        let t = chrono::DateTime::from_timestamp(1_779_012_345, 0)
            .unwrap()
            .naive_utc();
        assert!(is_live(t, t + Duration::hours(23)));
        assert!(!is_live(t, t + Duration::hours(24)));
        assert!(!is_live(t, t - Duration::minutes(1)));
    }
}
