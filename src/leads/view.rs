//! A lead as the admin API shows it: the row plus its tags.

use diesel::QueryResult;
use serde::Serialize;

use crate::db::DbConnection;
use crate::leads::{tags, Lead};

#[derive(Debug, Clone, Serialize)]
pub struct LeadView {
    #[serde(flatten)]
    pub lead: Lead,
    pub tags: Vec<String>,
}

/// The leads with their tags, in the same order (one query for the tags).
pub fn with_tags(conn: &mut DbConnection, leads: Vec<Lead>) -> QueryResult<Vec<LeadView>> {
    let ids: Vec<i64> = leads.iter().map(|l| l.id).collect();
    let mut tags = tags::for_leads(conn, &ids)?;
    Ok(leads
        .into_iter()
        .map(|lead| LeadView {
            tags: tags.remove(&lead.id).unwrap_or_default(),
            lead,
        })
        .collect())
}

pub fn one(conn: &mut DbConnection, lead: Lead) -> QueryResult<LeadView> {
    let tags = tags::for_lead(conn, lead.id)?;
    Ok(LeadView { lead, tags })
}
