//! Bounded in-memory store of live conversations.
//!
//! Every newly stored inbound message is appended here, keyed by the sender
//! (BSUID when known, else phone number), so `GET /api/admin/conversations`
//! can show who is talking right now without a database query. The database
//! stays the source of truth: this store is a per-process cache that may
//! forget anything at any time, and it is built so that it *does* forget —
//! memory never grows without bound:
//!
//! - at most `max_messages` messages per conversation (the newest by
//!   WhatsApp timestamp are kept),
//! - at most `max_conversations` conversations (the least recently active
//!   ones make room for new ones),
//! - conversations idle longer than `idle_ttl` are dropped by
//!   [`ConversationStore::evict_idle`] (run periodically by
//!   [`spawn_janitor`]),
//! - message text is cut at [`MAX_TEXT_CHARS`] characters, so a single
//!   oversized body cannot pin megabytes per slot.
//!
//! Idempotency is the caller's job: only messages that were new to the
//! database are appended (a redelivered `wamid` must not be counted twice).
//! As a cheap second line of defence a `wamid` already held in the
//! conversation's window is ignored.
//!
//! Locking: DashMap shards are locked per key. No method ever holds a shard
//! guard while touching another key (that could deadlock two threads that
//! lock shards in opposite orders). The only other lock is the admission
//! mutex for *new* conversations; it is always taken before any shard guard,
//! never while one is held, so the lock order is fixed.
//!
//! Counting: `DashMap::len` sums the shards one after another, so while one
//! thread evicts from shard A and another inserts into shard B, it can see
//! both and report more than the cap although the map never held that many.
//! The store therefore keeps its own slot counter: raised *before* a new
//! conversation is inserted (under the admission lock, after checking the
//! cap) and lowered *after* one is removed. It is thus never below the true
//! number of conversations and never above the cap, which makes the cap an
//! invariant anyone can check with [`ConversationStore::len`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

/// Longest message text kept in memory, in characters. WhatsApp itself caps a
/// text body at 4096 characters (captions at 1024), so real messages are
/// never cut; the limit only matters for odd or hostile payloads.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Size limits of the store. Configuration rejects zeros; the store still
/// treats a 0 as 1 so a hand-built value cannot make it unbounded or useless.
#[derive(Debug, Clone, Copy)]
pub struct ConversationLimits {
    /// Messages kept per conversation (the newest by WhatsApp timestamp).
    pub max_messages: usize,
    /// Conversations kept at once.
    pub max_conversations: usize,
    /// A conversation with no new message for longer than this is evicted.
    pub idle_ttl: Duration,
}

impl ConversationLimits {
    /// The same limits with zeros raised to the smallest useful value.
    fn sanitized(self) -> Self {
        Self {
            max_messages: self.max_messages.max(1),
            max_conversations: self.max_conversations.max(1),
            idle_ttl: if self.idle_ttl.is_zero() {
                Duration::from_secs(1)
            } else {
                self.idle_ttl
            },
        }
    }
}

/// One message as the conversation view shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConversationMessage {
    pub wamid: String,
    pub message_type: String,
    /// The text summary (see SPEC "Text summary"), at most
    /// [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    /// WhatsApp's message timestamp (when the person sent it).
    pub timestamp: DateTime<Utc>,
}

/// What the store is told about each newly stored message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The conversation key: the sender's BSUID when known, else the phone
    /// number. Chosen by the caller, which knows how identities are parsed.
    pub key: String,
    pub phone_number: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub sender_name: Option<String>,
    pub message: ConversationMessage,
}

/// A conversation without its messages, as listed by the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConversationSummary {
    pub key: String,
    pub phone_number: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub sender_name: Option<String>,
    /// Messages currently held (at most `max_messages`).
    pub message_count: usize,
    /// Messages appended since the conversation started in memory.
    pub total_messages: u64,
    /// The newest held message by WhatsApp timestamp.
    pub last_message: Option<ConversationMessage>,
    /// When a message was last appended (wall clock).
    pub last_activity: DateTime<Utc>,
}

