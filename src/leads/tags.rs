//! Tags of leads.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::schema::lead_tags;
use crate::db::DbConnection;
use crate::with_conn;

/// The tags of each of `ids` that has any, in alphabetical order.
pub fn for_leads(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<String>>> {
    let rows: Vec<(i64, String)> = with_conn!(conn, c => lead_tags::table
        .filter(lead_tags::lead_id.eq_any(ids))
        .order((lead_tags::lead_id, lead_tags::tag))
        .select((lead_tags::lead_id, lead_tags::tag))
        .load(c))?;
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, tag) in rows {
        tags.entry(id).or_default().push(tag);
    }
    Ok(tags)
}
