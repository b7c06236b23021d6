//! What one stored message does to its lead, and the rows it becomes. Shared
//! by the per-body path and the batch path, so both count alike.

use chrono::NaiveDateTime;

use crate::conversations::{ConversationMessage, NewMessage as ConversationEntry};
use crate::leads::model::Lead;
use crate::leads::score::{self, Engagement};
use crate::messages::NewMessage;
use crate::time;
use crate::whatsapp::payload::InboundMessage;

/// The `messages` row of an inbound message.
pub fn message_row<'a>(
    msg: &'a InboundMessage,
    lead_id: Option<i64>,
    now: NaiveDateTime,
) -> NewMessage<'a> {
    let referral = msg.referral.as_ref();
    NewMessage {
        wamid: &msg.wamid,
        lead_id,
        direction: "inbound",
        phone_number: msg.sender.phone().map(|p| p.as_str()),
        user_id: msg.sender.bsuid().map(|b| b.as_str()),
        sender_name: msg.profile_name.as_deref(),
        business_phone_number_id: msg.business_phone_number_id.as_deref(),
        message_type: &msg.message_type,
        body: &msg.summary,
        wa_timestamp: time::from_utc(msg.timestamp).into(),
        received_at: now.into(),
        referral_source_type: referral.map(|r| r.source_type.as_str()),
        referral_source_id: referral.and_then(|r| r.source_id.as_deref()),
        referral_source_url: referral.and_then(|r| r.source_url.as_deref()),
        referral_headline: referral.and_then(|r| r.headline.as_deref()),
    }
}

/// The entry the live-conversation store gets once the message is committed.
pub fn conversation_entry(msg: &InboundMessage) -> ConversationEntry {
    ConversationEntry {
        key: msg.sender.conversation_key().to_string(),
        phone_number: msg.sender.phone().map(|p| p.as_str().to_string()),
        user_id: msg.sender.bsuid().map(|b| b.as_str().to_string()),
        username: msg.username.clone(),
        sender_name: msg.profile_name.clone(),
        message: ConversationMessage {
            wamid: msg.wamid.clone(),
            message_type: msg.message_type.clone(),
            text: msg.summary.clone(),
            timestamp: msg.timestamp,
        },
    }
}

/// The lead a first message from an unknown sender creates, before it has
/// an id (insert it through `NewLead::from`). Attribution (referral, business
/// number) comes from this first message; the pipeline starts at `new`.
pub fn start_lead(msg: &InboundMessage, now: NaiveDateTime) -> Lead {
    let wa_time = time::from_utc(msg.timestamp);
    let mut lead = Lead {
        id: 0,
        phone_number: msg.sender.phone().map(|p| p.as_str().to_string()),
        user_id: msg.sender.bsuid().map(|b| b.as_str().to_string()),
        parent_user_id: None,
        username: None,
        sender_name: None,
        first_message: msg.summary.clone(),
        first_message_time: wa_time,
        last_message: msg.summary.clone(),
        last_message_time: wa_time,
        message_count: 1,
        is_active: true,
        converted_to_student: false,
        student_id: None,
        created_at: now,
        updated_at: now,
        status: "new".to_string(),
        priority: "medium".to_string(),
        value_minor: None,
        value_currency: None,
        assigned_to: None,
        next_follow_up_at: None,
        converted_at: None,
        source_type: None,
        source_id: None,
        source_url: None,
        source_headline: None,
        business_phone_number_id: None,
        interactive_replies: i64::from(score::is_interactive_reply(&msg.message_type)),
        score: 0,
    };
    attribute_to(&mut lead, msg);
    refresh_profile(&mut lead, msg, true);
    rescore(&mut lead, false);
    lead
}

/// Counts a new message on its lead. First and last follow WhatsApp's
/// timestamps, so a late-arriving older message never becomes `last_message`;
/// attribution follows the first message (first touch); profile details
/// follow the newest message that carries them.
pub fn fold_message(lead: &mut Lead, msg: &InboundMessage, now: NaiveDateTime) {
    let wa_time = time::from_utc(msg.timestamp);
    let is_newest = wa_time >= lead.last_message_time;
    let live = is_newest && score::is_live(lead.last_message_time, wa_time);
    lead.message_count += 1;
    if score::is_interactive_reply(&msg.message_type) {
        lead.interactive_replies += 1;
    }
    if wa_time < lead.first_message_time {
        lead.first_message = msg.summary.clone();
        lead.first_message_time = wa_time;
        attribute_to(lead, msg);
    }
    if is_newest {
        lead.last_message = msg.summary.clone();
        lead.last_message_time = wa_time;
    }
    refresh_profile(lead, msg, is_newest);
    lead.is_active = true;
    lead.updated_at = now;
    rescore(lead, live);
}

/// Recomputes the stored score from the lead's fields.
pub fn rescore(lead: &mut Lead, live: bool) {
    lead.score = score::score(&Engagement {
        message_count: lead.message_count,
        interactive_replies: lead.interactive_replies,
        source_type: lead.source_type.as_deref(),
        live,
    });
}

/// Makes `msg` the lead's source: its referral (or none) and, when it names
/// one, the business number it was sent to.
fn attribute_to(lead: &mut Lead, msg: &InboundMessage) {
    let referral = msg.referral.as_ref();
    lead.source_type = referral.map(|r| r.source_type.clone());
    lead.source_id = referral.and_then(|r| r.source_id.clone());
    lead.source_url = referral.and_then(|r| r.source_url.clone());
    lead.source_headline = referral.and_then(|r| r.headline.clone());
    if msg.business_phone_number_id.is_some() {
        lead.business_phone_number_id = msg.business_phone_number_id.clone();
    }
}

fn refresh_profile(lead: &mut Lead, msg: &InboundMessage, is_newest: bool) {
    let take = |current: &mut Option<String>, incoming: &Option<String>| {
        if let Some(value) = incoming.as_ref().filter(|v| !v.trim().is_empty()) {
            if is_newest || current.is_none() {
                *current = Some(value.clone());
            }
        }
    };
    take(&mut lead.sender_name, &msg.profile_name);
    take(&mut lead.username, &msg.username);
    take(&mut lead.parent_user_id, &msg.parent_user_id);
}