/// The state of one live conversation.
#[derive(Debug)]
struct Conversation {
    phone_number: Option<String>,
    user_id: Option<String>,
    username: Option<String>,
    sender_name: Option<String>,
    /// Sorted by WhatsApp timestamp, oldest first; equal timestamps keep
    /// arrival order.
    messages: VecDeque<ConversationMessage>,
    total_messages: u64,
    /// Newest WhatsApp timestamp ever appended. Identity fields are only
    /// overwritten by a message at least this new, so a late-arriving old
    /// message cannot bring back a name the person has since changed.
    newest_timestamp: Option<DateTime<Utc>>,
    /// Monotonic time of the last append: drives TTL and LRU eviction, so a
    /// wall-clock jump cannot evict everything or nothing.
    last_active_at: Instant,
    /// Wall-clock time of the last append, for display.
    last_activity: DateTime<Utc>,
}

impl Conversation {
    fn new(now: Instant, wall: DateTime<Utc>) -> Self {
        Self {
            phone_number: None,
            user_id: None,
            username: None,
            sender_name: None,
            messages: VecDeque::new(),
            total_messages: 0,
            newest_timestamp: None,
            last_active_at: now,
            last_activity: wall,
        }
    }

    fn append(&mut self, msg: NewMessage, max_messages: usize, now: Instant, wall: DateTime<Utc>) {
        let NewMessage {
            key: _,
            phone_number,
            user_id,
            username,
            sender_name,
            mut message,
        } = msg;

        if self.messages.iter().any(|m| m.wamid == message.wamid) {
            // Already held: a redelivery that slipped past the caller. It
            // changes nothing, not even the activity time.
            return;
        }

        let is_newest = self
            .newest_timestamp
            .is_none_or(|newest| message.timestamp >= newest);
        update_field(&mut self.phone_number, phone_number, is_newest);
        update_field(&mut self.user_id, user_id, is_newest);
        update_field(&mut self.username, username, is_newest);
        update_field(&mut self.sender_name, sender_name, is_newest);
        if is_newest {
            self.newest_timestamp = Some(message.timestamp);
        }

        truncate_chars(&mut message.text, MAX_TEXT_CHARS);
        // After every message with a timestamp <= this one: a late older
        // message goes in its place, ties keep arrival order.
        let at = self
            .messages
            .partition_point(|m| m.timestamp <= message.timestamp);
        self.messages.insert(at, message);
        while self.messages.len() > max_messages {
            // The oldest by timestamp goes; that may be the message just
            // inserted, when it is older than every message held.
            self.messages.pop_front();
        }

        self.total_messages = self.total_messages.saturating_add(1);
        // `now` was read before the shard lock was taken, so a concurrent
        // append may already have recorded a later instant.
        self.last_active_at = self.last_active_at.max(now);
        self.last_activity = self.last_activity.max(wall);
    }

    fn summary(&self, key: &str) -> ConversationSummary {
        ConversationSummary {
            key: key.to_owned(),
            phone_number: self.phone_number.clone(),
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            sender_name: self.sender_name.clone(),
            message_count: self.messages.len(),
            total_messages: self.total_messages,
            last_message: self.messages.back().cloned(),
            last_activity: self.last_activity,
        }
    }

    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_active_at)
    }
}

/// Sets `field` to `value` when the value is non-empty and either the field
/// is still unknown or the value comes from the newest message so far.
fn update_field(field: &mut Option<String>, value: Option<String>, is_newest: bool) {
    let Some(value) = value else { return };
    if value.trim().is_empty() {
        return;
    }
    if field.is_none() || is_newest {
        *field = Some(value);
    }
}

/// Cuts `text` to at most `max` characters (on a char boundary), marking the
/// cut with an ellipsis.
fn truncate_chars(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        // Room for the ellipsis inside the limit.
        let cut = text[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
        text.truncate(cut);
        text.push('…');
    }
}

