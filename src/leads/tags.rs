//! Tags: a set of short labels per lead (`lead_tags`).

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;

use crate::db::schema::lead_tags;
use crate::db::DbConnection;
use crate::with_conn;

pub const MAX_TAG_CHARS: usize = 32;
pub const MAX_TAGS_PER_LEAD: usize = 20;

/// A tag as stored: trimmed and lower-cased, so `VIP`, ` vip ` and `vip`
/// are one tag. 1–32 characters of letters, digits, spaces (inside) and
/// `- _ . : /`; no commas, so a list of tags reads unambiguously.
pub fn normalise(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_lowercase();
    let length = tag.chars().count();
    if length == 0 || length > MAX_TAG_CHARS {
        return Err(format!(
            "a tag must be 1 to {MAX_TAG_CHARS} characters, got '{raw}'"
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "-_.:/".contains(c);
    if !tag.chars().all(allowed) {
        return Err(format!(
            "a tag may hold letters, digits, spaces and - _ . : / only, got '{raw}'"
        ));
    }
    Ok(tag)
}

/// The tags of each of these leads, sorted; leads without tags are absent.
pub fn for_leads(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<String>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = with_conn!(conn, c => lead_tags::table
        .filter(lead_tags::lead_id.eq_any(ids))
        .order((lead_tags::lead_id, lead_tags::tag))
        .select((lead_tags::lead_id, lead_tags::tag))
        .load(c))?;
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    for (lead_id, tag) in rows {
        tags.entry(lead_id).or_default().push(tag);
    }
    Ok(tags)
}

pub fn for_lead(conn: &mut DbConnection, id: i64) -> QueryResult<Vec<String>> {
    Ok(for_leads(conn, &[id])?.remove(&id).unwrap_or_default())
}

/// Sets the lead's tags to `wanted`; returns what was added and removed.
pub fn set(
    conn: &mut DbConnection,
    id: i64,
    wanted: &BTreeSet<String>,
) -> QueryResult<(Vec<String>, Vec<String>)> {
    let current: BTreeSet<String> = for_lead(conn, id)?.into_iter().collect();
    let added: Vec<String> = wanted.difference(&current).cloned().collect();
    let removed: Vec<String> = current.difference(wanted).cloned().collect();
    with_conn!(conn, c => {
        if !removed.is_empty() {
            diesel::delete(
                lead_tags::table
                    .filter(lead_tags::lead_id.eq(id))
                    .filter(lead_tags::tag.eq_any(&removed)),
            )
            .execute(c)?;
        }
        if !added.is_empty() {
            let rows: Vec<_> = added
                .iter()
                .map(|t| (lead_tags::lead_id.eq(id), lead_tags::tag.eq(t)))
                .collect();
            diesel::insert_into(lead_tags::table).values(&rows).execute(c)?;
        }
        QueryResult::Ok(())
    })?;
    Ok((added, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_bounded() {
        assert_eq!(normalise("  VIP ").unwrap(), "vip");
        assert_eq!(normalise("evening classes").unwrap(), "evening classes");
        assert_eq!(
            normalise("src:instagram/ad-1").unwrap(),
            "src:instagram/ad-1"
        );
        assert!(normalise("   ").is_err());
        assert!(normalise("a,b").is_err());
        assert!(normalise(&"x".repeat(MAX_TAG_CHARS + 1)).is_err());
        assert!(normalise(&"é".repeat(MAX_TAG_CHARS)).is_ok());
    }
}
