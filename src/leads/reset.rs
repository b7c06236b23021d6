//! Wiping the lead data: every lead with its messages, tags, notes and
//! timeline, and the dead-letter table. Students stay.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{
    lead_activity, lead_activity_days, lead_counters, lead_created_days, lead_notes, lead_tags,
    lead_value_counts, leads, messages, webhook_failures,
};
use crate::db::DbConnection;
use crate::with_conn;

/// What a reset must be sent, exactly, in its `confirm` field.
pub const CONFIRMATION: &str = "delete all leads";

/// How many rows of each kind were removed.
#[derive(Debug, Default, Serialize)]
pub struct Wiped {
    pub leads: usize,
    pub messages: usize,
    pub tags: usize,
    pub notes: usize,
    pub activity: usize,
    pub webhook_failures: usize,
}

pub fn wipe(conn: &mut DbConnection) -> QueryResult<Wiped> {
    with_conn!(conn, c => {
        // Children first: counted here rather than vanishing by cascade.
        let wiped = Wiped {
            activity: diesel::delete(lead_activity::table).execute(c)?,
            notes: diesel::delete(lead_notes::table).execute(c)?,
            tags: diesel::delete(lead_tags::table).execute(c)?,
            messages: diesel::delete(messages::table).execute(c)?,
            leads: diesel::delete(leads::table).execute(c)?,
            webhook_failures: diesel::delete(webhook_failures::table).execute(c)?,
        };
        // The triggers have counted every row down already; setting the
        // totals outright also repairs any drift.
        diesel::update(lead_counters::table)
            .set((
                lead_counters::leads.eq(0),
                lead_counters::active.eq(0),
                lead_counters::converted.eq(0),
                lead_counters::messages.eq(0),
            ))
            .execute(c)?;
        diesel::delete(lead_value_counts::table).execute(c)?;
        diesel::delete(lead_activity_days::table).execute(c)?;
        diesel::delete(lead_created_days::table).execute(c)?;
        QueryResult::Ok(wiped)
    })
}