/// The bounded store of live conversations. Cheap to share behind an `Arc`;
/// every method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct ConversationStore {
    map: DashMap<String, Conversation>,
    limits: ConversationLimits,
    /// Serialises the creation of new conversations. Appends to existing
    /// conversations never take it. Because every insertion of a new key
    /// happens under this lock, "check the count, make room, insert" is
    /// atomic with respect to other insertions, and the cap holds at every
    /// instant; concurrent removals only ever lower the count.
    admission: Mutex<()>,
    /// Slots taken: at least the number of conversations held, at most
    /// `max_conversations` (see the module docs, "Counting").
    slots: AtomicUsize,
}

impl ConversationStore {
    pub fn new(limits: ConversationLimits) -> Self {
        Self {
            map: DashMap::new(),
            limits: limits.sanitized(),
            admission: Mutex::new(()),
            slots: AtomicUsize::new(0),
        }
    }

    /// The limits in force (zeros already raised to 1).
    pub fn limits(&self) -> ConversationLimits {
        self.limits
    }

    /// Appends a newly stored message to its sender's conversation, creating
    /// the conversation (and making room for it) when needed.
    pub fn append(&self, msg: NewMessage) {
        self.append_at(msg, Instant::now());
    }

    /// [`append`](Self::append) with an explicit monotonic "now", so tests
    /// can drive TTL and recency without sleeping.
    pub fn append_at(&self, msg: NewMessage, now: Instant) {
        let wall = Utc::now();
        let max_messages = self.limits.max_messages;

        // Fast path: the conversation exists. Only its shard is locked.
        let msg = match self.map.get_mut(&msg.key) {
            Some(mut conversation) => {
                conversation.append(msg, max_messages, now, wall);
                return;
            }
            None => msg,
        };

        // Slow path: a new conversation. The guarded value is `()`, so a
        // poisoned lock carries no broken state and is simply taken over.
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another thread may have created it while we waited; only holders
        // of the admission lock insert keys, so the answer cannot change
        // under us.
        if let Some(mut conversation) = self.map.get_mut(&msg.key) {
            conversation.append(msg, max_messages, now, wall);
            return;
        }
        while self.slots.load(Ordering::Acquire) >= self.limits.max_conversations {
            if self.make_room(now) == 0 {
                // Nothing left to remove: a concurrent eviction removed the
                // entries but has not given their slots back yet.
                std::thread::yield_now();
            }
        }
        // Slot first, entry second: the counter never undercounts.
        self.slots.fetch_add(1, Ordering::AcqRel);
        match self.map.entry(msg.key.clone()) {
            dashmap::Entry::Vacant(vacant) => {
                let mut conversation = Conversation::new(now, wall);
                conversation.append(msg, max_messages, now, wall);
                vacant.insert(conversation);
            }
            // Cannot happen (checked above under the admission lock), but
            // if it did the slot must not leak.
            dashmap::Entry::Occupied(mut occupied) => {
                occupied.get_mut().append(msg, max_messages, now, wall);
                drop(occupied);
                self.release(1);
            }
        }
    }

    /// Gives back the slots of conversations already removed from the map.
    fn release(&self, removed: usize) {
        if removed > 0 {
            self.slots.fetch_sub(removed, Ordering::AcqRel);
        }
    }

