//! Measures what live conversations cost in memory, and shows the store's
//! caps hold when more senders and messages arrive than it may keep.
//!
//!     cargo run --release --example conversation_memory -- [conversations] [messages-each]
//!
//! Prints resident memory (from /proc/self/statm) before and after filling the
//! store, and the cost per conversation.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use leadhook::conversations::{
    ConversationLimits, ConversationMessage, ConversationStore, NewMessage,
};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn message(sender: usize, n: usize) -> NewMessage {
    NewMessage {
        key: format!("US.{:020}", sender),
        phone_number: Some(format!("1555{:07}", sender)),
        user_id: Some(format!("US.{:020}", sender)),
        username: None,
        sender_name: Some("Ada Lovelace".into()),
        message: ConversationMessage {
            wamid: format!("wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUIy{sender:08}{n:04}"),
            message_type: "text".into(),
            text: "Hello! I'd like to know more about your evening courses.".into(),
            timestamp: Utc
                .timestamp_opt(1_763_000_000 + n as i64, 0)
                .single()
                .unwrap_or_else(Utc::now),
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conversations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let per_conversation: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let store = ConversationStore::new(ConversationLimits {
        max_messages: per_conversation,
        max_conversations: conversations,
        idle_ttl: Duration::from_secs(3600),
    });
    let before = resident_bytes();
    for n in 0..per_conversation {
        for sender in 0..conversations {
            store.append(message(sender, n));
        }
    }
    let filled = resident_bytes();
    let per = (filled.saturating_sub(before)) as f64 / conversations as f64;
    println!(
        "{conversations} conversations x {per_conversation} messages: resident {:.1} MiB -> {:.1} MiB, {:.0} bytes per conversation ({:.0} per message)",
        before as f64 / 1048576.0,
        filled as f64 / 1048576.0,
        per,
        per / per_conversation as f64
    );

    // Twice as many senders, each with twice the messages: the caps hold.
    for n in 0..per_conversation * 2 {
        for sender in conversations..conversations * 2 {
            store.append(message(sender, n));
        }
    }
    let held = store.len();
    let longest = store
        .list()
        .iter()
        .map(|c| c.message_count)
        .max()
        .unwrap_or(0);
    println!(
        "after {} more senders x {} messages: {held} conversations held (cap {conversations}), longest {longest} messages (cap {per_conversation}), resident {:.1} MiB",
        conversations,
        per_conversation * 2,
        resident_bytes() as f64 / 1048576.0
    );
    assert!(held <= conversations && longest <= per_conversation);
}