    /// Frees slots for new conversations. Called with the admission lock
    /// held and the store full.
    ///
    /// Finding the least recently active conversation needs a scan of the
    /// whole map, O(n). Paying it on every new sender of a full store would
    /// make each insert O(n); instead one scan frees a batch: first every
    /// idle conversation (they are due to go anyway), then, if that is not
    /// enough, the least recently active ones until `max/16` slots (at
    /// least one) are free. The next `max/16 - 1` new conversations then
    /// insert without scanning, so the scan costs O(16) per insert
    /// amortised, at the price of forgetting up to 1/16 of the store a
    /// little earlier than strictly needed — harmless for a cache whose
    /// source of truth is the database.
    ///
    /// Returns how many conversations it removed.
    fn make_room(&self, now: Instant) -> usize {
        let max = self.limits.max_conversations;
        let batch = (max / 16).max(1);
        let target = max.saturating_sub(batch);

        let mut removed = self.evict_idle_at(now);
        for attempt in 0..4 {
            let len = self.slots.load(Ordering::Acquire);
            if len <= target {
                break;
            }
            let excess = len - target;
            // Snapshot (last activity, key); the iterator's shard guards are
            // released before anything is removed.
            let mut candidates: Vec<(Instant, String)> = self
                .map
                .iter()
                .map(|entry| (entry.value().last_active_at, entry.key().clone()))
                .collect();
            if excess < candidates.len() {
                candidates.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
                candidates.truncate(excess);
            }
            let last_attempt = attempt == 3;
            if candidates.is_empty() {
                break;
            }
            for (seen_at, key) in candidates {
                // A conversation that received a message since the snapshot
                // is no longer among the least recent: keep it, and rescan
                // if that leaves the store too full. The last attempt
                // removes regardless, so a steady stream of appends cannot
                // keep the loop spinning.
                let gone = self
                    .map
                    .remove_if(&key, |_, c| last_attempt || c.last_active_at <= seen_at)
                    .is_some();
                if gone {
                    self.release(1);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// The conversation held under `key` and its messages, oldest first by
    /// WhatsApp timestamp.
    pub fn get(&self, key: &str) -> Option<(ConversationSummary, Vec<ConversationMessage>)> {
        self.map.get(key).map(|conversation| {
            (
                conversation.summary(key),
                conversation.messages.iter().cloned().collect(),
            )
        })
    }

    /// Every conversation held, most recent activity first.
    pub fn list(&self) -> Vec<ConversationSummary> {
        let mut rows: Vec<(Instant, ConversationSummary)> = self
            .map
            .iter()
            .map(|entry| (entry.last_active_at, entry.value().summary(entry.key())))
            .collect();
        // Monotonic time orders reliably; the key breaks ties so the order
        // is stable from one call to the next.
        rows.sort_by(|(a_at, a), (b_at, b)| b_at.cmp(a_at).then_with(|| a.key.cmp(&b.key)));
        rows.into_iter().map(|(_, summary)| summary).collect()
    }

    /// Conversations currently held. Never above `max_conversations`; for
    /// an instant after a removal it may still count the removed one.
    pub fn len(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes conversations idle for longer than the TTL; returns how many.
    pub fn evict_idle(&self) -> usize {
        self.evict_idle_at(Instant::now())
    }

    /// [`evict_idle`](Self::evict_idle) with an explicit monotonic "now".
    pub fn evict_idle_at(&self, now: Instant) -> usize {
        let ttl = self.limits.idle_ttl;
        let mut evicted = 0;
        // `retain` locks one shard at a time and touches only that shard's
        // entries inside the closure.
        self.map.retain(|_, conversation| {
            let keep = conversation.idle_for(now) <= ttl;
            if !keep {
                evicted += 1;
            }
            keep
        });
        // Only now that they are gone from the map.
        self.release(evicted);
        evicted
    }

    /// Forgets every conversation.
    pub fn clear(&self) {
        let mut removed = 0;
        self.map.retain(|_, _| {
            removed += 1;
            false
        });
        self.release(removed);
    }
}

/// Runs [`ConversationStore::evict_idle`] every `every` (at least 1 ms)
/// until the returned task is aborted or the runtime shuts down. Must be
/// called from within a Tokio runtime.
///
/// The sweep locks each shard in turn and can take a while on a large store,
/// so it runs on the blocking pool rather than stalling an async worker.
pub fn spawn_janitor(
    store: Arc<ConversationStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let every = every.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; nothing can be idle yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let sweep_store = Arc::clone(&store);
            match tokio::task::spawn_blocking(move || sweep_store.evict_idle()).await {
                Ok(evicted) => log::debug!(
                    "conversation janitor: evicted {evicted} idle conversation(s), {} live",
                    store.len()
                ),
                Err(err) => log::warn!("conversation janitor: sweep failed: {err}"),
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn limits(max_messages: usize, max_conversations: usize, ttl_secs: u64) -> ConversationLimits {
        ConversationLimits {
            max_messages,
            max_conversations,
            idle_ttl: Duration::from_secs(ttl_secs),
        }
    }

    fn ts(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap()
    }

    fn msg(key: &str, wamid: &str, at: i64) -> NewMessage {
        NewMessage {
            key: key.to_owned(),
            phone_number: None,
            user_id: Some(key.to_owned()),
            username: None,
            sender_name: None,
            message: ConversationMessage {
                wamid: wamid.to_owned(),
                message_type: "text".to_owned(),
                text: format!("text of {wamid}"),
                timestamp: ts(at),
            },
        }
    }

    fn wamids(messages: &[ConversationMessage]) -> Vec<&str> {
        messages.iter().map(|m| m.wamid.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_messages_by_timestamp() {
        let store = ConversationStore::new(limits(3, 10, 60));
        for i in 0..5 {
            store.append(msg("US.1", &format!("w{i}"), i));
        }
        let (summary, messages) = store.get("US.1").unwrap();
        assert_eq!(wamids(&messages), ["w2", "w3", "w4"]);
        assert_eq!(summary.message_count, 3);
        assert_eq!(summary.total_messages, 5);
        assert_eq!(summary.last_message.unwrap().wamid, "w4");
    }

    #[test]
    fn late_older_message_goes_in_its_place() {
        let store = ConversationStore::new(limits(3, 10, 60));
        store.append(msg("US.1", "w10", 10));
        store.append(msg("US.1", "w30", 30));
        store.append(msg("US.1", "w20", 20));
        let (summary, messages) = store.get("US.1").unwrap();
        assert_eq!(wamids(&messages), ["w10", "w20", "w30"]);
        assert_eq!(summary.last_message.unwrap().wamid, "w30");

        // Older than everything held in a full window: counted, not kept.
        store.append(msg("US.1", "w5", 5));
        let (summary, messages) = store.get("US.1").unwrap();
        assert_eq!(wamids(&messages), ["w10", "w20", "w30"]);
        assert_eq!(summary.total_messages, 4);

        // Newer than the oldest held: the oldest goes.
        store.append(msg("US.1", "w15", 15));
        let (_, messages) = store.get("US.1").unwrap();
        assert_eq!(wamids(&messages), ["w15", "w20", "w30"]);
    }

    #[test]
    fn equal_timestamps_keep_arrival_order() {
        let store = ConversationStore::new(limits(5, 10, 60));
        store.append(msg("k", "a", 1));
        store.append(msg("k", "b", 1));
        store.append(msg("k", "c", 1));
        assert_eq!(wamids(&store.get("k").unwrap().1), ["a", "b", "c"]);
    }

    #[test]
    fn a_held_wamid_is_not_appended_twice() {
        let store = ConversationStore::new(limits(5, 10, 60));
        store.append(msg("k", "a", 1));
        store.append(msg("k", "a", 1));
        let (summary, messages) = store.get("k").unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(summary.total_messages, 1);
    }

    #[test]
    fn total_cap_evicts_least_recently_active() {
        let store = ConversationStore::new(limits(2, 4, 3600));
        let t0 = Instant::now();
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            store.append_at(msg(key, key, 0), t0 + Duration::from_secs(i as u64));
        }
        // "a" becomes the most recent; "b" is now the least recent.
        store.append_at(msg("a", "a2", 1), t0 + Duration::from_secs(10));
        store.append_at(msg("e", "e", 0), t0 + Duration::from_secs(11));
        assert_eq!(store.len(), 4);
        assert!(store.get("b").is_none());
        for key in ["a", "c", "d", "e"] {
            assert!(store.get(key).is_some(), "{key} should be kept");
        }
    }

    #[test]
    fn full_store_evicts_a_batch_so_inserts_do_not_scan_every_time() {
        let store = ConversationStore::new(limits(1, 64, 3600));
        let t0 = Instant::now();
        for i in 0..64u64 {
            store.append_at(msg(&format!("k{i}"), "w", 0), t0 + Duration::from_secs(i));
        }
        assert_eq!(store.len(), 64);
        store.append_at(msg("new", "w", 0), t0 + Duration::from_secs(100));
        // 64/16 = 4 slots were freed, then one used.
        assert_eq!(store.len(), 61);
        for i in 0..4 {
            assert!(store.get(&format!("k{i}")).is_none());
        }
        assert!(store.get("k4").is_some());
        assert!(store.get("new").is_some());
    }

    #[test]
    fn full_store_prefers_evicting_idle_conversations() {
        let store = ConversationStore::new(limits(1, 4, 60));
        let t0 = Instant::now();
        store.append_at(msg("stale", "w", 0), t0);
        store.append_at(msg("a", "w", 0), t0 + Duration::from_secs(100));
        store.append_at(msg("b", "w", 0), t0 + Duration::from_secs(101));
        store.append_at(msg("c", "w", 0), t0 + Duration::from_secs(102));
        store.append_at(msg("d", "w", 0), t0 + Duration::from_secs(103));
        assert!(store.get("stale").is_none());
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn total_cap_holds_under_concurrent_appends() {
        const CAP: usize = 100;
        let store = Arc::new(ConversationStore::new(limits(4, CAP, 3600)));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

        let watcher = {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut max_seen = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    max_seen = max_seen.max(store.len());
                    std::thread::yield_now();
                }
                max_seen
            })
        };

        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        // Overlapping key ranges: threads race to create and
                        // append to the same conversations.
                        let key = format!("k{}", (i * 7 + t * 13) % 700);
                        store.append(msg(&key, &format!("t{t}-{i}"), i64::from(i)));
                        assert!(store.len() <= CAP);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let max_seen = watcher.join().unwrap();

        assert!(max_seen <= CAP, "saw {max_seen} conversations");
        assert!(store.len() <= CAP);
        // Quiescent now: the slot counter and the map agree exactly.
        assert_eq!(store.len(), store.map.len());
        assert!(!store.is_empty());
        for summary in store.list() {
            assert!(summary.message_count <= 4);
        }
    }

    #[test]
    fn idle_conversations_are_evicted_after_the_ttl() {
        let store = ConversationStore::new(limits(5, 10, 60));
        let t0 = Instant::now();
        store.append_at(msg("old", "w1", 0), t0);
        store.append_at(msg("fresh", "w2", 0), t0 + Duration::from_secs(50));

        assert_eq!(store.evict_idle_at(t0 + Duration::from_secs(60)), 0);
        assert_eq!(store.evict_idle_at(t0 + Duration::from_secs(61)), 1);
        assert!(store.get("old").is_none());
        assert!(store.get("fresh").is_some());

        // New activity restarts the clock.
        store.append_at(msg("fresh", "w3", 1), t0 + Duration::from_secs(100));
        assert_eq!(store.evict_idle_at(t0 + Duration::from_secs(150)), 0);
        assert_eq!(store.evict_idle_at(t0 + Duration::from_secs(161)), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn list_is_most_recent_activity_first() {
        let store = ConversationStore::new(limits(5, 10, 60));
        let t0 = Instant::now();
        store.append_at(msg("a", "a1", 0), t0);
        store.append_at(msg("b", "b1", 0), t0 + Duration::from_secs(1));
        store.append_at(msg("c", "c1", 0), t0 + Duration::from_secs(2));
        // Activity, not WhatsApp timestamp, decides: an old message to "a"
        // arriving last still makes "a" the most recent.
        store.append_at(msg("a", "a0", -100), t0 + Duration::from_secs(3));
        let keys: Vec<String> = store.list().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["a", "c", "b"]);
    }

    #[test]
    fn identity_fields_take_the_latest_non_empty_values() {
        let store = ConversationStore::new(limits(5, 10, 60));
        let mut first = msg("US.1", "w1", 10);
        first.user_id = Some("US.1".into());
        first.sender_name = Some("Ana".into());
        first.username = None;
        store.append(first);

        let mut second = msg("US.1", "w2", 20);
        second.user_id = None;
        second.phone_number = Some("15551234567".into());
        second.sender_name = Some("Ana María".into());
        second.username = Some("@ana".into());
        store.append(second);

        // Empty values never blank what is known.
        let mut third = msg("US.1", "w3", 30);
        third.sender_name = Some("   ".into());
        third.username = Some(String::new());
        store.append(third);

        // A late older message fills nothing already known.
        let mut late = msg("US.1", "w0", 5);
        late.sender_name = Some("Old Name".into());
        late.username = Some("@old".into());
        store.append(late);

        let (summary, _) = store.get("US.1").unwrap();
        assert_eq!(summary.user_id.as_deref(), Some("US.1"));
        assert_eq!(summary.phone_number.as_deref(), Some("15551234567"));
        assert_eq!(summary.sender_name.as_deref(), Some("Ana María"));
        assert_eq!(summary.username.as_deref(), Some("@ana"));
    }

    #[test]
    fn late_older_message_fills_unknown_identity_fields() {
        let store = ConversationStore::new(limits(5, 10, 60));
        store.append(msg("US.1", "w2", 20));
        let mut late = msg("US.1", "w1", 10);
        late.phone_number = Some("15551234567".into());
        store.append(late);
        let (summary, _) = store.get("US.1").unwrap();
        assert_eq!(summary.phone_number.as_deref(), Some("15551234567"));
    }

    #[test]
    fn zero_limits_are_treated_as_one() {
        let store = ConversationStore::new(limits(0, 0, 0));
        assert_eq!(store.limits().max_messages, 1);
        assert_eq!(store.limits().max_conversations, 1);
        store.append(msg("a", "a1", 1));
        store.append(msg("a", "a2", 2));
        store.append(msg("b", "b1", 1));
        assert_eq!(store.len(), 1);
        let (_, messages) = store.get("b").unwrap();
        assert_eq!(wamids(&messages), ["b1"]);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let store = ConversationStore::new(limits(5, 10, 60));
        let mut long = msg("k", "w", 1);
        long.message.text = "é".repeat(MAX_TEXT_CHARS + 10);
        store.append(long);
        let (_, messages) = store.get("k").unwrap();
        assert_eq!(messages[0].text.chars().count(), MAX_TEXT_CHARS);
        assert!(messages[0].text.ends_with('…'));

        let mut exact = msg("k", "w2", 2);
        exact.message.text = "x".repeat(MAX_TEXT_CHARS);
        store.append(exact);
        let (_, messages) = store.get("k").unwrap();
        assert_eq!(messages[1].text, "x".repeat(MAX_TEXT_CHARS));
    }

    #[test]
    fn clear_forgets_everything() {
        let store = ConversationStore::new(limits(5, 10, 60));
        store.append(msg("a", "w", 1));
        store.append(msg("b", "w", 1));
        store.clear();
        assert!(store.is_empty());
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn janitor_evicts_idle_conversations() {
        let store = Arc::new(ConversationStore::new(limits(5, 10, 1)));
        let long_ago = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
        store.append_at(msg("a", "w", 1), long_ago);
        let janitor = spawn_janitor(Arc::clone(&store), Duration::from_millis(10));
        for _ in 0..100 {
            if store.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        janitor.abort();
        assert!(store.is_empty());
    }
}
